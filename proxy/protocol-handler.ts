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
  /**
   * Opens the TCP connection to the database. A protocol whose client
   * speaks first passes what it has read (PostgreSQL's startup packet) so
   * the session is known, and audited, even if the database cannot be
   * reached; those bytes are then not fed to the tracker a second time.
   */
  connectUpstream(early?: { clientFirst: Buffer; tls: boolean }): Promise<Duplex>;
  /** Wraps the database socket in client-side TLS per upstream_tls; resolves once the handshake is done. */
  upgradeServer(socket: Duplex): Promise<Duplex>;
}

export interface Negotiated {
  client: Duplex;
  server: Duplex;
  /** Bytes read from the client during negotiation that the database must still get (and the tracker see). */
  clientFirst: Buffer;
  /** Bytes read from the database during negotiation that the client must still get (and the tracker see). */
  serverFirst: Buffer | undefined;
  /**
   * The negotiation already delivered `clientFirst` to the database and
   * `serverFirst` to the client itself (e.g. MySQL's greeting, rewritten
   * and sent before the TLS decision): the tracker still sees them, in
   * order, but they are not forwarded again.
   */
  alreadyForwarded?: boolean;
  /** TLS between client and proxy. */
  tls: boolean;
  upstreamTls: boolean;
}

/** One wire protocol's part of the proxy: negotiation, its tracker, and how it says "no" to a client. */
export interface ProtocolHandler {
  readonly name: 'postgres' | 'mysql';
  negotiate(ctx: NegotiateContext): Promise<Negotiated>;
  createTracker(opts: TrackerOptions): SessionTracker;
  /** A fatal error in the protocol's own format, sent before closing (limits, database unreachable). */
  fatalError(kind: 'unavailable' | 'too_many_connections' | 'timeout' | 'cache_unavailable' | 'protocol', message: string): Buffer;
}
