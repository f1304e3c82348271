// `dbaudit webhook` as a child process over real HTTPS (the certificate from
// k8s/webhook-cert/make-cert.sh, verified for the Service's DNS name against
// its CA as the API server verifies it against the caBundle), sent real AdmissionReview v1 JSON; its JSONPatch applied with an
// independent RFC 6902 implementation and the result schema-validated.
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fastJsonPatch from 'fast-json-patch';
import { makeTempDir, needServer, run, skipUnless, type TempDir } from '../test/harness/index.js';
import { podTemplate, validateObject, type KObject } from '../test/k8s/kube.js';
import { silentLogger } from '../lib/log.js';
import { planAll, SIDECAR_NAME } from './inject.js';
import { startWebhook } from './webhook.js';

const BIN = join(import.meta.dirname, '../bin/dbaudit.js');
const PG = { 'dbaudit.io/inject': 'true', 'dbaudit.io/upstream': 'orders-db.shop.svc:5432' };

interface ReviewResponse {
  apiVersion: string;
  kind: string;
  response: { uid: string; allowed: boolean; patchType?: string; patch?: string; status?: { code: number; message: string } };
}

const GVR: Record<string, { group: string; version: string; resource: string }> = {
  Pod: { group: '', version: 'v1', resource: 'pods' },
  Deployment: { group: 'apps', version: 'v1', resource: 'deployments' },
  StatefulSet: { group: 'apps', version: 'v1', resource: 'statefulsets' },
};

/** An AdmissionReview as the API server sends it for a CREATE. */
function admissionReview(object: KObject): Record<string, unknown> {
  const g = GVR[object.kind];
  const kind = { group: g.group, version: g.version, kind: object.kind };
  const resource = { group: g.group, version: g.version, resource: g.resource };
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: randomUUID(),
      kind,
      resource,
      requestKind: kind,
      requestResource: resource,
      name: object.metadata.name,
      namespace: 'shop',
      operation: 'CREATE',
      userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller', uid: randomUUID(), groups: ['system:serviceaccounts', 'system:authenticated'] },
      object,
      oldObject: null,
      dryRun: false,
      options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions' },
    },
  };
}

function workload(kind: 'Pod' | 'Deployment' | 'StatefulSet', name: string, annotations?: Record<string, string>): KObject {
  const spec = {
    initContainers: kind === 'StatefulSet' ? [{ name: 'migrate', image: 'shop/migrate:1' }] : undefined,
    containers: [{ name: 'app', image: 'shop/app:1', env: [{ name: 'DATABASE_URL', value: 'postgres://app@127.0.0.1:5432/shop' }] }],
  };
  if (spec.initContainers === undefined) delete spec.initContainers;
  const meta = { labels: { app: name }, ...(annotations ? { annotations } : {}) };
  if (kind === 'Pod') return { apiVersion: 'v1', kind, metadata: { name, namespace: 'shop', ...meta }, spec };
  const s: Record<string, unknown> = { replicas: 3, selector: { matchLabels: { app: name } }, template: { metadata: meta, spec } };
  if (kind === 'StatefulSet') s.serviceName = name;
  return { apiVersion: 'apps/v1', kind, metadata: { name, namespace: 'shop' }, spec: s };
}

describe('dbaudit webhook over HTTPS', { skip: skipUnless('openssl') }, () => {
  let dir: TempDir;
  let child: ChildProcessWithoutNullStreams;
  let address = '';
  let ca: Buffer;
  let output = '';

  function post(path: string, body: string, method = 'POST'): Promise<{ status: number; body: string }> {
    const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
    return new Promise((resolve, reject) => {
      const req = https.request({ host, port, path, method, ca, servername: 'dbaudit-webhook.dbaudit.svc', headers: { 'content-type': 'application/json' } }, (res) => {
        let text = '';
        res.on('data', (b: Buffer) => (text += b.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  async function send(object: KObject): Promise<{ review: Record<string, unknown>; res: ReviewResponse }> {
    const review = admissionReview(object);
    const r = await post('/mutate', JSON.stringify(review));
    assert.equal(r.status, 200, r.body);
    return { review, res: JSON.parse(r.body) as ReviewResponse };
  }

  before(async () => {
    dir = makeTempDir('dbaudit-webhook-');
    // The certificate made exactly as k8s/README.md tells operators to make it.
    const certDir = join(dir.dir, 'tls');
    await run('bash', [join(import.meta.dirname, '../k8s/webhook-cert/make-cert.sh'), certDir, 'dbaudit', '2']);
    ca = readFileSync(join(certDir, 'ca.crt'));
    child = spawn(process.execPath, [BIN, 'webhook', '--listen', '127.0.0.1:0', '--tls-cert', join(certDir, 'tls.crt'), '--tls-key', join(certDir, 'tls.key'), '--image', 'dbaudit/collector:test'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    child.stdout.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr.on('data', (b: Buffer) => (output += b.toString()));
    const deadline = Date.now() + 30_000;
    while (address === '') {
      const line = output.split('\n').find((l) => l.includes('"dbaudit webhook started"'));
      if (line) address = (JSON.parse(line) as { listen: string }).listen;
      else if (child.exitCode !== null || Date.now() > deadline) throw new Error(`webhook did not start:\n${output}`);
      else await new Promise((r) => setTimeout(r, 50));
    }
  });

  after(async () => {
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      const code = await new Promise<number | null>((r) => child.once('exit', r));
      assert.equal(code, 0, output);
    }
    dir?.remove();
  });

  for (const kind of ['Pod', 'Deployment', 'StatefulSet'] as const) {
    test(`${kind}: allowed with a base64 JSONPatch that adds the native sidecar; the patched object is valid; sending it again patches nothing`, async (t) => {
      if (!needServer(t, 'openssl')) return;
      const object = workload(kind, `web-${kind.toLowerCase()}`, PG);
      const { review, res } = await send(object);
      assert.equal(res.apiVersion, 'admission.k8s.io/v1');
      assert.equal(res.kind, 'AdmissionReview');
      assert.equal(res.response.uid, (review.request as { uid: string }).uid);
      assert.equal(res.response.allowed, true);
      assert.equal(res.response.patchType, 'JSONPatch');
      const patch = JSON.parse(Buffer.from(res.response.patch!, 'base64').toString('utf8')) as fastJsonPatch.Operation[];
      assert.ok(patch.every((op) => op.op === 'add' || op.op === 'replace'));
      assert.equal(fastJsonPatch.validate(patch, object), undefined, 'every operation applies to the object sent');
      const patched = fastJsonPatch.applyPatch(structuredClone(object), patch, true, false).newDocument;
      await validateObject(patched);

      const tpl = podTemplate(patched)!;
      const names = tpl.spec.initContainers!.map((c) => c.name);
      assert.deepEqual(names, kind === 'StatefulSet' ? [SIDECAR_NAME, 'migrate'] : [SIDECAR_NAME]);
      const sidecar = tpl.spec.initContainers![0];
      assert.equal(sidecar.restartPolicy, 'Always');
      assert.equal(sidecar.image, 'dbaudit/collector:test');
      assert.equal(sidecar.securityContext?.readOnlyRootFilesystem, true);
      assert.deepEqual(tpl.spec.containers, podTemplate(object)!.spec.containers, 'the application container is unchanged');
      assert.deepEqual(planAll(patched, { image: 'dbaudit/collector:test' }), [], 'the same injection code sees nothing left to do');

      const second = await send(patched);
      assert.deepEqual(second.res.response, { uid: (second.review.request as { uid: string }).uid, allowed: true }, 'a second injection changes nothing');
    });
  }

  test('a pod without the annotation is allowed untouched; a bad annotation is denied with the reason', async (t) => {
    if (!needServer(t, 'openssl')) return;
    const plain = await send(workload('Pod', 'plain'));
    assert.equal(plain.res.response.allowed, true);
    assert.equal(plain.res.response.patch, undefined);
    const bad = await send(workload('Deployment', 'bad', { ...PG, 'dbaudit.io/upstream': 'orders-db.shop.svc' }));
    assert.deepEqual(bad.res.response.status, {
      code: 400,
      message: 'dbaudit sidecar injection: Deployment shop/bad: annotation dbaudit.io/upstream: invalid value "orders-db.shop.svc"; expected host:port of the database, e.g. orders-db.shop.svc:5432',
    });
    assert.equal(bad.res.response.allowed, false);
    const generated = workload('Pod', 'x', { ...PG, 'dbaudit.io/protocol': 'oracle' });
    generated.metadata = { generateName: 'web-7d9f-', annotations: generated.metadata.annotations } as unknown as KObject['metadata'];
    const denied = await send(generated);
    assert.equal(denied.res.response.status?.message, 'dbaudit sidecar injection: Pod shop/web-7d9f-*: annotation dbaudit.io/protocol: invalid value "oracle"; expected one of postgres, mysql');
  });

  test('not an AdmissionReview → 400; GET /healthz → 200; other paths 404', async (t) => {
    if (!needServer(t, 'openssl')) return;
    assert.equal((await post('/mutate', '{not json')).status, 400);
    const v1beta1 = await post('/mutate', JSON.stringify({ apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview', request: { uid: 'x' } }));
    assert.equal(v1beta1.status, 400);
    assert.match(v1beta1.body, /use admission\.k8s\.io\/v1/);
    assert.equal((await post('/healthz', '', 'GET')).status, 200);
    assert.equal((await post('/other', '', 'GET')).status, 404);
  });

  test('a renewed certificate (same files, new CA) is served without a restart', async (t) => {
    if (!needServer(t, 'openssl')) return;
    const certDir = join(dir.dir, 'rotating');
    const script = join(import.meta.dirname, '../k8s/webhook-cert/make-cert.sh');
    await run('bash', [script, certDir, 'dbaudit', '2']);
    const caA = readFileSync(join(certDir, 'ca.crt'));
    const wh = await startWebhook({ listen: '127.0.0.1:0', certFile: join(certDir, 'tls.crt'), keyFile: join(certDir, 'tls.key'), logger: silentLogger, reloadIntervalMs: 50 });
    const port = Number(wh.address.split(':').pop());
    const trusts = (caCert: Buffer): Promise<boolean> =>
      new Promise((resolve) => {
        const req = https.request({ host: '127.0.0.1', port, path: '/healthz', ca: caCert, servername: 'dbaudit-webhook.dbaudit.svc', agent: false }, (res) => {
          res.resume();
          resolve(res.statusCode === 200);
        });
        req.on('error', () => resolve(false));
        req.end();
      });
    try {
      assert.equal(await trusts(caA), true);
      await new Promise((r) => setTimeout(r, 20)); // a later mtime for the renewed files
      await run('bash', [script, certDir, 'dbaudit', '2']);
      const caB = readFileSync(join(certDir, 'ca.crt'));
      const deadline = Date.now() + 10_000;
      while (!(await trusts(caB))) {
        assert.ok(Date.now() < deadline, 'the renewed certificate is served');
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(await trusts(caA), false, 'the old certificate is gone');
    } finally {
      await wh.close();
    }
  });
});
