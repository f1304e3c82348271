import type { Clock } from '../lib/clock.js';
import type { AuditEvent, SessionMeta } from './events.js';

/**
 * The contract between the connection (sockets) and a protocol's session
 * tracker (PostgreSQL, MySQL). The connection forwards bytes first, then
 * hands the same bytes to the tracker; the tracker frames and decodes them
 * and emits events. A tracker does no I/O, never throws out of these
 * methods, and never holds on to a chunk after the call returns (views are
 * only valid during the call: copy what you keep).
 */
export interface TrackerOptions {
  meta: SessionMeta;
  emit: (ev: AuditEvent) => void;
  clock: Clock;
  /** `literals`: constants replaced by placeholders; `none`: text as sent (passwords are always removed). */
  redact: 'literals' | 'none';
  logParameters: boolean;
  /** Statement text longer than this is cut in the event (marked truncated, with its original length). */
  maxStatementBytes: number;
  /** Counts anomalies by reason, for metrics; optional. */
  onAnomaly?: (reason: string) => void;
}

/**
 * A tracker emits session_start (timed at its construction, TLS already
 * settled in `meta`) once it knows the connection is a session: at the
 * startup message. A connection that is only a cancel request makes a
 * single `cancel` event and no session events.
 */
export interface SessionTracker {
  /** Bytes the client sent, already forwarded to the server. */
  clientData(chunk: Buffer): void;
  /** Bytes the server sent, already forwarded (or about to be) to the client. */
  serverData(chunk: Buffer): void;
  /**
   * The connection is over. Emits whatever is pending (statements that were
   * sent but never completed are recorded with reason "connection closed")
   * and the session_end event. `reason` is e.g. "client_terminate",
   * "client_disconnect", "server_disconnect", "upstream_error", "shutdown".
   */
  end(reason: string, detail?: string): void;
  /** False once the tracker gave up on the session (out of sync, over a limit); bytes still flow. */
  readonly decoding: boolean;
  /**
   * False while the session is still in its startup and login exchange:
   * the proxy's startup timeout applies until it turns true (login done,
   * refused, or decoding stopped). Undefined: the tracker does not say.
   */
  readonly established?: boolean;
  /** The session's shared fields (user, database… as learnt so far). */
  readonly meta: SessionMeta;
  /**
   * The sequence id of a protocol error the proxy itself sends the client
   * now, in the server's place (the database went away without a word, a
   * startup timeout): the packet the client reads next, after its own when
   * it is the client's turn (MySQL; 0 for PostgreSQL). -1 when none fits:
   * the client said goodbye, the server already sent its own fatal error, a
   * server message is cut, decoding stopped, or (MySQL) no command waits
   * for an answer.
   */
  proxyErrorSeq?(): number;
  /** An anomaly found outside the tracker (the connection's negotiation): recorded as its own are (after session_start), and decoding stops. */
  anomaly?(reason: string, detail: string): void;
  /**
   * Flow control toward the client, read after every chunk: `Over` while the
   * operations waiting for the server's answer are above the tracker's
   * high-water mark (the connection stops reading from the client; what it
   * already read is forwarded and decoded), `Under` once the server's answers
   * brought them below the low-water mark, or whenever the server waits for
   * the client (COPY data, a file, auth data) or decoding stopped (the
   * connection reads again), `Between` otherwise (no change). Undefined: never
   * `Over`.
   */
  backlog?(): Backlog;
}

/** What a tracker's waiting operations ask of the client socket (`SessionTracker.backlog`). */
export const Backlog = {
  Under: -1,
  Between: 0,
  Over: 1,
} as const;
export type Backlog = (typeof Backlog)[keyof typeof Backlog];
