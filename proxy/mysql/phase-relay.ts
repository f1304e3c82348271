import type { Duplex } from 'node:stream';
import { AuditError, ErrorCode } from '../../lib/errors.js';
import { Resp } from './packets.js';

/**
 * Relays the rest of a MySQL connection phase when the proxy's TLS
 * choices put the two hops' sequence ids out of step: the client's
 * SSLRequest (seq 1) was answered here and never reached a plain-text
 * server, or the proxy sent one to the server that the client never sent.
 * Every packet's sequence id is shifted by `delta` toward the server (and
 * back toward the client) until the server's OK or ERR ends the phase;
 * each packet is shown to the tracker as it reaches the other side. What
 * arrives after that is returned for steady-state forwarding (observed).
 */
export class PhaseRelay {
  readonly #client: Duplex;
  readonly #server: Duplex;
  readonly #delta: number;
  readonly #cap: number;
  readonly #observe: (direction: 'client' | 'server', bytes: Buffer) => void;
  #cbuf: Buffer;
  #sbuf: Buffer;
  #done = false;
  #resolve: (v: { toServer: Buffer; toClient: Buffer }) => void = () => undefined;
  #reject: (err: Error) => void = () => undefined;

  constructor(client: Duplex, server: Duplex, clientPending: Buffer, serverPending: Buffer, delta: number, cap: number, observe: (direction: 'client' | 'server', bytes: Buffer) => void) {
    this.#client = client;
    this.#server = server;
    this.#delta = delta;
    this.#cap = cap;
    this.#observe = observe;
    this.#cbuf = clientPending;
    this.#sbuf = serverPending;
  }

  run(): Promise<{ toServer: Buffer; toClient: Buffer }> {
    return new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
      const c = this.#client;
      const s = this.#server;
      c.on('data', this.#onClient);
      s.on('data', this.#onServer);
      c.on('end', this.#onClientEnd);
      c.on('close', this.#onClientEnd);
      s.on('end', this.#onServerEnd);
      s.on('close', this.#onServerEnd);
      c.on('error', this.#onError);
      s.on('error', this.#onError);
      this.#pump();
      if (!this.#done) {
        c.resume();
        s.resume();
      }
    });
  }

  readonly #onClient = (chunk: Buffer): void => {
    this.#cbuf = this.#cbuf.length === 0 ? chunk : Buffer.concat([this.#cbuf, chunk]);
    this.#pump();
  };
  readonly #onServer = (chunk: Buffer): void => {
    this.#sbuf = this.#sbuf.length === 0 ? chunk : Buffer.concat([this.#sbuf, chunk]);
    this.#pump();
  };
  readonly #onClientEnd = (): void => this.#finish(new AuditError(ErrorCode.Closed, 'client left during authentication'));
  readonly #onServerEnd = (): void => this.#finish(new AuditError(ErrorCode.Upstream, 'database closed the connection during authentication'));
  readonly #onError = (err: Error): void => this.#finish(AuditError.from(err, ErrorCode.Upstream, 'connection failed during authentication'));

  #pump(): void {
    if (this.#done) return;
    // Server first: its OK/ERR ends the phase, and client bytes after it are steady state.
    for (;;) {
      const p = this.#take('server');
      if (p === null) break;
      if (p === undefined) return;
      p[3] = (p[3] - this.#delta) & 0xff;
      this.#client.write(p);
      this.#observe('server', p);
      const first = p.length > 4 ? p[4] : -1;
      if (first === Resp.Ok || first === Resp.Err) {
        this.#finish(null);
        return;
      }
    }
    for (;;) {
      const p = this.#take('client');
      if (p === null) break;
      if (p === undefined) return;
      p[3] = (p[3] + this.#delta) & 0xff;
      this.#server.write(p);
      this.#observe('client', p);
    }
  }

  /** The next whole packet (a copy) from one side, null when incomplete, undefined after a failure. */
  #take(side: 'client' | 'server'): Buffer | null | undefined {
    const buf = side === 'client' ? this.#cbuf : this.#sbuf;
    if (buf.length < 4) return null;
    const len = buf[0] | (buf[1] << 8) | (buf[2] << 16);
    if (len > this.#cap) {
      this.#finish(new AuditError(side === 'client' ? ErrorCode.Protocol : ErrorCode.Upstream, `authentication packet of ${len} bytes over the ${this.#cap}-byte limit`));
      return undefined;
    }
    if (buf.length < 4 + len) return null;
    const p = Buffer.from(buf.subarray(0, 4 + len));
    if (side === 'client') this.#cbuf = buf.subarray(4 + len);
    else this.#sbuf = buf.subarray(4 + len);
    return p;
  }

  #finish(err: AuditError | null): void {
    if (this.#done) return;
    this.#done = true;
    const c = this.#client;
    const s = this.#server;
    c.pause();
    s.pause();
    c.off('data', this.#onClient);
    s.off('data', this.#onServer);
    c.off('end', this.#onClientEnd);
    c.off('close', this.#onClientEnd);
    s.off('end', this.#onServerEnd);
    s.off('close', this.#onServerEnd);
    c.off('error', this.#onError);
    s.off('error', this.#onError);
    if (err !== null) {
      this.#reject(err);
      return;
    }
    const toServer = this.#cbuf;
    const toClient = this.#sbuf;
    if (toClient.length > 0) this.#observe('server', toClient);
    if (toServer.length > 0) this.#observe('client', toServer);
    this.#resolve({ toServer, toClient });
  }
}
