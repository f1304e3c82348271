import * as grpc from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import type { AuditEvent } from '../proto/gen/audit/v1/event_pb.js';
import { BatchAckSchema, type BatchAck, type EventBatch } from '../proto/gen/audit/v1/ingest_pb.js';
import { httpStatusOf, ingestDefinition } from '../lib/grpc.js';
import type { GatewayMetrics } from '../lib/metrics.js';
import { logIncident, type Logger } from '../lib/log.js';
import type { CallGuard } from './auth.js';
import type { Store } from './store.js';
import { arrivedByReplication } from './replicate.js';
import type { TrailAuditor } from './trail.js';
import { rejectionSummary, validateBatch } from './validate.js';

/**
 * IngestService.Stream: for each EventBatch, validate each event on its
 * own, store the good ones (the store dedups by event_id), and only once
 * the store's write is durable answer with a BatchAck. Batches of one
 * stream are stored as they arrive (so several can share a group commit)
 * but acknowledged strictly in arrival order.
 */

/** Most events in one batch; a larger batch ends the stream with RESOURCE_EXHAUSTED. */
export const MAX_BATCH_EVENTS = 10_000;
/** Batches of one stream being stored at once before reading from it pauses. */
const MAX_IN_FLIGHT = 16;
const ENDPOINT = 'events';

export interface IngestOptions {
  store: Store;
  metrics: GatewayMetrics;
  logger: Logger;
  guard: CallGuard;
  onStored?: (events: AuditEvent[]) => void;
  now?: () => number;
  /** Checks each stored event's chain hash and keeps the heads collectors report. */
  trail?: TrailAuditor;
}

/** What the server's deserializer yields for bytes that are not an EventBatch. */
class MalformedBatch {
  readonly message: string;
  constructor(message: string) {
    this.message = message;
  }
}

/**
 * The ingest service definition the server registers: as lib/grpc.ts's,
 * except that a request that does not decode reaches the handler (to be
 * counted and answered INVALID_ARGUMENT) instead of grpc-js's bare INTERNAL.
 */
export const ingestServerDefinition: grpc.ServiceDefinition = Object.fromEntries(
  Object.entries(ingestDefinition).map(([name, method]) => [
    name,
    {
      ...method,
      requestDeserialize: (buf: Buffer): unknown => {
        try {
          return method.requestDeserialize(buf);
        } catch (err) {
          return new MalformedBatch(err instanceof Error ? err.message : String(err));
        }
      },
    },
  ]),
);

type Outcome = { ack: BatchAck; fresh: AuditEvent[] } | { status: grpc.StatusObject };

type IngestCall = grpc.ServerDuplexStream<EventBatch, BatchAck>;

export class IngestHandler {
  readonly #opts: IngestOptions;
  readonly #now: () => number;
  /** Ack chains of open streams, so shutdown can let them finish. */
  readonly #streams = new Set<Promise<void>>();

  constructor(opts: IngestOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
  }

  /** The grpc-js handler for IngestService.Stream. */
  readonly stream = (call: IngestCall): void => {
    const { logger, metrics } = this.#opts;
    const auth = this.#opts.guard(call);
    if (!auth.ok) {
      metrics.apiRequests.inc({ endpoint: ENDPOINT, status: httpStatusOf(auth.status.code) });
      call.emit('error', auth.status);
      return;
    }
    const peer = call.getPeer();
    const log = logger.child({ stream: 'ingest', peer });
    log.debug('ingest stream opened');
    let acks: Promise<void> = Promise.resolve();
    let inFlight = 0;
    let paused = false;
    let failed = false;
    let finished = false;

    const track = (): void => {
      const p = acks;
      this.#streams.add(p);
      void p.finally(() => this.#streams.delete(p));
    };

    call.on('data', (batch: EventBatch | MalformedBatch) => {
      if (failed) return;
      const started = process.hrtime.bigint();
      const outcome = (batch instanceof MalformedBatch ? this.#malformed(batch, log) : this.#handleBatch(batch, auth.identity, log)).catch(
        (err: unknown): Outcome => {
          log.error({ err }, 'batch handling failed');
          return { status: { code: grpc.status.INTERNAL, details: 'the gateway failed to handle the batch', metadata: new grpc.Metadata() } };
        },
      );
      inFlight++;
      if (inFlight >= MAX_IN_FLIGHT && !paused) {
        paused = true;
        call.pause();
      }
      acks = acks.then(async () => {
        const result = await outcome;
        inFlight--;
        if (paused && inFlight < MAX_IN_FLIGHT / 2) {
          paused = false;
          call.resume();
        }
        // Stored is stored: report fresh events even when this stream can no longer be answered.
        if ('fresh' in result && result.fresh.length > 0) this.#notify(result.fresh, log);
        if (failed) return;
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        metrics.apiLatency.observe({ endpoint: ENDPOINT }, seconds);
        if ('status' in result) {
          failed = true;
          metrics.apiRequests.inc({ endpoint: ENDPOINT, status: httpStatusOf(result.status.code) });
          if (!call.cancelled) call.emit('error', result.status);
          return;
        }
        metrics.apiRequests.inc({ endpoint: ENDPOINT, status: result.ack.rejected > 0 ? '400' : '200' });
        if (!call.cancelled && !finished) call.write(result.ack);
      });
      track();
    });
    call.on('end', () => {
      void acks.then(() => {
        finished = true;
        if (!failed && !call.cancelled) call.end();
        log.debug('ingest stream closed');
      });
    });
    call.on('cancelled', () => log.debug('ingest stream cancelled by the client'));
    call.on('error', (err: unknown) => log.debug({ err }, 'ingest stream error'));
  };

  /** Resolves when every batch already received has been stored and answered. */
  async drain(): Promise<void> {
    while (this.#streams.size > 0) await Promise.allSettled([...this.#streams]);
  }

  #notify(fresh: AuditEvent[], log: Logger): void {
    if (!this.#opts.onStored) return;
    try {
      this.#opts.onStored(fresh);
    } catch (err) {
      log.warn({ err }, 'onStored callback failed');
    }
  }

  async #malformed(batch: MalformedBatch, log: Logger): Promise<Outcome> {
    this.#opts.metrics.eventsRejected.inc({ reason: 'batch_decode' });
    logIncident(log, 'warn', 'ingest-undecodable-batch', { error: batch.message }, 'undecodable batch');
    return {
      status: { code: grpc.status.INVALID_ARGUMENT, details: `the message is not a valid EventBatch (${batch.message})`, metadata: new grpc.Metadata() },
    };
  }

  async #handleBatch(batch: EventBatch, identity: string | undefined, log: Logger): Promise<Outcome> {
    const { metrics, store } = this.#opts;
    if (batch.events.length > MAX_BATCH_EVENTS) {
      metrics.eventsRejected.inc({ reason: 'batch_too_large' });
      logIncident(log, 'warn', 'ingest-batch-too-large', { batch: String(batch.batchId), events: batch.events.length }, 'batch too large');
      return {
        status: {
          code: grpc.status.RESOURCE_EXHAUSTED,
          details: `batch ${batch.batchId} has ${batch.events.length} events; at most ${MAX_BATCH_EVENTS} are accepted per batch`,
          metadata: new grpc.Metadata(),
        },
      };
    }
    const receivedAt = this.#now();
    const deliveredBy = identity || batch.collectorId;
    const { accepted, rejected } = validateBatch(batch, deliveredBy, receivedAt);
    for (const r of rejected) metrics.eventsRejected.inc({ reason: r.reason });
    if (rejected.length > 0) logIncident(log, 'warn', 'ingest-events-rejected', { batch: String(batch.batchId), rejected: rejected.length, first: rejected[0].message }, 'events rejected');
    let stored = 0;
    let duplicates = 0;
    const fresh: AuditEvent[] = [];
    if (accepted.length > 0) {
      try {
        const r = await store.put(accepted);
        stored = r.stored;
        duplicates = r.duplicates;
        this.#opts.trail?.checkIngested(r.fresh.map((i) => accepted[i]));
        for (const i of r.fresh) {
          const ev = accepted[i].event;
          ev.deliveredBy = deliveredBy;
          ev.receivedAt = timestampFromMs(receivedAt);
          fresh.push(ev);
        }
      } catch (err) {
        log.error({ err }, 'store write failed');
        return {
          status: { code: grpc.status.UNAVAILABLE, details: `gateway store write failed; retry later`, metadata: new grpc.Metadata() },
        };
      }
    }
    // The head a collector reports (not a DR peer's: its numbers are its replication cache's).
    if (!arrivedByReplication(deliveredBy)) this.#opts.trail?.noteHead(batch.collectorId, batch.epoch, batch.highestSeq, { mac: batch.headMac, keyId: batch.headKeyId });
    metrics.eventsStored.inc(stored);
    metrics.eventsDuplicate.inc(duplicates);
    const ack = create(BatchAckSchema, { batchId: batch.batchId, stored, duplicates, rejected: rejected.length, error: rejectionSummary(rejected) });
    return { ack, fresh };
  }
}
