// Runs every *.test.ts under test/, lib/, proxy/, cache/ and gateway/ with
// node:test, one file at a time. Node 20's `node --test` does not expand glob
// patterns (Node 21+ does), so a quoted 'test/**/*.test.ts' argument fails
// there with "Could not find"; this script finds the files itself.
//
//   node --import tsx scripts/run-tests.ts [PATH_PREFIX …] [-- NODE_TEST_FLAGS …]
//
// Positional arguments keep only files under those paths; flags after `--`
// (e.g. --test-name-pattern=…) go to node --test. Exits with its status.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

const ROOTS = ['test', 'lib', 'proxy', 'cache', 'gateway'];

function findTests(dir: string, out: string[]): void {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    if (e.name === 'node_modules' || e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) findTests(p, out);
    else if (e.isFile() && e.name.endsWith('.test.ts')) out.push(p);
  }
}

const repo = resolve(new URL('..', import.meta.url).pathname);
const argv = process.argv.slice(2);
const dash = argv.indexOf('--');
const prefixes = (dash < 0 ? argv : argv.slice(0, dash)).map((p) => relative(repo, resolve(p)));
const flags = dash < 0 ? [] : argv.slice(dash + 1);

const files: string[] = [];
for (const root of ROOTS) findTests(join(repo, root), files);
const selected = files
  .map((f) => relative(repo, f))
  .filter((f) => prefixes.length === 0 || prefixes.some((p) => f === p || f.startsWith(p + '/')))
  .sort();

if (selected.length === 0) {
  process.stderr.write('run-tests: no *.test.ts files found\n');
  process.exit(1);
}

const child = spawn(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-reporter=spec', ...flags, ...selected],
  { cwd: repo, stdio: 'inherit' },
);
child.on('exit', (code, signal) => {
  process.exit(code ?? (signal !== null ? 1 : 0));
});
