// Helpers for the Kubernetes tests: render an overlay with kustomize (kubectl's
// built-in one, or a standalone kustomize), validate objects against the
// Kubernetes OpenAPI schemas (kubernetes-models), and the rule for a missing
// tool: with CI=true the test fails, elsewhere it is skipped with the reason.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { findBinary, inCI } from '../harness/index.js';

export const K8S_DIR = join(import.meta.dirname, '../../k8s');
export const OVERLAYS = ['sidecar', 'primary', 'dr', 'webhook'] as const;

// Minimal typed views of the fields the tests read.
export interface KObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}
export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string }; fieldRef?: { fieldPath: string } };
}
export interface Container {
  name: string;
  image: string;
  args?: string[];
  env?: EnvVar[];
  ports?: Array<{ name?: string; containerPort: number }>;
  restartPolicy?: string;
  resources?: unknown;
  livenessProbe?: { httpGet?: { path: string; port: number | string; scheme?: string }; initialDelaySeconds?: number; periodSeconds?: number };
  readinessProbe?: { httpGet?: { path: string; port: number | string; scheme?: string }; initialDelaySeconds?: number; periodSeconds?: number };
  lifecycle?: { preStop?: { sleep?: { seconds: number } } };
  securityContext?: SecurityContext;
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
}
export interface SecurityContext {
  runAsNonRoot?: boolean;
  runAsUser?: number;
  readOnlyRootFilesystem?: boolean;
  allowPrivilegeEscalation?: boolean;
  capabilities?: { drop?: string[]; add?: string[] };
  seccompProfile?: { type: string };
  privileged?: boolean;
}
export interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: Array<{ name: string; secret?: { secretName: string }; persistentVolumeClaim?: unknown; emptyDir?: unknown }>;
  securityContext?: SecurityContext & { fsGroup?: number };
  affinity?: unknown;
  terminationGracePeriodSeconds?: number;
  automountServiceAccountToken?: boolean;
}
export interface PodTemplate {
  metadata: { labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: PodSpec;
}

/** The kustomize command line, or a reason it is missing. */
export function kustomizeCommand(): { cmd: string; args: string[] } | { missing: string } {
  const kubectl = findBinary('kubectl');
  if (kubectl !== undefined) return { cmd: kubectl, args: ['kustomize'] };
  const kustomize = findBinary('kustomize');
  if (kustomize !== undefined) return { cmd: kustomize, args: ['build'] };
  return { missing: 'neither kubectl (with its built-in kustomize) nor kustomize found' };
}

/** The shared rule: true when kustomize is usable; in CI a missing one fails the test, elsewhere it skips. */
export function needKustomize(t: TestContext): boolean {
  const k = kustomizeCommand();
  if (!('missing' in k)) return true;
  if (inCI()) throw new Error(`kustomize is required: ${k.missing} (CI=true: a missing tool fails the test)`);
  t.skip(k.missing);
  return false;
}

/** Renders one overlay (a directory under k8s/) and returns its objects. */
export function render(dir: string): KObject[] {
  const k = kustomizeCommand();
  if ('missing' in k) throw new Error(k.missing);
  const r = spawnSync(k.cmd, [...k.args, join(K8S_DIR, dir)], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`kustomize ${dir} failed (${r.status}): ${r.stderr}`);
  return parseYamlStream(r.stdout);
}

export function parseYamlStream(text: string): KObject[] {
  const docs = parseAllDocuments(text);
  if (!Array.isArray(docs)) return [];
  return docs.map((d) => {
    if (d.errors.length > 0) throw new Error(`bad YAML: ${d.errors[0].message}`);
    return d.toJS() as KObject;
  }).filter((o) => o !== null);
}

/** Validates an object against the Kubernetes OpenAPI schema of its apiVersion and kind (throws with the failing paths). */
export async function validateObject(obj: KObject): Promise<void> {
  const mod = (await import(`kubernetes-models/${obj.apiVersion}/${obj.kind}`)) as Record<string, new (data: unknown) => { validate(): void }>;
  const Model = mod[obj.kind];
  if (typeof Model !== 'function') throw new Error(`no schema model for ${obj.apiVersion} ${obj.kind}`);
  try {
    new Model(obj).validate();
  } catch (err) {
    throw new Error(`${obj.kind} ${obj.metadata?.name}: ${(err as Error).message}`, { cause: err });
  }
}

export function find(objs: readonly KObject[], kind: string, name: string): KObject {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  if (o === undefined) throw new Error(`${kind} ${name} not rendered (have: ${objs.map((x) => `${x.kind}/${x.metadata.name}`).join(', ')})`);
  return o;
}

/** The pod template of a workload, or the Pod's own metadata and spec. */
export function podTemplate(obj: KObject): PodTemplate | undefined {
  if (obj.kind === 'Pod') return { metadata: obj.metadata, spec: obj.spec as PodSpec };
  const spec = obj.spec as { template?: PodTemplate } | undefined;
  return spec?.template;
}

export function envOf(c: Container, name: string): EnvVar | undefined {
  return c.env?.find((e) => e.name === name);
}

/**
 * The OpenAPI schemas let unknown fields through (the Kubernetes schemas do
 * not close their objects), so a misspelt field would pass validateObject.
 * This check compiles every object as a TypeScript object literal of its
 * kubernetes-models type: tsc's excess-property check names any field the
 * API does not have. Returns tsc's messages, each prefixed with the object.
 */
export function unknownFieldErrors(objs: readonly KObject[]): string[] {
  const root = join(import.meta.dirname, '../..');
  mkdirSync(join(root, 'tmp'), { recursive: true });
  const dir = mkdtempSync(join(root, 'tmp', 'k8s-types-'));
  try {
    const imports = new Map<string, string>();
    const lines: string[] = [];
    objs.forEach((o, i) => {
      const alias = `T${imports.size}`;
      const mod = `kubernetes-models/${o.apiVersion}/${o.kind}`;
      if (!imports.has(mod)) imports.set(mod, alias);
      lines.push(`export const o${i}: ${imports.get(mod)} = ${JSON.stringify(o)};`);
    });
    const head = [...imports].map(([mod, alias]) => `import type { I${mod.split('/').pop()} as ${alias} } from '${mod}';`);
    const file = join(dir, 'objects.ts');
    writeFileSync(file, [...head, ...lines].join('\n') + '\n');
    const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
    const r = spawnSync(process.execPath, [tsc, '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--skipLibCheck', '--types', 'node', '--pretty', 'false', file], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    if (r.status === 0) return [];
    return r.stdout.split('\n').filter(Boolean).map((line) => {
      const m = /\.ts\((\d+),\d+\): (.*)$/.exec(line);
      const o = m ? objs[Number(m[1]) - head.length - 1] : undefined;
      return o ? `${o.kind} ${o.metadata.name}: ${m![2]}` : line;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
