import * as grpc from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import type { EventCache, CachedRecord } from '../cache/wal.js';
import { RateLimiter } from '../cache/rate.js';
import type { Clock } from '../lib/clock.js';
import { httpStatusOf, IngestClient, MAX_MESSAGE_BYTES } from '../lib/grpc.js';
import { logIncident, type Logger } from '../lib/log.js';
import type { CollectorMetrics } from '../lib/metrics.js';
import { EventBatchSchema, type BatchAck } from '../proto/gen/audit/v1/ingest_pb.js';

export interface RetryPolicy {
  maxAttempts: number;
  initialDelayMs: number;
  maxDelayMs: number;
  multiplier: number;
}

export interface ShipperOptions {
  cache: EventCache;
  collectorId: string;
  endpoints: readonly string[];
  retry: RetryPolicy;
  batchSize: number;
  /**
   * A partial batch of new events waits up to this long (ms) for more before
   * it is sent while no batch is out: fewer, fuller batches at moderate rates
   * (the gateway's cost is mostly per batch), at most this much added to the
   * delivery lag. The client is never held by it; 0 sends at once.
   */
  batchDelayMs?: number;
  syncRate: number;
  syncOrder: 'newest_first' | 'oldest_first';
  clock: Clock;
  logger: Logger;
  metrics: CollectorMetrics;
  credentials?: grpc.ChannelCredentials;
  /** Sent with every stream (the bearer token). */
  metadata?: grpc.Metadata;
  /** Batches sent and not yet acknowledged, at most. */
  window?: number;
  /** How often a collector on a secondary endpoint checks whether the primary is back (ms). */
  failbackIntervalMs?: number;
  /** A batch not acknowledged within this long means the gateway is stuck: the stream is reopened (ms). */
  ackTimeoutMs?: number;
  /** An idle stream sends an empty batch this often, reporting the highest seq (tamper evidence: the gateway knows the head). Default 30 s. */
  heartbeatMs?: number;
  /** Attests each batch's highest_seq with the trail key (lib/trail.ts attestHead). */
  attestHead?: (epoch: string, seq: bigint) => { mac: Uint8Array; keyId: string };
}

/** Largest batch in bytes, well under the gateway's message limit. */
export const MAX_BATCH_BYTES = 4 * 1024 * 1024;

interface InFlight {
  seqs: bigint[];
  sentAt: number;
  /** An empty batch that only reports the head. */
  heartbeat?: boolean;
}

/** State of one stream to one gateway; a new one for every (re)connection. */
interface Session {
  call: grpc.ClientDuplexStream<unknown, BatchAck>;
  inflight: Map<bigint, InFlight>;
  nextBatchId: bigint;
  /** Highest seq sent live on this stream; records above it are new. */
  liveCursor: bigint;
  /** Records at or below this seq were in the cache when the stream opened: the backlog. */
  boundary: bigint;
  /** Backlog position: exclusive lower (oldest_first) or upper (newest_first) bound still to send. */
  backlogCursor: bigint;
  backlogDone: boolean;
  /** When the last batch (or heartbeat) was written. */
  lastSentAt: number;
  /** When new records were first seen waiting for a partial batch to fill (batchDelayMs; performance.now()), 0: none waiting. */
  lingerSince: number;
}

/**
 * Ships cached events to a gateway over one gRPC bidirectional stream:
 * batches out, acknowledgements back; a record leaves the cache only when
 * acknowledged. New events go first; what was cached before the stream
 * opened (the backlog of an outage) is replayed behind them at
 * `sync.rate_limit` in `sync.order`. On any stream failure everything
 * unacknowledged is simply sent again on the next stream (the gateway
 * deduplicates by event_id). Retries back off with jitter and move to the
 * next endpoint after `retry.max_attempts`.
 */
export class Shipper {
  readonly #o: ShipperOptions;
  readonly #limiter: RateLimiter;
  readonly #window: number;
  #endpointIndex = 0;
  #attempts = 0;
  #client: grpc.Client | undefined;
  #session: Session | undefined;
  #pumping = false;
  #pumpAgain = false;
  #stopped = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #backlogTimer: NodeJS.Timeout | undefined;
  #lingerTimer: NodeJS.Timeout | undefined;
  #lastLatencyMs = -1;
  #lastError = '';
  #idleWaiters: Array<() => void> = [];
  #failbackTimer: NodeJS.Timeout | undefined;
  #watchdog: NodeJS.Timeout | undefined;
  #probing = false;
  /** Set once someone waits for the cache to empty (shutdown): partial batches no longer wait for batch_delay. */
  #draining = false;
  /** Consecutive RESOURCE_EXHAUSTED answers: the gateway is alive but asks us to slow down. */
  #throttled = 0;

  constructor(opts: ShipperOptions) {
    if (opts.endpoints.length === 0) throw new Error('shipper needs at least one gateway endpoint');
    this.#o = opts;
    this.#limiter = new RateLimiter(opts.syncRate, opts.clock);
    this.#window = opts.window ?? 4;
  }

  start(): void {
    this.#connect();
    const every = this.#o.failbackIntervalMs ?? 10_000;
    if (this.#o.endpoints.length > 1) {
      this.#failbackTimer = setInterval(() => this.#checkFailback(), every);
      this.#failbackTimer.unref();
    }
    this.#watchdog = setInterval(() => this.#checkStuck(), Math.min(5_000, this.#o.ackTimeoutMs ?? 30_000));
    this.#watchdog.unref();
  }

  /** On a secondary endpoint: if the primary answers again, move back to it. */
  #checkFailback(): void {
    if (this.#endpointIndex === 0 || this.#probing || this.#stopped) return;
    const o = this.#o;
    this.#probing = true;
    const probe = new IngestClient(o.endpoints[0], o.credentials ?? grpc.credentials.createInsecure());
    probe.waitForReady(Date.now() + 2_000, (err) => {
      probe.close();
      this.#probing = false;
      if (err || this.#stopped || this.#endpointIndex === 0) return;
      o.logger.info({ primary: o.endpoints[0], from: this.endpoint }, 'primary gateway is back: failing back');
      this.#endpointIndex = 0;
      this.#attempts = 0;
      this.#reopen('failing back to the primary gateway');
    });
  }

  /** A batch unacknowledged for too long: the stream is treated as broken. An idle stream gets a heartbeat. */
  #checkStuck(): void {
    const s = this.#session;
    if (!s) return;
    if (s.inflight.size === 0) {
      if (this.#o.clock.now() - s.lastSentAt >= (this.#o.heartbeatMs ?? 30_000)) this.#sendOne(s, [], true);
      return;
    }
    const limit = this.#o.ackTimeoutMs ?? 30_000;
    const now = this.#o.clock.now();
    for (const b of s.inflight.values()) {
      if (now - b.sentAt > limit) {
        this.#onStreamError(s, Object.assign(new Error(`no acknowledgement within ${limit}ms`), { code: grpc.status.DEADLINE_EXCEEDED }) as grpc.ServiceError);
        return;
      }
    }
  }

  /** Ends the current stream on purpose and connects to the current endpoint; unacknowledged batches are sent again there. */
  #reopen(why: string): void {
    const s = this.#session;
    this.#session = undefined;
    if (s) {
      s.call.removeAllListeners();
      s.call.on('error', () => {});
      s.call.cancel();
    }
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#o.logger.debug({ why }, 'reopening the gateway stream');
    this.#connect();
  }

  get connected(): boolean {
    return this.#session !== undefined;
  }

  get endpoint(): string {
    return this.#o.endpoints[this.#endpointIndex];
  }

  /** Last batch round trip in ms (-1 before the first ack). */
  get latencyMs(): number {
    return this.#lastLatencyMs;
  }

  get lastError(): string {
    return this.#lastError;
  }

  /** New durable records are in the cache. */
  notify(): void {
    if (this.#session) void this.#pump();
  }

  #connect(): void {
    if (this.#stopped) return;
    const o = this.#o;
    const target = this.endpoint;
    this.#client?.close();
    const client = new IngestClient(target, o.credentials ?? grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
      'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.initial_reconnect_backoff_ms': 200,
    });
    this.#client = client;
    client.waitForReady(Date.now() + 2_000, (err) => {
      if (this.#stopped || this.#client !== client) return;
      if (err) {
        this.#failed(`gateway ${target} not reachable: ${err.message}`, grpc.status.UNAVAILABLE);
        return;
      }
      this.#open(client);
    });
  }

  #open(client: grpc.Client): void {
    const o = this.#o;
    const call = (client as unknown as { stream(md?: grpc.Metadata): grpc.ClientDuplexStream<unknown, BatchAck> }).stream(o.metadata ?? new grpc.Metadata());
    const boundary = o.cache.durableSeq;
    const s: Session = {
      call,
      inflight: new Map(),
      nextBatchId: 1n,
      liveCursor: boundary,
      boundary,
      backlogCursor: o.syncOrder === 'newest_first' ? boundary + 1n : 0n,
      backlogDone: o.cache.stats().events === 0,
      lastSentAt: o.clock.now(),
      lingerSince: 0,
    };
    this.#session = s;
    o.logger.info({ gateway: this.endpoint, backlog: o.cache.stats().events }, 'connected to gateway');
    call.on('data', (ack: BatchAck) => this.#onAck(s, ack));
    call.on('error', (err: grpc.ServiceError) => this.#onStreamError(s, err));
    call.on('end', () => this.#onStreamError(s, Object.assign(new Error('gateway closed the stream'), { code: grpc.status.UNAVAILABLE }) as grpc.ServiceError));
    void this.#pump();
  }

  async #onAck(s: Session, ack: BatchAck): Promise<void> {
    const o = this.#o;
    const batch = s.inflight.get(ack.batchId);
    if (!batch) return;
    s.inflight.delete(ack.batchId);
    if (batch.heartbeat) {
      // records made durable while the heartbeat was out waited for this acknowledgement (#fill): send them now
      if (this.#session === s) void this.#pump();
      return;
    }
    const seconds = (o.clock.now() - batch.sentAt) / 1000;
    this.#lastLatencyMs = seconds * 1000;
    o.metrics.apiRequests.inc({ endpoint: 'events', status: '200' });
    o.metrics.apiLatency.observe(seconds);
    if (ack.rejected > 0) {
      o.logger.error({ rejected: ack.rejected, error: ack.error }, 'gateway rejected events as malformed; they are not retried');
    }
    this.#attempts = 0;
    this.#throttled = 0;
    try {
      await o.cache.ack(batch.seqs);
    } catch (err) {
      o.logger.error({ err: (err as Error).message }, 'cannot remove acknowledged events from the cache; they will be sent again');
    }
    this.#settleIdle();
    if (this.#session === s) void this.#pump();
  }

  #onStreamError(s: Session, err: grpc.ServiceError): void {
    if (this.#session !== s) return;
    this.#session = undefined;
    s.call.removeAllListeners();
    s.call.on('error', () => {});
    s.call.cancel();
    if (this.#stopped) return;
    // We never cancel a live stream ourselves (stop() detaches first): a CANCELLED here is the gateway going away, counted as 503.
    this.#failed(`stream to gateway ${this.endpoint} failed: ${err.message}`, err.code === undefined || err.code === grpc.status.CANCELLED ? grpc.status.UNAVAILABLE : err.code, pushbackMs(err));
  }

  /**
   * One failed attempt. RESOURCE_EXHAUSTED is backpressure from a live
   * gateway: the sender waits (the server's pushback if it gave one,
   * otherwise a growing delay) without counting toward failover. Anything
   * else counts; after `retry.max_attempts` on one endpoint the next one
   * is tried. Cached events are never dropped for running out of retries.
   */
  #failed(message: string, code: grpc.status, serverDelayMs?: number): void {
    const o = this.#o;
    o.metrics.apiRequests.inc({ endpoint: 'events', status: httpStatusOf(code) });
    this.#lastError = message;
    let delay: number;
    if (code === grpc.status.RESOURCE_EXHAUSTED) {
      this.#throttled++;
      const grow = Math.min(o.retry.maxDelayMs, o.retry.initialDelayMs * o.retry.multiplier ** (this.#throttled - 1));
      delay = serverDelayMs ?? grow;
      o.logger.info({ retryInMs: Math.round(delay) }, 'gateway asked to slow down');
    } else {
      this.#attempts++;
      if (this.#attempts >= o.retry.maxAttempts && o.endpoints.length > 1) {
        this.#endpointIndex = (this.#endpointIndex + 1) % o.endpoints.length;
        this.#attempts = 0;
        o.logger.warn({ next: this.endpoint }, 'failing over to the next gateway endpoint');
        delay = 0;
      } else {
        const base = Math.min(o.retry.maxDelayMs, o.retry.initialDelayMs * o.retry.multiplier ** Math.max(0, this.#attempts - 1));
        // Jitter in the upper half, so replicas that lost the same gateway do not return in lockstep.
        delay = serverDelayMs ?? base / 2 + Math.random() * (base / 2);
      }
      logIncident(o.logger, 'warn', 'gateway-unavailable', { err: message, attempt: this.#attempts, retryInMs: Math.round(delay) }, 'gateway unavailable; events stay in the cache');
    }
    this.#retryTimer = setTimeout(() => this.#connect(), delay);
    this.#retryTimer.unref();
  }

  async #pump(): Promise<void> {
    if (this.#pumping) {
      this.#pumpAgain = true;
      return;
    }
    this.#pumping = true;
    try {
      do {
        this.#pumpAgain = false;
        await this.#fill();
      } while (this.#pumpAgain);
    } catch (err) {
      this.#o.logger.error({ err: (err as Error).message }, 'reading the cache for shipping failed');
    } finally {
      this.#pumping = false;
    }
  }

  async #fill(): Promise<void> {
    const o = this.#o;
    for (;;) {
      const s = this.#session;
      if (!s) return;
      // Small batches ride together: while a batch is out, new records wait for its
      // acknowledgement (which pumps again) unless a full batch is ready. Under load each
      // batch then carries what one round trip gathered, instead of a batch per commit.
      // A partial batch also waits until batch_delay has passed since its first record was
      // seen, acknowledgement or not: otherwise a fast gateway sets the cadence, and at a
      // steady trickle every round trip cost the gateway a synced write for two or three
      // events (pgbench -S -c 1: 5,700 batches in 10 s for 13,000 events). The records are
      // seen before the window is checked, so that waiting for a full window's
      // acknowledgements and waiting out the delay overlap instead of adding up.
      const fresh = o.cache.durableSeq - s.liveCursor;
      const partial = fresh > 0n && fresh < BigInt(o.batchSize);
      if (partial && s.lingerSince === 0) s.lingerSince = performance.now();
      if (s.inflight.size >= this.#window) return;
      if (partial) {
        if (s.inflight.size > 0) return; // the acknowledgement pumps again
        if (this.#lingering(s)) return;
      }
      s.lingerSince = 0;
      // Live first: everything cached since this stream opened. Not when nothing was fresh:
      // records made durable while the scan awaited would leave without their batch_delay.
      if (fresh > 0n) {
        const live = await o.cache.scan({ order: 'oldest_first', afterSeq: s.liveCursor, limit: o.batchSize });
        if (this.#session !== s) return;
        if (live.length > 0) {
          s.liveCursor = live[live.length - 1].seq;
          this.#send(s, live);
          continue;
        }
      }
      if (s.backlogDone) return;
      const granted = this.#limiter.take(o.batchSize);
      if (granted === 0) {
        if (!this.#backlogTimer) {
          this.#backlogTimer = setTimeout(() => {
            this.#backlogTimer = undefined;
            void this.#pump();
          }, Math.max(1, this.#limiter.waitMs(1)));
          this.#backlogTimer.unref();
        }
        return;
      }
      const newest = o.syncOrder === 'newest_first';
      const recs = await o.cache.scan(
        newest
          ? { order: 'newest_first', beforeSeq: s.backlogCursor, limit: granted }
          : { order: 'oldest_first', afterSeq: s.backlogCursor, beforeSeq: s.boundary + 1n, limit: granted },
      );
      if (this.#session !== s) return;
      if (recs.length === 0) {
        s.backlogDone = true;
        o.logger.info('backlog replayed');
        return;
      }
      s.backlogCursor = recs[recs.length - 1].seq;
      this.#send(s, recs);
    }
  }

  /** A partial batch waits for more records, up to batchDelayMs from when it was first seen; true while it waits. */
  #lingering(s: Session): boolean {
    const delay = this.#o.batchDelayMs ?? 0;
    if (delay <= 0 || this.#draining) return false;
    // Real time, not the injected clock: this only shapes batches, and a test's stopped clock must not stop shipping.
    const left = s.lingerSince + delay - performance.now();
    if (left <= 0) return false;
    if (!this.#lingerTimer) {
      this.#lingerTimer = setTimeout(() => {
        this.#lingerTimer = undefined;
        void this.#pump();
      }, left);
      this.#lingerTimer.unref();
    }
    return true;
  }

  #send(s: Session, recs: CachedRecord[]): void {
    // Keep each message far below the gateway's limit, whatever the batch size.
    let start = 0;
    let bytes = 0;
    for (let i = 0; i < recs.length; i++) {
      if (i > start && bytes + recs[i].payload.length > MAX_BATCH_BYTES) {
        this.#sendOne(s, recs.slice(start, i));
        start = i;
        bytes = 0;
      }
      bytes += recs[i].payload.length;
    }
    this.#sendOne(s, start === 0 ? recs : recs.slice(start));
  }

  #sendOne(s: Session, recs: CachedRecord[], heartbeat = false): void {
    const o = this.#o;
    const batchId = s.nextBatchId++;
    const batch = create(EventBatchSchema, {
      batchId,
      collectorId: o.collectorId,
      epoch: o.cache.epoch,
      events: recs.map((r) => r.payload),
      highestSeq: o.cache.durableSeq,
    });
    if (o.attestHead) {
      const a = o.attestHead(batch.epoch, batch.highestSeq);
      batch.headMac = a.mac;
      batch.headKeyId = a.keyId;
    }
    s.inflight.set(batchId, { seqs: recs.map((r) => r.seq), sentAt: o.clock.now(), heartbeat });
    s.lastSentAt = o.clock.now();
    s.call.write(batch);
  }

  #settleIdle(): void {
    if (this.#o.cache.stats().events > 0) return;
    const w = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const f of w) f();
  }

  /**
   * Resolves once the cache is empty (everything acknowledged), or after
   * `timeoutMs`; true if emptied. Called when nothing more is coming (the
   * collector's shutdown): from then on partial batches no longer wait for
   * batch_delay.
   */
  waitIdle(timeoutMs: number): Promise<boolean> {
    if (this.#o.cache.stats().events === 0) return Promise.resolve(true);
    // nothing more is coming: a partial batch lingering for batch_delay goes now
    this.#draining = true;
    if (this.#lingerTimer) clearTimeout(this.#lingerTimer);
    this.#lingerTimer = undefined;
    if (this.#session) void this.#pump();
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), timeoutMs);
      this.#idleWaiters.push(() => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#failbackTimer) clearInterval(this.#failbackTimer);
    if (this.#watchdog) clearInterval(this.#watchdog);
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    if (this.#backlogTimer) clearTimeout(this.#backlogTimer);
    if (this.#lingerTimer) clearTimeout(this.#lingerTimer);
    const s = this.#session;
    this.#session = undefined;
    if (s) {
      s.call.removeAllListeners();
      s.call.on('error', () => {});
      s.call.end();
      s.call.cancel();
    }
    this.#client?.close();
  }
}

/** The server's requested retry delay (gRPC's grpc-retry-pushback-ms trailer), if any. */
function pushbackMs(err: grpc.ServiceError): number | undefined {
  const v = err.metadata?.get('grpc-retry-pushback-ms')[0];
  const n = typeof v === 'string' ? Number(v) : NaN;
  return Number.isFinite(n) && n >= 0 ? n : undefined;
}
