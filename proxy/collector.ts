import net from 'node:net';
import { EventCache } from '../cache/wal.js';
import { loadKeyring } from '../cache/seal.js';
import { AuditError, ErrorCode } from '../lib/errors.js';
import { systemClock, type Clock } from '../lib/clock.js';
import { parseAddress, type Config } from '../lib/config.js';
import { startHttpServer, type CheckResult } from '../lib/http.js';
import type { Logger } from '../lib/log.js';
import { CollectorMetrics } from '../lib/metrics.js';
import { VERSION } from '../lib/version.js';
import { EventKind, makeEvent, newSessionMeta } from './events.js';
import { ProxyListener } from './listener.js';
import { EventPipeline } from './pipeline.js';
import { postgresHandler } from './postgres/handler.js';
import type { ProtocolHandler } from './protocol-handler.js';
import { Shipper } from './shipper.js';

export interface CollectorHandle {
  /** Address applications connect to. */
  address: string;
  httpAddress: string;
  metrics: CollectorMetrics;
  cache: EventCache;
  shipper: Shipper;
  listener: ProxyListener;
  /** SIGTERM path: not ready, stop accepting, let sessions finish, flush, close. */
  shutdown(graceMs?: number): Promise<void>;
}

/** Events the pipeline may hold ahead of a cache commit before utilization reads 100%. */
const EVENT_BUFFER_CAPACITY = 100_000;
const DB_CHECK_INTERVAL_MS = 2_000;

function handlerFor(protocol: Config['collector']['protocol']): ProtocolHandler {
  if (protocol === 'mysql') throw new AuditError(ErrorCode.Config, 'config collector.protocol: "mysql" is not available in this build yet; use "postgres"');
  return postgresHandler;
}

/** Starts a whole collector: cache, pipeline, shipper, proxy listener and the HTTP endpoints. */
export async function startCollector(opts: { config: Config; logger: Logger; clock?: Clock; env?: NodeJS.ProcessEnv; metrics?: CollectorMetrics }): Promise<CollectorHandle> {
  const { config, logger } = opts;
  const clock = opts.clock ?? systemClock;
  const c = config.collector;
  const metrics = opts.metrics ?? new CollectorMetrics();
  const keyring = loadKeyring(config, opts.env ?? process.env);
  const startedAt = clock.now();

  let pipeline: EventPipeline | undefined;
  const cache = await EventCache.open({
    path: c.cache.path,
    maxBytes: c.cache.max_size,
    maxAgeMs: c.cache.max_age,
    keyring,
    commitIntervalMs: c.cache.sync.commit_interval,
    clock,
    logger: logger.child({ component: 'cache' }),
    metrics,
    onLoss: (loss) => {
      // Loss is itself audited: the range and the reason travel like any other event.
      const meta = newSessionMeta(c.protocol, '', c.upstream, clock.now());
      meta.sessionId = '';
      const ev = makeEvent(EventKind.Loss, meta, clock.now());
      ev.lossFromSeq = loss.fromSeq;
      ev.lossToSeq = loss.toSeq;
      ev.reason = loss.reason;
      ev.detail = `${loss.count} events dropped`;
      pipeline?.offer(ev);
    },
  });
  metrics.cacheMaxBytes.set(c.cache.max_size);

  const shipper = new Shipper({
    cache,
    collectorId: c.id,
    endpoints: c.gateway.endpoints,
    retry: { maxAttempts: c.retry.max_attempts, initialDelayMs: c.retry.initial_delay, maxDelayMs: c.retry.max_delay, multiplier: c.retry.backoff_multiplier },
    batchSize: c.gateway.batch_size,
    syncRate: c.cache.sync.rate_limit,
    syncOrder: c.cache.sync.order,
    clock,
    logger: logger.child({ component: 'shipper' }),
    metrics,
  });
  pipeline = new EventPipeline({ cache, collectorId: c.id, clock, logger: logger.child({ component: 'pipeline' }), metrics, onCacheFailure: config.audit.on_cache_failure, onDurable: () => shipper.notify() });

  const handler = handlerFor(c.protocol);
  const listener = new ProxyListener({ config, handler, sink: pipeline, clock, logger: logger.child({ component: 'proxy' }), metrics });
  const address = await listener.listen(c.listen);
  shipper.start();

  let accepting = true;
  let dbCheck: { at: number; ok: boolean; error?: string } = { at: 0, ok: false };
  const upstream = parseAddress(c.upstream)!;
  const checkDatabase = async (): Promise<{ ok: boolean; error?: string }> => {
    if (clock.now() - dbCheck.at < DB_CHECK_INTERVAL_MS) return dbCheck;
    const result = await tcpProbe(upstream.host, upstream.port, 1_000);
    dbCheck = { at: clock.now(), ...result };
    return dbCheck;
  };
  const refreshMetrics = (): void => {
    const st = cache.stats();
    metrics.cacheSizeBytes.set(st.bytes);
    metrics.cacheEventsCount.set(st.events);
    metrics.cacheSyncPending.set(st.events);
    metrics.eventLag.set(st.oldestTimeMs === undefined ? 0 : Math.max(0, (clock.now() - st.oldestTimeMs) / 1000));
    metrics.eventBufferUtilization.set(Math.min(1, st.pendingAppends / EVENT_BUFFER_CAPACITY));
  };
  const ready = async (): Promise<Record<string, CheckResult>> => {
    const db = await checkDatabase();
    const st = cache.stats();
    return {
      database: db.ok ? { status: 'healthy' } : { status: 'unhealthy', error: db.error },
      // The gateway may be away while the cache holds events: that is what the cache is for.
      api_connection: shipper.connected || cache.writable ? { status: 'healthy', connected: shipper.connected } : { status: 'unhealthy', error: shipper.lastError },
      cache: cache.writable ? { status: 'healthy' } : { status: 'unhealthy', error: st.lastError ?? 'cache not writable' },
    };
  };
  const http = await startHttpServer(c.http.listen, {
    registry: metrics.registry,
    accepting: () => accepting,
    refreshMetrics,
    ready,
    detailed: async () => {
      const checks = await ready();
      const st = cache.stats();
      const sessions = listener.connectionCount;
      const utilization = Math.round((100 * st.pendingAppends) / EVENT_BUFFER_CAPACITY);
      const healthy = Object.values(checks).every((x) => x.status === 'healthy') && accepting;
      return {
        status: healthy ? 'healthy' : 'unhealthy',
        version: VERSION,
        uptime_seconds: Math.floor((clock.now() - startedAt) / 1000),
        checks: {
          api_connection: { status: shipper.connected ? 'healthy' : 'unhealthy', latency_ms: Math.max(0, Math.round(shipper.latencyMs)) },
          database_connections: { status: checks.database.status, connected: sessions, total: sessions },
          cache: { status: checks.cache.status, size_bytes: st.bytes, events_cached: st.events },
          event_buffer: { status: utilization < 90 ? 'healthy' : 'degraded', utilization_percent: utilization },
        },
      };
    },
  });
  logger.info({ listen: address, upstream: c.upstream, http: http.address, gateway: c.gateway.endpoints, protocol: c.protocol }, 'dbaudit proxy started');

  let shuttingDown: Promise<void> | undefined;
  return {
    address,
    httpAddress: http.address,
    metrics,
    cache,
    shipper,
    listener,
    shutdown(graceMs = c.shutdown.grace_period) {
      shuttingDown ??= (async () => {
        accepting = false;
        await listener.stopAccepting();
        await listener.drain(graceMs);
        await cache.flush().catch(() => undefined);
        const flushed = await shipper.waitIdle(Math.min(5_000, graceMs));
        if (!flushed) logger.info({ cached: cache.stats().events }, 'events left in the cache for the next start');
        await shipper.stop();
        await cache.close();
        await http.close();
        logger.info('dbaudit proxy stopped');
      })();
      return shuttingDown;
    },
  };
}

function tcpProbe(host: string, port: number, timeoutMs: number): Promise<{ ok: boolean; error?: string }> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (r: { ok: boolean; error?: string }): void => {
      s.destroy();
      resolve(r);
    };
    s.setTimeout(timeoutMs, () => done({ ok: false, error: `no answer from ${host}:${port} within ${timeoutMs}ms` }));
    s.once('connect', () => done({ ok: true }));
    s.once('error', (err) => done({ ok: false, error: err.message }));
  });
}
