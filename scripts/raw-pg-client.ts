// A scripted PostgreSQL client over a raw socket, for traffic that psql and
// node-postgres do not produce: Execute with a row limit (PortalSuspended),
// many Executes pipelined before one Sync, an error that makes the server
// skip to Sync, Flush, Describe/Close, CopyFail, FunctionCall, CancelRequest.
// Messages are built with pg-protocol's serializer; replies are framed just
// enough (type + length) to know when to send the next batch.
import { connect, type Socket } from 'node:net';

export class RawPgClient {
  readonly #socket: Socket;
  #buf = Buffer.alloc(0);
  #waiters: Array<() => void> = [];
  #closed = false;
  /** Backend key data (pid, secret) once the startup finished. */
  backendPid = 0;
  secretKey = 0;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on('data', (d: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, d]);
      this.#wake();
    });
    socket.on('close', () => {
      this.#closed = true;
      this.#wake();
    });
    socket.on('error', () => undefined);
  }

  static open(port: number, host = '127.0.0.1'): Promise<RawPgClient> {
    return new Promise((resolve, reject) => {
      const s = connect({ host, port }, () => resolve(new RawPgClient(s)));
      s.once('error', reject);
    });
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  send(...messages: Buffer[]): void {
    this.#socket.write(Buffer.concat(messages));
  }

  /** Read complete messages until `stop(type, body)` returns true; returns the types seen. */
  async until(stop: (type: string, body: Buffer) => boolean): Promise<string[]> {
    const seen: string[] = [];
    for (;;) {
      while (this.#buf.length >= 5) {
        const len = this.#buf.readInt32BE(1);
        if (this.#buf.length < 1 + len) break;
        const type = String.fromCharCode(this.#buf[0]!);
        const body = this.#buf.subarray(5, 1 + len);
        this.#buf = this.#buf.subarray(1 + len);
        seen.push(type);
        if (type === 'K') {
          this.backendPid = body.readInt32BE(0);
          this.secretKey = body.readInt32BE(4);
        }
        if (stop(type, body)) return seen;
      }
      if (this.#closed) throw new Error(`connection closed; seen ${seen.join('')}`);
      await new Promise<void>((r) => this.#waiters.push(r));
    }
  }

  /** Wait for `n` ReadyForQuery messages. */
  async ready(n = 1): Promise<string[]> {
    let left = n;
    return this.until((t) => t === 'Z' && --left === 0);
  }

  end(): Promise<void> {
    return new Promise((resolve) => {
      if (this.#closed) return resolve();
      this.#socket.once('close', () => resolve());
      this.#socket.end();
    });
  }
}

/** A FunctionCall ('F') message: text-format arguments, text result. */
export function functionCall(oid: number, args: readonly string[]): Buffer {
  const parts: Buffer[] = [];
  const head = Buffer.alloc(4 + 2 + 2 + 2);
  head.writeInt32BE(oid, 0);
  head.writeInt16BE(1, 4); // one format code for all arguments
  head.writeInt16BE(0, 6); // text
  head.writeInt16BE(args.length, 8);
  parts.push(head);
  for (const a of args) {
    const v = Buffer.from(a, 'utf8');
    const l = Buffer.alloc(4);
    l.writeInt32BE(v.length, 0);
    parts.push(l, v);
  }
  const tail = Buffer.alloc(2);
  tail.writeInt16BE(0, 0); // text result
  parts.push(tail);
  const body = Buffer.concat(parts);
  const msg = Buffer.alloc(5);
  msg.write('F', 0, 'latin1');
  msg.writeInt32BE(4 + body.length, 1);
  return Buffer.concat([msg, body]);
}
