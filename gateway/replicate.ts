import { join } from 'node:path';
import client from 'prom-client';
import { EventCache } from '../cache/wal.js';
import { Keyring } from '../cache/keyring.js';
import { clientAuth } from '../lib/client-auth.js';
import type { Clock } from '../lib/clock.js';
import type { Config } from '../lib/config.js';
import { AuditError, ErrorCode } from '../lib/errors.js';
import { readKeyEnv, readKeyFile } from '../lib/keys.js';
import { componentLogger, type Logger } from '../lib/log.js';
import { CollectorMetrics, type GatewayMetrics } from '../lib/metrics.js';
import { Shipper } from '../proxy/shipper.js';
import type { AuditEvent } from '../proto/gen/audit/v1/event_pb.js';
import type { CallGuard } from './auth.js';
import { GatedCache } from './replicate-gate.js';
import type { ReplicationPeerStatus, ReplicationStatus } from './run.js';
import type { PutResult, Store, StoredEvent } from './store.js';
import { StoreWrapper } from './store-wrapper.js';

/**
 * DR replication (`gateway.replicate_to`) with the collector's own
 * machinery: every event this gateway stores is appended, as the exact
 * bytes it received, to a replication cache (an EventCache in its own
 * directory, with its own key), and a Shipper streams that cache to the
 * peer region's gateway(s) — at-least-once with acks, backoff, failover
 * between the listed endpoints, replay after an outage; the peer's dedup by
 * event_id makes the end effect exactly-once.
 *
 * Order: the events of a put are made durable in the replication cache
 * *before* the store write, then the copies of events the store already
 * held are removed again. So a crash between the store's commit and the
 * cache can never leave a stored event unreplicated (a retry would find it
 * a duplicate and not replicate it). Until the store has answered, the
 * put's copies are hidden from the Shipper (replicate-gate.ts), so the copy
 * of an event a collector delivered again (a replay after a lost ack) is
 * gone before it could be sent. Two replicas sharing one store that both
 * receive the same event at once may each find it new at the moment they
 * copy it, but only one store write succeeds: the other's copy is dropped.
 *
 * No bouncing: a replication stream carries the metadata header
 * `dbaudit-replication-source: <gateway id>`. The receiving gateway's guard
 * (wrapped by `replicationGuard`) names such a caller
 * `replication:<id>` (its certificate's CN under mutual TLS), which the
 * store records as delivered_by; events delivered that way are stored but
 * never queued for replication again. Active-passive and active-active
 * (A↔B) both work: an event crosses each direction at most once.
 */

export const REPLICATION_HEADER = 'dbaudit-replication-source';
const PREFIX = 'replication:';

/** Did this event arrive by DR replication (delivered_by set by `replicationGuard`)? */
export function arrivedByReplication(deliveredBy: string): boolean {
  return deliveredBy.startsWith(PREFIX);
}

/**
 * Wraps the gateway's guard: a caller it admits that marks its stream with
 * REPLICATION_HEADER is named `replication:<CN or declared gateway id>`.
 * The mark is honoured from any admitted caller (the same trust as a
 * collector delivering events at all).
 */
export function replicationGuard(base: CallGuard): CallGuard {
  return (call) => {
    const r = base(call);
    if (!r.ok) return r;
    const v = call.metadata.get(REPLICATION_HEADER)[0];
    if (v === undefined) return r;
    const source = r.identity || String(v).slice(0, 200) || 'peer';
    return { ok: true, identity: PREFIX + source };
  };
}

/** A store that queues every event it newly holds (and that did not come by replication) for the peer. */
export class ReplicatingStore extends StoreWrapper {
  readonly #cache: EventCache;
  readonly #gate: GatedCache;
  readonly #log: Logger;
  readonly #notify: () => void;

  constructor(inner: Store, cache: EventCache, gate: GatedCache, notify: () => void, logger: Logger) {
    super(inner);
    this.#cache = cache;
    this.#gate = gate;
    this.#notify = notify;
    this.#log = logger;
  }

  override async put(events: readonly StoredEvent[]): Promise<PutResult> {
    const queued = new Map<number, bigint>();
    const seen = new Set<string>();
    let last = 0;
    let hold: number | undefined;
    events.forEach((ev, i) => {
      if (arrivedByReplication(ev.deliveredBy) || seen.has(ev.eventId)) return;
      seen.add(ev.eventId);
      const seq = this.#cache.reserveSeq();
      hold ??= this.#gate.hold(seq);
      last = this.#cache.append(seq, ev.raw, ev.receivedAtMs);
      queued.set(i, seq);
    });
    if (hold === undefined) return this.inner.put(events);
    try {
      await new Promise<void>((resolve, reject) => {
        this.#cache.whenDurable(last, (err) => (err ? reject(AuditError.from(err, ErrorCode.Cache, 'replication cache write failed')) : resolve()));
      });
      const result = await this.inner.put(events);
      for (const i of result.fresh) queued.delete(i);
      if (queued.size > 0) {
        // Already held by the store: queued (or delivered) when first stored; not again.
        await this.#cache.ack([...queued.values()]).catch((err: unknown) => {
          this.#log.warn({ err: (err as Error).message }, 'cannot drop duplicate copies from the replication cache; the peer will dedup them');
        });
      }
      return result;
    } finally {
      // On a failed write the copies stay and are sent: at least once.
      this.#gate.release(hold);
      this.#notify();
    }
  }
}

export interface Replication extends ReplicationStatus {
  /** The store to serve through: puts are queued for the peer. */
  readonly store: Store;
  readonly cache: EventCache;
  readonly shipper: Shipper;
  /** Events stored here and not yet acknowledged by the peer. */
  pending(): number;
  /** Seconds since the oldest unacknowledged event was received here (0 when none). */
  lagSeconds(): number;
  /** Resolves true once everything queued is acknowledged (false after `timeoutMs`). */
  waitIdle(timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
}

export interface ReplicationOptions {
  config: Config;
  store: Store;
  logger: Logger;
  metrics: GatewayMetrics;
  clock: Clock;
  env?: NodeJS.ProcessEnv;
}

function keyringOf(config: Config, env: NodeJS.ProcessEnv): Keyring {
  const r = config.gateway.replication;
  const key = r.key_file ? readKeyFile(r.key_file, 'gateway.replication.key_file') : readKeyEnv(env, r.key_env);
  if (!key) {
    throw new AuditError(
      ErrorCode.Config,
      `config gateway.replication: gateway.replicate_to is set but there is no replication cache key; set gateway.replication.key_file to a file holding 32 bytes (64 hex digits or base64) or the environment variable ${r.key_env}`,
    );
  }
  return new Keyring(key);
}

/** Opens the replication cache and starts shipping it to `gateway.replicate_to`. */
export async function startReplication(opts: ReplicationOptions): Promise<Replication> {
  const { config, clock } = opts;
  const g = config.gateway;
  const r = g.replication;
  const log = componentLogger(opts.logger, 'replication');
  const keyring = keyringOf(config, opts.env ?? process.env);
  const auth = clientAuth({ tokenFile: r.token_file, caFile: r.tls.ca_file, certFile: r.tls.cert_file, keyFile: r.tls.key_file });
  const path = r.cache_dir || join(g.data_dir, 'replication');
  const shipMetrics = new CollectorMetrics({ defaultMetrics: false });
  const cache = await EventCache.open({
    path,
    setting: r.cache_dir ? 'gateway.replication.cache_dir' : 'gateway.data_dir',
    maxBytes: r.max_size,
    maxAgeMs: r.max_age,
    keyring,
    commitIntervalMs: 0,
    clock,
    logger: log.child({ part: 'cache' }),
    metrics: shipMetrics,
    onLoss: (loss) => log.error({ ...loss, fromSeq: String(loss.fromSeq), toSeq: String(loss.toSeq) }, 'events dropped from the replication cache before the peer had them'),
  });
  auth.metadata.set(REPLICATION_HEADER, g.id);
  const gate = new GatedCache(cache);
  const shipper = new Shipper({
    cache: gate.asCache(),
    credentials: auth.credentials,
    metadata: auth.metadata,
    collectorId: g.id,
    endpoints: g.replicate_to,
    retry: { maxAttempts: r.retry.max_attempts, initialDelayMs: r.retry.initial_delay, maxDelayMs: r.retry.max_delay, multiplier: 2 },
    batchSize: Math.min(r.batch_size, 10_000),
    batchDelayMs: r.batch_delay,
    syncRate: r.rate_limit,
    syncOrder: 'oldest_first',
    clock,
    logger: log.child({ part: 'shipper' }),
    metrics: shipMetrics,
  });

  const pending = (): number => cache.stats().events;
  const lagSeconds = (): number => {
    const oldest = cache.stats().oldestTimeMs;
    return oldest === undefined || pending() === 0 ? 0 : Math.max(0, (clock.now() - oldest) / 1000);
  };
  const lag = replicationLagGauge(opts.metrics);
  const publish = (): void => {
    opts.metrics.replicationPending.set(pending());
    lag.set(lagSeconds());
  };
  const store = new ReplicatingStore(opts.store, cache, gate, () => {
    shipper.notify();
    publish();
  }, log);
  const timer = setInterval(publish, 1000);
  timer.unref();
  publish();
  shipper.start();
  log.info({ peers: g.replicate_to, cache: path, pending: pending() }, 'replication started');

  let closing: Promise<void> | undefined;
  return {
    store,
    cache,
    shipper,
    pending,
    lagSeconds,
    waitIdle: async (ms) => {
      const deadline = Date.now() + ms;
      while (pending() > 0) {
        if (Date.now() > deadline) return false;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      return true;
    },
    peers: (): ReplicationPeerStatus[] => [
      { endpoint: shipper.endpoint, connected: shipper.connected, pending: pending(), ...(shipper.lastError && !shipper.connected ? { lastError: shipper.lastError } : {}) },
    ],
    close: () => {
      closing ??= (async () => {
        clearInterval(timer);
        publish();
        await shipper.stop();
        await cache.close();
        log.info({ pending: cache.stats().events }, 'replication stopped; unacknowledged events stay cached for the next start');
      })();
      return closing;
    },
  };
}

const lagGauges = new WeakMap<client.Registry, client.Gauge>();

/** dbaudit_replication_lag_seconds on the gateway's registry (declared here, once per registry). */
function replicationLagGauge(metrics: GatewayMetrics): client.Gauge {
  let g = lagGauges.get(metrics.registry);
  if (!g) {
    g = new client.Gauge({ name: 'dbaudit_replication_lag_seconds', help: 'Age of the oldest stored event the DR peer has not acknowledged yet (0 when caught up).', registers: [metrics.registry] });
    lagGauges.set(metrics.registry, g);
  }
  return g;
}
