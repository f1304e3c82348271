/**
 * Bounds-checked reads over a view of one frame. A read past `end` never
 * throws: it marks the reader failed and returns a neutral value (0, '');
 * the caller checks `ok` once after a run of reads. One reader is reused
 * for every frame of a session (`reset`), so reading allocates nothing but
 * the strings it returns.
 */
export class WireReader {
  #buf: Buffer;
  #pos: number;
  #end: number;
  #ok: boolean;

  constructor() {
    this.#buf = EMPTY;
    this.#pos = 0;
    this.#end = 0;
    this.#ok = true;
  }

  /** Points the reader at `buf[start, end)`. */
  reset(buf: Buffer, start: number, end: number): this {
    this.#buf = buf;
    this.#pos = start;
    this.#end = end <= buf.length ? end : buf.length;
    this.#ok = start >= 0 && start <= this.#end;
    return this;
  }

  /** False once any read went past the end (or a value was invalid). */
  get ok(): boolean {
    return this.#ok;
  }
  get position(): number {
    return this.#pos;
  }
  get remaining(): number {
    return this.#ok ? this.#end - this.#pos : 0;
  }
  /** True when every byte was consumed and no read failed. */
  get atEnd(): boolean {
    return this.#ok && this.#pos === this.#end;
  }

  /** Marks the frame invalid (a value the caller found out of range). */
  fail(): void {
    this.#ok = false;
  }

  uint8(): number {
    if (!this.#ok || this.#pos + 1 > this.#end) return this.#failed(0);
    return this.#buf[this.#pos++];
  }

  int16(): number {
    if (!this.#ok || this.#pos + 2 > this.#end) return this.#failed(0);
    const v = this.#buf.readInt16BE(this.#pos);
    this.#pos += 2;
    return v;
  }

  int32(): number {
    if (!this.#ok || this.#pos + 4 > this.#end) return this.#failed(0);
    const v = this.#buf.readInt32BE(this.#pos);
    this.#pos += 4;
    return v;
  }

  /** A NUL-terminated UTF-8 string; fails when no NUL is found before the end. */
  cstring(): string {
    const start = this.#pos;
    const nul = this.cstringEnd();
    if (nul < 0) return '';
    return this.#buf.toString('utf8', start, nul);
  }

  /**
   * Skips a NUL-terminated string and returns the index of its NUL (the
   * string is `[old position, result)`), or -1 when there is none.
   */
  cstringEnd(): number {
    if (!this.#ok) return -1;
    const nul = this.#buf.indexOf(0, this.#pos);
    if (nul < 0 || nul >= this.#end) {
      this.#ok = false;
      return -1;
    }
    this.#pos = nul + 1;
    return nul;
  }

  /** Advances `n` bytes and returns where they started, or -1 past the end. */
  skip(n: number): number {
    if (!this.#ok || n < 0 || this.#pos + n > this.#end) return this.#failed(-1);
    const at = this.#pos;
    this.#pos += n;
    return at;
  }

  /** The underlying buffer (for callers that read a span returned by `skip`). */
  get buffer(): Buffer {
    return this.#buf;
  }

  #failed(v: number): number {
    this.#ok = false;
    return v;
  }
}

const EMPTY = Buffer.alloc(0);
