import { EventCache } from '../cache/wal.js';
import { loadKeyring } from '../cache/seal.js';
import { attestHead, loadOptionalKey } from '../lib/trail.js';
import { LossLedger } from './loss-ledger.js';
import { clientAuth } from '../lib/client-auth.js';
import { AuditError, ErrorCode } from '../lib/errors.js';
import { systemClock, type Clock } from '../lib/clock.js';
import type { Config } from '../lib/config.js';
import { startHttpServer } from '../lib/http.js';
import { componentLogger, type Logger } from '../lib/log.js';
import { CollectorMetrics } from '../lib/metrics.js';
import { EventKind, makeEvent, newSessionMeta } from './events.js';
import { CollectorHealth } from './health.js';
import { ProxyListener } from './listener.js';
import { EventPipeline } from './pipeline.js';
import { mysqlHandler } from './mysql/handler.js';
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

function handlerFor(protocol: Config['collector']['protocol']): ProtocolHandler {
  return protocol === 'mysql' ? mysqlHandler : postgresHandler;
}

/** Starts a whole collector: cache, pipeline, shipper, proxy listener and the HTTP endpoints. */
export async function startCollector(opts: { config: Config; logger: Logger; clock?: Clock; env?: NodeJS.ProcessEnv; metrics?: CollectorMetrics }): Promise<CollectorHandle> {
  const { config, logger } = opts;
  const clock = opts.clock ?? systemClock;
  const c = config.collector;
  const metrics = opts.metrics ?? new CollectorMetrics();
  const keyring = loadKeyring(config, opts.env ?? process.env);
  const trailKey = loadOptionalKey(c.trail.key_file, 'collector.trail.key_file', opts.env ?? process.env, c.trail.key_env);

  let pipeline: EventPipeline | undefined;
  const ledger = new LossLedger();
  const cacheMaxBytes = c.cache.enabled ? c.cache.max_size : c.cache.memory_max_size;
  if (!c.cache.enabled) {
    logger.warn({ memoryMaxBytes: cacheMaxBytes }, 'collector.cache.enabled is false: events wait for the gateway in memory only; a crash or restart loses the events not yet acknowledged (the gateway sees the gap in the trail)');
  }
  const cache = await EventCache.open({
    path: c.cache.path,
    setting: 'collector.cache.path',
    memory: !c.cache.enabled,
    owner: c.id,
    maxBytes: cacheMaxBytes,
    maxAgeMs: c.cache.max_age,
    keyring,
    commitIntervalMs: c.cache.sync.commit_interval,
    durability: c.cache.durability,
    fsyncIntervalMs: c.cache.fsync_interval,
    clock,
    logger: componentLogger(logger, 'cache'),
    metrics,
    onLoss: (loss) => {
      // Loss is itself audited: the range and the reason travel like any other event.
      const meta = newSessionMeta(c.protocol, '', c.upstream, clock.now());
      meta.sessionId = '';
      const ev = makeEvent(EventKind.Loss, meta, clock.now());
      ev.lossFromSeq = ledger.widen(loss.fromSeq, loss.toSeq);
      ev.lossToSeq = loss.toSeq;
      ev.reason = loss.reason;
      ev.detail = `${loss.count} events dropped`;
      if (!pipeline) return;
      pipeline.offer(ev);
      ledger.made(ev.seq, ev.lossFromSeq, ev.lossToSeq);
    },
  });
  metrics.cacheMaxBytes.set(cacheMaxBytes);

  const auth = clientAuth({ tokenFile: c.gateway.token_file, caFile: c.gateway.tls.ca_file, certFile: c.gateway.tls.cert_file, keyFile: c.gateway.tls.key_file });
  const shipper = new Shipper({
    cache,
    credentials: auth.credentials,
    metadata: auth.metadata,
    collectorId: c.id,
    endpoints: c.gateway.endpoints,
    retry: { maxAttempts: c.retry.max_attempts, initialDelayMs: c.retry.initial_delay, maxDelayMs: c.retry.max_delay, multiplier: c.retry.backoff_multiplier },
    batchSize: Math.min(c.gateway.batch_size, 10_000),
    batchDelayMs: c.gateway.batch_delay,
    failbackIntervalMs: c.gateway.failback_interval,
    ackTimeoutMs: c.gateway.ack_timeout,
    heartbeatMs: c.gateway.heartbeat_interval,
    attestHead: (epoch, seq) => attestHead(trailKey, c.id, epoch, seq),
    syncRate: c.cache.sync.rate_limit,
    syncOrder: c.cache.sync.order,
    clock,
    logger: componentLogger(logger, 'shipper'),
    metrics,
  });
  pipeline = new EventPipeline({ cache, collectorId: c.id, clock, logger: componentLogger(logger, 'pipeline'), metrics, onCacheFailure: config.audit.on_cache_failure, redact: config.audit.redact, trailKey, onDurable: () => shipper.notify() });

  const handler = handlerFor(c.protocol);
  if (c.protocol === 'mysql' && !c.tls.cert_file) logger.info('mysql: no collector.tls certificate, so CLIENT_SSL is cleared from the greeting and clients continue in plain text on the local hop');
  const listener = new ProxyListener({ config, handler, sink: pipeline, clock, logger: componentLogger(logger, 'proxy'), metrics });
  const address = await listener.listen(c.listen);
  shipper.start();

  let accepting = true;
  const health = new CollectorHealth({ config, cache, shipper, listener, metrics, clock, accepting: () => accepting });
  const http = await startHttpServer(c.http.listen, health, 'collector.http.listen');
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
        const deadline = Date.now() + graceMs;
        accepting = false;
        await listener.stopAccepting();
        await listener.drain(graceMs);
        await cache.flush().catch(() => undefined);
        // in memory, what the gateway has not acknowledged dies with the process: wait what is left of the grace period
        const flushed = await shipper.waitIdle(c.cache.enabled ? Math.min(5_000, graceMs) : Math.max(1_000, deadline - Date.now()));
        if (!flushed && c.cache.enabled) logger.info({ cached: cache.stats().events }, 'events left in the cache for the next start');
        else if (!flushed) logger.error({ lost: cache.stats().events }, 'events not acknowledged by a gateway are lost with the in-memory cache');
        await shipper.stop();
        await cache.close();
        await http.close();
        logger.info('dbaudit proxy stopped');
      })();
      return shuttingDown;
    },
  };
}
