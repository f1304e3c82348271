import { EventKind, makeEvent, type SessionMeta } from '../events.js';
import { Backlog, type SessionTracker, type TrackerOptions } from '../protocol.js';
import { WireReader } from '../wire/reader.js';
import { CommandFlow, type FlowLimits } from './command-flow.js';
import { PacketDecoder, SeqCounter, Want, maxBuffered, type PacketSink } from './decoder.js';
import { authSwitchPlugin, isSslRequest, parseGreeting, parseHandshakeResponse } from './handshake.js';
import { Cap, Resp, Sha2 } from './packets.js';
import { ErrPacket, OkPacket, cutMessage, parseErr, parseOk } from './responses.js';
import { MysqlStatementRecorder } from './statements.js';

/*
 * MySQL / MariaDB session tracker: both directions' bytes in, audit events out.
 *
 * Events: session_start (at the HandshakeResponse, with user, database and
 * program_name; or at the end/first anomaly if none came), login_success
 * (the OK that ends the connection phase; auth_method is the plugin that
 * did the authentication, after any AuthSwitchRequest; detail names the
 * connection id and, for caching_sha2_password, fast or full auth),
 * login_failure (the ERR that ends it, or an ERR instead of the greeting:
 * error_code = the server's number as text, sqlstate apart), statements and
 * COM_CHANGE_USER logins (command-flow.ts), anomaly (at most one; decoding
 * then stops, bytes keep flowing), session_end (exactly once, from end();
 * reason client_terminate after COM_QUIT).
 *
 * Memory per session is bounded by DEFAULT_MYSQL_LIMITS: per direction one
 * packet of a message that is parsed, up to its cap: COM_QUERY, PREPARE,
 * EXECUTE, SEND_LONG_DATA 1 MiB (or twice max_statement_bytes; a longer
 * one, or one of several packets, is kept as its head and the rest streams
 * through unread); connection-phase and control packets 64 KiB; parsed
 * server packets 1 MiB; rows, column definitions and LOAD DATA content
 * skipped by length, never buffered; waiting commands ≤ 100 000 and ≤
 * 32 MiB of SQL; prepared statements ≤ 1024 and ≤ 16 MiB. A client that
 * writes commands back to back does not reach the waiting-command bounds:
 * above 10 000 commands or 8 MiB the connection stops reading from it until
 * the answers bring them to 5 000 and 4 MiB (`backlog`).
 */

/** Anomaly reasons raised by the tracker itself (framing ones come from the decoder, command ones from the flow). */
export const TrackerAnomaly = {
  OutOfSync: 'out_of_sync',
  BadMessage: 'bad_message',
  TlsNotObserved: 'unobservable_tls',
  CompressionNotObserved: 'unobservable_compression',
  Unsupported: 'unsupported_protocol',
  Internal: 'internal_error',
  Truncated: 'truncated_message',
} as const;

export interface MysqlLimits extends FlowLimits {
  /** Connection-phase packets (greeting, handshake response, auth data). */
  handshake: number;
}

export const DEFAULT_MYSQL_LIMITS: Readonly<MysqlLimits> = Object.freeze({
  handshake: 64 * 1024,
  statement: 1024 * 1024,
  control: 64 * 1024,
  server: 1024 * 1024,
  pendingOps: 100_000,
  pendingBytes: 32 * 1024 * 1024,
  // A client writing commands back to back is paused above these (see the PostgreSQL tracker's limits): it never reaches the bounds above.
  pendingOpsHigh: 10_000,
  pendingOpsLow: 5_000,
  pendingBytesHigh: 8 * 1024 * 1024,
  pendingBytesLow: 4 * 1024 * 1024,
  statements: 1024,
  statementBytes: 16 * 1024 * 1024,
});

/** The most both directions' decoders may hold with these limits. */
export function maxTrackerBuffered(l: MysqlLimits): number {
  return maxBuffered(Math.max(l.statement, l.control, l.handshake)) + maxBuffered(Math.max(l.server, l.handshake));
}

const Phase = { Greeting: 0, Handshake: 1, Auth: 2, Command: 3, Closed: 4 } as const;
type Phase = (typeof Phase)[keyof typeof Phase];

/** The tracker for one MySQL session (see `SessionTracker`). */
export function createMysqlTracker(opts: TrackerOptions, limits: MysqlLimits = DEFAULT_MYSQL_LIMITS): SessionTracker {
  // The head of a command too long to hold must still cover the prefix its event keeps.
  const head = 2 * opts.maxStatementBytes;
  return new MysqlTracker(opts, head > limits.statement ? { ...limits, statement: head } : limits);
}

/** @internal exported for tests (buffer bounds, state). */
export class MysqlTracker implements SessionTracker, PacketSink {
  readonly meta: SessionMeta;
  readonly #opts: TrackerOptions;
  readonly #limits: MysqlLimits;
  readonly #client: PacketDecoder;
  readonly #server: PacketDecoder;
  readonly #flow: CommandFlow;
  readonly #r = new WireReader();
  readonly #ok = new OkPacket();
  readonly #startMs: number;
  readonly #startMono: number;
  #phase: Phase;
  #decoding: boolean;
  #ended: boolean;
  #started: boolean;
  #bytesIn: number;
  #bytesOut: number;
  #serverCaps: number;
  #serverMaria: number;
  #connectionId: number;
  #serverVersion: string;
  #sha2: string;
  #fatal: ErrPacket | null;
  /** Connection phase: the server's last packet asks the client for one (greeting, auth switch, auth data). */
  #clientTurn: boolean;

  constructor(opts: TrackerOptions, limits: MysqlLimits) {
    this.meta = opts.meta;
    this.#opts = opts;
    this.#limits = limits;
    this.#startMs = opts.clock.now();
    this.#startMono = opts.clock.monoMicros();
    const seq = new SeqCounter();
    this.#client = new PacketDecoder(this, seq, true);
    this.#server = new PacketDecoder(new ServerSink(this), seq);
    const rec = new MysqlStatementRecorder(opts.redact, opts.maxStatementBytes, opts.clock, opts.emit, opts.logParameters);
    this.#flow = new CommandFlow(opts, rec, limits, seq, (reason, detail) => this.#fail(reason, detail));
    this.#phase = Phase.Greeting;
    this.#decoding = true;
    this.#ended = false;
    this.#started = false;
    this.#bytesIn = 0;
    this.#bytesOut = 0;
    this.#serverCaps = 0;
    this.#serverMaria = 0;
    this.#connectionId = 0;
    this.#serverVersion = '';
    this.#sha2 = '';
    this.#fatal = null;
    this.#clientTurn = false;
  }

  /** Login done (or refused, or decoding stopped): the proxy's startup timeout no longer applies. */
  get established(): boolean {
    return this.#phase === Phase.Command || this.#phase === Phase.Closed || !this.decoding;
  }

  get decoding(): boolean {
    return this.#decoding;
  }
  get bufferedBytes(): number {
    return this.#client.bufferedBytes + this.#server.bufferedBytes;
  }
  get pendingOps(): number {
    return this.#flow.pendingOps;
  }
  /** The most commands that waited for the server at once in this session. */
  get peakPendingOps(): number {
    return this.#flow.peakPendingOps;
  }

  backlog(): Backlog {
    return this.#decoding && !this.#ended && this.#phase === Phase.Command ? this.#flow.backlog() : Backlog.Under;
  }
  get preparedStatements(): number {
    return this.#flow.preparedCount;
  }
  /** Negotiated capabilities (client ∩ server). */
  get capabilities(): number {
    return this.#flow.caps;
  }
  get inTransaction(): boolean {
    return (this.#flow.status & 0x1) !== 0;
  }
  get midFrame(): boolean {
    return this.#client.partial || this.#server.partial;
  }

  proxyErrorSeq(): number {
    if (!this.#decoding || this.#ended || this.#flow.terminated || this.#fatal !== null || this.#flow.fatal !== null || this.#server.partial) return -1;
    // Command phase: only while a command waits for its answer. Connection phase: after the client's next packet when it owes one (an auth switch, more auth data).
    if (this.#phase === Phase.Closed || (this.#phase === Phase.Command && this.#flow.pendingOps === 0)) return -1;
    if (this.#phase === Phase.Command || !this.#clientTurn) return this.#flow.seq.next;
    return (this.#flow.seq.next + 1) & 0xff;
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
      this.#fail(TrackerAnomaly.Truncated, this.#client.partial ? 'client packet cut by the end of the connection' : 'server packet cut by the end of the connection', false);
    }
    this.#ended = true;
    try {
      this.#sessionStart();
      this.#flow.abandon('connection_closed');
      const c = this.#opts.clock;
      const ev = makeEvent(EventKind.SessionEnd, this.meta, c.now());
      const d = c.monoMicros() - this.#startMono;
      ev.durationUs = BigInt(d > 0 ? Math.round(d) : 0);
      ev.bytesFromClient = BigInt(this.#bytesIn);
      ev.bytesToClient = BigInt(this.#bytesOut);
      ev.reason = this.#flow.terminated ? 'client_terminate' : reason;
      const fatal = this.#fatal ?? this.#flow.fatal;
      ev.detail = detail ?? (fatal ? `${fatal.code}: ${fatal.message}` : '');
      this.#opts.emit(ev);
    } catch {
      // emit failed: nothing more a tracker can do; the connection owns the error path
    }
  }

  // ---- client packets (PacketSink) ----

  get peekFirst(): boolean {
    return this.#phase === Phase.Command && this.#flow.clientPeek;
  }

  wants(first: number, length: number, seq: number): number {
    switch (this.#phase) {
      case Phase.Command:
        return this.#flow.clientWants(first, length, seq);
      case Phase.Handshake:
      case Phase.Auth:
        return this.#limits.handshake;
      case Phase.Closed:
        return Want.Skip;
      default:
        this.#fail(TrackerAnomaly.OutOfSync, 'client bytes before the server greeting');
        return Want.Stop;
    }
  }

  onPacket(_seq: number, buf: Buffer, start: number, end: number): boolean {
    if (this.#phase === Phase.Command) return this.#flow.clientPacket(buf, start, end, this.#client.declared);
    this.#clientTurn = false;
    if (this.#phase !== Phase.Handshake) return true; // auth data: passed through, never read
    if (isSslRequest(buf, start, end)) return this.#failed(TrackerAnomaly.TlsNotObserved, 'SSLRequest reached the server: TLS bytes follow');
    const hr = parseHandshakeResponse(buf, start, end);
    if (hr === null) return this.#failed(TrackerAnomaly.BadMessage, 'HandshakeResponse');
    const m = this.meta;
    m.user = hr.user;
    m.database = hr.database;
    m.applicationName = hr.attributes.get('program_name') ?? '';
    if (hr.authPlugin !== '') m.authMethod = hr.authPlugin;
    const caps = (hr.capabilities & this.#serverCaps) >>> 0;
    this.#flow.caps = caps;
    this.#flow.mariaCaps = hr.mariaCapabilities & this.#serverMaria;
    this.#flow.multiStatements = (caps & Cap.MultiStatements) !== 0;
    this.#sessionStart();
    this.#phase = Phase.Auth;
    if (caps & Cap.Compress) return this.#failed(TrackerAnomaly.CompressionNotObserved, 'client and server agreed on compression');
    return true;
  }

  onSkipped(_first: number, bytes: number, more: boolean): void {
    if (this.#phase === Phase.Command) this.#flow.clientSkipped(bytes, more);
  }

  canHead(first: number): boolean {
    return this.#phase === Phase.Command && this.#flow.canHead(first);
  }

  onDecodeError(reason: string, detail: string): void {
    this.#fail(reason, detail);
  }

  // ---- server packets (through ServerSink) ----

  /** @internal */
  serverWants(first: number, length: number, seq: number): number {
    switch (this.#phase) {
      case Phase.Command:
        return this.#flow.serverWants(first, length, seq);
      case Phase.Closed:
        return Want.Skip;
      default:
        return this.#limits.handshake;
    }
  }

  /** @internal */
  serverPacket(buf: Buffer, start: number, end: number): boolean {
    const first = buf[start];
    if (this.#phase !== Phase.Command) this.#clientTurn = true; // an OK or ERR ends the phase: the turn no longer matters
    switch (this.#phase) {
      case Phase.Command:
        return this.#flow.serverPacket(buf, start, end);
      case Phase.Greeting: {
        if (first === Resp.Err) return this.#loginFailed(buf, start, end, 0);
        const g = parseGreeting(buf, start, end);
        if (g === null) return this.#failed(first === 10 ? TrackerAnomaly.BadMessage : TrackerAnomaly.Unsupported, 'server greeting');
        this.#serverCaps = g.capabilities;
        this.#serverMaria = g.mariaCapabilities;
        this.#connectionId = g.connectionId;
        this.#serverVersion = g.serverVersion;
        if (g.authPlugin !== '') this.meta.authMethod = g.authPlugin;
        this.#flow.status = g.status;
        this.#phase = Phase.Handshake;
        return true;
      }
      case Phase.Auth:
        if (first === Resp.Ok) return this.#loginOk(buf, start, end);
        if (first === Resp.Err) return this.#loginFailed(buf, start, end, this.#flow.caps);
        if (first === Resp.Eof) {
          this.meta.authMethod = authSwitchPlugin(buf, start, end);
          return true;
        }
        if (first === Resp.AuthMoreData && end - start === 2) {
          if (buf[start + 1] === Sha2.FastAuthSuccess) this.#sha2 = 'fast_auth';
          else if (buf[start + 1] === Sha2.PerformFullAuth) this.#sha2 = 'full_auth';
        }
        return true; // auth-more-data and other rounds: passed through
      case Phase.Handshake:
        return this.#failed(TrackerAnomaly.OutOfSync, 'server packet before the handshake response');
      default:
        return true;
    }
  }

  /** @internal */
  serverSkipped(more: boolean): void {
    if (this.#phase === Phase.Command) this.#flow.serverSkipped(more);
  }

  #loginOk(buf: Buffer, start: number, end: number): boolean {
    this.#phase = Phase.Command;
    if (parseOk(this.#r.reset(buf, start, end), this.#flow.caps, this.#ok)) this.#flow.status = this.#ok.status;
    const ev = makeEvent(EventKind.LoginSuccess, this.meta, this.#opts.clock.now());
    let detail = `connection_id=${this.#connectionId} server_version=${this.#serverVersion}`;
    if (this.#sha2 !== '') detail += ` ${this.#sha2}`;
    ev.detail = detail;
    this.#opts.emit(ev);
    return true;
  }

  #loginFailed(buf: Buffer, start: number, end: number, caps: number): boolean {
    const e = new ErrPacket();
    if (!parseErr(this.#r.reset(buf, start, end), caps | Cap.Protocol41, e)) return this.#failed(TrackerAnomaly.BadMessage, 'ERR');
    e.message = cutMessage(e.message);
    this.#sessionStart();
    const ev = makeEvent(EventKind.LoginFailure, this.meta, this.#opts.clock.now());
    ev.errorCode = String(e.code);
    ev.sqlstate = e.sqlstate;
    ev.errorMessage = e.message;
    ev.errorSeverity = 'FATAL';
    if (this.#connectionId !== 0) ev.detail = `connection_id=${this.#connectionId}`;
    this.#opts.emit(ev);
    this.#fatal = e;
    this.#phase = Phase.Closed;
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
      this.#sessionStart();
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

/** Routes server packets to the tracker's server-side handlers. */
class ServerSink implements PacketSink {
  readonly #t: MysqlTracker;
  constructor(t: MysqlTracker) {
    this.#t = t;
  }
  get peekFirst(): boolean {
    return true; // a server never sends an empty message
  }
  wants(first: number, length: number, seq: number): number {
    return this.#t.serverWants(first, length, seq);
  }
  onPacket(_seq: number, buf: Buffer, start: number, end: number): boolean {
    return this.#t.serverPacket(buf, start, end);
  }
  onSkipped(_first: number, _bytes: number, more: boolean): void {
    this.#t.serverSkipped(more);
  }
  canHead(): boolean {
    return false;
  }
  onDecodeError(reason: string, detail: string): void {
    this.#t.onDecodeError(reason, detail);
  }
}
