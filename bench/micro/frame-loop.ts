/**
 * The ceiling: the barest framing loop a proxy could run — read a header,
 * skip the body by length, carry a split header or body to the next chunk.
 * No caps, no dispatch, no callbacks. One state per direction.
 */
export class FrameLoop {
  /** Body bytes still to skip from the previous chunk. */
  #skip = 0;
  readonly #hdr = Buffer.alloc(5);
  #hdrLen = 0;
  /** PostgreSQL: type byte + int32 BE length that counts itself; MySQL: int24 LE length + seq. */
  readonly #mysql: boolean;
  /** PostgreSQL client side: the first message (startup) has no type byte. */
  #untyped: boolean;
  messages = 0;

  constructor(kind: 'pg-client' | 'pg-server' | 'mysql') {
    this.#mysql = kind === 'mysql';
    this.#untyped = kind === 'pg-client';
  }

  push(buf: Buffer): void {
    let at = 0;
    const n = buf.length;
    if (this.#skip > 0) {
      const s = Math.min(this.#skip, n);
      this.#skip -= s;
      at = s;
    }
    while (at < n) {
      const hs = this.#mysql ? 4 : this.#untyped ? 4 : 5;
      let body: number;
      if (this.#hdrLen > 0 || n - at < hs) {
        const take = Math.min(hs - this.#hdrLen, n - at);
        buf.copy(this.#hdr, this.#hdrLen, at, at + take);
        this.#hdrLen += take;
        at += take;
        if (this.#hdrLen < hs) return;
        body = this.#bodyLength(this.#hdr, 0);
        this.#hdrLen = 0;
      } else {
        body = this.#bodyLength(buf, at);
        at += hs;
      }
      this.messages++;
      const avail = n - at;
      if (body > avail) {
        this.#skip = body - avail;
        return;
      }
      at += body;
    }
  }

  #bodyLength(b: Buffer, at: number): number {
    if (this.#mysql) return b[at] | (b[at + 1] << 8) | (b[at + 2] << 16);
    if (this.#untyped) {
      this.#untyped = false;
      return ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) - 4;
    }
    return ((b[at + 1] << 24) | (b[at + 2] << 16) | (b[at + 3] << 8) | b[at + 4]) - 4;
  }
}
