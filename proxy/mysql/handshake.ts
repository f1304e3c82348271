import { WireReader } from '../wire/reader.js';
import { Cap, lenenc, lenencSpan, lenencLast, u16, u32 } from './packets.js';

/**
 * The connection phase's messages: the server greeting (HandshakeV10),
 * HandshakeResponse41 / SSLRequest, COM_CHANGE_USER and AuthSwitchRequest.
 * Parsers take a payload view and return null when it is malformed; they
 * copy out only the strings they return. Passwords and scrambles are never
 * read into strings.
 */

export interface Greeting {
  readonly protocolVersion: number;
  readonly serverVersion: string;
  readonly connectionId: number;
  /** Lower and upper 16 bits together. */
  readonly capabilities: number;
  /** MariaDB extended capabilities (0 when the server is MySQL). */
  readonly mariaCapabilities: number;
  readonly authPlugin: string;
  /** The server's default character set (0 when absent). */
  readonly charset: number;
  /** Server status flags (0 when absent). */
  readonly status: number;
  /** Payload offset of the lower capability bytes (for rewriting). */
  readonly capsLowAt: number;
  /** Payload offset of the upper capability bytes, -1 when absent. */
  readonly capsHighAt: number;
}

export function parseGreeting(buf: Buffer, start: number, end: number): Greeting | null {
  const r = new WireReader().reset(buf, start, end);
  const version = r.uint8();
  if (version !== 10) return null;
  const serverVersion = r.cstring();
  const connectionId = u32(r);
  r.skip(8 + 1); // auth-plugin-data part 1, filler
  const capsLowAt = r.position - start;
  let caps = u16(r);
  if (!r.ok) return null;
  let capsHighAt = -1;
  let maria = 0;
  let plugin = '';
  let charset = 0;
  let status = 0;
  if (r.remaining > 0) {
    charset = r.uint8();
    status = u16(r);
    capsHighAt = r.position - start;
    caps = (caps | (u16(r) << 16)) >>> 0;
    const authLen = r.uint8();
    r.skip(6);
    const ext = u32(r);
    if ((caps & Cap.LongPassword) === 0) maria = ext; // MariaDB: CLIENT_MYSQL unset, extended caps in the reserved bytes
    if (caps & Cap.SecureConnection) r.skip(Math.max(13, authLen - 8));
    if (!r.ok) return null;
    if (caps & Cap.PluginAuth && r.remaining > 0) {
      const at = r.position;
      const nul = buf.indexOf(0, at);
      plugin = buf.toString('latin1', at, nul >= 0 && nul < end ? nul : end);
    }
  }
  return { protocolVersion: version, serverVersion, connectionId, capabilities: caps, mariaCapabilities: maria, authPlugin: plugin, charset, status, capsLowAt, capsHighAt };
}

export interface HandshakeResponse {
  readonly capabilities: number;
  readonly mariaCapabilities: number;
  readonly user: string;
  readonly database: string;
  readonly authPlugin: string;
  readonly attributes: ReadonlyMap<string, string>;
}

/** An SSLRequest is a HandshakeResponse cut after the fixed 32 bytes, with CLIENT_SSL set. */
export function isSslRequest(buf: Buffer, start: number, end: number): boolean {
  return end - start === 32 && (buf.readUInt32LE(start) & Cap.Ssl) !== 0;
}

/** Connection attributes kept (values cut to this many characters). */
const MAX_ATTRS = 64;
const MAX_ATTR_CHARS = 256;

export function parseHandshakeResponse(buf: Buffer, start: number, end: number): HandshakeResponse | null {
  const r = new WireReader().reset(buf, start, end);
  const caps = u32(r);
  if (!r.ok || (caps & Cap.Protocol41) === 0) return null;
  r.skip(4 + 1 + 19); // max packet, charset, filler
  const ext = u32(r);
  const maria = (caps & Cap.LongPassword) === 0 ? ext : 0;
  const user = r.cstring();
  if (caps & Cap.PluginAuthLenencData) lenencSpan(r);
  else if (caps & Cap.SecureConnection) r.skip(r.uint8());
  else r.cstringEnd();
  let database = '';
  if (caps & Cap.ConnectWithDb && r.remaining > 0) database = r.cstring();
  let plugin = '';
  if (caps & Cap.PluginAuth && r.remaining > 0) plugin = r.cstring();
  if (!r.ok) return null;
  const attrs = new Map<string, string>();
  if (caps & Cap.ConnectAttrs && r.remaining > 0) {
    if (!readAttributes(r, attrs)) return null;
  }
  return { capabilities: caps, mariaCapabilities: maria, user, database, authPlugin: plugin, attributes: attrs };
}

function readAttributes(r: WireReader, out: Map<string, string>): boolean {
  const total = lenenc(r);
  if (!r.ok || total < 0 || total > r.remaining) return false;
  const stop = r.position + total;
  while (r.ok && r.position < stop) {
    const k = lenencSpan(r);
    const kl = lenencLast;
    const v = lenencSpan(r);
    const vl = lenencLast;
    if (k < 0 || v < 0 || r.position > stop) return false;
    if (out.size < MAX_ATTRS) {
      const b = r.buffer;
      out.set(b.toString('utf8', k, k + Math.min(kl, MAX_ATTR_CHARS)), b.toString('utf8', v, v + Math.min(vl, MAX_ATTR_CHARS)));
    }
  }
  return r.ok;
}

export interface ChangeUser {
  readonly user: string;
  readonly database: string;
  readonly authPlugin: string;
  readonly attributes: ReadonlyMap<string, string>;
}

/** COM_CHANGE_USER (payload after the command byte); `caps` are the session's negotiated capabilities. */
export function parseChangeUser(buf: Buffer, start: number, end: number, caps: number): ChangeUser | null {
  const r = new WireReader().reset(buf, start, end);
  const user = r.cstring();
  if (caps & Cap.SecureConnection) r.skip(r.uint8());
  else r.cstringEnd();
  const database = r.cstring();
  if (!r.ok) return null;
  let plugin = '';
  const attrs = new Map<string, string>();
  if (r.remaining >= 2) {
    r.skip(2); // character set
    if (caps & Cap.PluginAuth && r.remaining > 0) plugin = r.cstring();
    if (caps & Cap.ConnectAttrs && r.remaining > 0 && !readAttributes(r, attrs)) return null;
  }
  return r.ok ? { user, database, authPlugin: plugin, attributes: attrs } : null;
}

/** The plugin name of an AuthSwitchRequest (0xFE, plugin NUL, data). '' for the old 1-byte form. */
export function authSwitchPlugin(buf: Buffer, start: number, end: number): string {
  if (end - start <= 1) return 'mysql_old_password';
  const nul = buf.indexOf(0, start + 1);
  return buf.toString('latin1', start + 1, nul >= 0 && nul < end ? nul : end);
}

/**
 * A copy of a greeting payload with capabilities changed: `clear` bits
 * removed, `set` bits added (lower 32 bits only).
 */
export function rewriteCapabilities(payload: Buffer, g: Greeting, clear: number, set: number): Buffer {
  const out = Buffer.from(payload);
  const caps = ((g.capabilities & ~clear) | set) >>> 0;
  out.writeUInt16LE(caps & 0xffff, g.capsLowAt);
  if (g.capsHighAt >= 0) out.writeUInt16LE(caps >>> 16, g.capsHighAt);
  return out;
}

/** The capability word of a HandshakeResponse / SSLRequest payload changed in place: `clear` removed, `set` added. */
export function rewriteResponseCaps(payload: Buffer, clear: number, set: number): void {
  const caps = ((payload.readUInt32LE(0) & ~clear) | set) >>> 0;
  payload.writeUInt32LE(caps, 0);
}
