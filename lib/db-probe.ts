import net from 'node:net';
import tls from 'node:tls';

/**
 * Database reachability probes for /health/ready that speak just enough
 * protocol to leave no complaint in the server's log and to count as a
 * normal, finished connection:
 *
 * - PostgreSQL: an SSLRequest. The server answers one byte ('N' no TLS,
 *   'S' TLS, 'E' from servers that refuse it) and then waits for a startup
 *   packet; a connection that ends before sending one is not logged
 *   (ProcessStartupPacket: "If we get no data at all, don't clutter the log").
 *   After 'S' the TLS handshake is finished first, since a server that
 *   accepted TLS logs a connection dropped mid-handshake.
 * - MySQL/MariaDB: the server speaks first; the probe reads its greeting
 *   (protocol 10 handshake, or an error packet such as "too many
 *   connections" or "host blocked") and closes.
 */

export interface ProbeResult {
  ok: boolean;
  /** Why not, when not ok. */
  error?: string;
  /** Connect to answer. */
  latencyMs: number;
}

const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]); // length 8, code 80877103
const MAX_GREETING = 64 * 1024;

export function probeDatabase(protocol: 'postgres' | 'mysql', host: string, port: number, timeoutMs: number): Promise<ProbeResult> {
  const started = process.hrtime.bigint();
  const elapsed = (): number => Number(process.hrtime.bigint() - started) / 1e6;
  return new Promise((resolve) => {
    const socket = net.connect({ host, port, noDelay: true });
    let settled = false;
    let tlsSocket: tls.TLSSocket | undefined;
    const finish = (error?: string, graceful = false): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const s = tlsSocket ?? socket;
      if (graceful) {
        s.end();
        // A server that does not close its side promptly is not waited for.
        setTimeout(() => s.destroy(), 1_000).unref();
      } else {
        s.destroy();
      }
      resolve(error === undefined ? { ok: true, latencyMs: elapsed() } : { ok: false, error, latencyMs: elapsed() });
    };
    const timer = setTimeout(() => finish(`no answer from ${host}:${port} within ${timeoutMs}ms`), timeoutMs);
    timer.unref();
    socket.on('error', (err) => finish(`${host}:${port}: ${err.message}`));
    socket.on('close', () => finish(`${host}:${port} closed the connection without answering`));
    let buf = Buffer.alloc(0);
    if (protocol === 'postgres') {
      socket.once('connect', () => socket.write(SSL_REQUEST));
      socket.once('data', (chunk: Buffer) => {
        socket.pause();
        const answer = chunk[0];
        if (answer === 0x4e /* N */ || answer === 0x45 /* E */) return finish(undefined, true);
        if (answer !== 0x53 /* S */) return finish(`${host}:${port} is not a PostgreSQL server (answer 0x${answer.toString(16)} to SSLRequest)`);
        socket.removeAllListeners('close');
        socket.on('error', () => {});
        tlsSocket = tls.connect({ socket, rejectUnauthorized: false, servername: net.isIP(host) ? undefined : host });
        tlsSocket.once('secureConnect', () => finish(undefined, true));
        // The server answered: it is reachable even if we cannot agree on TLS.
        tlsSocket.once('error', () => finish(undefined));
        tlsSocket.on('error', () => {});
      });
    } else {
      socket.on('data', (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        if (buf.length < 4) return;
        const len = buf.readUIntLE(0, 3);
        if (len > MAX_GREETING) return finish(`${host}:${port} is not a MySQL server (greeting length ${len})`);
        if (buf.length < 4 + len) return;
        const first = buf[4];
        if (first === 0x0a) return finish(undefined, true);
        if (first === 0xff && len >= 3) {
          const code = buf.readUInt16LE(5);
          const text = buf.subarray(7, 4 + len).toString('utf8').replace(/^#[0-9A-Z]{5}/, '');
          return finish(`${host}:${port} refused connections: ${code} ${text}`.slice(0, 300));
        }
        finish(`${host}:${port} is not a MySQL server (greeting byte 0x${first.toString(16)})`);
      });
    }
  });
}

/**
 * A probe result kept for `ttlMs` so that readiness polls (every load
 * balancer and kubelet asking every few seconds) cost the database at most
 * one connection per ttl; concurrent callers share one probe in flight.
 */
export class CachedProbe {
  readonly #run: () => Promise<ProbeResult>;
  readonly #ttlMs: number;
  readonly #now: () => number;
  #last: { at: number; result: ProbeResult } | undefined;
  #inflight: Promise<ProbeResult> | undefined;

  constructor(run: () => Promise<ProbeResult>, ttlMs: number, now: () => number = Date.now) {
    this.#run = run;
    this.#ttlMs = ttlMs;
    this.#now = now;
  }

  get last(): ProbeResult | undefined {
    return this.#last?.result;
  }

  check(): Promise<ProbeResult> {
    const last = this.#last;
    if (last && this.#now() - last.at < this.#ttlMs) return Promise.resolve(last.result);
    this.#inflight ??= this.#run()
      .catch((err: unknown): ProbeResult => ({ ok: false, error: err instanceof Error ? err.message : String(err), latencyMs: 0 }))
      .then((result) => {
        this.#last = { at: this.#now(), result };
        this.#inflight = undefined;
        return result;
      });
    return this.#inflight;
  }

  /** Forget the cached result (the next check probes). */
  invalidate(): void {
    this.#last = undefined;
  }
}
