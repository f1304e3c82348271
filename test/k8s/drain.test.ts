// Graceful drain on SIGTERM, as Kubernetes does it in a rolling update: a
// real `dbaudit proxy` child process in front of real PostgreSQL, a live psql
// session running a long query when the signal arrives.
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../../lib/config.js';
import { silentLogger } from '../../lib/log.js';
import { GatewayMetrics } from '../../lib/metrics.js';
import { startGateway, type GatewayHandle } from '../../gateway/server.js';
import type { AuditEvent } from '../../proto/gen/audit/v1/event_pb.js';
import { binary, freePort, makeTempDir, sharedPostgres, skipUnless, type PgServer, type TempDir } from '../harness/index.js';

const BIN = join(import.meta.dirname, '../../bin/dbaudit.js');
const CACHE_KEY = randomBytes(32).toString('base64');

interface ProxyChild {
  child: ChildProcessWithoutNullStreams;
  port: number;
  http: string;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function startProxy(upstream: string, gateway: string, cacheDir: string, grace: string): Promise<ProxyChild> {
  const child = spawn(
    process.execPath,
    [BIN, 'proxy', '--listen', '127.0.0.1:0', '--http', '127.0.0.1:0', '--upstream', upstream, '--gateway', gateway, '--cache-dir', cacheDir,
      '--collector.id', 'drain-test', '--collector.shutdown.grace_period', grace, '--collector.retry.initial_delay', '100ms'],
    { env: { ...process.env, DBAUDIT_CACHE_KEY: CACHE_KEY, DBAUDIT_LOG_LEVEL: 'info' }, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })),
  );
  const started = await until('the proxy to start', () => {
    if (child.exitCode !== null) throw new Error(`proxy exited early:\n${out}`);
    const line = out.split('\n').find((l) => l.includes('"dbaudit proxy started"'));
    return line === undefined ? undefined : (JSON.parse(line) as { listen: string; http: string });
  });
  return { child, port: Number(started.listen.split(':').pop()), http: started.http, output: () => out, exited };
}

async function readyStatus(http: string): Promise<number | undefined> {
  try {
    const res = await fetch(`http://${http}/health/ready`, { signal: AbortSignal.timeout(2_000) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return undefined;
  }
}

/** Connects to the proxy port: 'refused', or 'accepted' when a TCP connection was made. */
function tryConnect(port: number): Promise<'refused' | 'accepted'> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve('accepted');
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED' ? 'refused' : 'accepted'));
  });
}

/** An interactive psql session on the proxy: statements written on stdin, output read as it comes. */
function openPsql(port: number, db: string): { proc: ChildProcessWithoutNullStreams; output(): string; send(sql: string): void; exited: Promise<number | null> } {
  const proc = spawn(binary('psql'), ['-X', '-A', '-t', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', db, '-v', 'ON_ERROR_STOP=0'], {
    env: { ...process.env, PGSSLMODE: 'disable', PGAPPNAME: 'drain-test' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout.on('data', (b: Buffer) => (out += b.toString()));
  proc.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  return { proc, output: () => out, send: (sql) => proc.stdin.write(sql + '\n'), exited };
}

describe('SIGTERM drain of a proxy child process', { skip: skipUnless('postgres') }, () => {
  let pg: PgServer;
  let gw: GatewayHandle;
  let dir: TempDir;
  const stored: AuditEvent[] = [];

  before(async () => {
    pg = await sharedPostgres();
    dir = makeTempDir('dbaudit-drain-');
    const config = loadConfig({
      argv: [],
      env: {},
      scope: 'gateway',
      defaults: { 'gateway.listen': '127.0.0.1:0', 'gateway.data_dir': join(dir.dir, 'gateway'), 'gateway.http.listen': '127.0.0.1:0', 'log.level': 'silent' },
    }).config;
    gw = await startGateway({ config, logger: silentLogger, metrics: new GatewayMetrics({ defaultMetrics: false }), onStored: (evs) => stored.push(...evs) });
  });

  after(async () => {
    await gw?.close();
    dir?.remove();
  });

  test('readiness 503 first, new connections refused, the running query completes, exit 0 before the grace period, every event at the gateway', async () => {
    const db = await pg.createDatabase('drain');
    const proxy = await startProxy(`127.0.0.1:${pg.port}`, gw.address, join(dir.dir, 'cache-1'), '20s');
    try {
      await until('readiness 200', async () => ((await readyStatus(proxy.http)) === 200 ? true : undefined));
      const psql = openPsql(proxy.port, db);
      psql.send("select 'warm-' || 1;");
      await until('the first result', () => (psql.output().includes('warm-1') ? true : undefined));
      psql.send("select 'slept-' || length(pg_sleep(3)::text);");
      // The query is running on the server (seen directly, not through the proxy) before the signal.
      await until('pg_sleep running', async () => {
        const n = await pg.psql(`select count(*) from pg_stat_activity where datname = '${db}' and state = 'active' and query like '%pg_sleep(3)%'`);
        return n.trim() === '1' ? true : undefined;
      });
      const signalledAt = Date.now();
      proxy.child.kill('SIGTERM');

      const ready = await until('readiness 503', async () => ((await readyStatus(proxy.http)) === 503 ? 503 : undefined), 5_000);
      assert.equal(ready, 503);
      assert.equal(psql.output().includes('slept-'), false, 'readiness went 503 while the query was still running');
      assert.equal(await tryConnect(proxy.port), 'refused', 'a new connection is refused during the drain');

      await until('the slow query result', () => (psql.output().includes('slept-0') ? true : undefined), 10_000);
      assert.doesNotMatch(psql.output(), /FATAL|ERROR|terminat/i, psql.output());
      psql.proc.stdin.end(); // the application finishes its session
      assert.equal(await psql.exited, 0);

      const exit = await proxy.exited;
      assert.deepEqual({ code: exit.code, signal: exit.signal }, { code: 0, signal: null }, proxy.output());
      assert.ok(exit.at - signalledAt < 20_000, `exited ${exit.at - signalledAt}ms after SIGTERM, before the 20s grace period`);
      assert.match(proxy.output(), /"msg":"dbaudit proxy stopped"/, 'the last log line is written before the exit');

      const mine = stored.filter((e) => e.database === db && e.collectorId === 'drain-test');
      const sessions = new Set(mine.map((e) => e.sessionId));
      assert.equal(sessions.size, 1);
      const kinds = mine.map((e) => e.kind);
      assert.deepEqual(kinds, ['session_start', 'login_success', 'statement', 'statement', 'session_end']);
      assert.deepEqual(mine.filter((e) => e.kind === 'statement').map((e) => e.commandTag), ['SELECT', 'SELECT']);
      assert.match(mine[3].statement, /pg_sleep/);
      assert.ok(mine[3].durationUs >= 3_000_000n, `pg_sleep statement lasted ${mine[3].durationUs}us`);
      assert.deepEqual(mine.map((e) => Number(e.seq)), [...mine.map((e) => Number(e.seq))].sort((a, b) => a - b));
    } finally {
      if (proxy.child.exitCode === null) proxy.child.kill('SIGKILL');
    }
  });

  test('a session still open at the end of the grace period is closed with a protocol-level error, its events shipped, exit 0', async () => {
    const db = await pg.createDatabase('drain');
    const proxy = await startProxy(`127.0.0.1:${pg.port}`, gw.address, join(dir.dir, 'cache-2'), '1500ms');
    try {
      const psql = openPsql(proxy.port, db);
      psql.send("select 'idle-' || 2;");
      await until('the first result', () => (psql.output().includes('idle-2') ? true : undefined));
      const signalledAt = Date.now();
      proxy.child.kill('SIGTERM');
      const exit = await proxy.exited;
      assert.deepEqual({ code: exit.code, signal: exit.signal }, { code: 0, signal: null }, proxy.output());
      assert.ok(exit.at - signalledAt >= 1_400, `the open session got the grace period (exited after ${exit.at - signalledAt}ms)`);
      assert.ok(exit.at - signalledAt < 8_000, `exited ${exit.at - signalledAt}ms after SIGTERM`);
      // psql sees the server's FATAL (57P01-style shutdown) when it next talks to the connection.
      psql.send('select 1;');
      psql.proc.stdin.end();
      await psql.exited;
      assert.match(psql.output(), /FATAL:  dbaudit: the audit proxy is shutting down/, psql.output());
      const mine = stored.filter((e) => e.database === db && e.collectorId === 'drain-test');
      assert.deepEqual(mine.map((e) => e.kind), ['session_start', 'login_success', 'statement', 'session_end']);
      assert.equal(mine[3].reason, 'shutdown');
    } finally {
      if (proxy.child.exitCode === null) proxy.child.kill('SIGKILL');
    }
  });
  test('gateway unreachable during the drain: exit 0 anyway, the events stay in the cache and reach the gateway after the next start', async () => {
    const db = await pg.createDatabase('drain');
    const cacheDir = join(dir.dir, 'cache-3');
    const nowhere = `127.0.0.1:${await freePort()}`;
    const first = await startProxy(`127.0.0.1:${pg.port}`, nowhere, cacheDir, '2s');
    try {
      const psql = openPsql(first.port, db);
      psql.send("select 'kept-' || 3;");
      await until('the result', () => (psql.output().includes('kept-3') ? true : undefined));
      psql.proc.stdin.end();
      assert.equal(await psql.exited, 0);
      const signalledAt = Date.now();
      first.child.kill('SIGTERM');
      const exit = await first.exited;
      assert.deepEqual({ code: exit.code, signal: exit.signal }, { code: 0, signal: null }, first.output());
      assert.ok(exit.at - signalledAt < 2_000 + 5_000 + 3_000, `exited ${exit.at - signalledAt}ms after SIGTERM`);
      assert.match(first.output(), /events left in the cache for the next start/);
    } finally {
      if (first.child.exitCode === null) first.child.kill('SIGKILL');
    }
    assert.equal(stored.filter((e) => e.database === db).length, 0, 'nothing reached a gateway yet');

    const second = await startProxy(`127.0.0.1:${pg.port}`, gw.address, cacheDir, '2s');
    try {
      const mine = await until('the cached events at the gateway', () => {
        const evs = stored.filter((e) => e.database === db);
        return evs.length >= 4 ? evs : undefined;
      });
      assert.deepEqual(mine.map((e) => e.kind).sort(), ['login_success', 'session_end', 'session_start', 'statement']);
      second.child.kill('SIGTERM');
      assert.equal((await second.exited).code, 0);
    } finally {
      if (second.child.exitCode === null) second.child.kill('SIGKILL');
    }
  });
});
