import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { isAuditError } from '../lib/errors.js';
import { parseYamlStream, podTemplate, validateObject, type KObject } from '../test/k8s/kube.js';
import { DEFAULT_IMAGE, injectYaml, planAll, SIDECAR_NAME } from './inject.js';

const BIN = join(import.meta.dirname, '../bin/dbaudit.js');

function workload(kind: 'Pod' | 'Deployment' | 'StatefulSet', name: string, annotations?: Record<string, string>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const podSpec = { containers: [{ name: 'app', image: 'shop/app:1', env: [{ name: 'DATABASE_URL', value: 'postgres://app@127.0.0.1:5432/shop' }] }], ...extra };
  const meta = { labels: { app: name }, ...(annotations ? { annotations } : {}) };
  if (kind === 'Pod') return { apiVersion: 'v1', kind, metadata: { name, ...meta }, spec: podSpec };
  const spec: Record<string, unknown> = { replicas: 2, selector: { matchLabels: { app: name } }, template: { metadata: meta, spec: podSpec } };
  if (kind === 'StatefulSet') spec.serviceName = name;
  return { apiVersion: 'apps/v1', kind, metadata: { name, namespace: 'shop' }, spec };
}

const PG = { 'dbaudit.io/inject': 'true', 'dbaudit.io/upstream': 'orders-db.shop.svc:5432', 'dbaudit.io/protocol': 'postgres' };

function sidecarOf(o: KObject) {
  const tpl = podTemplate(o)!;
  return { tpl, sidecar: tpl.spec.initContainers?.find((c) => c.name === SIDECAR_NAME) };
}

function injectError(obj: unknown): string {
  try {
    planAll(obj);
  } catch (err) {
    assert.ok(isAuditError(err), String(err));
    return err.message;
  }
  assert.fail('expected an error');
}

describe('dbaudit inject', () => {
  test('a multi-document stream: Pod, Deployment, StatefulSet and a List get the sidecar; the rest is untouched; valid; a second run changes nothing', async () => {
    const docs = [
      workload('Pod', 'one', PG),
      workload('Deployment', 'two', { ...PG, 'dbaudit.io/config-secret': 'shop-audit' }),
      workload('StatefulSet', 'three', { ...PG, 'dbaudit.io/protocol': 'mysql', 'dbaudit.io/upstream': 'mariadb.shop.svc:3306' }),
      workload('Deployment', 'plain'),
      workload('Deployment', 'off', { ...PG, 'dbaudit.io/inject': 'false' }),
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'svc' }, spec: { ports: [{ port: 80 }] } },
      { apiVersion: 'v1', kind: 'List', items: [workload('Pod', 'listed', PG), workload('Pod', 'listed-plain')] },
    ];
    const input = '# shop workloads\n' + docs.map((d) => stringify(d)).join('---\n');
    const first = injectYaml(input);
    assert.equal(first.changed, 4);
    const out = parseYamlStream(first.text);
    assert.equal(out.length, docs.length);
    assert.ok(first.text.startsWith('# shop workloads\n'), 'comments are kept');

    for (const o of out) if (o.kind !== 'List') await validateObject(o); // no schema for the generic v1 List: its items are validated
    for (const item of (out[6] as unknown as { items: KObject[] }).items) await validateObject(item);

    const injected = [out[0], out[1], out[2], (out[6] as unknown as { items: KObject[] }).items[0]];
    for (const o of injected) {
      const { tpl, sidecar } = sidecarOf(o);
      assert.ok(sidecar, `${o.kind} ${o.metadata.name} has the sidecar`);
      assert.equal(tpl.spec.initContainers?.[0].name, SIDECAR_NAME, 'first init container');
      assert.equal(sidecar.restartPolicy, 'Always');
      assert.equal(sidecar.image, DEFAULT_IMAGE);
      assert.deepEqual(sidecar.args, ['proxy']);
      assert.equal(tpl.metadata.labels?.['dbaudit.io/collector'], 'true');
      assert.equal(tpl.spec.terminationGracePeriodSeconds, 40);
      assert.deepEqual(sidecar.securityContext, {
        runAsNonRoot: true, runAsUser: 10001, runAsGroup: 10001, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false,
        capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' },
      });
      assert.deepEqual(sidecar.livenessProbe, { httpGet: { path: '/health/live', port: 8080 }, initialDelaySeconds: 10, periodSeconds: 10 });
      assert.deepEqual(sidecar.readinessProbe, { httpGet: { path: '/health/ready', port: 8080 }, initialDelaySeconds: 5, periodSeconds: 5 });
      assert.deepEqual(tpl.spec.containers.map((c) => c.name), ['app'], 'the application containers are unchanged');
    }
    const env = (o: KObject, n: string) => sidecarOf(o).sidecar!.env!.find((e) => e.name === n)?.value;
    assert.equal(env(out[0], 'DBAUDIT_COLLECTOR_LISTEN'), '127.0.0.1:5432');
    assert.equal(env(out[2], 'DBAUDIT_COLLECTOR_LISTEN'), '127.0.0.1:3306');
    assert.equal(env(out[2], 'DBAUDIT_COLLECTOR_PROTOCOL'), 'mysql');
    assert.equal(env(out[2], 'DBAUDIT_COLLECTOR_UPSTREAM'), 'mariadb.shop.svc:3306');
    assert.deepEqual(podTemplate(out[1])!.spec.volumes?.find((v) => v.name === 'dbaudit-config')?.secret, { secretName: 'shop-audit' });
    assert.deepEqual(podTemplate(out[0])!.spec.volumes?.find((v) => v.name === 'dbaudit-config')?.secret, { secretName: 'dbaudit-config' });

    // Untouched: no annotation, inject "false", not a workload, the un-annotated List item.
    assert.deepEqual(out[3], docs[3]);
    assert.deepEqual(out[4], docs[4]);
    assert.deepEqual(out[5], docs[5]);
    assert.deepEqual((out[6] as unknown as { items: unknown[] }).items[1], (docs[6] as { items: unknown[] }).items[1]);

    const second = injectYaml(first.text);
    assert.equal(second.changed, 0);
    assert.equal(second.text, first.text, 'a second run changes nothing');
    assert.equal(injectYaml(input).text, first.text, 'deterministic');
  });

  test('keeps existing init containers (after the sidecar), volumes and a longer grace period; a changed annotation updates the sidecar in place', () => {
    const dep = workload('Deployment', 'web', PG, {
      initContainers: [{ name: 'migrate', image: 'shop/migrate:1' }],
      volumes: [{ name: 'data', emptyDir: {} }],
      terminationGracePeriodSeconds: 120,
    });
    const once = parse(injectYaml(stringify(dep)).text) as KObject;
    const tpl = podTemplate(once)!;
    assert.deepEqual(tpl.spec.initContainers?.map((c) => c.name), [SIDECAR_NAME, 'migrate']);
    assert.deepEqual(tpl.spec.volumes?.map((v) => v.name), ['data', 'dbaudit-cache', 'dbaudit-config', 'dbaudit-tmp']);
    assert.equal(tpl.spec.terminationGracePeriodSeconds, 120);

    (tpl.metadata.annotations as Record<string, string>)['dbaudit.io/upstream'] = 'orders-db-2.shop.svc:6543';
    const changes = planAll(once);
    assert.deepEqual(changes.map((c) => c.path.join('.')), ['spec.template.spec.initContainers']);
    const again = parse(injectYaml(stringify(once)).text) as KObject;
    const sidecars = podTemplate(again)!.spec.initContainers!.filter((c) => c.name === SIDECAR_NAME);
    assert.equal(sidecars.length, 1);
    assert.equal(sidecars[0].env?.find((e) => e.name === 'DBAUDIT_COLLECTOR_UPSTREAM')?.value, 'orders-db-2.shop.svc:6543');
  });

  test('bad annotations: clear errors naming the object, the annotation, the value and what is allowed', () => {
    const bad = (a: Record<string, string>, extra: Record<string, unknown> = {}) => injectError(workload('Deployment', 'web', a, extra));
    assert.equal(bad({ ...PG, 'dbaudit.io/upstream': 'orders-db:99999' }), 'Deployment shop/web: annotation dbaudit.io/upstream: invalid value "orders-db:99999"; expected host:port of the database, e.g. orders-db.shop.svc:5432');
    assert.equal(bad({ ...PG, 'dbaudit.io/upstream': 'orders-db' }), 'Deployment shop/web: annotation dbaudit.io/upstream: invalid value "orders-db"; expected host:port of the database, e.g. orders-db.shop.svc:5432');
    assert.equal(bad({ 'dbaudit.io/inject': 'true' }), 'Deployment shop/web: annotation dbaudit.io/upstream is required with dbaudit.io/inject: "true" (the database as host:port)');
    assert.equal(bad({ ...PG, 'dbaudit.io/protocol': 'oracle' }), 'Deployment shop/web: annotation dbaudit.io/protocol: invalid value "oracle"; expected one of postgres, mysql');
    assert.equal(bad({ ...PG, 'dbaudit.io/inject': 'yes' }), 'Deployment shop/web: annotation dbaudit.io/inject: invalid value "yes"; expected "true" or "false"');
    assert.equal(bad({ ...PG, 'dbaudit.io/config-secret': 'Not_A_Name' }), 'Deployment shop/web: annotation dbaudit.io/config-secret: invalid value "Not_A_Name"; expected the name of a Secret (lower-case DNS subdomain)');
    assert.equal(
      bad(PG, { containers: [{ name: 'app', image: 'a', ports: [{ containerPort: 8080 }] }] }),
      'Deployment shop/web: container "app" already uses port 8080; choose another with the dbaudit.io/http-port annotation',
    );
    assert.equal(injectError(workload('Pod', 'p', { ...PG, 'dbaudit.io/listen-port': '0' })), 'Pod p: annotation dbaudit.io/listen-port: invalid value "0"; expected a port number 1-65535');
    assert.equal(bad({ ...PG, 'dbaudit.io/cpu-request': 'lots' }), 'Deployment shop/web: annotation dbaudit.io/cpu-request: invalid value "lots"; expected a CPU quantity such as 250m, 0.5 or 2');
    assert.equal(bad({ ...PG, 'dbaudit.io/cpu-limit': '0' }), 'Deployment shop/web: annotation dbaudit.io/cpu-limit: invalid value "0"; expected a CPU quantity such as 250m, 0.5 or 2');
    assert.equal(bad({ ...PG, 'dbaudit.io/memory-request': '1.5Gi' }), 'Deployment shop/web: annotation dbaudit.io/memory-request: invalid value "1.5Gi"; expected a memory quantity such as 256Mi, 1Gi or 512M');
    assert.equal(bad({ ...PG, 'dbaudit.io/memory-limit': '64Mi' }), 'Deployment shop/web: annotation dbaudit.io/memory-limit: invalid value "64Mi"; expected at least 128Mi (the proxy starts at about 80 MB)');
    assert.equal(bad({ ...PG, 'dbaudit.io/cpu-request': '2' }), 'Deployment shop/web: annotation dbaudit.io/cpu-request: invalid value "2"; expected at most the CPU limit 1000m');
    assert.equal(bad({ ...PG, 'dbaudit.io/memory-request': '1Gi' }), 'Deployment shop/web: annotation dbaudit.io/memory-request: invalid value "1Gi"; expected at most the memory limit 512Mi');
  });

  test('resource annotations size the sidecar; each one left out keeps its default', async () => {
    const injected = (name: string, a: Record<string, string>): KObject => parseYamlStream(injectYaml(stringify(workload('Deployment', name, a))).text)[0];
    const resourcesOf = (o: KObject): unknown => (sidecarOf(o).sidecar as unknown as { resources: unknown }).resources;
    const busy = injected('busy', { ...PG, 'dbaudit.io/cpu-request': '1500m', 'dbaudit.io/cpu-limit': '2', 'dbaudit.io/memory-request': '256Mi', 'dbaudit.io/memory-limit': '1Gi' });
    assert.deepEqual(resourcesOf(busy), { requests: { cpu: '1500m', memory: '256Mi' }, limits: { cpu: '2', memory: '1Gi' } });
    await validateObject(busy);
    assert.deepEqual(resourcesOf(injected('half', { ...PG, 'dbaudit.io/cpu-request': '0.5' })), { requests: { cpu: '0.5', memory: '128Mi' }, limits: { cpu: '1000m', memory: '512Mi' } });
    assert.deepEqual(resourcesOf(injected('plain', PG)), { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '1000m', memory: '512Mi' } });
  });

  test('the CLI: YAML on stdin → stdout; a bad annotation exits 1 with the message; unknown flags refused', () => {
    const input = stringify(workload('Pod', 'cli', PG));
    const ok = spawnSync(process.execPath, [BIN, 'inject', '--image', 'registry.example.com/dbaudit:9'], { input, encoding: 'utf8' });
    assert.equal(ok.status, 0, ok.stderr);
    const pod = parse(ok.stdout) as KObject;
    assert.equal(sidecarOf(pod).sidecar?.image, 'registry.example.com/dbaudit:9');
    const again = spawnSync(process.execPath, [BIN, 'inject', '--image', 'registry.example.com/dbaudit:9'], { input: ok.stdout, encoding: 'utf8' });
    assert.equal(again.stdout, ok.stdout);

    const bad = spawnSync(process.execPath, [BIN, 'inject'], { input: stringify(workload('Pod', 'cli', { ...PG, 'dbaudit.io/protocol': 'db2' })), encoding: 'utf8' });
    assert.equal(bad.status, 1);
    assert.equal(bad.stdout, '');
    assert.equal(bad.stderr, 'dbaudit: Pod cli: annotation dbaudit.io/protocol: invalid value "db2"; expected one of postgres, mysql\n');
    const flag = spawnSync(process.execPath, [BIN, 'inject', '--nope'], { input: '', encoding: 'utf8' });
    assert.equal(flag.status, 1);
    assert.match(flag.stderr, /unknown argument "--nope"/);
  });

  test('an injected pod as the API server stores it (defaults filled in) is left alone', () => {
    const pod = parse(injectYaml(stringify(workload('Pod', 'defaulted', PG))).text) as KObject & { spec: Record<string, unknown> };
    const spec = pod.spec as unknown as { initContainers: Array<Record<string, unknown>>; containers: Array<Record<string, unknown>>; volumes: Array<Record<string, unknown>> };
    for (const c of [...spec.initContainers, ...spec.containers]) {
      c.terminationMessagePath = '/dev/termination-log';
      c.terminationMessagePolicy = 'File';
      for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
        const p = c[probe] as Record<string, unknown> | undefined;
        if (p) Object.assign(p, { timeoutSeconds: 1, successThreshold: 1, failureThreshold: p.failureThreshold ?? 3 });
        const http = p?.httpGet as Record<string, unknown> | undefined;
        if (http) http.scheme = 'HTTP';
      }
      for (const e of (c.env ?? []) as Array<{ valueFrom?: { fieldRef?: Record<string, unknown> } }>) if (e.valueFrom?.fieldRef) e.valueFrom.fieldRef.apiVersion = 'v1';
    }
    for (const v of spec.volumes) if (v.secret) (v.secret as Record<string, unknown>).defaultMode = 420;
    Object.assign(pod.spec, { restartPolicy: 'Always', dnsPolicy: 'ClusterFirst', schedulerName: 'default-scheduler', securityContext: {} });
    assert.deepEqual(planAll(pod), []);
    // A real difference is still corrected.
    (spec.initContainers[0].env as Array<{ name: string; value?: string }>).find((e) => e.name === 'DBAUDIT_COLLECTOR_UPSTREAM')!.value = 'elsewhere:5432';
    assert.deepEqual(planAll(pod).map((c) => c.path.join('.')), ['spec.initContainers']);
  });
});
