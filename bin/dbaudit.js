#!/usr/bin/env node
// The dbaudit command. Runs the compiled JavaScript in dist/ (scripts/build.mjs,
// run by `npm ci` and `npm run build`) when it is current: built after every
// source was last changed. Otherwise — a checkout without a build, sources
// edited since, or DBAUDIT_FROM_SOURCE=1 — it runs the TypeScript sources
// through tsx's loader, as before. The compiled path saves the loader's
// second thread and V8 isolate (~40 MB RSS) and the compile at every start.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const SOURCE_DIRS = ['lib', 'proxy', 'cache', 'gateway', 'proto'];

/** mtime (ms) of dist/.build-stamp, or -1 when there is none. */
function stampMs() {
  try {
    return statSync(join(root, 'dist', '.build-stamp')).mtimeMs;
  } catch {
    return -1;
  }
}

/** True when some .ts source (or package.json) changed after `since`. */
function newerThan(since) {
  if (statSync(join(root, 'package.json')).mtimeMs > since) return true;
  const walk = (dir) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return false;
    }
    for (const e of entries) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        if (e.name !== 'node_modules' && walk(p)) return true;
      } else if (e.name.endsWith('.ts') && statSync(p).mtimeMs > since) return true;
    }
    return false;
  };
  return SOURCE_DIRS.some((d) => walk(join(root, d)));
}

const stamp = process.env.DBAUDIT_FROM_SOURCE === '1' ? -1 : stampMs();
if (stamp >= 0 && !newerThan(stamp)) {
  await import('../dist/proxy/main.js');
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../proxy/main.ts');
}
