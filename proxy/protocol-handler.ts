import type { Duplex } from 'node:stream';
import type { SessionTracker, TrackerOptions } from './protocol.js';

/** What a protocol's negotiation step may ask of the connection. */
export interface NegotiateContext {
  client: Duplex;
  /** A TLS server context is configured toward applications. */
  serverTls: boolean;
  upstreamTlsMode: 'disable' | 'prefer' | 'require' | 'verify-full';
  /** Wraps the client socket in server-side TLS (leftover bytes are fed to it first); resolves once the handshake is done. */
  upgradeClient(socket: Duplex, leftover: Buffer): Promise<Duplex>;
  /** Opens the TCP connection to the database. */
  connectUpstream(): Promise<Duplex>;
  /**
   * Shows the tracker bytes the negotiation read, in the order they
   * crossed, as they will reach (or reached) the other side. The tracker is
   * created on the first call (`tls`: the client hop is encrypted), so a
   * session is audited even when the database then cannot be reached.
   * Observed bytes are never shown to the tracker again.
   */
  observe(direction: 'client' | 'server', bytes: Buffer, tls: boolean): void;
  /** Wraps the database socket in client-side TLS per upstream_tls; resolves once the handshake is done. */
  upgradeServer(socket: Duplex): Promise<Duplex>;
}

export interface Negotiated {
  client: Duplex;
  server: Duplex;
  /** Bytes read from the client (already observed) that the database must still get. */
  toServer: Buffer;
  /** Bytes read from the database (already observed) that the client must still get. */
  toClient: Buffer;
  /** TLS between client and proxy. */
  tls: boolean;
  upstreamTls: boolean;
}

/** One wire protocol's part of the proxy: negotiation, its tracker, and how it says "no" to a client. */
export interface ProtocolHandler {
  readonly name: 'postgres' | 'mysql';
  negotiate(ctx: NegotiateContext): Promise<Negotiated>;
  createTracker(opts: TrackerOptions): SessionTracker;
  /** A fatal error in the protocol's own format, sent before closing (limits, database unreachable); `seq`: its MySQL sequence id when the tracker knows it. */
  fatalError(kind: 'unavailable' | 'too_many_connections' | 'timeout' | 'cache_unavailable' | 'protocol', message: string, seq?: number): Buffer;
}
