import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { makeTempDir } from '../test/harness/index.js';
import { makeDir, makeDirSync } from './make-dir.js';

const code = (e: unknown): string | undefined => (e as NodeJS.ErrnoException).code;

test('makeDir creates missing parents (mode 0700) and accepts an existing directory', async () => {
  const t = makeTempDir('make-dir');
  try {
    const deep = join(t.dir, 'a', 'b', 'c');
    await makeDir(deep);
    assert.equal(statSync(deep).mode & 0o777, 0o700);
    await makeDir(deep);
    makeDirSync(join(t.dir, 'x', 'y'));
    assert.ok(existsSync(join(t.dir, 'x', 'y')));
  } finally {
    t.remove();
  }
});

// Node's mkdir({ recursive: true }) never returns on these: mkdir(child) = ENOENT, mkdir(parent) = EEXIST, forever.
test('a path under /proc (/proc/dbaudit-cache/x): ENOENT at once', { timeout: 10_000 }, async () => {
  await assert.rejects(makeDir('/proc/dbaudit-cache/x'), (e) => code(e) === 'ENOENT');
});

test('a path under /proc, synchronously: ENOENT at once (in a child process: a spin would block this one)', () => {
  const script = `import { makeDirSync } from ${JSON.stringify(join(import.meta.dirname, 'make-dir.ts'))}; try { makeDirSync('/proc/dbaudit-cache'); } catch (e) { console.log(e.code); }`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { timeout: 20_000, encoding: 'utf8' });
  assert.equal(r.signal, null, 'did not finish in time');
  assert.equal(r.stdout.trim(), 'ENOENT', r.stderr);
});

test('a path under a dangling symlink: ENOENT at once', async () => {
  const t = makeTempDir('make-dir');
  try {
    symlinkSync(join(t.dir, 'gone'), join(t.dir, 'link'));
    await assert.rejects(makeDir(join(t.dir, 'link', 'cache')), (e) => code(e) === 'ENOENT');
    assert.throws(() => makeDirSync(join(t.dir, 'link', 'cache')), (e) => code(e) === 'ENOENT');
  } finally {
    t.remove();
  }
});

test('an existing file, or a file as a parent: ENOTDIR', async () => {
  const t = makeTempDir('make-dir');
  try {
    const f = join(t.dir, 'file');
    writeFileSync(f, '');
    await assert.rejects(makeDir(f), (e) => code(e) === 'ENOTDIR');
    await assert.rejects(makeDir(join(f, 'sub')), (e) => code(e) === 'ENOTDIR');
    assert.throws(() => makeDirSync(f), (e) => code(e) === 'ENOTDIR');
  } finally {
    t.remove();
  }
});
