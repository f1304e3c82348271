import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { MAX_DATABASE_LABELS } from '../../lib/metrics.js';
import { sharedPostgres, skipUnless, type PgServer } from '../harness/index.js';
import { getJson, scrape, startObsStack, until, type ObsStack, type Scrape } from './obs-stack.js';

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** The brief's /health/detailed example: the shape every answer must have. */
const BRIEF_DETAILED = {
  status: 'healthy',
  version: '2.4.1',
  uptime_seconds: 86400,
  checks: {
    api_connection: { status: 'healthy', latency_ms: 45 },
    database_connections: { status: 'healthy', connected: 5, total: 5 },
    cache: { status: 'healthy', size_bytes: 1073741824, events_cached: 50000 },
    event_buffer: { status: 'healthy', utilization_percent: 23 },
  },
};

/** Same keys at every level, same value types. */
function assertShape(got: unknown, want: unknown, path = '$'): void {
  if (want !== null && typeof want === 'object') {
    assert.ok(got !== null && typeof got === 'object' && !Array.isArray(got), `${path} is an object`);
    assert.deepEqual(Object.keys(got as object).sort(), Object.keys(want).sort(), `${path} keys`);
    for (const [k, v] of Object.entries(want)) assertShape((got as Record<string, unknown>)[k], v, `${path}.${k}`);
    return;
  }
  assert.equal(typeof got, typeof want, `${path} type`);
  if (typeof want === 'number') assert.ok(Number.isInteger(got) && (got as number) >= 0, `${path} = ${String(got)} is a non-negative integer`);
}

const ALLOWED_LABELS = new Set([
  // dbaudit metrics
  'database', 'status', 'endpoint', 'reason', 'le', 'protocol', 'direction', 'limit',
  // Node process defaults (nodejs_version_info, heap spaces, gc kinds)
  'version', 'major', 'minor', 'patch', 'space', 'kind', 'type',
]);

describe('/metrics and /health/detailed after known traffic through the proxy', { skip: skipUnless('pgaudit') }, () => {
  let pgServer: PgServer;
  let stack: ObsStack;
  let db: string;

  before(async () => {
    pgServer = await sharedPostgres({ pgaudit: true, passwordAuth: true });
    stack = await startObsStack(`${pgServer.host}:${pgServer.port}`, { overrides: { 'collector.cache.max_size': '64MB', 'audit.log_parameters': true } });
    db = await pgServer.createDatabase('obsm');
    await pgServer.psql('create table t(k int primary key, v text)', { db });
  });
  after(async () => {
    await stack?.close();
  });

  const client = (database = db): pg.Client => new pg.Client({ host: stack.proxyHost, port: stack.proxyPort, user: 'postgres', database });

  async function settled(): Promise<Scrape> {
    // Everything durable (the latency histogram counts each event as it becomes durable) and acknowledged.
    return until(
      () => scrape(stack.collector.httpAddress),
      (s) =>
        s.value('dbaudit_cache_sync_pending') === 0 &&
        s.value('dbaudit_database_connections_active') === 0 &&
        s.value('dbaudit_event_latency_seconds_count') === s.all('dbaudit_events_processed_total').reduce((n, x) => n + x.value, 0),
    );
  }

  test('counters and gauges hold exact values', async () => {
    const before0 = await scrape(stack.collector.httpAddress);
    // The brief's series exist (at 0) before any traffic.
    for (const [name, labels] of [
      ['dbaudit_cache_size_bytes', {}],
      ['dbaudit_cache_events_count', {}],
      ['dbaudit_cache_sync_pending', {}],
      ['dbaudit_cache_max_bytes', {}],
      ['dbaudit_event_lag_seconds', {}],
      ['dbaudit_database_connections_active', {}],
      ['dbaudit_database_connections_errors_total', {}],
      ['dbaudit_api_requests_total', { endpoint: 'events', status: '200' }],
      ['dbaudit_api_latency_seconds_sum', {}],
      ['dbaudit_event_latency_seconds_bucket', { le: '0.001' }],
      ['dbaudit_event_latency_seconds_bucket', { le: '0.01' }],
      ['dbaudit_event_latency_seconds_bucket', { le: '0.1' }],
    ] as const) {
      assert.notEqual(before0.value(name, labels), undefined, `${name} ${JSON.stringify(labels)} before traffic`);
    }
    assert.equal(before0.value('dbaudit_cache_max_bytes'), 64 * 1024 * 1024);
    const gwBefore = await scrape(stack.gateway.httpAddress);

    // Two sessions open at once: 2 active connections, both connected upstream.
    const a = client();
    const b = client();
    await a.connect();
    await b.connect();
    const during = await scrape(stack.collector.httpAddress);
    assert.equal(during.value('dbaudit_database_connections_active'), 2);
    const detailed = await getJson(stack.collector.httpAddress, '/health/detailed');
    const checks = detailed.body.checks as Record<string, Record<string, unknown>>;
    assert.deepEqual(checks.database_connections, { status: 'healthy', connected: 2, total: 2 });

    // Known traffic: 5 statements that succeed and 2 that fail, on `a`; 1 on `b`.
    await a.query("insert into t values (1, 'a'), (2, 'b')");
    await a.query('select v from t where k = $1', [1]);
    await a.query('update t set v = $1 where k = $2', ['c', 2]);
    await a.query('select count(*) from t');
    await a.query('delete from t where k = 1');
    await assert.rejects(a.query('select * from no_such_table'), /does not exist/);
    await assert.rejects(a.query('insert into t values (2, $1)', ['dup']), /duplicate key/);
    await b.query('select 1');
    await a.end();
    await b.end();

    const s = await settled();
    const stored = await stack.waitForEvents((e) => e.filter((x) => x.kind === 'session_end').length === 2, { database: db });
    const kinds = stored.map((e) => e.kind);
    // Per session: session_start, login_success, its statements, session_end.
    assert.deepEqual(kinds.filter((k) => k !== 'statement').sort(), ['login_success', 'login_success', 'session_end', 'session_end', 'session_start', 'session_start']);
    assert.equal(kinds.filter((k) => k === 'statement').length, 8);
    // 6 session events + 6 successful statements; 2 failed statements.
    assert.equal(s.value('dbaudit_events_processed_total', { database: db, status: 'success' }), 6 + 6);
    assert.equal(s.value('dbaudit_events_processed_total', { database: db, status: 'error' }), 2);
    assert.equal(stored.filter((e) => e.errorCode !== '').length, 2);

    // Every event processed became durable once: the latency histogram counts them all.
    const processed = s.all('dbaudit_events_processed_total').reduce((n, x) => n + x.value, 0);
    const processedBefore = before0.all('dbaudit_events_processed_total').reduce((n, x) => n + x.value, 0);
    assert.equal(processed - processedBefore, 14);
    assert.equal(s.value('dbaudit_event_latency_seconds_count'), processed);
    assert.equal(s.value('dbaudit_event_latency_seconds_bucket', { le: '+Inf' }), processed);

    // Nothing left in the cache once the gateway acknowledged it all.
    assert.equal(s.value('dbaudit_cache_events_count'), 0);
    assert.equal(s.value('dbaudit_cache_size_bytes'), 0);
    assert.equal(s.value('dbaudit_cache_sync_pending'), 0);
    assert.equal(s.value('dbaudit_event_lag_seconds'), 0);
    assert.equal(s.value('dbaudit_database_connections_active'), 0);
    assert.equal((s.value('dbaudit_database_connections_total') ?? 0) - (before0.value('dbaudit_database_connections_total') ?? 0), 2);
    assert.equal(s.value('dbaudit_database_connections_errors_total'), 0);

    // One 200 per acknowledged batch: the collector's count equals the gateway's, and the latency histogram's.
    const gw = await scrape(stack.gateway.httpAddress);
    const acked = (s.value('dbaudit_api_requests_total', { endpoint: 'events', status: '200' }) ?? 0) - (before0.value('dbaudit_api_requests_total', { endpoint: 'events', status: '200' }) ?? 0);
    const served = (gw.value('dbaudit_api_requests_total', { endpoint: 'events', status: '200' }) ?? 0) - (gwBefore.value('dbaudit_api_requests_total', { endpoint: 'events', status: '200' }) ?? 0);
    assert.ok(acked >= 1);
    assert.equal(acked, served);
    assert.equal(s.value('dbaudit_api_latency_seconds_count'), s.value('dbaudit_api_requests_total', { endpoint: 'events', status: '200' }));
    assert.ok((s.value('dbaudit_api_latency_seconds_sum') ?? -1) >= 0);
    assert.equal(gw.value('dbaudit_gateway_events_stored_total'), processed);
  });

  test('Node process defaults are exported, labels are bounded and carry no statement, user or address', async () => {
    const s = await scrape(stack.collector.httpAddress);
    for (const n of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes']) {
      assert.ok(s.names().has(n), n);
    }
    for (const x of s.samples) {
      for (const [k, v] of Object.entries(x.labels)) {
        assert.ok(ALLOWED_LABELS.has(k), `${x.name} has label ${k}`);
        assert.doesNotMatch(v, /127\.0\.0\.1|select|insert|postgres/i, `${x.name}{${k}="${v}"}`);
      }
    }
    const statuses = new Set(s.all('dbaudit_events_processed_total').map((x) => x.labels.status));
    for (const st of statuses) assert.ok(st === 'success' || st === 'error');
    for (const x of s.all('dbaudit_api_requests_total')) assert.match(x.labels.status, /^[1-5]\d\d$/);
  });

  test(`the database label holds at most ${MAX_DATABASE_LABELS} names; the rest, and over-long names, are "other"`, async () => {
    const names = Array.from({ length: MAX_DATABASE_LABELS + 6 }, (_, i) => `nodb_${i}`);
    names.push('x'.repeat(200));
    for (const name of names) {
      const c = client(name);
      await assert.rejects(c.connect(), /does not exist/);
    }
    const s = await until(() => scrape(stack.collector.httpAddress), (x) => x.value('dbaudit_database_connections_active') === 0);
    const dbs = new Set(s.all('dbaudit_events_processed_total').map((x) => x.labels.database));
    assert.ok(dbs.has('other'));
    assert.ok(dbs.size <= MAX_DATABASE_LABELS + 1, `${dbs.size} database label values`);
    assert.ok(![...dbs].some((d) => d.length > 64));
  });

  test('/health/detailed has exactly the brief\'s shape with live values', async () => {
    // The previous test's sessions are all delivered: the cache is empty and stays so.
    await until(async () => stack.collector.cache.stats(), (st) => st.events === 0 && st.pendingAppends === 0 && stack.collector.listener.connectionCount === 0);
    const t0 = Date.now();
    const r = await getJson(stack.collector.httpAddress, '/health/detailed');
    assert.equal(r.status, 200);
    assertShape(r.body, BRIEF_DETAILED);
    const body = r.body as typeof BRIEF_DETAILED;
    assert.equal(body.status, 'healthy');
    assert.equal(body.version, VERSION);
    assert.ok(body.uptime_seconds >= 0 && body.uptime_seconds < 600);
    assert.equal(body.checks.api_connection.status, 'healthy');
    assert.ok(body.checks.api_connection.latency_ms < 5_000);
    assert.deepEqual(body.checks.database_connections, { status: 'healthy', connected: 0, total: 0 });
    assert.deepEqual(body.checks.cache, { status: 'healthy', size_bytes: 0, events_cached: 0 });
    assert.deepEqual(body.checks.event_buffer, { status: 'healthy', utilization_percent: 0 });
    // Uptime moves.
    await until(() => getJson(stack.collector.httpAddress, '/health/detailed'), (x) => (x.body.uptime_seconds as number) > body.uptime_seconds, 3_000);
    assert.ok(Date.now() - t0 < 3_000);

    const live = await getJson(stack.collector.httpAddress, '/health/live');
    assert.deepEqual(live, { status: 200, body: { status: 'alive' } });
    const ready = await getJson(stack.collector.httpAddress, '/health/ready');
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.body.failing, []);
    assert.deepEqual(Object.keys(ready.body.checks as object).sort(), ['api_connection', 'cache', 'database']);

    const gw = await getJson(stack.gateway.httpAddress, '/health/detailed');
    assert.equal(gw.status, 200);
    assert.equal(gw.body.status, 'healthy');
    assert.equal(gw.body.version, VERSION);
    assert.equal((gw.body.checks as Record<string, Record<string, unknown>>).store.status, 'healthy');
    assert.equal((await getJson(stack.gateway.httpAddress, '/health/ready')).status, 200);
  });
});
