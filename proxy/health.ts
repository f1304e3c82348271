import { randomBytes } from 'node:crypto';
import { open, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { EventCache } from '../cache/wal.js';
import type { Clock } from '../lib/clock.js';
import { parseAddress, type Config } from '../lib/config.js';
import { CachedProbe, probeDatabase, type ProbeResult } from '../lib/db-probe.js';
import type { CheckResult, HealthSource } from '../lib/http.js';
import type { CollectorMetrics } from '../lib/metrics.js';
import { VERSION } from '../lib/version.js';
import type { ProxyListener } from './listener.js';
import type { Shipper } from './shipper.js';

/** Events waiting for a cache commit at which /health/detailed's event_buffer reads 100%. */
export const EVENT_BUFFER_CAPACITY = 100_000;
/** How long a database or cache-directory probe answer is reused: one probe per this, however often /health/ready is asked. */
export const PROBE_TTL_MS = 5_000;
const DB_PROBE_TIMEOUT_MS = 2_000;
/** event_buffer is degraded from this fill, unhealthy when full. */
const BUFFER_DEGRADED_PERCENT = 80;

export interface CollectorHealthDeps {
  config: Config;
  cache: EventCache;
  shipper: Shipper;
  listener: ProxyListener;
  metrics: CollectorMetrics;
  clock: Clock;
  /** False once shutdown began. */
  accepting: () => boolean;
  probeTtlMs?: number;
}

type Status = CheckResult['status'];

/**
 * The collector's /health/ready checks, its /health/detailed body (the
 * brief's shape, nothing more) and the gauges refreshed at scrape time.
 *
 * Ready means: the database answers (a protocol-clean probe, cached),
 * events have somewhere to go (a connected gateway, or a cache that accepts
 * writes to hold them), and the cache can write (its last write succeeded
 * and a probe file can be written and synced in its directory).
 */
export class CollectorHealth implements HealthSource {
  readonly #d: CollectorHealthDeps;
  readonly #startedAt: number;
  readonly #db: CachedProbe;
  readonly #dir: CachedProbe;
  readonly #ttl: number;

  constructor(deps: CollectorHealthDeps) {
    this.#d = deps;
    this.#startedAt = deps.clock.now();
    const c = deps.config.collector;
    const upstream = parseAddress(c.upstream)!;
    const ttl = deps.probeTtlMs ?? PROBE_TTL_MS;
    this.#ttl = ttl;
    const now = (): number => deps.clock.now();
    this.#db = new CachedProbe(() => probeDatabase(c.protocol, upstream.host, upstream.port, DB_PROBE_TIMEOUT_MS), ttl, now);
    this.#dir = new CachedProbe(() => probeWritable(c.cache.path), ttl, now);
  }

  get registry(): HealthSource['registry'] {
    return this.#d.metrics.registry;
  }

  accepting(): boolean {
    return this.#d.accepting();
  }

  /** At scrape time: the cache's own gauges (same definitions as its publishGauges), fresh rather than as of its last commit or tick. */
  refreshMetrics(): void {
    const st = this.#d.cache.stats();
    const m = this.#d.metrics;
    m.cacheSizeBytes.set(st.bytes);
    m.cacheEventsCount.set(st.events);
    m.cacheSyncPending.set(st.events + st.pendingAppends);
    // Nothing unacknowledged: no lag. Otherwise the age of the oldest, which the cache also publishes every second.
    if (st.events + st.pendingAppends === 0) m.eventLag.set(0);
    else if (st.oldestTimeMs !== undefined) m.eventLag.set(Math.max(0, this.#d.clock.now() - st.oldestTimeMs) / 1000);
    m.eventBufferUtilization.set(Math.min(1, st.pendingAppends / EVENT_BUFFER_CAPACITY));
  }

  async ready(): Promise<Record<string, CheckResult>> {
    const [db, cache] = await Promise.all([this.#databaseCheck(), this.#cacheCheck()]);
    const shipper = this.#d.shipper;
    return {
      database: db.ok ? { status: 'healthy', latency_ms: round(db.latencyMs) } : { status: 'unhealthy', error: db.error },
      // The gateway may be away while the cache holds events: that is what the cache is for.
      api_connection: shipper.connected
        ? { status: 'healthy', connected: true }
        : cache.ok
          ? { status: 'healthy', connected: false, caching: true, error: shipper.lastError || undefined }
          : { status: 'unhealthy', connected: false, error: `gateway not connected (${shipper.lastError || 'connecting'}) and the cache cannot hold events` },
      cache: cache.ok ? { status: 'healthy' } : { status: 'unhealthy', error: cache.error },
    };
  }

  async detailed(): Promise<Record<string, unknown>> {
    const d = this.#d;
    const checks = await this.ready();
    const st = d.cache.stats();
    const utilization = Math.round((100 * st.pendingAppends) / EVENT_BUFFER_CAPACITY);
    const api: Status = d.shipper.connected ? 'healthy' : 'unhealthy';
    const buffer: Status = utilization >= 100 ? 'unhealthy' : utilization >= BUFFER_DEGRADED_PERCENT ? 'degraded' : 'healthy';
    const ready = d.accepting() && Object.values(checks).every((x) => x.status !== 'unhealthy');
    const all = [api, checks.database.status, checks.cache.status, buffer];
    return {
      status: !ready || buffer === 'unhealthy' ? 'unhealthy' : all.every((s) => s === 'healthy') ? 'healthy' : 'degraded',
      version: VERSION,
      uptime_seconds: Math.floor((d.clock.now() - this.#startedAt) / 1000),
      checks: {
        api_connection: { status: api, latency_ms: Math.max(0, round(d.shipper.latencyMs)) },
        database_connections: { status: checks.database.status, connected: d.listener.upstreamCount, total: d.listener.connectionCount },
        cache: { status: checks.cache.status, size_bytes: st.bytes, events_cached: st.events },
        event_buffer: { status: buffer, utilization_percent: Math.min(100, utilization) },
      },
    };
  }

  /**
   * A session that connected to the database within the probe ttl is
   * evidence enough: busy proxies never probe (for MySQL this also keeps
   * probes, which the server counts as aborted connections, to quiet times).
   */
  #databaseCheck(): Promise<ProbeResult> {
    const d = this.#d;
    const last = d.listener.lastUpstreamConnect;
    if (last > 0 && d.clock.now() - last < this.#ttl) return Promise.resolve({ ok: true, latencyMs: this.#db.last?.latencyMs ?? 0 });
    return this.#db.check();
  }

  async #cacheCheck(): Promise<{ ok: boolean; error?: string }> {
    const st = this.#d.cache.stats();
    if (!st.writable) return { ok: false, error: st.lastError ?? 'cache not writable' };
    if (!this.#d.config.collector.cache.enabled) return { ok: true }; // in memory: no directory to check
    const dir = await this.#dir.check();
    return dir.ok ? { ok: true } : { ok: false, error: dir.error };
  }
}

function round(ms: number): number {
  return Math.round(ms);
}

/** Creates, writes, syncs and removes a small file in `dir`: what the cache needs to be able to do. */
export async function probeWritable(dir: string): Promise<ProbeResult> {
  const started = Date.now();
  const path = join(dir, `.health-probe-${process.pid}-${randomBytes(4).toString('hex')}`);
  let created = false;
  try {
    const fh = await open(path, 'wx', 0o600);
    created = true;
    try {
      await fh.write(randomBytes(4096));
      await fh.sync();
    } finally {
      await fh.close();
    }
    return { ok: true, latencyMs: Date.now() - started };
  } catch (err) {
    return { ok: false, error: `cache directory ${dir} is not writable: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, latencyMs: Date.now() - started };
  } finally {
    if (created) await unlink(path).catch(() => undefined);
  }
}
