import type { Duplex } from 'node:stream';
import { AuditError, ErrorCode } from '../../lib/errors.js';

/**
 * Reads the first few messages of a connection (the part the proxy must
 * own: SSL negotiation, MySQL's greeting) before steady-state forwarding
 * starts. It buffers at most `cap` bytes, and hands back whatever arrived
 * past the message asked for, so no byte is lost when forwarding begins.
 */
export class SocketReader {
  #socket: Duplex;
  #buf: Buffer = Buffer.alloc(0);
  #waiter: (() => void) | undefined;
  #error: Error | undefined;
  #ended = false;
  readonly #onData = (chunk: Buffer): void => {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    this.#wake();
  };
  readonly #onEnd = (): void => {
    this.#ended = true;
    this.#wake();
  };
  readonly #onError = (err: Error): void => {
    this.#error = err;
    this.#wake();
  };

  constructor(socket: Duplex) {
    this.#socket = socket;
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('close', this.#onEnd);
    socket.on('error', this.#onError);
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
  }

  /** Waits until at least `n` bytes are buffered (n ≤ cap), then returns exactly n of them. */
  async read(n: number, cap: number): Promise<Buffer> {
    if (n > cap) throw new AuditError(ErrorCode.Protocol, `message of ${n} bytes exceeds the ${cap}-byte limit of the connection phase`);
    while (this.#buf.length < n) {
      if (this.#error) throw AuditError.from(this.#error, ErrorCode.Protocol, 'connection failed during negotiation');
      if (this.#ended) throw new AuditError(ErrorCode.Closed, 'connection closed during negotiation');
      await new Promise<void>((resolve) => (this.#waiter = resolve));
    }
    const out = this.#buf.subarray(0, n);
    this.#buf = this.#buf.subarray(n);
    return Buffer.from(out);
  }

  /** Peeks at the buffered bytes without consuming them (waits for at least `n`). */
  async peek(n: number, cap: number): Promise<Buffer> {
    const b = await this.read(n, cap);
    this.#buf = this.#buf.length === 0 ? b : Buffer.concat([b, this.#buf]);
    return b;
  }

  /** Stops reading and returns the bytes that arrived beyond what was read. The socket is left paused. */
  detach(): Buffer {
    this.#socket.pause();
    this.#socket.off('data', this.#onData);
    this.#socket.off('end', this.#onEnd);
    this.#socket.off('close', this.#onEnd);
    this.#socket.off('error', this.#onError);
    const rest = this.#buf;
    this.#buf = Buffer.alloc(0);
    return rest;
  }
}
