import type { AuditEvent } from './events.js';

/**
 * Where sessions put their events. The proxy sees only this: it knows
 * nothing of the cache or the shipper behind it.
 */
export interface AuditSink {
  /** Takes ownership of the event and returns a ticket for `whenDurable`. Never throws. */
  offer(ev: AuditEvent): number;
  /**
   * Calls `cb` once every event offered up to `ticket` is durable in the
   * cache, or with the error that stopped it. The proxy holds a
   * statement's result from the client until then, so a crash cannot lose
   * the audit record of a result the client has seen.
   */
  whenDurable(ticket: number, cb: (err?: Error) => void): void;
  /** The ticket of the last event offered (0 before any). */
  readonly lastTicket: number;
  /** False while events cannot be made durable and `audit.on_cache_failure` is `block`. */
  readonly accepting: boolean;
}
