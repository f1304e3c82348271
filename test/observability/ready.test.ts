import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { makeTempDir, skipUnless, startPostgres, type PgServer, type TempDir } from '../harness/index.js';
import { makeDisk, type Disk } from './disk.js';
import { getJson, scrape, startObsStack, until, type ObsStack } from './obs-stack.js';

type Ready = { status: number; body: Record<string, unknown> };
type Checks = Record<string, Record<string, unknown>>;

const failing = (r: Ready): string[] => r.body.failing as string[];
const checks = (r: Ready): Checks => r.body.checks as Checks;

describe('/health/ready follows the database, the gateway and the cache', { skip: skipUnless('postgres') }, () => {
  let pgServer: PgServer;
  let stack: ObsStack;
  let disk: Disk;
  let tmp: TempDir;

  before(async () => {
    // Our own server: this test stops and starts it.
    pgServer = await startPostgres();
    tmp = makeTempDir('obs-disk');
    disk = makeDisk(tmp.dir);
    stack = await startObsStack(`${pgServer.host}:${pgServer.port}`, { cacheDir: join(disk.dir, 'cache'), logLevel: 'info' });
  });
  after(async () => {
    disk?.repair();
    await stack?.close();
    disk?.dispose();
    tmp?.remove();
    await pgServer?.dispose();
  });

  const ready = (): Promise<Ready> => getJson(stack.collector.httpAddress, '/health/ready');
  const query = async (sql: string): Promise<void> => {
    const c = new pg.Client({ host: stack.proxyHost, port: stack.proxyPort, user: 'postgres', database: 'postgres' });
    c.on('error', () => {});
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end().catch(() => undefined);
    }
  };

  test('ready at start', async () => {
    const r = await until(ready, (x) => x.status === 200);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.status, 'ready');
    assert.deepEqual(failing(r), []);
    assert.equal(checks(r).database.status, 'healthy');
    assert.equal(checks(r).cache.status, 'healthy');
    assert.equal(checks(r).api_connection.status, 'healthy');
  });

  test('503 naming "database" while the database is stopped, 200 once it is back', async () => {
    await query('select 1');
    await pgServer.stop();
    try {
      const r = await until(ready, (x) => x.status === 503);
      assert.equal(r.status, 503);
      assert.equal(r.body.status, 'not_ready');
      assert.deepEqual(failing(r), ['database']);
      assert.equal(checks(r).database.status, 'unhealthy');
      assert.match(String(checks(r).database.error), /ECONNREFUSED/);
      const d = await getJson(stack.collector.httpAddress, '/health/detailed');
      assert.equal(d.status, 200);
      assert.equal(d.body.status, 'unhealthy');
      assert.equal((d.body.checks as Checks).database_connections.status, 'unhealthy');
      // A client that tries now is counted as a connection error.
      await assert.rejects(query('select 1'), /not reachable/);
      const s = await scrape(stack.collector.httpAddress);
      assert.equal(s.value('dbaudit_database_connections_errors_total'), 1);
      assert.equal(s.value('dbaudit_database_connection_errors_by_reason_total', { reason: 'connect' }), 1);
    } finally {
      await pgServer.start();
    }
    const back = await until(ready, (x) => x.status === 200);
    assert.equal(back.status, 200, JSON.stringify(back.body));
    assert.deepEqual(failing(back), []);
  });

  test(`503 naming "cache" when the cache cannot write, "api_connection" too when the gateway also stops; 200 when they return (${process.getuid?.() === 0 ? 'root' : 'user'})`, async () => {
    disk.break();
    try {
      // Traffic makes the cache try to write; the directory probe sees it anyway.
      await query('select 2').catch(() => undefined);
      const full = await until(ready, (x) => x.status === 503 && failing(x).includes('cache'));
      assert.equal(full.status, 503, JSON.stringify(full.body));
      assert.deepEqual(failing(full), ['cache'], `${disk.how}: ${JSON.stringify(full.body)}`);
      assert.equal(checks(full).cache.status, 'unhealthy');
      assert.match(String(checks(full).cache.error), /ENOSPC|EPERM|EACCES|not writable|No space|Permission/i);

      await stack.stopGateway();
      const both = await until(ready, (x) => failing(x).length === 2);
      assert.equal(both.status, 503);
      assert.deepEqual(failing(both), ['api_connection', 'cache']);
      assert.equal(checks(both).api_connection.connected, false);
    } finally {
      disk.repair();
    }
    // The cache takes events again: ready, although the gateway is still away.
    const caching = await until(ready, (x) => x.status === 200, 30_000);
    assert.equal(caching.status, 200, JSON.stringify(caching.body));
    assert.deepEqual(checks(caching).api_connection.status, 'healthy');
    assert.equal(checks(caching).api_connection.connected, false);
    assert.equal(checks(caching).api_connection.caching, true);
    await query('select current_database()');
    const detailed = await getJson(stack.collector.httpAddress, '/health/detailed');
    assert.equal(detailed.body.status, 'degraded');
    assert.equal((detailed.body.checks as Checks).api_connection.status, 'unhealthy');

    await stack.startGateway();
    const connected = await until(ready, (x) => x.status === 200 && checks(x).api_connection.connected === true, 30_000);
    assert.equal(checks(connected).api_connection.connected, true, JSON.stringify(connected.body));
    // What was cached during the outage reaches the gateway.
    const evs = await stack.waitForEvents((e) => e.some((x) => x.statement === 'select current_database()'), {}, 30_000);
    assert.ok(evs.some((x) => x.statement === 'select current_database()'));
    const s = await until(() => scrape(stack.collector.httpAddress), (x) => x.value('dbaudit_cache_sync_pending') === 0);
    assert.equal(s.value('dbaudit_cache_sync_pending'), 0);
    // The outage is counted in the series the api-errors alert watches (status=~"5..": 503 unavailable, 500 for a reset stream).
    const failures = s.all('dbaudit_api_requests_total').filter((x) => /^5\d\d$/.test(x.labels.status));
    assert.ok(failures.reduce((n, x) => n + x.value, 0) >= 1, JSON.stringify(s.all('dbaudit_api_requests_total')));
    const d = await getJson(stack.collector.httpAddress, '/health/detailed');
    assert.equal(d.body.status, 'healthy');
  });

  test('the gateway: ready while its store answers; replication peers reported when configured', async () => {
    const r = await getJson(stack.gateway.httpAddress, '/health/ready');
    assert.equal(r.status, 200);
    assert.deepEqual(Object.keys(r.body.checks as object), ['store']);
    assert.equal((r.body.checks as Checks).store.status, 'healthy');
  });
});
