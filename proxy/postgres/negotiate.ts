import type { Duplex } from 'node:stream';
import { AuditError, ErrorCode } from '../../lib/errors.js';
import { SocketReader } from '../wire/socket-reader.js';
import type { NegotiateContext, Negotiated } from '../protocol-handler.js';

/** Startup-phase request codes (the int32 after the length). */
export const SSL_REQUEST_CODE = 80877103;
export const GSSENC_REQUEST_CODE = 80877104;
export const CANCEL_REQUEST_CODE = 80877102;
/** Largest startup packet accepted (PostgreSQL's own limit is 10 000). */
export const MAX_STARTUP_BYTES = 10_000;

const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
const ANSWER_N = Buffer.from('N');
const ANSWER_S = Buffer.from('S');
const EMPTY = Buffer.alloc(0);

/**
 * The part of a PostgreSQL connection the proxy must own: it answers
 * SSLRequest itself (TLS terminated here when a certificate is configured,
 * 'N' otherwise), refuses GSS encryption (it could not observe the
 * traffic), then connects upstream, negotiating TLS to the database per
 * `upstream_tls.mode`, and returns the startup packet to forward.
 */
export async function negotiatePostgres(ctx: NegotiateContext): Promise<Negotiated> {
  let client: Duplex = ctx.client;
  let reader = new SocketReader(client);
  let tls = false;
  let first: Buffer;
  for (;;) {
    const head = await reader.peek(4, MAX_STARTUP_BYTES);
    if (head[0] === 0x16 && ctx.serverTls && !tls) {
      // Direct TLS (PostgreSQL 17 sslnegotiation=direct): the ClientHello comes first. Once inside TLS, never a second layer.
      const rest = reader.detach();
      client = await ctx.upgradeClient(client, rest);
      tls = true;
      reader = new SocketReader(client);
      continue;
    }
    const len = head.readInt32BE(0);
    if (len < 8 || len > MAX_STARTUP_BYTES) {
      throw new AuditError(ErrorCode.Protocol, `invalid startup packet length ${len}`);
    }
    const msg = await reader.read(len, MAX_STARTUP_BYTES);
    const code = msg.readInt32BE(4);
    if (code === SSL_REQUEST_CODE && len === 8) {
      if (ctx.serverTls && !tls) {
        client.write(ANSWER_S);
        const rest = reader.detach();
        client = await ctx.upgradeClient(client, rest);
        tls = true;
        reader = new SocketReader(client);
      } else {
        client.write(ANSWER_N);
      }
      continue;
    }
    if (code === GSSENC_REQUEST_CODE && len === 8) {
      client.write(ANSWER_N);
      continue;
    }
    first = msg;
    break;
  }
  const pending = reader.detach();
  const isCancel = first.readInt32BE(4) === CANCEL_REQUEST_CODE;

  const clientFirst = pending.length > 0 ? Buffer.concat([first, pending]) : first;
  ctx.observe('client', clientFirst, tls);
  let server: Duplex = await ctx.connectUpstream();
  let upstreamTls = false;
  const mode = ctx.upstreamTlsMode;
  // A cancel request is answered by closing; PostgreSQL accepts it in the clear.
  if (mode !== 'disable' && !isCancel) {
    server.write(SSL_REQUEST);
    const sreader = new SocketReader(server);
    let answer: Buffer;
    try {
      answer = await sreader.read(1, 1);
    } catch (err) {
      // Reset or closed by the database: its failure, not the client's.
      throw AuditError.from(err instanceof AuditError ? err.message : err, ErrorCode.Upstream, 'the database closed the connection during TLS negotiation');
    }
    const extra = sreader.detach();
    if (answer[0] === 0x53 /* S */) {
      if (extra.length > 0) throw new AuditError(ErrorCode.Upstream, 'database sent data before the TLS handshake');
      server = await ctx.upgradeServer(server);
      upstreamTls = true;
    } else if (answer[0] === 0x4e /* N */) {
      if (mode === 'require' || mode === 'verify-full') {
        throw new AuditError(ErrorCode.Upstream, `database refused TLS but upstream_tls.mode is ${mode}`);
      }
    } else {
      throw new AuditError(ErrorCode.Upstream, `unexpected answer 0x${answer[0].toString(16)} to SSLRequest from database`);
    }
  }
  return { client, server, toServer: clientFirst, toClient: EMPTY, tls, upstreamTls };
}

/**
 * An ErrorResponse the client reads as a fatal server error: severity
 * FATAL, the given SQLSTATE, and a message that names the proxy.
 */
export function postgresError(sqlstate: string, message: string): Buffer {
  const fields = [`SFATAL`, `VFATAL`, `C${sqlstate}`, `Mdbaudit: ${message}`];
  const body = Buffer.from(fields.map((f) => f + '\0').join('') + '\0', 'utf8');
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = 0x45; // 'E'
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}
