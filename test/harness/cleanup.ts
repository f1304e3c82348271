// Everything the harness starts is torn down when the process ends, however it
// ends:
//  - `onExit` hooks run synchronously on 'exit' and on SIGINT/SIGTERM/SIGHUP
//    (a failed test, an uncaught error, the test runner's timeout);
//  - a detached shell "reaper" per server waits for its owner process to
//    disappear and then runs the stop commands, which also covers SIGKILL of
//    the test process and servers shared by all test files of one run.
import { spawn, spawnSync } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runSyncQuiet } from './exec.js';

type Hook = () => void;

const hooks = new Map<number, Hook>();
let nextId = 1;
let installed = false;

function runHooks(): void {
  const all = [...hooks.values()].reverse();
  hooks.clear();
  for (const hook of all) {
    try {
      hook();
    } catch {
      // best effort: keep cleaning up the rest
    }
  }
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', runHooks);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      runHooks();
      // the once-listener is gone: re-raise for the default action
      process.kill(process.pid, sig);
    });
  }
}

/** Register a synchronous cleanup; returns a function that unregisters it. */
export function onExit(hook: Hook): () => void {
  install();
  const id = nextId++;
  hooks.set(id, hook);
  return () => {
    hooks.delete(id);
  };
}

/** Look up an OS user's uid/gid with `id`; undefined when it does not exist. */
export function userIds(user: string): { uid: number; gid: number } | undefined {
  const uid = idNumber(['-u', user]);
  const gid = idNumber(['-g', user]);
  return uid === undefined || gid === undefined ? undefined : { uid, gid };
}

function idNumber(args: string[]): number | undefined {
  const r = spawnSync('id', args, { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  const n = Number.parseInt(r.stdout.trim(), 10);
  return Number.isFinite(n) ? n : undefined;
}

/**
 * A fresh temporary directory, owned by `owner` when this process is root,
 * removed at process exit (or earlier with `remove()`).
 */
export interface TempDir {
  readonly dir: string;
  /** Remove it now. */
  remove(): void;
  /** Do not remove it at this process's exit (someone else will). */
  keepAtExit(): void;
}

export function makeTempDir(prefix: string, owner?: string): TempDir {
  const dir = mkdtempSync(join(tmpdir(), `dbaudit-${prefix}-`));
  if (owner !== undefined && typeof process.getuid === 'function' && process.getuid() === 0) {
    const ids = userIds(owner);
    if (ids === undefined) throw new Error(`OS user ${owner} does not exist`);
    chownSync(dir, ids.uid, ids.gid);
  }
  let removed = false;
  const unregister = onExit(() => remove());
  function remove(): void {
    if (removed) return;
    removed = true;
    unregister();
    rmSync(dir, { recursive: true, force: true });
  }
  return { dir, remove, keepAtExit: unregister };
}

/** Change ownership recursively (root only; a no-op otherwise). */
export function chownTree(path: string, owner: string): void {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return;
  runSyncQuiet('chown', ['-R', `${owner}:`, path], undefined);
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Quote an argv for `sh -c`. */
export function shellCommand(argv: readonly string[]): string {
  return argv.map(shellQuote).join(' ');
}

/**
 * Start a detached reaper: when process `ownerPid` is gone, run `commands`
 * (shell command lines) in order. Returns the reaper's pid so it can be
 * killed once the server was stopped normally.
 */
export function startReaper(ownerPid: number, commands: readonly string[]): number | undefined {
  const script =
    `trap '' INT TERM HUP; while kill -0 ${ownerPid} 2>/dev/null; do sleep 1; done; ` +
    commands.map((c) => `${c} >/dev/null 2>&1`).join('; ');
  const child = spawn('sh', ['-c', script], { detached: true, stdio: 'ignore' });
  child.on('error', () => {
    /* no sh: the exit hooks still run */
  });
  child.unref();
  return child.pid;
}

export function stopReaper(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

const servers = new Map<string, { unhook: () => void; reaper: number | undefined }>();

/**
 * Remember how a server owned by this process is torn down (`atExit`, run
 * synchronously at exit, and its reaper) under `key`, so that an early
 * dispose can release both.
 */
export function trackServer(key: string, atExit: Hook, reaper: number | undefined): void {
  servers.set(key, { unhook: onExit(atExit), reaper });
}

/** The server under `key` was disposed of: drop its exit hook and reaper. */
export function untrackServer(key: string): void {
  const s = servers.get(key);
  if (s === undefined) return;
  servers.delete(key);
  s.unhook();
  stopReaper(s.reaper);
}
