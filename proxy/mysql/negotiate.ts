import type { Duplex } from 'node:stream';
import { AuditError, ErrorCode } from '../../lib/errors.js';
import type { NegotiateContext, Negotiated } from '../protocol-handler.js';
import { SocketReader } from '../wire/socket-reader.js';
import { isSslRequest, parseGreeting, rewriteCapabilities, rewriteResponseCaps, type Greeting } from './handshake.js';
import { Cap, MAX_PACKET_PAYLOAD, Resp, SSL_REQUEST_LENGTH, UNOBSERVABLE_CAPS, errPacket, packet } from './packets.js';
import { PhaseRelay } from './phase-relay.js';

/** Largest connection-phase packet accepted (greeting, handshake response, auth data). */
export const MAX_HANDSHAKE_BYTES = 64 * 1024;
const EMPTY = Buffer.alloc(0);

/**
 * The part of a MySQL connection the proxy must own. The server speaks
 * first, so the proxy connects upstream, reads the greeting and forwards it
 * with capabilities it cannot observe cleared (CLIENT_COMPRESS, zstd,
 * query attributes) and CLIENT_SSL offered only when it has a certificate
 * (it then terminates the client's TLS after the SSLRequest). Toward the
 * database it sends its own SSLRequest per `upstream_tls.mode` when the
 * server offers TLS. The handshake response is forwarded with CLIENT_SSL
 * matching the upstream hop. When the two hops' TLS differ, the sequence
 * ids differ by one until the connection phase ends, so the proxy relays
 * that phase itself (PhaseRelay); otherwise it returns after the handshake
 * response and the tracker follows authentication in steady state.
 */
export async function negotiateMysql(ctx: NegotiateContext): Promise<Negotiated> {
  let server: Duplex = await ctx.connectUpstream();
  let sreader = new SocketReader(server);
  const greeting = await readPacket(sreader, ErrorCode.Upstream);
  let client: Duplex = ctx.client;
  if (greeting[4] === Resp.Err) {
    // Refused before the handshake (too many connections, host blocked): the client gets it as is.
    ctx.observe('server', greeting, false);
    const rest = sreader.detach();
    if (rest.length > 0) ctx.observe('server', rest, false);
    return { client, server, toServer: EMPTY, toClient: rest.length > 0 ? Buffer.concat([greeting, rest]) : greeting, tls: false, upstreamTls: false };
  }
  const g = parseGreeting(greeting, 4, greeting.length);
  if (g === null) throw new AuditError(ErrorCode.Upstream, 'the database did not send a MySQL protocol 10 greeting');
  const serverSsl = (g.capabilities & Cap.Ssl) !== 0;
  const mode = ctx.upstreamTlsMode;
  if (!serverSsl && (mode === 'require' || mode === 'verify-full')) {
    throw new AuditError(ErrorCode.Upstream, `database does not offer TLS but upstream_tls.mode is ${mode}`);
  }
  // TLS toward the database first, before the client hears anything: a failure is then answered with an ERR of sequence 0.
  let upstreamTls = false;
  if (serverSsl && mode !== 'disable') {
    const early = sreader.detach();
    if (early.length > 0) throw new AuditError(ErrorCode.Upstream, 'database sent data before the TLS handshake');
    server.write(packet(greeting[3] + 1, sslRequest(g)));
    server = await ctx.upgradeServer(server);
    upstreamTls = true;
    sreader = new SocketReader(server);
  }
  const offered = rewriteCapabilities(greeting.subarray(4), g, UNOBSERVABLE_CAPS | (ctx.serverTls ? 0 : Cap.Ssl), ctx.serverTls ? Cap.Ssl : 0);
  const greetingOut = packet(greeting[3], offered);
  client.write(greetingOut);

  let creader = new SocketReader(client);
  let first = await readPacket(creader, ErrorCode.Protocol);
  let tls = false;
  if (isSslRequest(first, 4, first.length)) {
    if (!ctx.serverTls) {
      client.write(errPacket(first[3] + 1, 1043, '08S01', 'dbaudit: TLS was not offered'));
      throw new AuditError(ErrorCode.Protocol, 'client sent an SSLRequest although TLS was not offered');
    }
    const rest = creader.detach();
    client = await ctx.upgradeClient(client, rest);
    tls = true;
    creader = new SocketReader(client);
    first = await readPacket(creader, ErrorCode.Protocol);
  }
  if (first.length < 4 + SSL_REQUEST_LENGTH) throw new AuditError(ErrorCode.Protocol, 'handshake response too short');
  ctx.observe('server', greetingOut, tls);

  const response = Buffer.from(first.subarray(4));
  rewriteResponseCaps(response, UNOBSERVABLE_CAPS | (upstreamTls ? 0 : Cap.Ssl), upstreamTls ? Cap.Ssl : 0);
  const seqOut = (greeting[3] + (upstreamTls ? 2 : 1)) & 0xff;
  const delta = seqOut - first[3];
  const responseOut = packet(seqOut, response);
  ctx.observe('client', responseOut, tls);

  if (delta === 0) {
    const pending = creader.detach();
    const early = sreader.detach();
    if (pending.length > 0) ctx.observe('client', pending, tls);
    if (early.length > 0) ctx.observe('server', early, tls);
    return { client, server, toServer: pending.length > 0 ? Buffer.concat([responseOut, pending]) : responseOut, toClient: early, tls, upstreamTls };
  }
  server.write(responseOut);
  const relay = new PhaseRelay(client, server, creader.detach(), sreader.detach(), delta, MAX_HANDSHAKE_BYTES, (direction, bytes) => ctx.observe(direction, bytes, tls));
  const { toServer, toClient } = await relay.run();
  return { client, server, toServer, toClient, tls, upstreamTls };
}

/**
 * The proxy's own SSLRequest to the database: the server only looks at
 * CLIENT_SSL here and takes the session's capabilities from the handshake
 * response that follows inside TLS (the client's, forwarded).
 */
function sslRequest(g: Greeting): Buffer {
  const out = Buffer.alloc(SSL_REQUEST_LENGTH);
  const caps = (Cap.LongPassword | Cap.Protocol41 | Cap.SecureConnection | Cap.PluginAuth | Cap.Transactions | Cap.Ssl) & (g.capabilities | Cap.LongPassword);
  out.writeUInt32LE(caps >>> 0, 0);
  out.writeUInt32LE(MAX_PACKET_PAYLOAD, 4);
  out[8] = g.charset > 0 ? g.charset : 45; // utf8mb4_general_ci
  return out;
}

/** One whole connection-phase packet (header included), capped. */
async function readPacket(reader: SocketReader, code: ErrorCode): Promise<Buffer> {
  try {
    const head = await reader.peek(4, MAX_HANDSHAKE_BYTES);
    const len = head[0] | (head[1] << 8) | (head[2] << 16);
    if (len === 0 || len + 4 > MAX_HANDSHAKE_BYTES) throw new AuditError(code, `connection-phase packet of ${len} bytes`);
    return await reader.read(4 + len, MAX_HANDSHAKE_BYTES);
  } catch (err) {
    // The database's side failing is an upstream problem, whatever the reader called it.
    if (code === ErrorCode.Upstream) throw AuditError.from(err instanceof AuditError ? err.message : err, ErrorCode.Upstream, 'reading the database greeting');
    throw err;
  }
}
