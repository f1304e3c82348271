/**
 * The framing engine shared by the wire decoders: one per direction.
 *
 * - A frame wholly inside the incoming chunk is handed to the handler as a
 *   view of that chunk (no copy). Views are valid only during the call.
 * - A frame split across chunks is copied once into the pending buffer,
 *   sized exactly for it, and handed out when complete. The pending buffer
 *   only ever holds the one incomplete frame (so there is nothing to
 *   compact): small frames reuse a buffer that grows x2 up to
 *   `RETAIN_BYTES`; anything larger gets an exact-size buffer that is
 *   dropped (back to empty) as soon as the frame is delivered.
 * - The handler sees each header before anything is buffered and decides:
 *   deliver the body (after checking the declared length against its cap),
 *   skip it by length (rows, COPY data: counted, never buffered, the
 *   remaining bytes to skip are carried across chunks), deliver only its
 *   head and skip the rest (`tail`: a statement too long to hold), or stop.
 *
 * Nothing here throws on input; the handler stops the stream by returning
 * `FRAME_STOP` / false, after which every push returns `FrameStatus.Stopped`.
 */

/** Result of a push. */
export const FrameStatus = {
  /** Every byte was consumed and no frame is partially buffered. */
  Ready: 0,
  /** A frame (or a skipped body) continues in the next chunk. */
  NeedMore: 1,
  /** The handler stopped decoding (out of sync, over a cap); later bytes are ignored. */
  Stopped: 2,
} as const;
export type FrameStatus = (typeof FrameStatus)[keyof typeof FrameStatus];

/** `onHeader` result: stop decoding. */
export const FRAME_STOP = -1;

/** `onHeader` result meaning "skip `bodyBytes` bytes after the header". */
export function frameSkip(bodyBytes: number): number {
  return -bodyBytes - 2;
}

export interface FrameHandler {
  /** Header length of the next frame (read before each frame: it may change between phases). */
  readonly headerSize: number;
  /**
   * A complete header is at `buf[at, at + headerSize)`. Returns the body
   * length to deliver whole (>= 0), `frameSkip(n)` to skip an n-byte body,
   * or `FRAME_STOP`. Must check the length against its caps: what it
   * returns is what gets buffered.
   */
  onHeader(buf: Buffer, at: number): number;
  /** One whole frame, header included, at `buf[start, end)`. False stops decoding. */
  onFrame(buf: Buffer, start: number, end: number): boolean;
  /**
   * Read after `onHeader` returned a body length: bytes of the frame that
   * follow the delivered body and are skipped (0 or absent: the body is
   * the whole frame). Lets a handler keep the head of a frame too long to
   * hold.
   */
  readonly tail?: number;
}

/** Pending buffers up to this size are kept for reuse; larger ones are dropped once drained. */
export const RETAIN_BYTES = 64 * 1024;
const MIN_BYTES = 64;
const EMPTY = Buffer.alloc(0);

export class FrameBuffer {
  readonly #handler: FrameHandler;
  #buf: Buffer;
  /** Bytes of the incomplete frame held in #buf. */
  #fill: number;
  /** Total length of the incomplete frame once its header is known, else 0. */
  #need: number;
  /** Body bytes still to skip. */
  #skip: number;
  /** Bytes to skip once the buffered frame (a head) is delivered. */
  #tail: number;
  #stopped: boolean;

  constructor(handler: FrameHandler) {
    this.#handler = handler;
    this.#buf = EMPTY;
    this.#fill = 0;
    this.#need = 0;
    this.#skip = 0;
    this.#tail = 0;
    this.#stopped = false;
  }

  /** Bytes of memory held for partial frames (the bound the property tests check). */
  get bufferedBytes(): number {
    return this.#buf.length;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** True while a frame is incomplete (partly buffered, or its body still being skipped). */
  get partial(): boolean {
    return this.#fill > 0 || this.#skip > 0;
  }

  /** Stops decoding and releases the pending buffer. */
  stop(): void {
    this.#stopped = true;
    this.#buf = EMPTY;
    this.#fill = 0;
    this.#need = 0;
    this.#skip = 0;
    this.#tail = 0;
  }

  push(chunk: Buffer): FrameStatus {
    if (this.#stopped) return FrameStatus.Stopped;
    const len = chunk.length;
    let pos = 0;
    if (this.#skip > 0) {
      const n = this.#skip < len ? this.#skip : len;
      this.#skip -= n;
      pos = n;
      if (this.#skip > 0) return FrameStatus.NeedMore;
    }
    if (this.#fill > 0) {
      pos = this.#resume(chunk, pos);
      if (pos < 0) return this.#stopped ? FrameStatus.Stopped : FrameStatus.NeedMore;
    }
    const h = this.#handler;
    while (pos < len) {
      const hs = h.headerSize;
      if (len - pos < hs) {
        this.#hold(chunk, pos, len, hs);
        return FrameStatus.NeedMore;
      }
      const r = h.onHeader(chunk, pos);
      if (r === FRAME_STOP) return this.#stopAt();
      if (r < 0) {
        const body = -r - 2;
        const avail = len - pos - hs;
        if (body <= avail) {
          pos += hs + body;
          continue;
        }
        this.#skip = body - avail;
        return FrameStatus.NeedMore;
      }
      const total = hs + r;
      const tail = h.tail ?? 0;
      if (len - pos >= total) {
        if (!h.onFrame(chunk, pos, pos + total)) return this.#stopAt();
        pos += total;
        if (tail > 0) {
          if (tail > len - pos) {
            this.#skip = tail - (len - pos);
            return FrameStatus.NeedMore;
          }
          pos += tail;
        }
        continue;
      }
      this.#ensure(total);
      chunk.copy(this.#buf, 0, pos, len);
      this.#fill = len - pos;
      this.#need = total;
      this.#tail = tail;
      return FrameStatus.NeedMore;
    }
    return FrameStatus.Ready;
  }

  /** Continues the buffered frame; returns the next chunk position, or -1 when the chunk is used up or decoding stopped. */
  #resume(chunk: Buffer, pos: number): number {
    const len = chunk.length;
    const h = this.#handler;
    if (this.#need === 0) {
      const hs = h.headerSize;
      const take = Math.min(hs - this.#fill, len - pos);
      chunk.copy(this.#buf, this.#fill, pos, pos + take);
      this.#fill += take;
      pos += take;
      if (this.#fill < hs) return -1;
      const r = h.onHeader(this.#buf, 0);
      if (r === FRAME_STOP) {
        this.#stopAt();
        return -1;
      }
      if (r < 0) {
        const body = -r - 2;
        this.#fill = 0;
        this.#release();
        const n = Math.min(body, len - pos);
        this.#skip = body - n;
        pos += n;
        return this.#skip > 0 ? -1 : pos;
      }
      const total = hs + r;
      this.#tail = h.tail ?? 0;
      if (total > this.#buf.length) {
        const head = this.#buf;
        this.#buf = EMPTY;
        this.#ensure(total);
        head.copy(this.#buf, 0, 0, hs);
      }
      this.#need = total;
    }
    const take = Math.min(this.#need - this.#fill, len - pos);
    chunk.copy(this.#buf, this.#fill, pos, pos + take);
    this.#fill += take;
    pos += take;
    if (this.#fill < this.#need) return -1;
    const ok = h.onFrame(this.#buf, 0, this.#need);
    this.#fill = 0;
    this.#need = 0;
    this.#release();
    if (!ok) {
      this.#stopAt();
      return -1;
    }
    if (this.#tail > 0) {
      const n = Math.min(this.#tail, len - pos);
      this.#skip = this.#tail - n;
      this.#tail = 0;
      pos += n;
      if (this.#skip > 0) return -1;
    }
    return pos;
  }

  /** Keeps an incomplete header. */
  #hold(chunk: Buffer, pos: number, len: number, hs: number): void {
    this.#ensure(hs);
    chunk.copy(this.#buf, 0, pos, len);
    this.#fill = len - pos;
    this.#need = 0;
  }

  #ensure(total: number): void {
    const cur = this.#buf.length;
    if (cur >= total) return;
    let size: number;
    if (total > RETAIN_BYTES) size = total;
    else {
      size = cur < MIN_BYTES ? MIN_BYTES : cur * 2;
      while (size < total) size *= 2;
      if (size > RETAIN_BYTES) size = RETAIN_BYTES;
    }
    this.#buf = Buffer.allocUnsafe(size);
  }

  /** Drops a buffer that grew past the retained size once it is drained. */
  #release(): void {
    if (this.#buf.length > RETAIN_BYTES) this.#buf = EMPTY;
  }

  #stopAt(): FrameStatus {
    this.stop();
    return FrameStatus.Stopped;
  }
}
