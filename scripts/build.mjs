// The runtime build: compiles the sources the CLI runs (tsconfig.build.json)
// to dist/, so `node bin/dbaudit.js` runs plain JavaScript: no tsx loader
// thread, no compile at start. Plain JavaScript itself, so it runs before
// anything is built. `npm ci` runs it (prepare); so do `npm run build`, the
// CI script and the Dockerfile. Without typescript installed (npm ci
// --omit=dev) it does nothing and bin/dbaudit.js runs the sources through tsx.
//
// dist/.build-stamp is written last, with the time the build started:
// bin/dbaudit.js uses dist/ only when no source is newer than that, so an
// edited checkout never runs stale JavaScript. A build with type errors
// writes no stamp (the sources, through tsx, stay what runs).
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const dist = join(root, 'dist');
let tsc;
try {
  tsc = createRequire(join(root, 'package.json')).resolve('typescript/bin/tsc');
} catch {
  process.stderr.write('dbaudit build: typescript is not installed (production install): skipped; bin/dbaudit.js runs the sources through tsx\n');
  process.exit(0);
}
const started = new Date();
rmSync(dist, { recursive: true, force: true });
const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { cwd: root, stdio: 'inherit' });
if (r.status !== 0) {
  process.stderr.write(`dbaudit build: tsc reported errors (status ${r.status}); dist/ is not marked current, so bin/dbaudit.js runs the sources through tsx\n`);
  process.exit(process.env.DBAUDIT_BUILD_STRICT === '1' ? 1 : 0);
}
// lib/version.ts reads ../package.json next to its module; dist/ is an ESM package of its own.
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
writeFileSync(join(dist, 'package.json'), `${JSON.stringify({ name: pkg.name, version: pkg.version, type: 'module', private: true }, null, 2)}\n`);
const stamp = join(dist, '.build-stamp');
writeFileSync(stamp, `${started.toISOString()}\n`);
utimesSync(stamp, started, started);
