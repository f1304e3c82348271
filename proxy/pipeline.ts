import type { EventCache } from '../cache/wal.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/log.js';
import type { CollectorMetrics } from '../lib/metrics.js';
import { ChainMaker, type TrailKey } from '../lib/trail.js';
import { encodeAuditEvent } from './event-codec.js';
import { EventKind, type AuditEvent } from './events.js';
import type { AuditSink } from './sink.js';

export interface PipelineOptions {
  cache: EventCache;
  collectorId: string;
  clock: Clock;
  logger: Logger;
  metrics: CollectorMetrics;
  onCacheFailure: 'forward' | 'block';
  /** Told each time new events became durable, so the shipper can send them. */
  onDurable?: () => void;
  /** audit.redact: with `literals`, quoted values in server error messages are masked too (default literals). */
  redact?: 'literals' | 'none';
  /** collector.trail.key_file: the key of the chain hash (lib/trail.ts); without one the chain is a bare SHA-256. */
  trailKey?: TrailKey;
}

/** The text of a statement that carried a password (masked in it, or not tokenizable): its error may quote the password back. */
const CARRIED_SECRET = /password|identified|<masked/i;
/** A quoted fragment of a server error message: PostgreSQL quotes values with "…", MySQL with '…'. */
const QUOTED = /"(?:[^"]|"")*"|'(?:[^'\\]|\\.|'')*'/g;

/**
 * Server error messages repeat values from the statement ("invalid input
 * syntax for type integer: \"…\"", "Duplicate entry '…'", "syntax error at
 * or near \"…\""). The error of a statement that carried a password is
 * masked whole in every mode; with literals redaction every quoted
 * fragment is masked, as the statement's own literals are.
 */
export function redactErrorMessage(message: string, statement: string, mode: 'literals' | 'none'): string {
  if (message === '') return message;
  if (CARRIED_SECRET.test(statement)) return '<masked: error of a statement that carried a password>';
  return mode === 'literals' ? message.replace(QUOTED, '?') : message;
}

/**
 * The AuditSink behind every session: stamps each event with the
 * collector's identity, cache epoch and gap-free sequence number, links it
 * into the epoch's hash chain, encodes it once, and appends it to the
 * cache. Durability is the cache's group commit; the pipeline only counts
 * and relays it.
 */
export class EventPipeline implements AuditSink {
  readonly #o: PipelineOptions;
  readonly #chain: ChainMaker;
  #ticket = 0;
  /**
   * Tickets offered and when (monotonic µs), oldest first, whose durability
   * is not yet counted; one whenDurable registration at a time covers them
   * (tickets become durable in order), instead of a callback per event.
   */
  #waitTickets: number[] = [];
  #waitStarted: number[] = [];
  #waitHead = 0;
  #registered = 0;

  constructor(opts: PipelineOptions) {
    this.#o = opts;
    this.#chain = new ChainMaker(opts.trailKey, opts.cache.chainTail);
  }

  get lastTicket(): number {
    return this.#ticket;
  }

  /** False only with on_cache_failure: block while the cache cannot write. */
  get accepting(): boolean {
    return this.#o.onCacheFailure === 'forward' || this.#o.cache.writable;
  }

  offer(ev: AuditEvent): number {
    const o = this.#o;
    const seq = o.cache.reserveSeq();
    ev.collectorId = o.collectorId;
    ev.epoch = o.cache.epoch;
    ev.seq = seq;
    if (ev.errorMessage !== '' && ev.kind === EventKind.Statement) ev.errorMessage = redactErrorMessage(ev.errorMessage, ev.statement, o.redact ?? 'literals');
    const bytes = this.#chain.link(ev, encodeAuditEvent);
    const timeMs = ev.time ? Number(ev.time.seconds) * 1000 + Math.floor(ev.time.nanos / 1e6) : o.clock.now();
    const ticket = o.cache.append(seq, bytes, timeMs, ev.chainHash as Buffer);
    this.#ticket = ticket;
    const isError = ev.errorCode !== '' || ev.kind === EventKind.LoginFailure || ev.kind === EventKind.Anomaly;
    o.metrics.eventProcessed(ev.database || 'unknown', isError);
    this.#waitTickets.push(ticket);
    this.#waitStarted.push(o.clock.monoMicros());
    if (this.#registered === 0) this.#register(ticket);
    return ticket;
  }

  #register(ticket: number): void {
    this.#registered = ticket;
    this.#o.cache.whenDurable(ticket, this.#onDurable);
  }

  /** Every ticket up to the registered one is durable (or its commit failed): latency observed, the shipper told once. */
  readonly #onDurable = (err?: Error): void => {
    const o = this.#o;
    const upTo = this.#registered;
    this.#registered = 0;
    const tickets = this.#waitTickets;
    const started = this.#waitStarted;
    let i = this.#waitHead;
    // A failed commit: the cache logs and counts it, keeps the records and retries them; their latency is not observed.
    const now = err ? 0 : o.clock.monoMicros();
    for (; i < tickets.length && tickets[i] <= upTo; i++) if (!err) o.metrics.eventLatency.observe((now - started[i]) / 1e6);
    if (i === tickets.length) {
      tickets.length = 0;
      started.length = 0;
      i = 0;
    } else if (i > 1024 && i * 2 > tickets.length) {
      this.#waitTickets = tickets.slice(i);
      this.#waitStarted = started.slice(i);
      i = 0;
    }
    this.#waitHead = i;
    if (i < this.#waitTickets.length) this.#register(this.#waitTickets[this.#waitTickets.length - 1]);
    if (!err) o.onDurable?.();
  };

  whenDurable(ticket: number, cb: (err?: Error) => void): void {
    this.#o.cache.whenDurable(ticket, cb);
  }
}
