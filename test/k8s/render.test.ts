// Every k8s/ overlay rendered with kustomize, every object validated against
// the Kubernetes OpenAPI schemas, and the properties that matter asserted.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { CONFIG_KEYS, loadConfig, type Scope } from '../../lib/config.js';
import { DEFAULT_IMAGE, injectYaml, planAll, SIDECAR_NAME } from '../../proxy/inject.js';
import { envOf, find, K8S_DIR, needKustomize, OVERLAYS, podTemplate, render, unknownFieldErrors, validateObject, type Container, type KObject, type PodSpec } from './kube.js';

const ENV_OF_KEY = new Map(CONFIG_KEYS.map((s) => ['DBAUDIT_' + s.key.toUpperCase().replace(/\./g, '_'), s.key]));
const EXTRA_ENV = new Set(['DBAUDIT_CONFIG', 'DBAUDIT_INJECT_IMAGE']);

const BRIEF_AFFINITY = {
  podAntiAffinity: {
    preferredDuringSchedulingIgnoredDuringExecution: [
      { weight: 100, podAffinityTerm: { labelSelector: { matchLabels: { app: 'dbaudit-collector' } }, topologyKey: 'topology.kubernetes.io/zone' } },
    ],
  },
};
const BRIEF_RESOURCES = { requests: { cpu: '500m', memory: '512Mi' }, limits: { cpu: '2000m', memory: '2Gi' } };

function seconds(text: string): number {
  const m = /^(\d+)(ms|s|m)$/.exec(text);
  assert.ok(m, `duration ${text}`);
  return Number(m[1]) / (m[2] === 'ms' ? 1000 : m[2] === 'm' ? 1 / 60 : 1);
}

/** Restrictive securityContext: from the container, or inherited from the pod where Kubernetes inherits it. */
function assertRestricted(spec: PodSpec, c: Container, where: string): void {
  const pod = spec.securityContext ?? {};
  const sc = c.securityContext ?? {};
  assert.equal(sc.runAsNonRoot ?? pod.runAsNonRoot, true, `${where}: runAsNonRoot`);
  assert.notEqual(sc.runAsUser ?? pod.runAsUser, 0, `${where}: not uid 0`);
  assert.equal(sc.readOnlyRootFilesystem, true, `${where}: readOnlyRootFilesystem`);
  assert.equal(sc.allowPrivilegeEscalation, false, `${where}: allowPrivilegeEscalation`);
  assert.deepEqual(sc.capabilities?.drop, ['ALL'], `${where}: capabilities drop ALL`);
  assert.equal(sc.capabilities?.add, undefined, `${where}: no capability added`);
  assert.equal(sc.privileged ?? false, false, `${where}: not privileged`);
  assert.equal((sc.seccompProfile ?? pod.seccompProfile)?.type, 'RuntimeDefault', `${where}: seccomp RuntimeDefault`);
}

/** The container's DBAUDIT_* environment names real config keys and, with the example config file, loads without error. */
function assertConfigLoads(c: Container, scope: Scope, secretValues: Record<string, string>, where: string): void {
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) {
    if (!e.name.startsWith('DBAUDIT_')) continue;
    assert.ok(ENV_OF_KEY.has(e.name) || EXTRA_ENV.has(e.name), `${where}: ${e.name} is not a config key's variable`);
    const v = e.value ?? (e.valueFrom?.secretKeyRef ? secretValues[`${e.valueFrom.secretKeyRef.name}/${e.valueFrom.secretKeyRef.key}`] : undefined);
    assert.ok(v !== undefined, `${where}: ${e.name} has a value or a known Secret`);
    env[e.name] = v;
  }
  if (env.DBAUDIT_CONFIG) env.DBAUDIT_CONFIG = join(K8S_DIR, 'base/collector/config.example.yaml');
  assert.doesNotThrow(() => loadConfig({ argv: [], env, scope }), `${where}: config loads`);
}

describe('k8s overlays rendered with kustomize', () => {
  const rendered = new Map<string, KObject[]>();
  const get = (t: Parameters<typeof needKustomize>[0], name: string): KObject[] | undefined => {
    if (!needKustomize(t)) return undefined;
    if (!rendered.has(name)) rendered.set(name, render(`overlays/${name}`));
    return rendered.get(name);
  };

  for (const overlay of OVERLAYS) {
    test(`${overlay}: every object validates against the Kubernetes OpenAPI schema; every container is restricted`, async (t) => {
      const objs = get(t, overlay);
      if (!objs) return;
      assert.ok(objs.length > 0);
      for (const o of objs) await validateObject(o);
      for (const o of objs) {
        const tpl = podTemplate(o);
        if (!tpl) continue;
        assert.equal(tpl.spec.automountServiceAccountToken, false, `${o.kind} ${o.metadata.name}: no API token in the pod`);
        for (const c of [...(tpl.spec.initContainers ?? []), ...tpl.spec.containers]) assertRestricted(tpl.spec, c, `${o.kind} ${o.metadata.name} container ${c.name}`);
      }
    });
  }

  test('no overlay has a field the Kubernetes API does not know (excess-property check against the kubernetes-models types)', (t) => {
    const all: KObject[] = [];
    for (const overlay of OVERLAYS) {
      const objs = get(t, overlay);
      if (!objs) return;
      all.push(...objs);
    }
    assert.deepEqual(unknownFieldErrors(all), []);
    const typo = structuredClone(find(all, 'StatefulSet', 'dbaudit-collector'));
    (podTemplate(typo)!.spec.containers[0] as unknown as Record<string, unknown>).readinesProbe = {};
    assert.deepEqual(unknownFieldErrors([typo]).map((e) => e.replace(/'[^']*' does not exist/, 'X')), [
      "StatefulSet dbaudit-collector: error TS2353: Object literal may only specify known properties, and X in type 'IContainer'.",
    ], 'a misspelt field is caught');
  });

  for (const region of ['primary', 'dr'] as const) {
    test(`${region}: HA collector StatefulSet (brief's anti-affinity, probes, resources, mounts; a cache claim per replica; grace period covers the drain)`, (t) => {
      const objs = get(t, region);
      if (!objs) return;
      const sts = find(objs, 'StatefulSet', 'dbaudit-collector');
      assert.equal(sts.metadata.namespace, 'dbaudit');
      const spec = sts.spec as { replicas: number; volumeClaimTemplates: Array<{ metadata: { name: string }; spec: { accessModes: string[] } }>; serviceName: string };
      assert.equal(spec.replicas, 3);
      const tpl = podTemplate(sts)!;
      assert.deepEqual(tpl.spec.affinity, BRIEF_AFFINITY);
      const c = tpl.spec.containers.find((x) => x.name === 'collector')!;
      assert.deepEqual(c.livenessProbe, { httpGet: { path: '/health/live', port: 8080 }, initialDelaySeconds: 10, periodSeconds: 10 });
      assert.deepEqual(c.readinessProbe, { httpGet: { path: '/health/ready', port: 8080 }, initialDelaySeconds: 5, periodSeconds: 5 });
      assert.deepEqual(c.resources, BRIEF_RESOURCES);
      assert.equal(envOf(c, 'DBAUDIT_COLLECTOR_HTTP_LISTEN')?.value, '0.0.0.0:8080', 'the probes reach the HTTP server');
      const mounts = Object.fromEntries((c.volumeMounts ?? []).map((m) => [m.name, m.mountPath]));
      assert.equal(mounts.cache, '/var/lib/dbaudit/cache');
      assert.equal(mounts.config, '/etc/dbaudit');
      assert.equal(envOf(c, 'DBAUDIT_COLLECTOR_CACHE_PATH')?.value, '/var/lib/dbaudit/cache');
      // One ReadWriteOnce claim per replica: the cache volume comes from volumeClaimTemplates, not a shared claim.
      assert.deepEqual(spec.volumeClaimTemplates.map((v) => [v.metadata.name, v.spec.accessModes]), [['cache', ['ReadWriteOnce']]]);
      assert.equal(tpl.spec.volumes?.some((v) => v.name === 'cache' || v.persistentVolumeClaim !== undefined), false);
      assert.deepEqual(tpl.spec.volumes?.find((v) => v.name === 'config')?.secret, { secretName: 'dbaudit-config' });
      assert.ok(objs.some((o) => o.kind === 'Service' && o.metadata.name === spec.serviceName), 'the governing headless Service exists');
      // terminationGracePeriodSeconds > preStop + collector.shutdown.grace_period + the final flush (5s).
      const grace = seconds(envOf(c, 'DBAUDIT_COLLECTOR_SHUTDOWN_GRACE_PERIOD')?.value ?? '25s');
      const preStop = c.lifecycle?.preStop?.sleep?.seconds ?? 0;
      assert.ok(tpl.spec.terminationGracePeriodSeconds! > preStop + grace + 5, `${tpl.spec.terminationGracePeriodSeconds} > ${preStop} + ${grace} + 5`);
      assert.equal(tpl.metadata.labels?.['dbaudit.io/collector'], 'true');
      assertConfigLoads(c, 'collector', {}, 'collector');

      const pdb = find(objs, 'PodDisruptionBudget', 'dbaudit-collector').spec as { maxUnavailable: number; selector: { matchLabels: Record<string, string> } };
      assert.deepEqual(pdb, { maxUnavailable: 1, selector: { matchLabels: { app: 'dbaudit-collector' } } });
      const svc = find(objs, 'Service', 'dbaudit-collector').spec as { selector: Record<string, string>; ports: Array<{ port: number; targetPort: string }> };
      assert.deepEqual(svc.selector, { app: 'dbaudit-collector' });
      assert.deepEqual(svc.ports.map((p) => [p.port, p.targetPort]), [[5432, 'proxy']]);
      assert.equal(c.ports?.find((p) => p.name === 'proxy')?.containerPort, 6432);
      assert.equal(envOf(c, 'DBAUDIT_COLLECTOR_LISTEN')?.value, '0.0.0.0:6432');
    });

    test(`${region}: gateway with the PostgreSQL store from a Secret, replication to the other region, NetworkPolicies`, (t) => {
      const objs = get(t, region);
      if (!objs) return;
      const gw = find(objs, 'Deployment', 'dbaudit-gateway');
      const c = podTemplate(gw)!.spec.containers[0];
      assert.deepEqual(c.args, ['gateway']);
      assert.deepEqual(envOf(c, 'DBAUDIT_GATEWAY_STORE')?.valueFrom, { secretKeyRef: { name: 'dbaudit-gateway-store', key: 'url' } });
      const replicate = envOf(c, 'DBAUDIT_GATEWAY_REPLICATE_TO')?.value;
      if (region === 'primary') assert.equal(replicate, 'dbaudit-gateway.dbaudit.svc.eu-west-1.clusterset.local:50051');
      else assert.equal(replicate, '');
      assert.equal(envOf(c, 'DBAUDIT_GATEWAY_LISTEN')?.value, '0.0.0.0:50051');
      assert.deepEqual(c.readinessProbe?.httpGet, { path: '/health/ready', port: 8081 });
      assertConfigLoads(c, 'gateway', { 'dbaudit-gateway-store/url': 'postgres://dbaudit:secret@pg.example:5432/dbaudit' }, 'gateway');
      assert.equal(podTemplate(gw)!.metadata.labels?.['dbaudit.io/region'], region === 'primary' ? 'us-east-1' : 'eu-west-1');

      type Rule = { from?: Array<{ podSelector?: { matchLabels?: Record<string, string> }; namespaceSelector?: { matchLabels?: Record<string, string> }; ipBlock?: { cidr: string } }>; ports?: Array<{ port: number }> };
      const policy = (name: string): Rule[] => (find(objs, 'NetworkPolicy', name).spec as { ingress: Rule[] }).ingress;
      const sources = (rules: Rule[], port: number): string[] =>
        rules.filter((r) => r.ports?.some((p) => p.port === port)).flatMap((r) => (r.from ?? [{}]).map((f) => JSON.stringify(f.ipBlock ?? f.podSelector?.matchLabels ?? 'anyone')));
      assert.deepEqual(sources(policy('dbaudit-collector'), 6432), [JSON.stringify({ 'dbaudit.io/client': 'true' })], 'only applications reach the proxy');
      assert.deepEqual(sources(policy('dbaudit-collector'), 8080), [JSON.stringify({ 'app.kubernetes.io/name': 'prometheus' })], 'only Prometheus reaches the collector metrics');
      const gwSources = sources(policy('dbaudit-gateway'), 50051);
      assert.equal(gwSources[0], JSON.stringify({ 'dbaudit.io/collector': 'true' }), 'collectors reach the gateway');
      assert.deepEqual(gwSources.slice(1).map((s) => Object.keys(JSON.parse(s) as object)), [['cidr']], 'and only the peer region besides');
      assert.deepEqual(sources(policy('dbaudit-gateway'), 8081), [JSON.stringify({ 'app.kubernetes.io/name': 'prometheus' })], 'only Prometheus reaches the gateway metrics');
      const deny = find(objs, 'NetworkPolicy', 'default-deny-ingress').spec as { podSelector: object; ingress?: unknown };
      assert.deepEqual(deny, { podSelector: {}, policyTypes: ['Ingress'] });
      assert.equal(find(objs, 'Namespace', 'dbaudit').metadata.labels?.['pod-security.kubernetes.io/enforce'], 'restricted');
    });
  }

  test('sidecar: native sidecar (init container, restartPolicy Always), the application connects to localhost, and it is what dbaudit inject makes', (t) => {
    const objs = get(t, 'sidecar');
    if (!objs) return;
    const app = find(objs, 'Deployment', 'orders-api');
    assert.equal(app.metadata.namespace, 'shop');
    const tpl = podTemplate(app)!;
    const sidecar = tpl.spec.initContainers?.[0];
    assert.equal(sidecar?.name, SIDECAR_NAME);
    assert.equal(sidecar.restartPolicy, 'Always');
    assert.equal(sidecar.image, DEFAULT_IMAGE, 'the manifests pin the image of this release');
    assert.equal(tpl.spec.containers.some((c) => c.name === SIDECAR_NAME), false);
    const listen = envOf(sidecar, 'DBAUDIT_COLLECTOR_LISTEN')?.value;
    assert.equal(listen, '127.0.0.1:5432');
    const url = new URL(envOf(tpl.spec.containers[0], 'DATABASE_URL')!.value!);
    assert.equal(`${url.hostname}:${url.port}`, listen, "the application's connection string points at the sidecar on localhost");
    assert.equal(envOf(sidecar, 'DBAUDIT_COLLECTOR_UPSTREAM')?.value, tpl.metadata.annotations?.['dbaudit.io/upstream']);
    assert.deepEqual(sidecar.livenessProbe?.httpGet, { path: '/health/live', port: 8080 });
    assert.deepEqual(sidecar.readinessProbe?.httpGet, { path: '/health/ready', port: 8080 });
    assert.ok((tpl.spec.terminationGracePeriodSeconds ?? 30) >= 40);
    assertConfigLoads(sidecar, 'collector', {}, 'sidecar');
    assert.deepEqual(planAll(app), [], 'running dbaudit inject over the rendered app changes nothing');
    const dir = join(K8S_DIR, 'base/sidecar-example');
    const generated = readFileSync(join(dir, 'deployment.yaml'), 'utf8').replace(/^# GENERATED[^\n]*\n/, '');
    assert.equal(injectYaml(readFileSync(join(dir, 'app.source.yaml'), 'utf8')).text, generated, 'deployment.yaml is dbaudit inject < app.source.yaml');
  });

  test('webhook: MutatingWebhookConfiguration → Service → HTTPS container port, pods on CREATE, the injected image pinned', (t) => {
    const objs = get(t, 'webhook');
    if (!objs) return;
    const mwc = find(objs, 'MutatingWebhookConfiguration', 'dbaudit-sidecar-injector') as KObject & { webhooks: Array<Record<string, unknown>> };
    assert.equal(mwc.webhooks.length, 1);
    const w = mwc.webhooks[0] as {
      clientConfig: { service: { name: string; namespace: string; path: string; port: number } };
      rules: Array<{ operations: string[]; resources: string[]; apiGroups: string[] }>;
      sideEffects: string; admissionReviewVersions: string[]; failurePolicy: string; namespaceSelector: unknown;
    };
    assert.deepEqual(w.admissionReviewVersions, ['v1']);
    assert.equal(w.sideEffects, 'None');
    assert.equal(w.failurePolicy, 'Fail');
    assert.deepEqual(w.rules.map((r) => [r.operations, r.apiGroups, r.resources]), [[['CREATE'], [''], ['pods']]]);
    assert.deepEqual(w.namespaceSelector, { matchLabels: { 'dbaudit.io/injection': 'enabled' } });
    const svcRef = w.clientConfig.service;
    assert.equal(svcRef.path, '/mutate');
    const svc = find(objs, 'Service', svcRef.name);
    assert.equal(svc.metadata.namespace, svcRef.namespace);
    const port = (svc.spec as { ports: Array<{ port: number; targetPort: string }> }).ports.find((p) => p.port === svcRef.port);
    assert.ok(port, 'the Service serves the configured port');
    const dep = find(objs, 'Deployment', 'dbaudit-webhook');
    const c = podTemplate(dep)!.spec.containers[0];
    const cport = c.ports?.find((p) => p.name === port.targetPort)?.containerPort;
    assert.equal(cport, 8443);
    assert.deepEqual(c.args, ['webhook', '--listen', `0.0.0.0:${cport}`, '--tls-cert', '/etc/dbaudit-webhook/tls.crt', '--tls-key', '/etc/dbaudit-webhook/tls.key']);
    assert.equal(c.readinessProbe?.httpGet?.scheme, 'HTTPS');
    assert.equal(envOf(c, 'DBAUDIT_INJECT_IMAGE')?.value, c.image);
    assert.equal(c.image, DEFAULT_IMAGE);
    assert.ok(objs.some((o) => o.kind === 'PodDisruptionBudget' && o.metadata.name === 'dbaudit-webhook'));
  });
});
