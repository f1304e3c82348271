/** Processes a macro benchmark starts: the bare pipe, a gateway, dbaudit proxies; and what /proc says about them. */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { freePort } from '../../test/harness/index.js';

const ROOT = join(import.meta.dirname, '..', '..');
const DBAUDIT = join(ROOT, 'bin', 'dbaudit.js');
const CLK_TCK = 100; // Linux USER_HZ

export interface Proc {
  readonly name: string;
  readonly pid: number;
  readonly port: number;
  readonly child: ChildProcess;
  stop(): Promise<void>;
}

/** utime + stime of a process, in seconds. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

/** Resident set size of a process, in bytes. */
export function rssBytes(pid: number): number {
  return rssParts(pid).rss;
}

/**
 * VmRSS and its two main parts from /proc/<pid>/status: anonymous pages
 * (heaps, buffers: what the process itself allocated) and file-backed pages
 * (the mapped executable and libraries, shared with every process mapping
 * them and dropped under memory pressure). Bytes; NaN when not reported.
 */
export function rssParts(pid: number): { rss: number; anon: number; file: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string): number => {
    const m = new RegExp(`${name}:\\s+(\\d+) kB`).exec(status);
    return m ? Number(m[1]) * 1024 : NaN;
  };
  return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile') };
}

export function canConnect(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function waitPort(name: string, child: ChildProcess, port: number, log: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (await canConnect(port)) return;
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`${name} did not start:\n${log()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * BENCH_CPU_PROF=DIR: every dbaudit process a benchmark starts writes V8 CPU
 * profiles (node --cpu-prof) into DIR/<process name>/ when it exits, one per
 * thread (the largest is the main thread's).
 */
function profileArgs(name: string): string[] {
  const dir = process.env.BENCH_CPU_PROF;
  return dir ? ['--cpu-prof', '--cpu-prof-dir', join(dir, name)] : [];
}

async function startProc(name: string, args: string[], port: number, env: NodeJS.ProcessEnv = {}): Promise<Proc> {
  let out = '';
  const child = spawn(process.execPath, name === 'pipe' ? args : [...profileArgs(name), ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (b: Buffer) => void (out = (out + b.toString()).slice(-4000)));
  child.stderr!.on('data', (b: Buffer) => void (out = (out + b.toString()).slice(-4000)));
  const kill = (): void => void child.kill('SIGKILL');
  process.once('exit', kill);
  try {
    await waitPort(name, child, port, () => out);
  } catch (err) {
    child.kill('SIGKILL');
    process.off('exit', kill);
    throw err;
  }
  return {
    name,
    pid: child.pid!,
    port,
    child,
    async stop() {
      process.off('exit', kill);
      if (child.exitCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await gone;
      clearTimeout(t);
    },
  };
}

/** Starts on a free port, retrying with another port if the first attempt fails (a port taken in between). */
async function withPort(start: (port: number) => Promise<Proc>): Promise<Proc> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start(await freePort());
    } catch (err) {
      if (attempt >= 3) throw err;
    }
  }
}

export function startPipe(upHost: string, upPort: number): Promise<Proc> {
  return withPort((port) => startProc('pipe', [join(ROOT, 'bench', 'macro', 'pipe-proxy.mjs'), String(port), upHost, String(upPort)], port));
}

export function startGatewayProc(dataDir: string, store = 'embedded'): Promise<Proc> {
  return withPort((port) => startProc('gateway', [DBAUDIT, 'gateway', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir, '--store', store, '--http', '127.0.0.1:0', '--log-level', 'warn'], port));
}

export const BENCH_CACHE_KEY = randomBytes(32).toString('base64');

export async function startDbaudit(opts: {
  protocol: 'postgres' | 'mysql';
  upstream: string;
  gateway: string;
  cacheDir: string;
  /** memory: collector.cache.enabled false (no disk; a crash loses the unacknowledged tail). */
  durability: 'fsync' | 'write' | 'memory';
  extra?: string[];
  nodeArgs?: string[];
}): Promise<Proc> {
  return withPort((port) => startProc(`dbaudit-${opts.durability}`, dbauditArgs(opts, port), port, { DBAUDIT_CACHE_KEY: BENCH_CACHE_KEY }));
}

function dbauditArgs(opts: { protocol: 'postgres' | 'mysql'; upstream: string; gateway: string; cacheDir: string; durability: 'fsync' | 'write' | 'memory'; extra?: string[]; nodeArgs?: string[] }, port: number): string[] {
  return [
    ...(opts.nodeArgs ?? []),
    DBAUDIT,
    'proxy',
    '--protocol', opts.protocol,
    '--listen', `127.0.0.1:${port}`,
    '--upstream', opts.upstream,
    '--gateway', opts.gateway,
    '--cache-dir', opts.cacheDir,
    '--http', '127.0.0.1:0',
    '--log-level', 'warn',
    '--collector.id', `bench-${opts.durability}`,
    ...(opts.durability === 'memory' ? ['--collector.cache.enabled', 'false'] : ['--collector.cache.durability', opts.durability]),
    ...(opts.extra ?? []),
  ];
}
