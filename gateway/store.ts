import type { AuditEvent } from '../proto/gen/audit/v1/event_pb.js';
import type { Clock } from '../lib/clock.js';
import { AuditError, ErrorCode } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import type { Attested, DroppedRange, Seal, SeqRange, TrailRow } from '../lib/trail.js';

/**
 * Where the gateway keeps events. Every backend stores an event at most
 * once per event_id, even when several calls race (in one process for the
 * embedded store; across gateway replicas for a shared backend such as
 * PostgreSQL), and `put` resolves only once its writes are durable.
 */

/** One validated event as the gateway received it. */
export interface StoredEvent {
  /** Canonical lower-case UUID, equal to `event.eventId`. */
  readonly eventId: string;
  /** Event time in microseconds since the epoch (from `event.time`). */
  readonly timeMicros: number;
  /** The decoded event (without delivered_by / received_at). */
  readonly event: AuditEvent;
  /** The serialized AuditEvent exactly as the collector sent it (chain-hash input). */
  readonly raw: Uint8Array;
  /** Who delivered it to this gateway (the batch's collector id, later the authenticated peer). */
  readonly deliveredBy: string;
  /** When this gateway received it, milliseconds since the epoch. */
  readonly receivedAtMs: number;
}

export interface PutResult {
  /** Events newly stored by this call. */
  stored: number;
  /** Events already held (or repeated within the call): not stored again. */
  duplicates: number;
  /** Positions in the input of the events newly stored, ascending. */
  fresh: number[];
}

/** Filters of a search; every given filter must match. */
export interface SearchFilter {
  /** Inclusive lower bound on event time, microseconds since the epoch. */
  sinceMicros?: number;
  /** Exclusive upper bound on event time, microseconds since the epoch. */
  untilMicros?: number;
  user?: string;
  database?: string;
  sessionId?: string;
  kind?: string;
  collectorId?: string;
  /** Case-insensitive substring of the statement text. */
  text?: string;
  /** At most this many events (already normalised: 1..MAX_SEARCH_LIMIT). */
  limit: number;
}

export const DEFAULT_SEARCH_LIMIT = 100;
export const MAX_SEARCH_LIMIT = 10_000;

/** The limit a request asks for, as the store applies it: 0 → 100, capped at 10000. */
export function normaliseLimit(limit: number | undefined): number {
  if (!limit || limit <= 0) return DEFAULT_SEARCH_LIMIT;
  return Math.min(Math.floor(limit), MAX_SEARCH_LIMIT);
}

/** What a store knows of one collector epoch for verification. */
export interface TrailEpoch {
  collectorId: string;
  epoch: string;
  /** Highest seq the collector reported in a batch (0n: none reported here). */
  highestReported: bigint;
  /** The collector's attestation of highestReported (absent when none was recorded). */
  head?: Attested;
  /** Seq ranges retention removed on purpose, with the dropping gateway's attestation. */
  dropped: DroppedRange[];
}

/** The highest seq a collector reported for its epoch. */
export interface TrailHead {
  collectorId: string;
  epoch: string;
  highestSeq: bigint;
  /** The collector's attestation of highestSeq. */
  attested: Attested;
}

/** How a store signs what it writes with the gateway's seal key (gateway/trail.ts makeSigner). */
export interface Sealer {
  /** One seal per stored group of events. */
  seal(events: readonly StoredEvent[]): Seal;
  /** Attests that retention dropped a range of a collector epoch. */
  drop(collectorId: string, epoch: string, r: SeqRange): Attested;
}

export interface Store {
  /** A short name for logs and health ("embedded", "postgres"). */
  readonly kind: string;
  open(): Promise<void>;
  /** Waits for queued writes, then releases the backend. Later calls fail with DBA_CLOSED. */
  close(): Promise<void>;
  /** Stores each event not yet held; resolves after the writes are durable. */
  put(events: readonly StoredEvent[]): Promise<PutResult>;
  /** Matching events, newest first (event time, then event id), with delivered_by and received_at filled in. */
  search(filter: SearchFilter): Promise<AuditEvent[]>;
  /** One event by id: decoded (with delivered_by / received_at) and its bytes exactly as received. */
  get(eventId: string): Promise<{ event: AuditEvent; raw: Uint8Array } | undefined>;
  /** Number of events held. */
  count(): Promise<number>;
  /**
   * Removes events whose time is before `micros`; returns how many. Backs `gateway.retention`.
   * A partitioned backend (PostgreSQL) removes whole partitions only, so events of the
   * partition that holds `micros` stay until it is wholly before the cutoff.
   */
  deleteBefore?(micros: number): Promise<number>;
  /** Keeps, per collector epoch, the highest seq reported (a maximum: never lowered). */
  noteHeads(heads: readonly TrailHead[]): Promise<void>;
  /** Every collector epoch with events held or a head reported (only `collectorId`'s when given). */
  trailEpochs(collectorId?: string): Promise<TrailEpoch[]>;
  /** Events of one epoch with seq > afterSeq, ascending by seq (ties by event id), at most `limit`; only event times ≥ sinceMicros when given. */
  trailRows(collectorId: string, epoch: string, afterSeq: bigint, limit: number, sinceMicros?: number): Promise<TrailRow[]>;
  /** The seals with these ids that the store holds. */
  seals(ids: readonly string[]): Promise<Seal[]>;
}

/** What a backend may use besides its spec: time (partitions made ahead), logs, the gateway's id. */
export interface StoreContext {
  clock?: Clock;
  logger?: Logger;
  gatewayId?: string;
  /** Seals every stored group (none: rows are stored unsealed). */
  sealer?: Sealer;
  /** The embedded store's memtable size (gateway.write_buffer_size). */
  writeBufferSize?: number;
}

/** The backend `gateway.store` names: "embedded" (RocksDB under data_dir) or a postgres:// URL (shared by gateway replicas). */
export async function createStore(spec: string, dataDir: string, ctx: StoreContext = {}): Promise<Store> {
  if (spec === 'embedded' || spec === '') {
    const { EmbeddedStore } = await import('./store-embedded.js');
    return new EmbeddedStore(dataDir, { sealer: ctx.sealer, writeBufferSize: ctx.writeBufferSize });
  }
  if (/^postgres(ql)?:\/\//.test(spec)) {
    const { PostgresStore } = await import('./store-postgres.js');
    return new PostgresStore(spec, ctx);
  }
  // Not echoed whole: a mistyped URL may still carry a password.
  throw new AuditError(ErrorCode.Config, `config gateway.store: invalid value ${JSON.stringify(spec.replace(/:[^:@/]*@/, ':***@'))}; expected "embedded" or a postgres:// URL`);
}
