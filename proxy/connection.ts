import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Clock } from '../lib/clock.js';
import { AuditError, ErrorCode } from '../lib/errors.js';
import { logIncident, type Logger } from '../lib/log.js';
import type { CollectorMetrics } from '../lib/metrics.js';
import { newSessionMeta, type AuditEvent } from './events.js';
import type { NegotiateContext, ProtocolHandler } from './protocol-handler.js';
import { Backlog, type SessionTracker } from './protocol.js';
import type { AuditSink } from './sink.js';

export interface ConnectionDeps {
  handler: ProtocolHandler;
  sink: AuditSink;
  clock: Clock;
  logger: Logger;
  metrics: CollectorMetrics;
  serverAddress: string;
  redact: 'literals' | 'none';
  logParameters: boolean;
  maxStatementBytes: number;
  startupTimeoutMs: number;
  idleTimeoutMs: number;
  serverTls: boolean;
  upstreamTlsMode: NegotiateContext['upstreamTlsMode'];
  upgradeClient: NegotiateContext['upgradeClient'];
  connectUpstream: NegotiateContext['connectUpstream'];
  upgradeServer: NegotiateContext['upgradeServer'];
  onClose: (conn: ProxyConnection) => void;
}

/** Held result bytes (waiting for their events to be durable) past which the database socket is paused. */
const HOLD_PAUSE_BYTES = 64 * 1024;

/**
 * One client session: the client socket, its database socket, and the
 * tracker that watches both. Bytes are forwarded as they arrive; the
 * tracker sees them right after. Server bytes that complete a statement
 * are held until the statement's event is durable, so that no client ever
 * sees a result whose audit record a crash could lose. Every way a session
 * ends goes through `destroy`, which ends the tracker exactly once.
 */
export class ProxyConnection {
  readonly #deps: ConnectionDeps;
  #client: Duplex;
  #server: Duplex | undefined;
  #tracker: SessionTracker | undefined;
  #log: Logger;
  #closed = false;
  #clientEnded = false;
  #serverEnded = false;
  #endReason: string | undefined;
  /** Runs from accept until login is done; never refreshed, so a slow trickle of bytes cannot extend it. */
  #startupTimer: NodeJS.Timeout | undefined;
  /** Refreshed by traffic once the session is established. */
  #timer: NodeJS.Timeout | undefined;
  #lastTicket: number;
  /** Server chunks waiting for their events to become durable, in order, each with the ticket it waits for. */
  #held: Buffer[] = [];
  #heldTickets: number[] = [];
  #heldBytes = 0;
  /** The ticket a whenDurable registration is out for (0: none). */
  #holdTicket = 0;
  #holding = false;
  /** Paused because #held passed HOLD_PAUSE_BYTES (below it the database socket keeps flowing into #held). */
  #serverPausedForHold = false;
  #serverPausedForClient = false;
  /** Paused because too many of the client's operations wait for the server's answers (the tracker's backlog). */
  #clientPausedForBacklog = false;
  readonly clientAddress: string;
  readonly #startedAt: number;

  constructor(socket: Socket, deps: ConnectionDeps) {
    this.#deps = deps;
    this.#client = socket;
    this.clientAddress = `${socket.remoteAddress}:${socket.remotePort}`;
    this.#startedAt = deps.clock.now();
    this.#log = deps.logger.child({ client: this.clientAddress, proto: deps.handler.name });
    this.#lastTicket = deps.sink.lastTicket;
    socket.setNoDelay(true);
    socket.on('error', this.#onClientError);
    socket.on('close', this.#onClientClose);
    this.#startupTimer = setTimeout(this.#onStartupTimeout, deps.startupTimeoutMs);
    this.#startupTimer.unref();
    void this.#start();
  }

  get tracker(): SessionTracker | undefined {
    return this.#tracker;
  }

  /** The client socket is TLS (terminated here), also before negotiation is done. */
  get #clientEncrypted(): boolean {
    return (this.#client as { encrypted?: boolean }).encrypted === true;
  }

  async #start(): Promise<void> {
    const d = this.#deps;
    let negotiated;
    try {
      negotiated = await d.handler.negotiate({
        client: this.#client,
        serverTls: d.serverTls,
        upstreamTlsMode: d.upstreamTlsMode,
        upgradeClient: async (socket, leftover) => {
          // From here the client speaks TLS: a negotiation failure must answer inside it, not in plain text on the raw socket.
          const secure = await d.upgradeClient(socket, leftover);
          secure.on('error', this.#onClientError);
          this.#client = secure;
          return secure;
        },
        observe: (direction, bytes, tls) => {
          if (!this.#tracker) this.#createTracker(tls);
          if (direction === 'client') this.#tracker!.clientData(bytes);
          else this.#tracker!.serverData(bytes);
        },
        connectUpstream: async () => {
          const s = await d.connectUpstream();
          this.#server = s;
          return s;
        },
        upgradeServer: d.upgradeServer,
      });
    } catch (err) {
      this.#failNegotiation(err);
      return;
    }
    if (this.#closed) {
      negotiated.server.destroy();
      return;
    }
    this.#client = negotiated.client;
    this.#server = negotiated.server;
    if (!this.#tracker) this.#createTracker(negotiated.tls);
    this.#log.debug({ tls: negotiated.tls, upstreamTls: negotiated.upstreamTls }, 'session started');

    const client = this.#client;
    const server = this.#server;
    client.on('data', this.#onClientData);
    client.on('end', this.#onClientEnd);
    client.on('drain', this.#onClientDrain);
    client.on('error', this.#onClientError);
    client.on('close', this.#onClientClose);
    server.on('data', this.#onServerData);
    server.on('end', this.#onServerEnd);
    server.on('drain', this.#onServerDrain);
    server.on('error', this.#onServerError);
    server.on('close', this.#onServerClose);
    if (d.idleTimeoutMs > 0) {
      this.#timer = setTimeout(this.#onIdleTimeout, d.idleTimeoutMs);
      this.#timer.unref();
    }

    if (negotiated.toClient.length > 0) this.#forwardToClient(negotiated.toClient);
    if (negotiated.toServer.length > 0) this.#forwardToServer(negotiated.toServer);
    this.#checkEstablished();
    client.resume();
    server.resume();
    // A client that half-closed during negotiation: its 'end' went to the negotiation's reader, so pass it on now.
    if ((client as Duplex & { readableEnded?: boolean }).readableEnded) this.#onClientEnd();
  }

  #createTracker(tls: boolean): void {
    const d = this.#deps;
    const meta = newSessionMeta(d.handler.name, this.clientAddress, d.serverAddress, this.#startedAt);
    meta.tls = tls;
    this.#log = this.#log.child({ session: meta.sessionId });
    this.#tracker = d.handler.createTracker({
      meta,
      emit: this.#emit,
      clock: d.clock,
      redact: d.redact,
      logParameters: d.logParameters,
      maxStatementBytes: d.maxStatementBytes,
      onAnomaly: this.#onAnomaly,
    });
  }

  #failNegotiation(err: unknown): void {
    const d = this.#deps;
    const e = AuditError.from(err, ErrorCode.Protocol);
    if (this.#closed) return;
    if (e.code === ErrorCode.Closed) {
      this.#log.debug('client left during negotiation');
      this.destroy('client_disconnect');
      return;
    }
    const upstream = e.code === ErrorCode.Upstream || (this.#server !== undefined && e.code !== ErrorCode.Protocol) || isConnectError(err);
    if (upstream) {
      d.metrics.dbConnectionErrors.inc({ reason: 'connect' });
      logIncident(this.#log, 'warn', 'database-unreachable', { err: e.message }, 'cannot reach the database');
      const seq = this.#tracker?.proxyErrorSeq?.() ?? -1;
      this.#client.write(d.handler.fatalError('unavailable', 'the database is not reachable through the audit proxy', seq >= 0 ? seq : undefined));
    } else {
      // Audited as an anomaly of the session (session_start first); the tracker's callback counts it and logs the incident.
      if (!this.#tracker) this.#createTracker(this.#clientEncrypted);
      this.#tracker!.anomaly?.('negotiation', e.message);
      this.#client.write(d.handler.fatalError('protocol', 'invalid connection start'));
    }
    this.destroy(upstream ? 'upstream_error' : 'protocol_error', e.message);
  }

  readonly #emit = (ev: AuditEvent): void => {
    this.#lastTicket = this.#deps.sink.offer(ev);
  };

  readonly #onAnomaly = (reason: string): void => {
    this.#deps.metrics.anomalies.inc({ protocol: this.#deps.handler.name, reason });
    logIncident(this.#log, 'warn', `protocol-anomaly-${reason}`, { reason }, 'protocol anomaly: decoding stopped for this session, bytes still forwarded');
  };

  readonly #onClientData = (chunk: Buffer): void => {
    if (!this.#deps.sink.accepting) {
      // on_cache_failure: block — nothing reaches the database that could not be audited.
      this.#deps.metrics.limitRejections.inc({ limit: 'cache_unavailable' });
      this.#client.write(this.#deps.handler.fatalError('cache_unavailable', 'the audit cache cannot record statements; they are refused until it can'));
      this.destroy('cache_failure');
      return;
    }
    this.#forwardToServer(chunk);
    this.#tracker!.clientData(chunk);
    if (!this.#clientPausedForBacklog && this.#tracker!.backlog?.() === Backlog.Over) {
      // A pipelining client: read nothing more until the answers come, rather than let the tracker overflow and stop auditing.
      this.#clientPausedForBacklog = true;
      this.#client.pause();
    }
    this.#timer?.refresh();
  };

  #forwardToServer(chunk: Buffer): void {
    if (!this.#server!.write(chunk)) this.#client.pause();
    this.#deps.metrics.forwardedToServer(chunk.length);
  }

  readonly #onServerData = (chunk: Buffer): void => {
    const before = this.#lastTicket;
    this.#tracker!.serverData(chunk);
    if (this.#clientPausedForBacklog && this.#tracker!.backlog!() === Backlog.Under) {
      this.#clientPausedForBacklog = false;
      if (!this.#closed && !this.#server!.writableNeedDrain) this.#client.resume();
    }
    this.#timer?.refresh();
    if (this.#startupTimer) this.#checkEstablished();
    if (this.#holding || this.#lastTicket !== before) {
      // This chunk completes (or follows) something audited: it waits for the cache,
      // for every event made so far (a later chunk may complete a later statement).
      this.#held.push(chunk);
      this.#heldTickets.push(this.#lastTicket);
      this.#heldBytes += chunk.length;
      if (!this.#holding) {
        this.#holding = true;
        this.#waitFor(this.#lastTicket);
      }
      // Short holds (a commit takes about a millisecond) do not stop reading; a large result does.
      if (this.#heldBytes > HOLD_PAUSE_BYTES && !this.#serverPausedForHold) {
        this.#serverPausedForHold = true;
        this.#server!.pause();
      }
      return;
    }
    this.#forwardToClient(chunk);
  };

  #waitFor(ticket: number): void {
    this.#holdTicket = ticket;
    this.#deps.sink.whenDurable(ticket, this.#onDurable);
  }

  readonly #onDurable = (err?: Error): void => {
    // A failed cache write keeps the events in memory and retries them; the
    // statement already ran, so its result is released either way. With
    // on_cache_failure: block, the next statement is refused (#onClientData).
    if (err) logIncident(this.#log, 'error', 'cache-write', { err: err.message, policy: this.#deps.sink.accepting ? 'forward' : 'block' }, 'cache cannot write: events held in memory and retried');
    const upTo = this.#holdTicket;
    this.#holdTicket = 0;
    const held = this.#held;
    const tickets = this.#heldTickets;
    let n = 0;
    while (n < held.length && tickets[n] <= upTo) n++;
    if (n === held.length) {
      this.#held = [];
      this.#heldTickets = [];
      this.#heldBytes = 0;
      this.#holding = false;
    } else {
      // chunks that came while waiting and complete later events wait on
      this.#held = held.slice(n);
      this.#heldTickets = tickets.slice(n);
      for (let i = 0; i < n; i++) this.#heldBytes -= held[i].length;
    }
    if (n === 1) this.#forwardToClient(held[0]);
    else if (n > 1) {
      // several chunks: one writev
      this.#client.cork();
      for (let i = 0; i < n; i++) this.#forwardToClient(held[i]);
      this.#client.uncork();
    }
    if (this.#holding) {
      if (!this.#closed) this.#waitFor(this.#heldTickets[this.#heldTickets.length - 1]);
      return;
    }
    if (this.#serverPausedForHold) {
      this.#serverPausedForHold = false;
      if (!this.#closed && !this.#serverPausedForClient) this.#server?.resume();
    }
    if (this.#serverEnded && !this.#closed) this.#client.end();
  };

  #forwardToClient(chunk: Buffer): void {
    if (this.#closed) return;
    this.#deps.metrics.forwardedToClient(chunk.length);
    if (!this.#client.write(chunk)) {
      this.#serverPausedForClient = true;
      this.#server!.pause();
    }
  }

  readonly #onClientDrain = (): void => {
    this.#serverPausedForClient = false;
    if (!this.#serverPausedForHold) this.#server?.resume();
  };

  readonly #onServerDrain = (): void => {
    if (!this.#clientPausedForBacklog) this.#client.resume();
  };

  readonly #onClientEnd = (): void => {
    this.#clientEnded = true;
    this.#endReason ??= 'client_disconnect';
    this.#server?.end();
    if (this.#serverEnded) this.destroy(this.#endReason);
  };

  readonly #onServerEnd = (): void => {
    this.#serverEnded = true;
    if (this.#endReason === undefined && this.#serverLost('closed without a message')) return;
    this.#endReason ??= 'server_disconnect';
    if (!this.#holding) this.#client.end();
    if (this.#clientEnded) this.destroy(this.#endReason);
  };

  readonly #onClientError = (err: Error): void => {
    this.#log.debug({ err: err.message }, 'client socket error');
    this.destroy('client_disconnect', err.message);
  };

  readonly #onServerError = (err: Error): void => {
    if (this.#closed || (this.#endReason === undefined && this.#serverLost(err.message))) return;
    this.#deps.metrics.dbConnectionErrors.inc({ reason: 'io' });
    logIncident(this.#log, 'warn', 'database-socket-error', { err: err.message }, 'database socket error');
    this.destroy('upstream_error', err.message);
  };

  readonly #onClientClose = (): void => {
    this.destroy(this.#endReason ?? 'client_disconnect');
  };

  readonly #onServerClose = (): void => {
    if (this.#holding) {
      this.#serverEnded = true;
      this.#endReason ??= 'server_disconnect';
      return; // the held bytes go out first, then the client is ended
    }
    this.destroy(this.#endReason ?? 'server_disconnect');
  };

  /**
   * The database went away unannounced (reset, or closed with no error
   * message) while the client still expects an answer: the client gets a
   * protocol-level error where the protocol has room for one (the tracker
   * says; never after held bytes, which it would overtake), the failure is
   * counted, and the session ends as an upstream error. False when no error
   * fits: the caller goes on as for a plain close.
   */
  #serverLost(detail: string): boolean {
    if (this.#closed || this.#holding || this.#clientEnded) return false;
    const seq = this.#tracker?.proxyErrorSeq?.() ?? -1;
    if (seq < 0) return false;
    const d = this.#deps;
    const startup = this.#startupTimer !== undefined;
    d.metrics.dbConnectionErrors.inc({ reason: startup ? 'connect' : 'io' });
    logIncident(this.#log, 'warn', 'database-lost', { err: detail, startup }, 'the database closed the connection unannounced');
    this.#client.write(d.handler.fatalError('unavailable', startup ? 'the database closed the connection during startup' : 'the database closed the connection unexpectedly', seq));
    this.destroy('upstream_error', `the database closed the connection${startup ? ' during startup' : ''}: ${detail}`);
    return true;
  }

  /** Login finished (or the tracker cannot tell): the startup timeout no longer applies. */
  #checkEstablished(): void {
    if (this.#tracker?.established === false) return;
    if (this.#startupTimer) clearTimeout(this.#startupTimer);
    this.#startupTimer = undefined;
  }

  readonly #onStartupTimeout = (): void => {
    this.#startupTimer = undefined;
    this.#deps.metrics.limitRejections.inc({ limit: 'startup_timeout' });
    this.#log.info('startup did not finish in time');
    const seq = this.#tracker?.proxyErrorSeq?.() ?? -1;
    this.#client.write(this.#deps.handler.fatalError('timeout', 'connection startup and login did not finish in time', seq >= 0 ? seq : undefined));
    this.destroy('startup_timeout');
  };

  readonly #onIdleTimeout = (): void => {
    this.#deps.metrics.limitRejections.inc({ limit: 'idle_timeout' });
    this.#client.write(this.#deps.handler.fatalError('timeout', 'session idle for too long'));
    this.destroy('idle_timeout');
  };

  #clearTimer(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#startupTimer) clearTimeout(this.#startupTimer);
    this.#startupTimer = undefined;
  }

  /** Ends the session once: both sockets closed, the tracker told why, the listener told it is gone. */
  destroy(reason: string, detail?: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#clearTimer();
    this.#client.destroy();
    this.#server?.destroy();
    // Nothing was decoded, but an attempt that failed is still audited: session_start … session_end, as any session.
    if (!this.#tracker && (reason === 'upstream_error' || reason === 'startup_timeout' || reason === 'protocol_error')) this.#createTracker(this.#clientEncrypted);
    this.#tracker?.end(reason, detail);
    this.#log.debug({ reason }, 'session ended');
    this.#deps.onClose(this);
  }

  /** Closes the session with a protocol-level error (used on shutdown after the grace period). */
  terminate(message: string): void {
    if (this.#closed) return;
    this.#client.write(this.#deps.handler.fatalError('unavailable', message));
    this.destroy('shutdown');
  }
}

function isConnectError(err: unknown): boolean {
  const code = (err as { code?: string } | undefined)?.code;
  return code === 'ECONNREFUSED' || code === 'ETIMEDOUT' || code === 'EHOSTUNREACH' || code === 'ENOTFOUND' || code === 'ECONNRESET';
}
