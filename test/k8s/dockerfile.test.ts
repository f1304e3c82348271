// The image definition, checked without a Docker engine (none runs here):
// multi-stage, production dependencies only, a numeric non-root user that
// matches the manifests, every runtime import available in the image.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';

const ROOT = join(import.meta.dirname, '../..');
const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const lines = dockerfile.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));

test('Dockerfile: multi-stage, npm ci --omit=dev, numeric non-root USER as the manifests expect, entrypoint runs bin/dbaudit.js', () => {
  const stages = lines.filter((l) => /^FROM\s/i.test(l));
  assert.ok(stages.length >= 2, 'multi-stage');
  assert.ok(lines.some((l) => /^RUN .*npm ci --omit=dev/.test(l)), 'npm ci --omit=dev');
  const finalStage = lines.slice(lines.lastIndexOf(stages[stages.length - 1]));
  assert.ok(finalStage.some((l) => /^COPY --from=\S+ \/app\/node_modules/.test(l)), 'the final stage takes node_modules from the build stage');
  assert.ok(!finalStage.some((l) => /npm (install|ci)/.test(l)), 'nothing is installed in the final stage');
  const user = finalStage.filter((l) => /^USER\s/.test(l)).pop();
  assert.equal(user, 'USER 10001:10001', 'numeric, so the kubelet can verify runAsNonRoot');
  for (const f of ['k8s/base/collector/statefulset.yaml', 'k8s/base/gateway/deployment.yaml', 'k8s/base/webhook/deployment.yaml']) {
    assert.match(readFileSync(join(ROOT, f), 'utf8'), /runAsUser: 10001\n/, `${f} runs as the image's user`);
  }
  assert.ok(finalStage.includes('ENTRYPOINT ["node", "/app/bin/dbaudit.js"]'));
  assert.ok(finalStage.includes('CMD ["proxy"]'));
});

test('Dockerfile: every COPY source exists, and every package the runtime code imports is a production dependency', () => {
  const copied: string[] = [];
  for (const l of lines) {
    const m = /^COPY\s+(?!--from)(.+)\s+\S+$/.exec(l);
    if (!m) continue;
    for (const src of m[1].split(/\s+/)) {
      assert.ok(existsSync(join(ROOT, src)), `COPY source ${src} exists`);
      copied.push(src);
    }
  }
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  const runtimeDirs = copied.filter((c) => !c.includes('.'));
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(ts|js)$/.test(e.name) && !/\.test\.ts$/.test(e.name) && !/testing\.ts$/.test(e.name)) files.push(p);
    }
  };
  for (const d of runtimeDirs) walk(join(ROOT, d));
  assert.ok(files.length > 20);
  const missing = new Set<string>();
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s(?!type\s)[^'"]*?from\s+'([^'.][^']*)'|import\('([^'.][^']*)'\)/g)) {
      const spec = m[1] ?? m[2];
      if (spec.startsWith('node:')) continue;
      const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];
      if (!(name in pkg.dependencies)) missing.add(`${name} (${relative(ROOT, f)})`);
    }
    for (const m of text.matchAll(/from\s+'(\.{1,2}\/[^']+)'/g)) {
      const target = relative(ROOT, join(f, '..', m[1]));
      assert.ok(runtimeDirs.some((d) => target.startsWith(d + '/')) || copied.includes(target), `${relative(ROOT, f)} imports ${target}, which is in the image`);
    }
  }
  assert.deepEqual([...missing], [], 'runtime imports that npm ci --omit=dev would not install');
});

test('.dockerignore keeps tests, the repo history and local modules out of the build context', () => {
  const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
  for (const p of ['.git', 'node_modules', 'test', '**/*.test.ts']) assert.ok(ignore.includes(p), p);
});
