// One server shared by every test file of a `node --test` run.
//
// node:test runs each file in its own child process (NODE_TEST_CONTEXT is
// set there), so "shared" means shared across processes: the first file to
// ask starts the server under a lock and writes its state to a run directory
// keyed by the test runner's pid; later files attach to it. The server's
// reaper watches the runner's pid, so the server stops when the whole run
// ends. Run directly (no test runner), the owner is this process and the
// server stops at its exit like any other.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { shellCommand, startReaper } from './cleanup.js';

/** The pid whose end stops shared servers: the test runner, or this process. */
export function sharedOwnerPid(): number {
  const ctx = process.env.NODE_TEST_CONTEXT ?? '';
  return ctx.startsWith('child') ? process.ppid : process.pid;
}

function startTime(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // field 22 (starttime) counted after the ")" that ends the command name
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19] ?? '0';
  } catch {
    return '0';
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

let runDirMade: string | undefined;

function runDir(owner: number): string {
  const dir = join(tmpdir(), `dbaudit-run-${owner}-${startTime(owner)}`);
  if (runDirMade === dir) return dir;
  try {
    mkdirSync(dir, { mode: 0o755 });
    // we made it: remove it when the run ends
    startReaper(owner, [shellCommand(['rm', '-rf', dir])]);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  runDirMade = dir;
  return dir;
}

export interface SharedSpec<S> {
  /** File-name-safe key: one shared instance per key. */
  readonly key: string;
  /** Start a new server whose life is bound to `ownerPid`; return its state. */
  readonly start: (ownerPid: number) => Promise<S>;
  /** Is the server described by this state still running? */
  readonly alive: (state: S) => boolean;
}

const inProcess = new Map<string, Promise<unknown>>();

/** The state of the shared instance for `spec.key`, starting it if needed. */
export function sharedState<S>(spec: SharedSpec<S>): Promise<S> {
  let p = inProcess.get(spec.key) as Promise<S> | undefined;
  if (p === undefined) {
    p = acquire(spec);
    inProcess.set(spec.key, p);
    p.catch(() => inProcess.delete(spec.key));
  }
  return p;
}

async function acquire<S>(spec: SharedSpec<S>): Promise<S> {
  const owner = sharedOwnerPid();
  const dir = runDir(owner);
  const stateFile = join(dir, `${spec.key}.json`);
  const lockDir = join(dir, `${spec.key}.lock`);
  const deadline = Date.now() + 180_000;
  for (;;) {
    const existing = readState<S>(stateFile);
    if (existing !== undefined && spec.alive(existing)) return existing;
    if (tryLock(lockDir)) {
      try {
        const again = readState<S>(stateFile);
        if (again !== undefined && spec.alive(again)) return again;
        const state = await spec.start(owner);
        const tmp = `${stateFile}.${process.pid}`;
        writeFileSync(tmp, JSON.stringify(state));
        renameSync(tmp, stateFile);
        return state;
      } finally {
        rmSync(lockDir, { recursive: true, force: true });
      }
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for shared ${spec.key} (lock ${lockDir})`);
    await sleep(200);
  }
}

function readState<S>(file: string): S | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as S;
  } catch {
    return undefined;
  }
}

function tryLock(lockDir: string): boolean {
  try {
    mkdirSync(lockDir);
    writeFileSync(join(lockDir, 'pid'), String(process.pid));
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    // a holder that died mid-start leaves a stale lock: take it over
    let holder = 0;
    try {
      holder = Number.parseInt(readFileSync(join(lockDir, 'pid'), 'utf8'), 10);
    } catch {
      return false; // being created right now
    }
    if (holder > 0 && !pidAlive(holder)) rmSync(lockDir, { recursive: true, force: true });
    return false;
  }
}

/**
 * A directory built once per run (e.g. an initdb'd data directory that each
 * new server copies instead of running initdb again). `build` fills `dir`,
 * which does not exist yet; the directory goes away when the run ends.
 */
export async function templateDir(key: string, build: (dir: string) => Promise<void>): Promise<string> {
  const state = await sharedState<{ dir: string }>({
    key: `template-${key}`,
    start: async (owner) => {
      const dir = join(runDir(owner), `${key}.template`);
      rmSync(dir, { recursive: true, force: true });
      await build(dir);
      return { dir };
    },
    alive: (st) => existsSync(st.dir),
  });
  return state.dir;
}
