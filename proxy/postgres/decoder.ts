import { FRAME_STOP, FrameBuffer, FrameStatus, RETAIN_BYTES, frameSkip, type FrameHandler } from '../wire/frame-buffer.js';
import { Backend, Frontend, StartupCode } from './messages.js';

/**
 * PostgreSQL framing, one decoder per direction: bytes in, frames out by
 * callback. It knows the startup phase (untyped, length-prefixed messages)
 * and the typed phase, which message types each side may send, and the cap
 * on every frame it buffers; rows, COPY data and notices are skipped by
 * length and never buffered. No I/O, clock, logging or events here.
 */

/** Result of `push`. */
export const DecodeResult = {
  Ready: FrameStatus.Ready,
  NeedMore: FrameStatus.NeedMore,
  OutOfSync: FrameStatus.Stopped,
} as const;
export type DecodeResult = (typeof DecodeResult)[keyof typeof DecodeResult];

/** Anomaly reasons raised by framing. */
export const DecodeError = {
  BadLength: 'bad_length',
  Oversized: 'oversized_message',
  Unknown: 'unknown_message',
  Unsupported: 'unsupported_protocol',
  OutOfSync: 'out_of_sync',
} as const;

export interface PgFrameSink {
  /** An untyped startup-phase message: `code` is the int32 after the length; parameters start at `start + 8`. */
  onStartup(code: number, buf: Buffer, start: number, end: number): boolean;
  /** A typed message whose body is `buf[bodyStart, end)`. False stops decoding. */
  onMessage(type: number, buf: Buffer, bodyStart: number, end: number): boolean;
  /** A message skipped by length (DataRow, CopyData, notices…): its type and body size, seen at its header. */
  onSkipped(type: number, bodyBytes: number): boolean;
  /** The server's 1-byte answer to SSLRequest / GSSENCRequest. */
  onAnswer(byte: number): boolean;
  /** Framing failed: nothing more will be delivered. `detail` never holds payload text. */
  onDecodeError(reason: string, detail: string): void;
}

/** Caps on buffered frames, in bytes (whole frame, header included). */
export interface PgLimits {
  /** StartupMessage and other untyped startup requests (PostgreSQL's own limit). */
  startup: number;
  /**
   * Client messages carrying SQL or values: Query, Parse, Bind, FunctionCall.
   * A longer one is not an error: its first `statement` bytes are delivered
   * as a head (`PgDecoder.declared` says how long the body really is) and
   * the rest is skipped by length as it streams through.
   */
  statement: number;
  /** Other client messages we parse: Describe, Close, Execute, password/SASL/GSS, CopyFail. */
  clientControl: number;
  /** ErrorResponse. */
  error: number;
  /** Other server messages we parse: Authentication, CommandComplete, ParameterStatus, Copy*Response. */
  serverControl: number;
}

export const DEFAULT_LIMITS: Readonly<PgLimits> = Object.freeze({
  startup: 10_000,
  statement: 1024 * 1024,
  // GSS tokens may be up to 65 535 bytes (PG_MAX_AUTH_TOKEN_LENGTH), in 'p' and in 'R' messages.
  clientControl: 128 * 1024,
  error: 1024 * 1024,
  serverControl: 128 * 1024,
});

/**
 * The most memory one decoder with these limits may hold for partial
 * frames: the largest cap, rounded up the way the frame buffer grows
 * (powers of two up to RETAIN_BYTES, exact size above).
 */
export function maxBuffered(l: PgLimits): number {
  let most = 0;
  for (const cap of [l.startup, l.statement, l.clientControl, l.error, l.serverControl]) {
    let size = cap;
    if (cap <= RETAIN_BYTES) {
      size = 64;
      while (size < cap) size *= 2;
      if (size > RETAIN_BYTES) size = RETAIN_BYTES;
    }
    if (size > most) most = size;
  }
  return most;
}

const UNKNOWN = 0;
const PARSE = 1;
const SKIP = 2;
/** Delivered, with a fixed total length. */
const FIXED = 3;
/** Delivered whole up to the cap; past it, the head up to the cap is delivered and the rest skipped. */
const HEAD = 4;

class TypeTable {
  readonly disposition = new Uint8Array(256);
  readonly cap = new Uint32Array(256);
  set(type: number, disposition: number, cap: number): void {
    this.disposition[type] = disposition;
    this.cap[type] = cap;
  }
}

function clientTable(l: PgLimits): TypeTable {
  const t = new TypeTable();
  for (const c of [Frontend.Query, Frontend.Parse, Frontend.Bind, Frontend.FunctionCall]) t.set(c, HEAD, l.statement);
  for (const c of [Frontend.Describe, Frontend.Close, Frontend.Execute, Frontend.Password, Frontend.CopyFail]) t.set(c, PARSE, l.clientControl);
  for (const c of [Frontend.Sync, Frontend.Flush, Frontend.Terminate, Frontend.CopyDone]) t.set(c, FIXED, 5);
  t.set(Frontend.CopyData, SKIP, 0);
  return t;
}

function serverTable(l: PgLimits): TypeTable {
  const t = new TypeTable();
  t.set(Backend.ErrorResponse, PARSE, l.error);
  for (const c of [Backend.Authentication, Backend.CommandComplete, Backend.ParameterStatus, Backend.CopyInResponse, Backend.CopyOutResponse, Backend.CopyBothResponse]) {
    t.set(c, PARSE, l.serverControl);
  }
  for (const c of [Backend.ParseComplete, Backend.BindComplete, Backend.CloseComplete, Backend.NoData, Backend.PortalSuspended, Backend.EmptyQueryResponse, Backend.CopyDone]) {
    t.set(c, FIXED, 5);
  }
  t.set(Backend.ReadyForQuery, FIXED, 6);
  t.set(Backend.BackendKeyData, PARSE, 5 + 4 + 256); // pid + secret (up to 256 bytes in protocol 3.2)
  for (const c of [Backend.DataRow, Backend.CopyData, Backend.RowDescription, Backend.ParameterDescription, Backend.NoticeResponse, Backend.NotificationResponse, Backend.FunctionCallResponse, Backend.NegotiateProtocolVersion]) {
    t.set(c, SKIP, 0);
  }
  return t;
}

const Phase = { Startup: 0, Typed: 1, Answer: 2, Closed: 3 } as const;
type Phase = (typeof Phase)[keyof typeof Phase];

export class PgDecoder implements FrameHandler {
  readonly #sink: PgFrameSink;
  readonly #table: TypeTable;
  readonly #startupCap: number;
  readonly #frames: FrameBuffer;
  #phase: Phase;
  headerSize: number;
  /** Bytes after the delivered head of the frame in flight (FrameHandler). */
  tail: number;
  /** Body length the frame being delivered declares when only its head is delivered; -1 when the body is whole. */
  declared: number;

  constructor(side: 'client' | 'server', sink: PgFrameSink, limits: PgLimits = DEFAULT_LIMITS) {
    this.#sink = sink;
    this.#table = side === 'client' ? clientTable(limits) : serverTable(limits);
    this.#startupCap = limits.startup;
    this.#frames = new FrameBuffer(this);
    this.#phase = side === 'client' ? Phase.Startup : Phase.Typed;
    this.headerSize = side === 'client' ? 4 : 5;
    this.tail = 0;
    this.declared = -1;
  }

  push(chunk: Buffer): DecodeResult {
    return this.#frames.push(chunk);
  }

  get bufferedBytes(): number {
    return this.#frames.bufferedBytes;
  }
  get stopped(): boolean {
    return this.#frames.stopped;
  }
  /** True while a frame is incomplete. */
  get partial(): boolean {
    return this.#frames.partial;
  }
  /** True while the client side is still in the untyped startup phase. */
  get inStartup(): boolean {
    return this.#phase === Phase.Startup;
  }

  /** Server side: the next byte is a bare answer to SSLRequest / GSSENCRequest. */
  expectAnswer(): void {
    this.#set(Phase.Answer);
  }
  /** Client side: nothing more may follow (after CancelRequest). */
  close(): void {
    this.#set(Phase.Closed);
  }
  /** Stops decoding without an error callback (the tracker gave up for its own reason). */
  stop(): void {
    this.#frames.stop();
  }

  onHeader(buf: Buffer, at: number): number {
    switch (this.#phase) {
      case Phase.Typed:
        return this.#typedHeader(buf, at);
      case Phase.Startup: {
        const len = buf.readInt32BE(at);
        if (len < 8) return this.#fail(DecodeError.BadLength, `startup length ${len}`);
        if (len > this.#startupCap) return this.#fail(DecodeError.Oversized, `startup length ${len} over ${this.#startupCap}`);
        this.tail = 0;
        return len - 4;
      }
      case Phase.Answer:
        this.tail = 0;
        return 0;
      default:
        return this.#fail(DecodeError.OutOfSync, 'data after CancelRequest');
    }
  }

  #typedHeader(buf: Buffer, at: number): number {
    const type = buf[at];
    const len = buf.readInt32BE(at + 1);
    const t = this.#table;
    const d = t.disposition[type];
    if (d === UNKNOWN) return this.#fail(DecodeError.Unknown, `message type 0x${type.toString(16)}`);
    if (len < 4) return this.#fail(DecodeError.BadLength, `type 0x${type.toString(16)} length ${len}`);
    if (d === SKIP) return this.#sink.onSkipped(type, len - 4) ? frameSkip(len - 4) : this.#stopped();
    const cap = t.cap[type];
    this.tail = 0;
    this.declared = -1;
    if (d === FIXED) {
      if (len + 1 !== cap) return this.#fail(DecodeError.BadLength, `type 0x${type.toString(16)} length ${len}`);
    } else if (len + 1 > cap) {
      if (d !== HEAD) return this.#fail(DecodeError.Oversized, `type 0x${type.toString(16)} length ${len} over ${cap}`);
      // Too long to hold: the head is delivered, the rest streams through unread.
      this.tail = len + 1 - cap;
      this.declared = len - 4;
      return cap - 5;
    }
    return len - 4;
  }

  onFrame(buf: Buffer, start: number, end: number): boolean {
    switch (this.#phase) {
      case Phase.Typed:
        return this.#sink.onMessage(buf[start], buf, start + 5, end);
      case Phase.Answer:
        this.#set(Phase.Typed);
        return this.#sink.onAnswer(buf[start]);
      default:
        return this.#startup(buf, start, end);
    }
  }

  #startup(buf: Buffer, start: number, end: number): boolean {
    const len = end - start;
    const code = buf.readInt32BE(start + 4);
    if (code === StartupCode.SSLRequest || code === StartupCode.GSSENCRequest) {
      if (len !== 8) return this.#reject(DecodeError.BadLength, `request length ${len}`);
    } else if (code === StartupCode.CancelRequest) {
      if (len < 16 || len > 16 + 256) return this.#reject(DecodeError.BadLength, `cancel length ${len}`);
      this.#set(Phase.Closed);
    } else if (code >>> 16 === 3) {
      this.#set(Phase.Typed);
    } else if (code >>> 16 === 2 || code >>> 16 === 1) {
      return this.#reject(DecodeError.Unsupported, `protocol ${code >>> 16}.${code & 0xffff}`);
    } else {
      return this.#reject(DecodeError.Unknown, `startup code ${code}`);
    }
    return this.#sink.onStartup(code, buf, start, end);
  }

  #set(phase: Phase): void {
    this.#phase = phase;
    this.headerSize = phase === Phase.Typed ? 5 : phase === Phase.Startup ? 4 : 1;
  }

  #fail(reason: string, detail: string): number {
    this.#sink.onDecodeError(reason, detail);
    return FRAME_STOP;
  }

  #reject(reason: string, detail: string): false {
    this.#sink.onDecodeError(reason, detail);
    return false;
  }

  #stopped(): number {
    return FRAME_STOP;
  }
}
