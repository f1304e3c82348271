import { mkdirSync, statSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * `mkdir -p` that always ends. Node's `mkdir(path, { recursive: true })`
 * (async and sync, Node 18–22 at least) never returns when the kernel
 * answers ENOENT for a child whose parent exists — any path under /proc or
 * /sys, or under a dangling symlink: it makes the parent (EEXIST), retries
 * the child (ENOENT), forever, at 100% CPU. Here, once the parent exists,
 * the child's ENOENT is final and thrown. An existing non-directory is
 * ENOTDIR.
 */
export async function makeDir(path: string, mode = 0o700): Promise<void> {
  try {
    await mkdir(path, { mode });
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return requireDirectory(path, (await stat(path)).isDirectory());
    const parent = dirname(path);
    if (code !== 'ENOENT' || parent === path) throw err;
  }
  await makeDir(dirname(path), mode);
  try {
    await mkdir(path, { mode });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    requireDirectory(path, (await stat(path)).isDirectory());
  }
}

/** `makeDir`, synchronously. */
export function makeDirSync(path: string, mode = 0o700): void {
  try {
    mkdirSync(path, { mode });
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return requireDirectory(path, statSync(path).isDirectory());
    const parent = dirname(path);
    if (code !== 'ENOENT' || parent === path) throw err;
  }
  makeDirSync(dirname(path), mode);
  try {
    mkdirSync(path, { mode });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    requireDirectory(path, statSync(path).isDirectory());
  }
}

function requireDirectory(path: string, isDir: boolean): void {
  if (!isDir) throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${path}'`), { code: 'ENOTDIR', syscall: 'mkdir', path });
}
