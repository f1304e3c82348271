import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { ManualClock } from '../../lib/clock.js';
import { loadConfig } from '../../lib/config.js';
import { CollectorMetrics } from '../../lib/metrics.js';
import { CollectorHealth, EVENT_BUFFER_CAPACITY, PROBE_TTL_MS, probeWritable, type CollectorHealthDeps } from '../../proxy/health.js';
import { makeTempDir } from '../harness/index.js';

/** A fake PostgreSQL that answers SSLRequests with 'N' and counts connections. */
async function fakePostgres(): Promise<{ port: number; connections: () => number; close(): Promise<void> }> {
  let n = 0;
  const server = net.createServer((s) => {
    n++;
    s.on('error', () => {});
    s.once('data', () => s.end('N'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { port: (server.address() as net.AddressInfo).port, connections: () => n, close: () => new Promise<void>((r) => server.close(() => r())) };
}

interface Fakes {
  stats: { events: number; bytes: number; maxBytes: number; pendingAppends: number; writable: boolean; lastError?: string };
  shipper: { connected: boolean; latencyMs: number; lastError: string };
  listener: { connectionCount: number; upstreamCount: number; lastUpstreamConnect: number };
}

function setup(port: number, cacheDir: string, clock: ManualClock): { health: CollectorHealth; f: Fakes; accepting: { v: boolean } } {
  const { config } = loadConfig({ argv: [], env: {}, scope: 'collector', defaults: { 'collector.upstream': `127.0.0.1:${port}`, 'collector.cache.path': cacheDir, 'collector.gateway.endpoints': ['127.0.0.1:1'] } });
  const f: Fakes = {
    stats: { events: 3, bytes: 300, maxBytes: 1000, pendingAppends: 0, writable: true },
    shipper: { connected: true, latencyMs: 12.4, lastError: '' },
    listener: { connectionCount: 4, upstreamCount: 3, lastUpstreamConnect: 0 },
  };
  const accepting = { v: true };
  const deps = {
    config,
    cache: { stats: () => f.stats },
    shipper: f.shipper,
    listener: f.listener,
    metrics: new CollectorMetrics({ defaultMetrics: false }),
    clock,
    accepting: () => accepting.v,
  } as unknown as CollectorHealthDeps;
  return { health: new CollectorHealth(deps), f, accepting };
}

test('CollectorHealth: one database probe per ttl; none while sessions keep connecting', async () => {
  const pg = await fakePostgres();
  const tmp = makeTempDir('obs-health');
  try {
    const clock = new ManualClock(Date.now());
    const { health, f } = setup(pg.port, tmp.dir, clock);
    for (let i = 0; i < 5; i++) assert.equal((await health.ready()).database.status, 'healthy');
    assert.equal(pg.connections(), 1);
    clock.advance(PROBE_TTL_MS);
    await health.ready();
    assert.equal(pg.connections(), 2);
    // A session connected to the database just now: that is the answer, no probe.
    clock.advance(PROBE_TTL_MS);
    f.listener.lastUpstreamConnect = clock.now() - 1;
    assert.equal((await health.ready()).database.status, 'healthy');
    assert.equal(pg.connections(), 2);
  } finally {
    await pg.close();
    tmp.remove();
  }
});

test('CollectorHealth: ready names api_connection only when the gateway is away and the cache cannot hold events', async () => {
  const pg = await fakePostgres();
  const tmp = makeTempDir('obs-health');
  try {
    const clock = new ManualClock(Date.now());
    const { health, f } = setup(pg.port, tmp.dir, clock);
    f.shipper.connected = false;
    f.shipper.lastError = 'gateway 127.0.0.1:1 not reachable';
    let r = await health.ready();
    assert.deepEqual(r.api_connection, { status: 'healthy', connected: false, caching: true, error: 'gateway 127.0.0.1:1 not reachable' });
    f.stats.writable = false;
    f.stats.lastError = 'IO error: No space left on device';
    r = await health.ready();
    assert.equal(r.api_connection.status, 'unhealthy');
    assert.deepEqual(r.cache, { status: 'unhealthy', error: 'IO error: No space left on device' });
    const d = (await health.detailed()) as { status: string; checks: Record<string, Record<string, unknown>> };
    assert.equal(d.status, 'unhealthy');
    assert.deepEqual(d.checks.api_connection, { status: 'unhealthy', latency_ms: 12 });
    assert.deepEqual(d.checks.cache, { status: 'unhealthy', size_bytes: 300, events_cached: 3 });
  } finally {
    await pg.close();
    tmp.remove();
  }
});

test('CollectorHealth: /health/detailed values: connections, buffer utilization and its status, degraded vs healthy', async () => {
  const pg = await fakePostgres();
  const tmp = makeTempDir('obs-health');
  try {
    const clock = new ManualClock(Date.now());
    const { health, f, accepting } = setup(pg.port, tmp.dir, clock);
    let d = (await health.detailed()) as { status: string; uptime_seconds: number; checks: Record<string, Record<string, unknown>> };
    assert.equal(d.status, 'healthy');
    assert.deepEqual(d.checks.database_connections, { status: 'healthy', connected: 3, total: 4 });
    assert.deepEqual(d.checks.event_buffer, { status: 'healthy', utilization_percent: 0 });
    clock.advance(90_500);
    f.stats.pendingAppends = EVENT_BUFFER_CAPACITY * 0.85;
    d = (await health.detailed()) as typeof d;
    assert.equal(d.uptime_seconds, 90);
    assert.deepEqual(d.checks.event_buffer, { status: 'degraded', utilization_percent: 85 });
    assert.equal(d.status, 'degraded');
    f.stats.pendingAppends = EVENT_BUFFER_CAPACITY * 2;
    d = (await health.detailed()) as typeof d;
    assert.deepEqual(d.checks.event_buffer, { status: 'unhealthy', utilization_percent: 100 });
    assert.equal(d.status, 'unhealthy');
    f.stats.pendingAppends = 0;
    accepting.v = false;
    d = (await health.detailed()) as typeof d;
    assert.equal(d.status, 'unhealthy');
  } finally {
    await pg.close();
    tmp.remove();
  }
});

test('probeWritable: writes, syncs and removes a file; a missing directory is not writable', async () => {
  const tmp = makeTempDir('obs-health');
  try {
    assert.equal((await probeWritable(tmp.dir)).ok, true);
    const { readdirSync } = await import('node:fs');
    assert.deepEqual(readdirSync(tmp.dir), []);
    const r = await probeWritable(`${tmp.dir}/missing`);
    assert.equal(r.ok, false);
    assert.match(r.error!, /is not writable: ENOENT/);
  } finally {
    tmp.remove();
  }
});
