import { isDeepStrictEqual } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { parseAddress } from '../lib/config.js';
import { AuditError, ErrorCode } from '../lib/errors.js';
import { VERSION } from '../lib/version.js';

/**
 * Sidecar injection, shared by `dbaudit inject` (YAML on stdin) and
 * `dbaudit webhook` (AdmissionReview JSON patches). It is driven by the pod
 * template's annotations and computes the desired pod spec, so a second run
 * over its own output changes nothing and a changed annotation updates the
 * sidecar in place. The sidecar is a native one: an init container with
 * `restartPolicy: Always`, first in the list, so it is up before the
 * application (and its other init containers) and stops after it.
 */

export const ANNOTATIONS = {
  inject: 'dbaudit.io/inject',
  upstream: 'dbaudit.io/upstream',
  protocol: 'dbaudit.io/protocol',
  configSecret: 'dbaudit.io/config-secret',
  listenPort: 'dbaudit.io/listen-port',
  httpPort: 'dbaudit.io/http-port',
  cpuRequest: 'dbaudit.io/cpu-request',
  cpuLimit: 'dbaudit.io/cpu-limit',
  memoryRequest: 'dbaudit.io/memory-request',
  memoryLimit: 'dbaudit.io/memory-limit',
} as const;

export const SIDECAR_NAME = 'dbaudit';
/** Pod label of every collector (HA replicas and injected sidecars). */
export const COLLECTOR_LABEL = 'dbaudit.io/collector';
export const DEFAULT_IMAGE = `dbaudit/collector:${VERSION}`;
export const DEFAULT_CONFIG_SECRET = 'dbaudit-config';
export const CACHE_MOUNT = '/var/lib/dbaudit/cache';
export const CONFIG_MOUNT = '/etc/dbaudit';
/** The pod's grace period must cover the drain (collector.shutdown.grace_period, 25s) plus the final flush (≤ 5s) and slack. */
export const MIN_TERMINATION_GRACE_SECONDS = 40;
/** Kubernetes' default terminationGracePeriodSeconds. */
const K8S_DEFAULT_GRACE_SECONDS = 30;

const DEFAULT_LISTEN_PORT = { postgres: 5432, mysql: 3306 } as const;
const DEFAULT_HTTP_PORT = 8080;
const VOLUMES = { cache: 'dbaudit-cache', config: 'dbaudit-config', tmp: 'dbaudit-tmp' } as const;

export interface InjectOptions {
  /** Collector image; default dbaudit/collector:<version>. */
  image?: string;
}

export type JsonPath = ReadonlyArray<string | number>;
type Obj = Record<string, unknown>;

/** One field of the object to set: `existed` tells a JSON patch `replace` from `add`. */
export interface Change {
  path: JsonPath;
  value: unknown;
  existed: boolean;
}

/** The sidecar's resources, as Kubernetes quantities. */
export interface SidecarResources {
  requests: { cpu: string; memory: string };
  limits: { cpu: string; memory: string };
}

/**
 * The sidecar's resources unless its annotations say otherwise. A statement
 * costs the proxy roughly 0.1-0.3 ms of CPU (README "What auditing costs"),
 * so 100m fits a few hundred statements a second; it starts at ~80 MB RSS.
 */
const DEFAULT_RESOURCES: SidecarResources = { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '1000m', memory: '512Mi' } };
/** Below this the proxy is killed for memory soon after it starts (it starts at ~80 MB RSS and holds results while their events become durable). */
const MIN_MEMORY_LIMIT = 128 * 2 ** 20;

export interface SidecarSettings {
  protocol: 'postgres' | 'mysql';
  upstream: string;
  configSecret: string;
  listenPort: number;
  httpPort: number;
  resources: SidecarResources;
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function get(obj: unknown, path: JsonPath): unknown {
  let cur = obj;
  for (const p of path) {
    if (Array.isArray(cur) && typeof p === 'number') cur = cur[p];
    else if (isObj(cur) && typeof p === 'string') cur = cur[p];
    else return undefined;
  }
  return cur;
}

const TEMPLATE = ['spec', 'template'] as const;
/** Where each workload kind keeps its pod template. */
const TEMPLATE_PATHS: Record<string, JsonPath> = {
  Pod: [],
  Deployment: TEMPLATE,
  StatefulSet: TEMPLATE,
  DaemonSet: TEMPLATE,
  ReplicaSet: TEMPLATE,
  Job: TEMPLATE,
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
};

/** Paths of the pod metadata and pod spec inside `obj`, or undefined for a kind that has no pod template. */
export function podTemplatePath(obj: unknown): JsonPath | undefined {
  if (!isObj(obj) || typeof obj.kind !== 'string') return undefined;
  return TEMPLATE_PATHS[obj.kind];
}

/** "Deployment shop/web" for error messages. */
export function describeObject(obj: unknown): string {
  if (!isObj(obj)) return 'object';
  const meta = isObj(obj.metadata) ? obj.metadata : {};
  const name = typeof meta.name === 'string' ? meta.name : typeof meta.generateName === 'string' ? `${meta.generateName}*` : '(unnamed)';
  const ns = typeof meta.namespace === 'string' ? `${meta.namespace}/` : '';
  return `${typeof obj.kind === 'string' ? obj.kind : 'object'} ${ns}${name}`;
}

function badAnnotation(where: string, key: string, value: unknown, expected: string): AuditError {
  return new AuditError(ErrorCode.InvalidRequest, `${where}: annotation ${key}: invalid value ${JSON.stringify(value)}; expected ${expected}`);
}

function port(where: string, key: string, raw: string | undefined, dflt: number): number {
  if (raw === undefined) return dflt;
  const n = /^\d{1,5}$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= 1 && n <= 65535)) throw badAnnotation(where, key, raw, 'a port number 1-65535');
  return n;
}

const MEMORY_UNITS: Record<string, number> = { '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };

/** A CPU quantity in millicores ("250m", "0.5", "2"), or NaN when it is not one. */
function millicores(q: string): number {
  const m = /^(\d+)m$/.exec(q) ?? /^(\d+(?:\.\d{1,3})?)$/.exec(q);
  if (!m) return NaN;
  return q.endsWith('m') ? Number(m[1]) : Math.round(Number(m[1]) * 1000);
}

/** A memory quantity in bytes ("256Mi", "1G", "300000000"), or NaN when it is not one. */
function bytesOf(q: string): number {
  const m = /^(\d+)(k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(q);
  return m ? Number(m[1]) * MEMORY_UNITS[m[2] ?? ''] : NaN;
}

/** The resources the annotations give (each falls back to DEFAULT_RESOURCES); a request above its limit, or a memory limit too small to run in, is refused. */
function resources(where: string, a: Record<string, string | undefined>): SidecarResources {
  const pick = (key: string, dflt: string, parse: (q: string) => number, expected: string): { q: string; n: number } => {
    const raw = a[key];
    const q = raw === undefined ? dflt : raw.trim();
    const n = parse(q);
    if (!(n > 0)) throw badAnnotation(where, key, raw, expected);
    return { q, n };
  };
  const cpu = 'a CPU quantity such as 250m, 0.5 or 2';
  const mem = 'a memory quantity such as 256Mi, 1Gi or 512M';
  const cpuReq = pick(ANNOTATIONS.cpuRequest, DEFAULT_RESOURCES.requests.cpu, millicores, cpu);
  const cpuLim = pick(ANNOTATIONS.cpuLimit, DEFAULT_RESOURCES.limits.cpu, millicores, cpu);
  const memReq = pick(ANNOTATIONS.memoryRequest, DEFAULT_RESOURCES.requests.memory, bytesOf, mem);
  const memLim = pick(ANNOTATIONS.memoryLimit, DEFAULT_RESOURCES.limits.memory, bytesOf, mem);
  if (memLim.n < MIN_MEMORY_LIMIT) throw badAnnotation(where, ANNOTATIONS.memoryLimit, memLim.q, 'at least 128Mi (the proxy starts at about 80 MB)');
  if (cpuReq.n > cpuLim.n) throw badAnnotation(where, ANNOTATIONS.cpuRequest, cpuReq.q, `at most the CPU limit ${cpuLim.q}`);
  if (memReq.n > memLim.n) throw badAnnotation(where, ANNOTATIONS.memoryRequest, memReq.q, `at most the memory limit ${memLim.q}`);
  return { requests: { cpu: cpuReq.q, memory: memReq.q }, limits: { cpu: cpuLim.q, memory: memLim.q } };
}

/**
 * Reads the dbaudit annotations of a pod template. Undefined when the pod is
 * not to be injected; an AuditError naming the object, the annotation, the
 * value and what is allowed when an annotation is bad.
 */
export function readSettings(annotations: unknown, where: string): SidecarSettings | undefined {
  const a: Record<string, string | undefined> = {};
  if (isObj(annotations)) for (const [k, v] of Object.entries(annotations)) if (typeof v === 'string') a[k] = v;
  const inject = a[ANNOTATIONS.inject];
  if (inject === undefined || inject === 'false') return undefined;
  if (inject !== 'true') throw badAnnotation(where, ANNOTATIONS.inject, inject, '"true" or "false"');
  const protocol = a[ANNOTATIONS.protocol] ?? 'postgres';
  if (protocol !== 'postgres' && protocol !== 'mysql') throw badAnnotation(where, ANNOTATIONS.protocol, protocol, 'one of postgres, mysql');
  const upstream = a[ANNOTATIONS.upstream];
  if (upstream === undefined) throw new AuditError(ErrorCode.InvalidRequest, `${where}: annotation ${ANNOTATIONS.upstream} is required with ${ANNOTATIONS.inject}: "true" (the database as host:port)`);
  const addr = parseAddress(upstream);
  if (addr === undefined || addr.port === 0) throw badAnnotation(where, ANNOTATIONS.upstream, upstream, 'host:port of the database, e.g. orders-db.shop.svc:5432');
  const configSecret = a[ANNOTATIONS.configSecret] ?? DEFAULT_CONFIG_SECRET;
  if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(configSecret)) throw badAnnotation(where, ANNOTATIONS.configSecret, configSecret, 'the name of a Secret (lower-case DNS subdomain)');
  const listenPort = port(where, ANNOTATIONS.listenPort, a[ANNOTATIONS.listenPort], DEFAULT_LISTEN_PORT[protocol]);
  const httpPort = port(where, ANNOTATIONS.httpPort, a[ANNOTATIONS.httpPort], DEFAULT_HTTP_PORT);
  if (listenPort === httpPort) throw badAnnotation(where, ANNOTATIONS.httpPort, String(httpPort), `a port other than the proxy's ${listenPort}`);
  return { protocol, upstream: upstream.trim(), configSecret, listenPort, httpPort, resources: resources(where, a) };
}

const RESTRICTED_SECURITY_CONTEXT = {
  runAsNonRoot: true,
  runAsUser: 10001,
  runAsGroup: 10001,
  readOnlyRootFilesystem: true,
  allowPrivilegeEscalation: false,
  capabilities: { drop: ['ALL'] },
  seccompProfile: { type: 'RuntimeDefault' },
};

/** The sidecar container: the proxy on localhost, health and metrics on the HTTP port. */
export function sidecarContainer(s: SidecarSettings, image: string): Obj {
  const probe = (path: string, initialDelaySeconds: number, periodSeconds: number): Obj => ({ httpGet: { path, port: s.httpPort }, initialDelaySeconds, periodSeconds });
  return {
    name: SIDECAR_NAME,
    image,
    imagePullPolicy: 'IfNotPresent',
    // Native sidecar: started before the app's containers, stopped after them.
    restartPolicy: 'Always',
    args: ['proxy'],
    env: [
      { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'DBAUDIT_CONFIG', value: `${CONFIG_MOUNT}/config.yaml` },
      { name: 'DBAUDIT_COLLECTOR_PROTOCOL', value: s.protocol },
      { name: 'DBAUDIT_COLLECTOR_UPSTREAM', value: s.upstream },
      { name: 'DBAUDIT_COLLECTOR_LISTEN', value: `127.0.0.1:${s.listenPort}` },
      { name: 'DBAUDIT_COLLECTOR_HTTP_LISTEN', value: `0.0.0.0:${s.httpPort}` },
      { name: 'DBAUDIT_COLLECTOR_CACHE_PATH', value: CACHE_MOUNT },
      { name: 'DBAUDIT_COLLECTOR_CACHE_ENCRYPTION_KEY_FILE', value: `${CONFIG_MOUNT}/cache.key` },
    ],
    ports: [{ name: 'dbaudit-http', containerPort: s.httpPort, protocol: 'TCP' }],
    // The app's containers start once this passes: the proxy is listening by then.
    startupProbe: { httpGet: { path: '/health/live', port: s.httpPort }, periodSeconds: 1, failureThreshold: 60 },
    livenessProbe: probe('/health/live', 10, 10),
    readinessProbe: probe('/health/ready', 5, 5),
    resources: s.resources,
    securityContext: RESTRICTED_SECURITY_CONTEXT,
    volumeMounts: [
      { name: VOLUMES.cache, mountPath: CACHE_MOUNT },
      { name: VOLUMES.config, mountPath: CONFIG_MOUNT, readOnly: true },
      { name: VOLUMES.tmp, mountPath: '/tmp' },
    ],
  };
}

function sidecarVolumes(s: SidecarSettings): Obj[] {
  return [
    { name: VOLUMES.cache, emptyDir: {} },
    { name: VOLUMES.config, secret: { secretName: s.configSecret } },
    { name: VOLUMES.tmp, emptyDir: { medium: 'Memory', sizeLimit: '64Mi' } },
  ];
}

/**
 * Does `have` hold everything `want` says? Fields the API server fills in
 * by default (a probe's timeoutSeconds, a fieldRef's apiVersion, a secret
 * volume's defaultMode …) may be added; nothing may differ or be missing.
 */
export function covers(have: unknown, want: unknown): boolean {
  if (Array.isArray(want)) return Array.isArray(have) && have.length === want.length && want.every((w, i) => covers(have[i], w));
  if (isObj(want)) return isObj(have) && Object.entries(want).every(([k, v]) => covers(have[k], v));
  return isDeepStrictEqual(have, want);
}

/** Replaces the entries named like `wanted` in place (unless already covering them) and appends (or prepends) the others. */
function upsertByName(list: unknown, wanted: Obj[], prepend: boolean): Obj[] {
  const out = Array.isArray(list) ? (list.filter(isObj) as Obj[]).slice() : [];
  const fresh: Obj[] = [];
  for (const w of wanted) {
    const i = out.findIndex((x) => x.name === w.name);
    if (i < 0) fresh.push(w);
    else if (!covers(out[i], w)) out[i] = w;
  }
  return prepend ? [...fresh, ...out] : [...out, ...fresh];
}

function checkConflicts(spec: Obj, s: SidecarSettings, where: string): void {
  const containers = Array.isArray(spec.containers) ? spec.containers.filter(isObj) : [];
  for (const c of containers) {
    if (c.name === SIDECAR_NAME) throw new AuditError(ErrorCode.InvalidRequest, `${where}: a container is already named "${SIDECAR_NAME}"; the sidecar needs that name`);
    const ports = Array.isArray(c.ports) ? c.ports.filter(isObj) : [];
    for (const p of ports) {
      if (p.containerPort === s.listenPort || p.containerPort === s.httpPort) {
        const key = p.containerPort === s.listenPort ? ANNOTATIONS.listenPort : ANNOTATIONS.httpPort;
        throw new AuditError(ErrorCode.InvalidRequest, `${where}: container ${JSON.stringify(c.name)} already uses port ${String(p.containerPort)}; choose another with the ${key} annotation`);
      }
    }
  }
}

/**
 * The changes that inject the sidecar into one object (Pod or workload).
 * Empty when the object is not annotated, has no pod template, or already
 * has exactly this sidecar.
 */
export function planInjection(obj: unknown, opts: InjectOptions = {}, base: JsonPath = []): Change[] {
  const tpl = podTemplatePath(obj);
  if (tpl === undefined) return [];
  const where = describeObject(obj);
  const settings = readSettings(get(obj, [...tpl, 'metadata', 'annotations']), where);
  if (settings === undefined) return [];
  const spec = get(obj, [...tpl, 'spec']);
  if (!isObj(spec)) throw new AuditError(ErrorCode.InvalidRequest, `${where}: no pod spec to inject into`);
  checkConflicts(spec, settings, where);

  const desired: Array<[string, unknown]> = [
    ['initContainers', upsertByName(spec.initContainers, [sidecarContainer(settings, opts.image ?? DEFAULT_IMAGE)], true)],
    ['volumes', upsertByName(spec.volumes, sidecarVolumes(settings), false)],
  ];
  const grace = typeof spec.terminationGracePeriodSeconds === 'number' ? spec.terminationGracePeriodSeconds : K8S_DEFAULT_GRACE_SECONDS;
  if (grace < MIN_TERMINATION_GRACE_SECONDS) desired.push(['terminationGracePeriodSeconds', MIN_TERMINATION_GRACE_SECONDS]);

  const changes: Change[] = [];
  // The label lets the gateway's NetworkPolicy admit injected sidecars as collectors.
  const labels = get(obj, [...tpl, 'metadata', 'labels']);
  const wantedLabels = { ...(isObj(labels) ? labels : {}), [COLLECTOR_LABEL]: 'true' };
  if (!covers(labels, wantedLabels)) changes.push({ path: [...base, ...tpl, 'metadata', 'labels'], value: wantedLabels, existed: labels !== undefined });
  for (const [field, value] of desired) {
    if (isDeepStrictEqual(spec[field], value)) continue;
    changes.push({ path: [...base, ...tpl, 'spec', field], value, existed: spec[field] !== undefined });
  }
  return changes;
}

/** Is this a `List` (kind List, or any *List with items)? */
export function isList(obj: unknown): obj is Obj & { items: unknown[] } {
  return isObj(obj) && typeof obj.kind === 'string' && obj.kind.endsWith('List') && Array.isArray(obj.items);
}

/** planInjection over an object or every item of a List. */
export function planAll(obj: unknown, opts: InjectOptions = {}): Change[] {
  if (isList(obj)) return obj.items.flatMap((item, i) => planInjection(item, opts, ['items', i]));
  return planInjection(obj, opts);
}

/** RFC 6901 pointer of a path. */
export function pointer(path: JsonPath): string {
  return path.map((p) => '/' + String(p).replace(/~/g, '~0').replace(/\//g, '~1')).join('');
}

/** The changes as an RFC 6902 JSON patch, as an admission webhook answers. */
export function toJsonPatch(changes: readonly Change[]): Array<{ op: 'add' | 'replace'; path: string; value: unknown }> {
  return changes.map((c) => ({ op: c.existed ? 'replace' : 'add', path: pointer(c.path), value: c.value }));
}

/**
 * Injects into a YAML stream (one or more documents, each an object or a
 * List). Documents without changes keep their text; changed ones keep their
 * comments and key order, with only the changed fields rewritten. Returns the
 * input unchanged when nothing is to be injected.
 */
export function injectYaml(text: string, opts: InjectOptions = {}): { text: string; changed: number } {
  const parsed = parseAllDocuments(text);
  if (!Array.isArray(parsed)) return { text, changed: 0 }; // an empty stream
  const docs = parsed;
  let changed = 0;
  for (const doc of docs) {
    if (doc.errors.length > 0) throw new AuditError(ErrorCode.InvalidRequest, `input is not valid YAML: ${doc.errors[0].message}`);
    const changes = planAll(doc.toJS(), opts);
    if (changes.length === 0) continue;
    for (const c of changes) doc.setIn(c.path, doc.createNode(c.value));
    changed++;
  }
  if (changed === 0) return { text, changed };
  const parts = docs.map((d) => d.toString({ lineWidth: 0 }));
  return { text: parts.map((p, i) => (i === 0 ? p : p.startsWith('---') ? p : `---\n${p}`)).join(''), changed };
}

/** `dbaudit inject [--image IMAGE]`: YAML on stdin, the same with the sidecar added on stdout. */
export async function runInjectCommand(argv: readonly string[], input: NodeJS.ReadableStream, output: NodeJS.WritableStream, env: NodeJS.ProcessEnv): Promise<number> {
  let image = env.DBAUDIT_INJECT_IMAGE;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--image' || a.startsWith('--image=')) {
      image = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i];
      if (!image) throw new AuditError(ErrorCode.Config, '--image needs a value');
    } else {
      throw new AuditError(ErrorCode.Config, `dbaudit inject: unknown argument ${JSON.stringify(a)} (usage: dbaudit inject [--image IMAGE] < in.yaml > out.yaml)`);
    }
  }
  const chunks: Buffer[] = [];
  for await (const chunk of input) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  const { text } = injectYaml(Buffer.concat(chunks).toString('utf8'), { image });
  output.write(text);
  return 0;
}
