/**
 * Events per second from the decoder to the gateway's store: captured
 * pgbench TPC-B traffic replayed through the PostgreSQL tracker, every
 * event stamped, encoded, sealed (AES-256-GCM) and group-committed to the
 * RocksDB cache, shipped over gRPC to a dbaudit gateway process, stored and
 * acknowledged. Done = every event acknowledged (the cache is empty).
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Keyring } from '../../cache/keyring.js';
import { EventCache } from '../../cache/wal.js';
import { systemClock } from '../../lib/clock.js';
import { silentLogger } from '../../lib/log.js';
import { CollectorMetrics } from '../../lib/metrics.js';
import { newSessionMeta } from '../../proxy/events.js';
import { EventPipeline } from '../../proxy/pipeline.js';
import { PostgresTracker, DEFAULT_TRACKER_LIMITS } from '../../proxy/postgres/tracker.js';
import { Shipper } from '../../proxy/shipper.js';
import { loadFixture } from '../../test/fixtures/load.js';
import { makeTempDir, startPostgres, type PgServer } from '../../test/harness/index.js';
import { cpuSeconds, startGatewayProc, type Proc } from '../lib/procs.js';
import type { BenchOptions, Benchmark, Cell, Table } from '../lib/report.js';
import { envList, envNumber } from '../lib/stats.js';

interface Result {
  events: number;
  seconds: number;
  collectorCpu: number;
  gatewayCpu: number;
}

async function pump(gateway: string, cacheDir: string, durability: 'fsync' | 'write', target: number, gwPid: number, batchSize: number): Promise<Result> {
  const f = loadFixture('postgres', 'pgbench-tpcb');
  const arrivals = [...f.arrivals()];
  const metrics = new CollectorMetrics({ defaultMetrics: false });
  const cache = await EventCache.open({ path: cacheDir, maxBytes: 8 * 2 ** 30, maxAgeMs: 0, keyring: new Keyring(randomBytes(32)), commitIntervalMs: 0, durability, fsyncIntervalMs: 200, clock: systemClock, logger: silentLogger, metrics });
  const shipper = new Shipper({
    cache,
    collectorId: 'bench',
    endpoints: [gateway],
    retry: { maxAttempts: 10, initialDelayMs: 100, maxDelayMs: 1000, multiplier: 2 },
    batchSize,
    failbackIntervalMs: 30_000,
    ackTimeoutMs: 30_000,
    syncRate: 1_000_000,
    syncOrder: 'oldest_first',
    clock: systemClock,
    logger: silentLogger,
    metrics,
  });
  const pipeline = new EventPipeline({ cache, collectorId: 'bench', clock: systemClock, logger: silentLogger, metrics, onCacheFailure: 'forward', onDurable: () => shipper.notify() });
  shipper.start();
  const window = 20_000;
  let offered = 0;
  const c0 = process.cpuUsage();
  const g0 = cpuSeconds(gwPid);
  const t0 = performance.now();
  while (offered < target) {
    const meta = newSessionMeta('postgres', '127.0.0.1:50000', '127.0.0.1:5432', Date.now());
    const t = new PostgresTracker(
      { meta, emit: (ev) => void (offered++, pipeline.offer(ev)), clock: systemClock, redact: 'literals', logParameters: false, maxStatementBytes: 64 * 1024 },
      DEFAULT_TRACKER_LIMITS,
    );
    for (const a of arrivals) {
      if (a.dir === 'c') t.clientData(a.bytes);
      else t.serverData(a.bytes);
    }
    t.end('client_terminate');
    // let commits and shipping run; hold the producer while too much is in flight
    await new Promise((r) => setImmediate(r));
    while (cache.stats().events + cache.stats().pendingAppends > window) await new Promise((r) => setTimeout(r, 1));
  }
  while (cache.stats().events + cache.stats().pendingAppends > 0) await new Promise((r) => setTimeout(r, 2));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(c0);
  const gatewayCpu = cpuSeconds(gwPid) - g0;
  await shipper.stop();
  await cache.close();
  return { events: offered, seconds, collectorCpu: (cpu.user + cpu.system) / 1e6, gatewayCpu };
}

export const eventPipeline: Benchmark = {
  name: 'event-pipeline',
  description: 'events/s from decoder to the gateway store: tracker → encode → AES-GCM → RocksDB group commit → gRPC → gateway store → ack',
  async run(o: BenchOptions): Promise<Table[]> {
    const target = o.smoke ? 2_000 : envNumber('BENCH_PIPELINE_EVENTS', 50_000);
    const batchSize = envNumber('BENCH_PIPELINE_BATCH', 1000);
    const stores = o.smoke ? ['embedded'] : envList('BENCH_PIPELINE_STORES', ['embedded', 'postgres']);
    const dir = makeTempDir('dbaudit-bench-pipeline-');
    const rows: Cell[][] = [];
    let pg: PgServer | undefined;
    try {
      for (const store of stores) {
        let spec = 'embedded';
        if (store === 'postgres') {
          pg ??= await startPostgres();
          const db = await pg.createDatabase('gwstore');
          spec = pg.url(db);
        }
        for (const durability of ['fsync', 'write'] as const) {
          o.log(`${store} store, cache durability ${durability}, ${target} events`);
          const gw: Proc = await startGatewayProc(join(dir.dir, `gw-${store}-${durability}`), spec);
          try {
            const r = await pump(`127.0.0.1:${gw.port}`, join(dir.dir, `cache-${store}-${durability}`), durability, target, gw.pid, batchSize);
            rows.push([`${store} store, cache ${durability}`, r.events, r.seconds, r.events / r.seconds, (r.collectorCpu / r.events) * 1e6, (r.gatewayCpu / r.events) * 1e6]);
          } finally {
            await gw.stop();
          }
        }
      }
    } finally {
      await pg?.dispose().catch(() => undefined);
      dir.remove();
    }
    return [
      {
        title: 'Event pipeline: decoder → durable encrypted cache → gRPC → gateway store (acknowledged)',
        columns: ['store, durability', 'events', 'seconds', 'events/s', 'collector CPU µs/event', 'gateway CPU µs/event'],
        rows,
        notes: [
          `pgbench TPC-B capture replayed through the PostgreSQL tracker until ${target} events (BENCH_PIPELINE_EVENTS), at most 20 000 in flight, batches of at most ${batchSize} events (BENCH_PIPELINE_BATCH); the collector side runs in the bench process, the gateway is a separate dbaudit gateway process.`,
          'events/s counts from the first event to the last acknowledgement (the gateway acks after its store write).',
        ],
      },
    ];
  },
};
