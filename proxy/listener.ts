import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import type { Clock } from '../lib/clock.js';
import { parseAddress, type Config } from '../lib/config.js';
import { AuditError, ErrorCode } from '../lib/errors.js';
import { listenError } from '../lib/listen.js';
import type { Logger } from '../lib/log.js';
import type { CollectorMetrics } from '../lib/metrics.js';
import { ProxyConnection } from './connection.js';
import type { ProtocolHandler } from './protocol-handler.js';
import type { AuditSink } from './sink.js';

export interface ListenerDeps {
  config: Config;
  handler: ProtocolHandler;
  sink: AuditSink;
  clock: Clock;
  logger: Logger;
  metrics: CollectorMetrics;
}

const UPSTREAM_CONNECT_TIMEOUT_MS = 10_000;
/** How often the TLS certificate files are checked for rotation. */
const CERT_POLL_MS = 2_000;

/**
 * The TCP listener applications connect to: accepts, enforces the
 * connection limit, and gives each client a ProxyConnection with the TLS
 * and upstream settings it needs.
 */
export class ProxyListener {
  readonly #deps: ListenerDeps;
  readonly #server: net.Server;
  readonly #connections = new Set<ProxyConnection>();
  #serverContext: tls.SecureContext | undefined;
  #upstreamCa: Buffer | undefined;
  #address = '';
  #unwatch: (() => void) | undefined;
  #accepting = true;
  #upstreamOpen = 0;
  #upstreamOkAt = 0;

  constructor(deps: ListenerDeps) {
    this.#deps = deps;
    this.#loadTls();
    this.#server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.#accept(socket));
  }

  #loadTls(): void {
    const c = this.#deps.config.collector;
    if (c.tls.cert_file || c.tls.key_file) {
      if (!c.tls.cert_file || !c.tls.key_file) throw new AuditError(ErrorCode.Config, 'config collector.tls: cert_file and key_file must both be set');
      this.#serverContext = this.#serverTlsContext();
      this.#watchCertificate([c.tls.cert_file, c.tls.key_file]);
    }
    if (c.upstream_tls.ca_file) {
      try {
        this.#upstreamCa = readFileSync(c.upstream_tls.ca_file);
      } catch (err) {
        throw AuditError.from(err, ErrorCode.Config, 'config collector.upstream_tls.ca_file');
      }
    }
    if (c.upstream_tls.mode === 'verify-full' && !this.#upstreamCa) {
      this.#deps.logger.info('upstream_tls.mode verify-full without ca_file: the system CA store is used');
    }
  }

  #serverTlsContext(): tls.SecureContext {
    const c = this.#deps.config.collector.tls;
    try {
      return tls.createSecureContext({
        cert: readFileSync(c.cert_file!),
        key: readFileSync(c.key_file!),
        minVersion: c.min_version,
        ...(c.ciphers ? { ciphers: c.ciphers } : {}),
      });
    } catch (err) {
      throw AuditError.from(err, ErrorCode.Config, 'config collector.tls: cannot load certificate or key');
    }
  }

  /**
   * Certificate rotation (cert-manager, a renewed Secret): when the files
   * change, new handshakes use the new pair; open sessions keep theirs. A
   * half-written pair that does not load is logged and the old one kept.
   * Polling, not fs.watch: Kubernetes swaps Secret files through symlinks.
   */
  #watchCertificate(files: string[]): void {
    const reload = (): void => {
      try {
        this.#serverContext = this.#serverTlsContext();
        this.#deps.logger.info('TLS certificate and key reloaded');
      } catch (err) {
        this.#deps.logger.warn({ err: (err as Error).message }, 'TLS certificate or key changed but does not load; keeping the previous pair');
      }
    };
    for (const f of files) {
      watchFile(f, { interval: CERT_POLL_MS, persistent: false }, (cur, prev) => {
        if (cur.mtimeMs !== prev.mtimeMs || cur.ino !== prev.ino || cur.size !== prev.size) reload();
      });
    }
    this.#unwatch = () => files.forEach((f) => unwatchFile(f));
  }

  listen(address: string): Promise<string> {
    const addr = parseAddress(address);
    if (!addr) throw new AuditError(ErrorCode.Config, `config collector.listen: invalid value ${JSON.stringify(address)}; expected host:port`);
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(listenError(err, 'collector.listen', address));
      this.#server.once('error', onError);
      this.#server.listen(addr.port, addr.host, () => {
        this.#server.off('error', onError);
        const a = this.#server.address() as net.AddressInfo;
        this.#address = `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
        resolve(this.#address);
      });
    });
  }

  get address(): string {
    return this.#address;
  }

  get connectionCount(): number {
    return this.#connections.size;
  }

  /** @internal the open sessions, for tests that look at a session's tracker. */
  get connections(): ReadonlySet<ProxyConnection> {
    return this.#connections;
  }

  /** Sessions whose database connection is open now (/health/detailed `connected`). */
  get upstreamCount(): number {
    return this.#upstreamOpen;
  }

  /** When (clock ms) a database connection last succeeded; 0 if never. Recent ones spare /health/ready a probe. */
  get lastUpstreamConnect(): number {
    return this.#upstreamOkAt;
  }

  #accept(socket: net.Socket): void {
    const d = this.#deps;
    const c = d.config.collector;
    if (!d.sink.accepting) {
      d.metrics.limitRejections.inc({ limit: 'cache_unavailable' });
      socket.on('error', () => {});
      socket.end(d.handler.fatalError('cache_unavailable', 'the audit cache cannot record sessions; connections are refused until it can'));
      return;
    }
    if (!this.#accepting || this.#connections.size >= c.limits.max_connections) {
      const reason = this.#accepting ? 'max_connections' : 'shutting_down';
      d.metrics.limitRejections.inc({ limit: reason });
      socket.on('error', () => {});
      socket.end(d.handler.fatalError(this.#accepting ? 'too_many_connections' : 'unavailable', this.#accepting ? 'too many connections to the audit proxy' : 'the audit proxy is shutting down'));
      socket.destroySoon();
      return;
    }
    const upstream = parseAddress(c.upstream)!;
    const conn = new ProxyConnection(socket, {
      handler: d.handler,
      sink: d.sink,
      clock: d.clock,
      logger: d.logger,
      metrics: d.metrics,
      serverAddress: c.upstream,
      redact: d.config.audit.redact,
      logParameters: d.config.audit.log_parameters,
      maxStatementBytes: c.limits.max_statement_bytes,
      startupTimeoutMs: c.limits.startup_timeout,
      idleTimeoutMs: c.limits.idle_timeout,
      serverTls: this.#serverContext !== undefined,
      upstreamTlsMode: c.upstream_tls.mode,
      upgradeClient: (s, leftover) => this.#upgradeClient(s, leftover),
      connectUpstream: () => connectTcp(upstream.host, upstream.port).then((s) => (this.#upstreamOpen++, (this.#upstreamOkAt = d.clock.now()), s.once('close', () => this.#upstreamOpen--))),
      upgradeServer: (s) => this.#upgradeServer(s, upstream.host),
      onClose: (cn) => {
        if (this.#connections.delete(cn)) d.metrics.dbConnectionsActive.dec();
      },
    });
    this.#connections.add(conn);
    d.metrics.dbConnectionsActive.inc();
    d.metrics.dbConnectionsTotal.inc();
  }

  #upgradeClient(socket: Duplex, leftover: Buffer): Promise<Duplex> {
    if (leftover.length > 0) socket.unshift(leftover);
    const secure = new tls.TLSSocket(socket as net.Socket, { isServer: true, secureContext: this.#serverContext });
    return new Promise((resolve, reject) => {
      secure.once('secure', () => {
        secure.off('error', reject);
        resolve(secure);
      });
      secure.once('error', reject);
    });
  }

  #upgradeServer(socket: Duplex, host: string): Promise<Duplex> {
    const c = this.#deps.config.collector.upstream_tls;
    const verify = c.mode === 'verify-full';
    return new Promise((resolve, reject) => {
      const secure = tls.connect({
        socket: socket as net.Socket,
        servername: c.server_name ?? (net.isIP(host) ? undefined : host),
        ca: this.#upstreamCa,
        rejectUnauthorized: verify,
        checkServerIdentity: verify ? (name, cert) => tls.checkServerIdentity(c.server_name ?? host, cert) : () => undefined,
        minVersion: 'TLSv1.2',
      });
      secure.once('secureConnect', () => {
        secure.off('error', reject);
        resolve(secure);
      });
      secure.once('error', (err) => reject(new AuditError(ErrorCode.Upstream, `TLS to the database failed: ${err.message}`, { cause: err })));
    });
  }

  /**
   * Stops accepting: the listening socket is closed at once (new connections
   * are refused); existing sessions continue. Resolves when the port is
   * released, not when the sessions end (net.Server.close's callback waits
   * for every open connection, which would block the drain forever).
   */
  stopAccepting(): Promise<void> {
    this.#accepting = false;
    this.#unwatch?.();
    if (!this.#server.listening) return Promise.resolve();
    this.#server.close();
    return Promise.resolve();
  }

  /** Waits up to `graceMs` for open sessions to finish, then closes the rest with a protocol-level error. */
  async drain(graceMs: number): Promise<void> {
    const deadline = Date.now() + graceMs;
    while (this.#connections.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const conn of [...this.#connections]) conn.terminate('the audit proxy is shutting down');
  }

  async close(): Promise<void> {
    this.#unwatch?.();
    await this.stopAccepting();
    for (const conn of [...this.#connections]) conn.destroy('shutdown');
  }
}

function connectTcp(host: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port, noDelay: true, allowHalfOpen: true });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new AuditError(ErrorCode.Upstream, `connecting to the database at ${host}:${port} timed out`));
    }, UPSTREAM_CONNECT_TIMEOUT_MS);
    s.once('connect', () => {
      clearTimeout(timer);
      s.off('error', onError);
      resolve(s);
    });
    const onError = (err: Error): void => {
      clearTimeout(timer);
      reject(new AuditError(ErrorCode.Upstream, `cannot connect to the database at ${host}:${port}: ${err.message}`, { cause: err }));
    };
    s.once('error', onError);
  });
}
