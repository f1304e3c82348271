import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { loadConfig } from '../../lib/config.js';
import { silentLogger } from '../../lib/log.js';
import { GatewayMetrics } from '../../lib/metrics.js';
import { startGateway, type GatewayHandle } from '../../gateway/server.js';
import { freePort, makeTempDir, sharedPostgres, skipUnless, type PgServer } from '../harness/index.js';
import { TEST_CACHE_KEY } from '../e2e/stack.js';

/** Clients that open, run one statement and close, spread over the run. */
const STORM_CLIENTS = Number(process.env.STORM_CLIENTS ?? 2000);
const STORM_SECONDS = Number(process.env.STORM_SECONDS ?? 60);
/** Clients that connect and never send a byte, held for the whole run. */
const IDLE_CLIENTS = Number(process.env.STORM_IDLE ?? 500);
/** At most this many storm clients at once (PostgreSQL's max_connections is 100). */
const CONCURRENCY = 40;
/** The stated bound on the proxy's resident memory during the storm. */
const RSS_BOUND_MB = 256;

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

describe('connection storm', { skip: skipUnless('postgres') }, () => {
  let pgServer: PgServer;
  let gateway: GatewayHandle;
  let proxy: ChildProcess;
  let port: number;
  const dir = makeTempDir('storm');

  before(async () => {
    pgServer = await sharedPostgres({ pgaudit: true, passwordAuth: true });
    const { config } = loadConfig({ argv: [], env: {}, scope: 'gateway', defaults: { 'gateway.listen': '127.0.0.1:0', 'gateway.data_dir': join(dir.dir, 'gw'), 'log.level': 'silent' } });
    gateway = await startGateway({ config, logger: silentLogger, metrics: new GatewayMetrics({ defaultMetrics: false }) });
    port = await freePort();
    proxy = spawn(
      process.execPath,
      [
        join(import.meta.dirname, '../../bin/dbaudit.js'), 'proxy',
        '--listen', `127.0.0.1:${port}`, '--upstream', `${pgServer.host}:${pgServer.port}`, '--gateway', gateway.address,
        '--cache-dir', join(dir.dir, 'cache'), '--http', '127.0.0.1:0', '--log-level', 'error',
        '--collector.limits.startup_timeout', '5m', '--collector.id', 'storm',
      ],
      { env: { ...process.env, DBAUDIT_CACHE_KEY: TEST_CACHE_KEY }, stdio: ['ignore', 'inherit', 'inherit'] },
    );
    for (let i = 0; i < 300; i++) {
      const up = await new Promise<boolean>((r) => {
        const s = net.connect({ host: '127.0.0.1', port }, () => (s.destroy(), r(true)));
        s.on('error', () => r(false));
      });
      if (up) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('proxy did not start');
  });
  after(async () => {
    proxy?.kill('SIGTERM');
    if (proxy && proxy.exitCode === null) await new Promise((r) => proxy.once('exit', r));
    await gateway?.close();
    dir.remove();
  });

  test(`${STORM_CLIENTS} clients over ${STORM_SECONDS}s plus ${IDLE_CLIENTS} silent ones: the proxy stays up, memory bounded, every session accounted for`, async (t) => {
    const db = await pgServer.createDatabase('storm');
    const idle: net.Socket[] = [];
    for (let i = 0; i < IDLE_CLIENTS; i++) {
      const s = net.connect({ host: '127.0.0.1', port });
      s.on('error', () => undefined);
      idle.push(s);
    }
    let peakRss = 0;
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, rssMb(proxy.pid!))), 250);
    const started = Date.now();
    const gap = (STORM_SECONDS * 1000) / STORM_CLIENTS;
    let next = 0;
    let ok = 0;
    const failures: string[] = [];
    const worker = async (): Promise<void> => {
      for (;;) {
        const i = next++;
        if (i >= STORM_CLIENTS) return;
        const due = started + i * gap;
        if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
        const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: db, application_name: 'storm' });
        try {
          await c.connect();
          await c.query('select $1::int as i', [i]);
          await c.end();
          ok++;
        } catch (err) {
          failures.push((err as Error).message);
          await c.end().catch(() => undefined);
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    clearInterval(sampler);
    t.diagnostic(`${ok} sessions completed in ${((Date.now() - started) / 1000).toFixed(1)}s, ${failures.length} failed; proxy peak RSS ${peakRss.toFixed(1)} MB with ${IDLE_CLIENTS} idle connections open`);
    assert.deepEqual(failures.slice(0, 5), []);
    assert.equal(ok, STORM_CLIENTS);
    assert.equal(proxy.exitCode, null, 'the proxy is still running');
    assert.ok(peakRss < RSS_BOUND_MB, `peak RSS ${peakRss.toFixed(1)} MB over the ${RSS_BOUND_MB} MB bound`);
    for (const s of idle) s.destroy();

    const deadline = Date.now() + 60_000;
    let ends = 0;
    let stmts = 0;
    while (Date.now() < deadline) {
      const evs = await gateway.store.search({ database: db, limit: 10_000 });
      ends = evs.filter((e) => e.kind === 'session_end').length;
      stmts = evs.filter((e) => e.kind === 'statement').length;
      if (ends >= STORM_CLIENTS && stmts >= STORM_CLIENTS) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.equal(stmts, STORM_CLIENTS, 'one statement event per session');
    assert.equal(ends, STORM_CLIENTS, 'one session_end per session');
  });
});
