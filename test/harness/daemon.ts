// Small helpers for servers the harness launches itself (mariadbd,
// pgbouncer): start detached with output to a log file, wait until ready,
// and kill by pid.
import { spawn } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { userIds } from './cleanup.js';
import { isRoot } from './exec.js';

/**
 * Start `cmd args` in its own session, stdout+stderr appended to `logFile`.
 * As `user` when root: with setuid/setgid in the child (no wrapper process),
 * so the returned pid is the server's own.
 */
export function spawnDaemon(cmd: string, args: readonly string[], logFile: string, user?: string): number {
  let ids: { uid: number; gid: number } | undefined;
  if (user !== undefined && user !== 'root' && isRoot()) {
    ids = userIds(user);
    if (ids === undefined) throw new Error(`OS user ${user} does not exist`);
  }
  const fd = openSync(logFile, 'a');
  try {
    const child = spawn(cmd, [...args], { detached: true, stdio: ['ignore', fd, fd], uid: ids?.uid, gid: ids?.gid });
    child.on('error', () => {
      /* reported by waitUntil's alive check */
    });
    child.unref();
    if (child.pid === undefined) throw new Error(`cannot start ${cmd}`);
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // a zombie (exited, not yet reaped by us) counts as dead
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return true;
  }
}

/** Pids whose parent is `ppid` (from /proc). */
export function childPids(ppid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === ppid) out.push(Number(name));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** SIGKILL the pids and wait (≤ 5 s) until they are gone. */
export async function killAndWait(pids: readonly number[]): Promise<void> {
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  for (let i = 0; i < 200 && pids.some(pidAlive); i++) await sleep(25);
}

/**
 * Poll `ready` every 100 ms until it resolves true. Fails early when `pid`
 * is no longer alive, and after `timeoutMs`.
 */
export async function waitUntil(what: string, ready: () => Promise<boolean>, pid: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await ready().catch(() => false)) return;
    if (!pidAlive(pid)) throw new Error(`${what} exited during startup`);
    if (Date.now() > deadline) throw new Error(`${what} not ready after ${timeoutMs} ms`);
    await sleep(100);
  }
}
