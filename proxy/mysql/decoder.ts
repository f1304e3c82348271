import { FRAME_STOP, FrameBuffer, FrameStatus, RETAIN_BYTES, frameSkip, type FrameHandler } from '../wire/frame-buffer.js';
import { MAX_PACKET_PAYLOAD } from './packets.js';

/**
 * MySQL framing, one decoder per direction: bytes in, whole logical
 * messages out by callback. A message longer than 16 MiB - 1 arrives as
 * several packets; the decoder joins them (up to the cap the sink gives)
 * or skips them all by length. The sink decides per message from its first
 * payload byte, which the decoder reads with the header when the sink asks
 * for it (`peekFirst`: never where an empty packet is valid), so result
 * rows and LOAD DATA content are skipped by length, never buffered.
 * No I/O, clock, logging or events here.
 */

/** Result of `push` (as the PostgreSQL decoder's). */
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
  OutOfSync: 'out_of_sync',
} as const;

/** `wants` results besides a cap (>= 0: deliver messages up to that many payload bytes). */
export const Want = {
  Skip: -1,
  /** The sink reported the problem itself; decoding stops. */
  Stop: -2,
} as const;

export interface PacketSink {
  /** Read the first payload byte with the header (the next message is never empty). */
  readonly peekFirst: boolean;
  /**
   * A new message starts: `first` is its first payload byte (-1 when not
   * peeked), `length` the first packet's payload length, `seq` its sequence
   * id. Returns the cap to deliver it whole, `Want.Skip` or `Want.Stop`.
   */
  wants(first: number, length: number, seq: number): number;
  /** A whole message's payload at `buf[start, end)`; `seq` of its last packet. False stops decoding. */
  onPacket(seq: number, buf: Buffer, start: number, end: number): boolean;
  /** Payload bytes skipped (`more`: continuation packets of the same message). */
  onSkipped(first: number, bytes: number, more: boolean): void;
  /**
   * May a message starting with `first` that is over its cap (or longer
   * than one packet) be delivered as its head? Then `onPacket` gets the
   * first `cap` payload bytes (`PacketDecoder.declared` is the first
   * packet's whole length), and the rest of that packet and every
   * continuation stream through, reported to `onSkipped`.
   */
  canHead?(first: number): boolean;
  onDecodeError(reason: string, detail: string): void;
}

/** The next sequence id expected, shared by both directions of a session (a response continues the command's count). */
export class SeqCounter {
  next = 0;
  /**
   * Set while the client's packets belong to a command queued behind the one
   * being answered (a client that pipelines): they do not move `next`, which
   * follows the answer (a decoder built with `pipelining`).
   */
  hold = false;
}

const Cont = { None: 0, Deliver: 1, Skip: 2 } as const;
type Cont = (typeof Cont)[keyof typeof Cont];
const EMPTY = Buffer.alloc(0);

export class PacketDecoder implements FrameHandler {
  readonly #sink: PacketSink;
  readonly #fb: FrameBuffer;
  readonly #seq: SeqCounter;
  readonly #pipelining: boolean;
  /** Header size chosen for the frame being read (4, or 5 when the first byte is peeked). */
  #hs: number;
  #cont: Cont;
  /** The current packet is 0xFFFFFF long: another follows. */
  #more: boolean;
  #first: number;
  #prevSeq: number;
  #cap: number;
  /** A message of several packets being joined. */
  #asm: Buffer;
  #asmLen: number;
  /** Bytes after the delivered head of the packet in flight (FrameHandler). */
  tail: number;
  /** Payload length of the first packet when only a head of the message is delivered; -1 when whole. */
  declared: number;

  /** `pipelining`: the client's decoder, whose packets leave `seq` alone while `seq.hold` is set. */
  constructor(sink: PacketSink, seq: SeqCounter = new SeqCounter(), pipelining = false) {
    this.#sink = sink;
    this.#seq = seq;
    this.#pipelining = pipelining;
    this.#fb = new FrameBuffer(this);
    this.#hs = 4;
    this.#cont = Cont.None;
    this.#more = false;
    this.#first = -1;
    this.#prevSeq = 0;
    this.#cap = 0;
    this.#asm = EMPTY;
    this.#asmLen = 0;
    this.tail = 0;
    this.declared = -1;
  }

  push(chunk: Buffer): DecodeResult {
    return this.#fb.push(chunk);
  }

  stop(): void {
    this.#fb.stop();
    this.#asm = EMPTY;
    this.#asmLen = 0;
  }

  /** Memory held for partial messages. */
  get bufferedBytes(): number {
    return this.#fb.bufferedBytes + this.#asm.length;
  }

  /** True while a message is incomplete. */
  get partial(): boolean {
    return this.#fb.partial || this.#cont !== Cont.None;
  }

  get headerSize(): number {
    // A header already started keeps the size it was started with.
    if (this.#fb.partial) return this.#hs;
    this.#hs = this.#cont === Cont.None && this.#sink.peekFirst ? 5 : 4;
    return this.#hs;
  }

  onHeader(buf: Buffer, at: number): number {
    const len = buf[at] | (buf[at + 1] << 8) | (buf[at + 2] << 16);
    const seq = buf[at + 3];
    const peeked = this.#hs === 5;
    this.tail = 0;
    this.declared = -1;
    if (this.#cont !== Cont.None) {
      if (seq !== ((this.#prevSeq + 1) & 0xff)) return this.#error(DecodeError.OutOfSync, `continuation packet with sequence ${seq} after ${this.#prevSeq}`);
      this.#prevSeq = seq;
      if (!this.#pipelining || !this.#seq.hold) this.#seq.next = (seq + 1) & 0xff;
      this.#more = len === MAX_PACKET_PAYLOAD;
      if (this.#cont === Cont.Skip) {
        this.#sink.onSkipped(this.#first, len, true);
        if (!this.#more) this.#cont = Cont.None;
        return frameSkip(len);
      }
      if (this.#asmLen + len > this.#cap) return this.#error(DecodeError.Oversized, `message over ${this.#cap} bytes`);
      return len;
    }
    if (peeked && len === 0) return this.#error(DecodeError.BadLength, 'empty packet where a message was expected');
    const first = peeked ? buf[at + 4] : -1;
    const w = this.#sink.wants(first, len, seq);
    if (w === Want.Stop) return FRAME_STOP;
    this.#first = first;
    this.#prevSeq = seq;
    if (!this.#pipelining || !this.#seq.hold) this.#seq.next = (seq + 1) & 0xff;
    this.#more = len === MAX_PACKET_PAYLOAD;
    const body = peeked ? len - 1 : len;
    if (w === Want.Skip) {
      this.#sink.onSkipped(first, len, false);
      if (this.#more) this.#cont = Cont.Skip;
      return frameSkip(body);
    }
    if ((len > w || this.#more) && this.#sink.canHead?.(first) === true) {
      // Too long to hold: the head is delivered, the rest (and any continuation) streams through unread.
      const head = len > w ? w : len;
      this.tail = len - head;
      this.declared = len;
      if (this.#more) this.#cont = Cont.Skip;
      return peeked ? head - 1 : head;
    }
    if (len > w) return this.#error(DecodeError.Oversized, `message of ${len}+ bytes over the ${w}-byte cap`);
    if (this.#more) {
      this.#cont = Cont.Deliver;
      this.#cap = w;
      this.#asmLen = 0;
    }
    return body;
  }

  onFrame(buf: Buffer, start: number, end: number): boolean {
    if (this.#cont !== Cont.Deliver) return this.#sink.onPacket(buf[start + 3], buf, start + 4, end);
    const n = end - start - 4;
    this.#grow(this.#asmLen + n);
    buf.copy(this.#asm, this.#asmLen, start + 4, end);
    this.#asmLen += n;
    if (this.#more) return true;
    this.#cont = Cont.None;
    const asm = this.#asm;
    const len = this.#asmLen;
    this.#asm = EMPTY;
    this.#asmLen = 0;
    return this.#sink.onPacket(buf[start + 3], asm, 0, len);
  }

  #grow(need: number): void {
    if (this.#asm.length >= need) return;
    let size = this.#asm.length === 0 ? Math.max(need, 2 * MAX_PACKET_PAYLOAD + 1) : this.#asm.length * 2;
    if (size < need) size = need;
    if (size > this.#cap) size = this.#cap;
    const next = Buffer.allocUnsafe(size);
    this.#asm.copy(next, 0, 0, this.#asmLen);
    this.#asm = next;
  }

  #error(reason: string, detail: string): number {
    this.#sink.onDecodeError(reason, detail);
    return FRAME_STOP;
  }
}

/** The most one decoder may hold: a packet in the frame buffer plus a joined message up to `cap`. */
export function maxBuffered(cap: number): number {
  const packetBytes = Math.min(cap, MAX_PACKET_PAYLOAD) + 5;
  const fb = packetBytes > RETAIN_BYTES ? packetBytes : RETAIN_BYTES;
  return fb + (cap >= MAX_PACKET_PAYLOAD ? cap : 0);
}
