import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { loadConfig } from '../../lib/config.js';
import { silentLogger } from '../../lib/log.js';
import { GatewayMetrics } from '../../lib/metrics.js';
import { startGateway } from '../../gateway/server.js';
import { freePort, makeTempDir, sharedPostgres, skipUnless, type PgServer } from '../harness/index.js';
import { startStack } from './stack.js';

async function until(what: string, pred: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function metric(httpAddress: string, name: string): Promise<number> {
  const text = await (await fetch(`http://${httpAddress}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : NaN;
}

/** collector.cache.enabled: false — events wait for the gateway in memory, never on disk. */
describe('the cache disabled: events in memory only', { skip: skipUnless('postgres') }, () => {
  let server: PgServer;
  const tmp = makeTempDir('cache-memory');
  before(async () => {
    server = await sharedPostgres({ pgaudit: true });
  });
  after(() => tmp.remove());

  test('statements reach the gateway, nothing is written under collector.cache.path, health and metrics say memory', async () => {
    const stack = await startStack(`${server.host}:${server.port}`, { 'collector.cache.enabled': false, 'collector.cache.memory_max_size': '8MB' });
    try {
      const db = await server.createDatabase('memcache');
      const c = new pg.Client({ host: stack.proxyHost, port: stack.proxyPort, user: 'postgres', database: db });
      await c.connect();
      await c.query('create table t (id int)');
      await c.query('insert into t values (1), (2)');
      assert.equal((await c.query('select count(*)::int as n from t')).rows[0].n, 2);
      await c.end();
      const evs = await stack.waitForEvents((e) => e.some((x) => x.kind === 'session_end'), { database: db });
      assert.deepEqual(
        evs.filter((e) => e.kind === 'statement').map((e) => e.statement),
        ['create table t (id int)', 'insert into t values (?), (?)', 'select count(*)::int as n from t'],
      );
      assert.equal(existsSync(stack.cacheDir), false, 'no cache directory');
      assert.equal(await metric(stack.collector.httpAddress, 'dbaudit_cache_max_bytes'), 8 * 1024 * 1024);
      const ready = await fetch(`http://${stack.collector.httpAddress}/health/ready`);
      assert.equal(ready.status, 200);
    } finally {
      await stack.close();
    }
  });

  test('with the gateway away, events wait in memory up to memory_max_size; beyond it the oldest go, and the loss events explain every missing seq', async () => {
    const port = await freePort();
    const stack = await startStack(`${server.host}:${server.port}`, {
      'collector.cache.enabled': false,
      'collector.cache.memory_max_size': '6KB',
      'collector.gateway.endpoints': [`127.0.0.1:${port}`],
    });
    const gwConfig = loadConfig({ argv: [], env: {}, scope: 'gateway', defaults: { 'gateway.listen': `127.0.0.1:${port}`, 'gateway.data_dir': join(tmp.dir, 'gw'), 'log.level': 'silent' } }).config;
    let gw: Awaited<ReturnType<typeof startGateway>> | undefined;
    try {
      const db = await server.createDatabase('memcache_away');
      const c = new pg.Client({ host: stack.proxyHost, port: stack.proxyPort, user: 'postgres', database: db });
      await c.connect();
      for (let i = 0; i < 60; i++) await c.query(`select ${i} as n, repeat('x', 40) as pad`);
      await c.end();
      await until('the session end in memory', () => stack.collector.cache.stats().events > 0 && stack.collector.cache.durableSeq >= 62n);
      const st = stack.collector.cache.stats();
      assert.ok(st.bytes <= 6 * 1024, `within memory_max_size: ${st.bytes}`);
      assert.ok(st.events < 62, `the oldest were dropped: ${st.events} held`);
      const dropped = await droppedBySize(stack.collector.httpAddress);
      assert.ok(dropped > 0, 'drops counted');

      gw = await startGateway({ config: gwConfig, logger: silentLogger, metrics: new GatewayMetrics({ defaultMetrics: false }) });
      await until('everything held delivered', () => stack.collector.cache.stats().events === 0);
      const stored = await gw.store.search({ limit: 10_000 });
      const highest = stack.collector.cache.durableSeq;
      const have = new Set<bigint>();
      let lossEvents = 0;
      for (const e of stored) {
        have.add(e.seq);
        if (e.kind === 'loss') {
          lossEvents++;
          assert.equal(e.reason, 'size');
          for (let s = e.lossFromSeq; s <= e.lossToSeq; s++) have.add(s);
        }
      }
      assert.ok(lossEvents > 0, 'at least one loss event');
      const missing: bigint[] = [];
      for (let s = 1n; s <= highest; s++) if (!have.has(s)) missing.push(s);
      assert.deepEqual(missing, [], 'every seq is stored or named by a loss event');
      // the last statements, the newest, are among those kept
      assert.ok(stored.some((e) => e.kind === 'statement' && e.statement === "select ? as n, repeat(?, ?) as pad"));
      assert.ok(stored.some((e) => e.kind === 'session_end' && e.database === db));
    } finally {
      await stack.close();
      await gw?.close();
    }
  });
});

async function droppedBySize(httpAddress: string): Promise<number> {
  const text = await (await fetch(`http://${httpAddress}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('dbaudit_cache_dropped_events_total{') && l.includes('reason="size"'));
  return line ? Number(line.split(' ')[1]) : 0;
}
