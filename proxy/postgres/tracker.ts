import { EventKind, makeEvent, type SessionMeta } from '../events.js';
import { Backlog, type SessionTracker, type TrackerOptions } from '../protocol.js';
import { WireReader } from '../wire/reader.js';
import { DEFAULT_LIMITS, PgDecoder, type PgFrameSink, type PgLimits } from './decoder.js';
import { AuthCode, Backend, Frontend, StartupCode, parseErrorFields, parseStartupParams, type ErrorFields } from './messages.js';
import { StatementFlow } from './statement-flow.js';
import { StatementRecorder } from './statements.js';

/*
 * PostgreSQL session tracker: both directions' bytes in, audit events out.
 *
 * Events: session_start (at the StartupMessage, or at the end/first anomaly
 * if none came; never for a CancelRequest connection), login_success (at
 * the first ReadyForQuery; auth_method from the Authentication requests,
 * refined by the SASL mechanism the client picks), login_failure (an
 * ErrorResponse before that ReadyForQuery, with SQLSTATE, severity and
 * message), statement (see statement-flow.ts), cancel (CancelRequest as
 * the first message: detail backend_pid=N only), anomaly (at most one; the
 * tracker then stops decoding), session_end (exactly once, from end();
 * reason client_terminate after a Terminate message).
 *
 * Memory per session is bounded by the caps below (DEFAULT_TRACKER_LIMITS):
 * framing buffers ≤ the largest frame cap per direction (startup 10 000 B;
 * Query/Parse/Bind/FunctionCall 1 MiB, or twice max_statement_bytes: a
 * longer one is kept as its head and the rest streams through unread; other
 * client messages 128 KiB; ErrorResponse 1 MiB; other parsed server
 * messages 128 KiB; rows, COPY data, notices, RowDescription skipped by
 * length, never buffered); waiting operations ≤ 100 000 and ≤ 32 MiB of SQL
 * and values; remembered prepared statements and portals ≤ 1024 each and
 * ≤ 16 MiB each. A pipelining client does not reach the waiting-operation
 * bounds: above 10 000 operations (or 8 MiB of SQL and values the server
 * is sure to answer) the connection stops reading from it until the answers
 * bring them to 5 000 (4 MiB); one chunk read (64 KiB, at most about 13 000
 * messages) cannot cross the rest. `pending_overflow` remains for what
 * pausing cannot undo: more than 32 MiB sent after the last Sync or Flush.
 */

/** Anomaly reasons raised by the tracker itself (framing ones come from the decoder). */
export const TrackerAnomaly = {
  OutOfSync: 'out_of_sync',
  BadMessage: 'bad_message',
  PendingOverflow: 'pending_overflow',
  TlsNotObserved: 'unobservable_tls',
  GssNotObserved: 'unobservable_gssenc',
  Internal: 'internal_error',
  /** The connection ended in the middle of a message. */
  Truncated: 'truncated_message',
} as const;

/** Bounds on what one session may hold besides framing buffers. */
export interface TrackerLimits extends PgLimits {
  /** Client operations waiting for a response. */
  pendingOps: number;
  /** Bytes of SQL text held by waiting operations. */
  pendingBytes: number;
  /** Backlog marks (`SessionTracker.backlog`): the client is paused above a high mark, read again at or below both low ones. */
  pendingOpsHigh: number;
  pendingOpsLow: number;
  pendingBytesHigh: number;
  pendingBytesLow: number;
  /** Prepared statements / portals remembered, and the memory they may hold (oldest forgotten first). */
  statements: number;
  statementBytes: number;
  portals: number;
  portalBytes: number;
}

export const DEFAULT_TRACKER_LIMITS: Readonly<TrackerLimits> = Object.freeze({
  ...DEFAULT_LIMITS,
  pendingOps: 100_000,
  pendingBytes: 32 * 1024 * 1024,
  pendingOpsHigh: 10_000,
  pendingOpsLow: 5_000,
  pendingBytesHigh: 8 * 1024 * 1024,
  pendingBytesLow: 4 * 1024 * 1024,
  statements: 1024,
  statementBytes: 16 * 1024 * 1024,
  portals: 1024,
  portalBytes: 16 * 1024 * 1024,
});

/** auth_method per Authentication request code; '' for codes that continue an exchange. */
const AUTH_METHODS: Readonly<Record<number, string>> = {
  [AuthCode.Ok]: '',
  [AuthCode.KerberosV5]: 'kerberos',
  [AuthCode.CleartextPassword]: 'cleartext',
  [AuthCode.MD5Password]: 'md5',
  [AuthCode.GSS]: 'gss',
  [AuthCode.GSSContinue]: '',
  [AuthCode.SSPI]: 'sspi',
  [AuthCode.SASL]: 'scram-sha-256',
  [AuthCode.SASLContinue]: '',
  [AuthCode.SASLFinal]: '',
};

const Phase = { Startup: 0, Auth: 1, Ready: 2, Cancel: 3 } as const;
type Phase = (typeof Phase)[keyof typeof Phase];

/** The tracker for one PostgreSQL session (see `SessionTracker`). */
export function createPostgresTracker(opts: TrackerOptions, limits: TrackerLimits = DEFAULT_TRACKER_LIMITS): SessionTracker {
  // The head of a statement too long to hold must still cover the prefix its event keeps.
  const head = 2 * opts.maxStatementBytes;
  return new PostgresTracker(opts, head > limits.statement ? { ...limits, statement: head } : limits);
}

/** @internal exported for tests (buffer bounds, state). */
export class PostgresTracker implements SessionTracker, PgFrameSink {
  readonly meta: SessionMeta;
  readonly #opts: TrackerOptions;
  readonly #client: PgDecoder;
  readonly #server: PgDecoder;
  readonly #serverSink: PgFrameSink;
  readonly #r = new WireReader();
  readonly #flow: StatementFlow;
  readonly #startMs: number;
  readonly #startMono: number;
  #phase: Phase;
  #decoding: boolean;
  #ended: boolean;
  #started: boolean;
  #terminated: boolean;
  #bytesIn: number;
  #bytesOut: number;
  #authOk: boolean;
  #saslInitial: boolean;
  #backendPid: number;
  #fatal: ErrorFields | null;

  constructor(opts: TrackerOptions, limits: TrackerLimits) {
    this.meta = opts.meta;
    this.#opts = opts;
    this.#startMs = opts.clock.now();
    this.#startMono = opts.clock.monoMicros();
    this.#client = new PgDecoder('client', this, limits);
    this.#serverSink = new ServerSink(this);
    this.#server = new PgDecoder('server', this.#serverSink, limits);
    const recorder = new StatementRecorder(opts.redact, opts.maxStatementBytes, opts.clock, opts.emit, opts.logParameters);
    this.#flow = new StatementFlow(opts, recorder, limits, (reason, detail) => this.#fail(reason, detail));
    this.#phase = Phase.Startup;
    this.#decoding = true;
    this.#ended = false;
    this.#started = false;
    this.#terminated = false;
    this.#bytesIn = 0;
    this.#bytesOut = 0;
    this.#authOk = false;
    this.#saslInitial = false;
    this.#backendPid = 0;
    this.#fatal = null;
  }

  get decoding(): boolean {
    return this.#decoding;
  }

  get established(): boolean {
    return this.#phase === Phase.Ready || this.#phase === Phase.Cancel || !this.#decoding;
  }
  /** Bytes held for partial frames, both directions (bounded by the limits). */
  get bufferedBytes(): number {
    return this.#client.bufferedBytes + this.#server.bufferedBytes;
  }
  /** Last ReadyForQuery status: 'I' idle, 'T' in a transaction, 'E' failed transaction ('' before the first). */
  get transactionStatus(): string {
    return this.#flow.txn;
  }
  get pendingOps(): number {
    return this.#flow.pendingOps;
  }
  /** The most operations that waited for the server at once in this session. */
  get peakPendingOps(): number {
    return this.#flow.peakPendingOps;
  }

  backlog(): Backlog {
    return this.#decoding && !this.#ended ? this.#flow.backlog() : Backlog.Under;
  }
  /** True while a message is incomplete in either direction. */
  get midFrame(): boolean {
    return this.#client.partial || this.#server.partial;
  }

  proxyErrorSeq(): number {
    // An ErrorResponse fits between any two messages, in every phase; not after the server's own FATAL, a Terminate, or inside a message.
    if (!this.#decoding || this.#ended || this.#terminated || this.#fatal !== null || this.#phase === Phase.Cancel || this.#server.partial) return -1;
    return 0;
  }

  anomaly(reason: string, detail: string): void {
    this.#fail(reason, detail);
  }

  clientData(chunk: Buffer): void {
    if (this.#ended) return;
    this.#bytesIn += chunk.length;
    if (!this.#decoding) return;
    try {
      this.#client.push(chunk);
    } catch (err) {
      this.#fail(TrackerAnomaly.Internal, err instanceof Error ? err.name : 'error');
    }
  }

  serverData(chunk: Buffer): void {
    if (this.#ended) return;
    this.#bytesOut += chunk.length;
    if (!this.#decoding) return;
    try {
      this.#server.push(chunk);
    } catch (err) {
      this.#fail(TrackerAnomaly.Internal, err instanceof Error ? err.name : 'error');
    }
  }

  end(reason: string, detail?: string): void {
    if (this.#ended) return;
    if (this.#decoding && (this.#client.partial || this.#server.partial)) {
      // What was pending is settled below as "connection closed", not "decoding stopped".
      this.#fail(TrackerAnomaly.Truncated, this.#client.partial ? 'client message cut by the end of the connection' : 'server message cut by the end of the connection', false);
    }
    this.#ended = true;
    if (this.#phase === Phase.Cancel) return;
    try {
      this.#sessionStart();
      this.#flow.abandon('connection_closed');
      const c = this.#opts.clock;
      const ev = makeEvent(EventKind.SessionEnd, this.meta, c.now());
      const d = c.monoMicros() - this.#startMono;
      ev.durationUs = BigInt(d > 0 ? Math.round(d) : 0);
      ev.bytesFromClient = BigInt(this.#bytesIn);
      ev.bytesToClient = BigInt(this.#bytesOut);
      ev.reason = this.#terminated ? 'client_terminate' : reason;
      ev.detail = detail ?? (this.#fatal ? `${this.#fatal.code}: ${this.#fatal.message}` : '');
      this.#opts.emit(ev);
    } catch {
      // emit failed: nothing more a tracker can do; the connection owns the error path
    }
  }

  // ---- client frames (PgFrameSink) ----

  onStartup(code: number, buf: Buffer, start: number, end: number): boolean {
    if (code === StartupCode.CancelRequest) {
      if (this.#phase !== Phase.Startup || this.#started) return this.#failed(TrackerAnomaly.OutOfSync, 'CancelRequest after StartupMessage');
      this.#phase = Phase.Cancel;
      const ev = makeEvent(EventKind.Cancel, this.meta, this.#opts.clock.now());
      ev.detail = `backend_pid=${buf.readInt32BE(start + 8)}`; // never the secret key
      this.#opts.emit(ev);
      return true;
    }
    if (code === StartupCode.SSLRequest || code === StartupCode.GSSENCRequest) {
      // Normally the proxy answers these itself; if we see one, the server's 1-byte answer comes next.
      this.#server.expectAnswer();
      return true;
    }
    if (this.#phase !== Phase.Startup) return this.#failed(TrackerAnomaly.OutOfSync, 'second StartupMessage');
    const r = this.#r.reset(buf, start + 8, end);
    const m = parseStartupParams(r);
    if (m === null) return this.#failed(TrackerAnomaly.BadMessage, 'StartupMessage');
    this.meta.user = m.user;
    this.meta.database = m.database;
    this.meta.applicationName = m.applicationName;
    this.#sessionStart();
    this.#phase = Phase.Auth;
    return true;
  }

  onMessage(type: number, buf: Buffer, bodyStart: number, end: number): boolean {
    if (type === Frontend.Password) {
      if (this.#saslInitial) {
        this.#saslInitial = false;
        const mech = this.#r.reset(buf, bodyStart, end).cstring();
        if (this.#r.ok && mech !== '') this.meta.authMethod = mech.toLowerCase();
      }
      return true;
    }
    if (type === Frontend.Terminate) {
      this.#terminated = true;
      return true;
    }
    return this.#flow.client(type, buf, bodyStart, end, this.#client.declared);
  }

  onSkipped(type: number, bodyBytes: number): boolean {
    if (type === Frontend.CopyData) this.#flow.copyData(bodyBytes);
    return true;
  }

  onAnswer(): boolean {
    return this.#failed(TrackerAnomaly.OutOfSync, 'answer byte on the client side');
  }

  onDecodeError(reason: string, detail: string): void {
    this.#fail(reason, detail);
  }

  // ---- server frames (through ServerSink) ----

  /** @internal */
  serverMessage(type: number, buf: Buffer, bodyStart: number, end: number): boolean {
    if (this.#phase === Phase.Auth) {
      if (type === Backend.Authentication) return this.#auth(buf, bodyStart, end);
      if (type === Backend.ErrorResponse) return this.#loginFailed(buf, bodyStart, end);
      if (type === Backend.ReadyForQuery) return this.#loginOk();
    }
    if (type === Backend.BackendKeyData) {
      const r = this.#r.reset(buf, bodyStart, end);
      const pid = r.int32();
      if (!r.ok || r.remaining < 4) return this.#failed(TrackerAnomaly.BadMessage, 'BackendKeyData');
      this.#backendPid = pid;
      return true;
    }
    if (type === Backend.ParameterStatus) {
      const r = this.#r.reset(buf, bodyStart, end);
      const name = r.cstring();
      const value = r.cstring();
      if (!r.atEnd) return this.#failed(TrackerAnomaly.BadMessage, 'ParameterStatus');
      if (name === 'application_name') this.meta.applicationName = value;
      else if (name === 'standard_conforming_strings') this.#flow.standardStrings = value === 'on';
      return true;
    }
    if (type === Backend.ErrorResponse && this.#flow.pendingOps === 0) {
      // Not an answer to anything: e.g. FATAL on administrator shutdown or idle timeout.
      const f = parseErrorFields(this.#r.reset(buf, bodyStart, end));
      if (f === null) return this.#failed(TrackerAnomaly.BadMessage, 'ErrorResponse');
      if (f.severity === 'FATAL' || f.severity === 'PANIC') this.#fatal = f;
      return true;
    }
    if (this.#phase !== Phase.Ready) {
      return this.#failed(TrackerAnomaly.OutOfSync, `message 0x${type.toString(16)} before authentication completed`);
    }
    return this.#flow.server(type, buf, bodyStart, end);
  }

  /** @internal */
  serverSkipped(type: number, bodyBytes: number): boolean {
    return this.#flow.serverSkipped(type, bodyBytes);
  }

  /** @internal */
  serverAnswer(byte: number): boolean {
    if (byte === 0x4e /* N */) return true;
    if (byte === 0x53 /* S */) return this.#failed(TrackerAnomaly.TlsNotObserved, 'server accepted SSLRequest: TLS bytes follow');
    if (byte === 0x47 /* G */) return this.#failed(TrackerAnomaly.GssNotObserved, 'server accepted GSSENCRequest: encrypted bytes follow');
    return this.#failed(TrackerAnomaly.OutOfSync, `answer 0x${byte.toString(16)} to an encryption request`);
  }

  #auth(buf: Buffer, bodyStart: number, end: number): boolean {
    const r = this.#r.reset(buf, bodyStart, end);
    const code = r.int32();
    if (!r.ok) return this.#failed(TrackerAnomaly.BadMessage, 'Authentication');
    const method = AUTH_METHODS[code];
    if (method === undefined) return this.#failed(TrackerAnomaly.BadMessage, `authentication code ${code}`);
    if (code === AuthCode.Ok) {
      this.#authOk = true;
      if (this.meta.authMethod === '') this.meta.authMethod = 'trust'; // Ok with no request before it
    } else if (method !== '') this.meta.authMethod = method;
    if (code === AuthCode.SASL) this.#saslInitial = true; // the client names its mechanism next
    return true;
  }

  #loginFailed(buf: Buffer, bodyStart: number, end: number): boolean {
    const f = parseErrorFields(this.#r.reset(buf, bodyStart, end));
    if (f === null) return this.#failed(TrackerAnomaly.BadMessage, 'ErrorResponse');
    const ev = makeEvent(EventKind.LoginFailure, this.meta, this.#opts.clock.now());
    ev.errorCode = f.code;
    ev.sqlstate = f.code;
    ev.errorMessage = f.message;
    ev.errorSeverity = f.severity;
    this.#opts.emit(ev);
    this.#phase = Phase.Startup;
    this.#fatal = f;
    return true;
  }

  #loginOk(): boolean {
    this.#phase = Phase.Ready;
    const ev = makeEvent(EventKind.LoginSuccess, this.meta, this.#opts.clock.now());
    if (!this.#authOk) ev.detail = 'ReadyForQuery without AuthenticationOk';
    if (this.#backendPid !== 0) ev.detail = ev.detail ? `${ev.detail}; backend_pid=${this.#backendPid}` : `backend_pid=${this.#backendPid}`;
    this.#opts.emit(ev);
    return true;
  }

  #sessionStart(): void {
    if (this.#started) return;
    this.#started = true;
    this.#opts.emit(makeEvent(EventKind.SessionStart, this.meta, this.#startMs));
  }

  #failed(reason: string, detail: string): false {
    this.#fail(reason, detail);
    return false;
  }

  /** One anomaly per session, then decoding stops; bytes keep flowing. */
  #fail(reason: string, detail: string, abandon = true): void {
    if (!this.#decoding || this.#ended) return;
    this.#decoding = false;
    this.#client.stop();
    this.#server.stop();
    try {
      if (this.#phase !== Phase.Cancel) this.#sessionStart();
      const ev = makeEvent(EventKind.Anomaly, this.meta, this.#opts.clock.now());
      ev.reason = reason;
      ev.detail = detail;
      this.#opts.emit(ev);
      this.#opts.onAnomaly?.(reason);
      if (abandon) this.#flow.abandon('decoding_stopped');
    } catch {
      // see end()
    }
  }
}

/** Routes server frames to the tracker's server-side handlers. */
class ServerSink implements PgFrameSink {
  readonly #t: PostgresTracker;
  constructor(t: PostgresTracker) {
    this.#t = t;
  }
  onStartup(): boolean {
    return false;
  }
  onMessage(type: number, buf: Buffer, bodyStart: number, end: number): boolean {
    return this.#t.serverMessage(type, buf, bodyStart, end);
  }
  onSkipped(type: number, bodyBytes: number): boolean {
    return this.#t.serverSkipped(type, bodyBytes);
  }
  onAnswer(byte: number): boolean {
    return this.#t.serverAnswer(byte);
  }
  onDecodeError(reason: string, detail: string): void {
    this.#t.onDecodeError(reason, detail);
  }
}
