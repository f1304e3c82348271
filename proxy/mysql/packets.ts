import type { WireReader } from '../wire/reader.js';

/**
 * MySQL / MariaDB wire codes and the small readers shared by the parsers.
 * Every packet is a 3-byte little-endian payload length, a 1-byte sequence
 * id and the payload; a payload of 0xFFFFFF bytes continues in the next
 * packet (the message ends with the first shorter packet, possibly empty).
 */

/** Largest payload of one packet; a packet this long is continued by the next. */
export const MAX_PACKET_PAYLOAD = 0xffffff;

/** Capability flags (lower 32 bits; MariaDB's extended ones are in `MariaCap`). */
export const Cap = {
  LongPassword: 0x1, // CLIENT_LONG_PASSWORD (MariaDB: CLIENT_MYSQL)
  FoundRows: 0x2,
  ConnectWithDb: 0x8,
  Compress: 0x20, // CLIENT_COMPRESS
  LocalFiles: 0x80,
  Protocol41: 0x200,
  Interactive: 0x400,
  Ssl: 0x800, // CLIENT_SSL
  Transactions: 0x2000,
  SecureConnection: 0x8000,
  MultiStatements: 0x10000,
  MultiResults: 0x20000,
  PsMultiResults: 0x40000,
  PluginAuth: 0x80000,
  ConnectAttrs: 0x100000,
  PluginAuthLenencData: 0x200000,
  SessionTrack: 0x800000,
  DeprecateEof: 0x1000000,
  OptionalResultsetMetadata: 0x2000000,
  ZstdCompression: 0x4000000, // CLIENT_ZSTD_COMPRESSION_ALGORITHM
  QueryAttributes: 0x8000000,
} as const;

/** MariaDB extended capabilities (the upper 32 bits, carried in the greeting's and response's filler). */
export const MariaCap = {
  Progress: 0x1, // MARIADB_CLIENT_PROGRESS
  StmtBulk: 0x4, // MARIADB_CLIENT_STMT_BULK_OPERATIONS
  ExtendedMetadata: 0x8,
  CacheMetadata: 0x10, // MARIADB_CLIENT_CACHE_METADATA
} as const;

/**
 * Capabilities the proxy removes from the greeting it forwards (unless told
 * otherwise): compression would make every later byte opaque, and query
 * attributes change the layout of COM_QUERY / COM_STMT_EXECUTE.
 */
export const UNOBSERVABLE_CAPS = Cap.Compress | Cap.ZstdCompression | Cap.QueryAttributes;

/** Server status flags (OK / EOF packets). */
export const Status = {
  InTrans: 0x1,
  Autocommit: 0x2,
  MoreResultsExist: 0x8, // SERVER_MORE_RESULTS_EXISTS
  CursorExists: 0x40,
  LastRowSent: 0x80,
  NoBackslashEscapes: 0x200,
  SessionStateChanged: 0x4000,
} as const;

/** Command bytes (first payload byte of a client packet in the command phase). */
export const Com = {
  Sleep: 0x00,
  Quit: 0x01,
  InitDb: 0x02,
  Query: 0x03,
  FieldList: 0x04,
  CreateDb: 0x05,
  DropDb: 0x06,
  Refresh: 0x07,
  Shutdown: 0x08,
  Statistics: 0x09,
  ProcessInfo: 0x0a,
  ProcessKill: 0x0c,
  Debug: 0x0d,
  Ping: 0x0e,
  ChangeUser: 0x11,
  StmtPrepare: 0x16,
  StmtExecute: 0x17,
  StmtSendLongData: 0x18,
  StmtClose: 0x19,
  StmtReset: 0x1a,
  SetOption: 0x1b,
  StmtFetch: 0x1c,
  ResetConnection: 0x1f,
  StmtBulkExecute: 0xfa, // MariaDB COM_STMT_BULK_EXECUTE
} as const;

/** First byte of a server response packet. */
export const Resp = {
  Ok: 0x00,
  AuthMoreData: 0x01,
  LocalInfile: 0xfb,
  Eof: 0xfe, // also AuthSwitchRequest in the connection phase, and the OK that ends rows with DEPRECATE_EOF
  Err: 0xff,
} as const;

/** caching_sha2_password's one-byte auth-more-data answers. */
export const Sha2 = {
  RequestPublicKey: 0x02,
  FastAuthSuccess: 0x03,
  PerformFullAuth: 0x04,
} as const;

/** Column types of the binary protocol (COM_STMT_EXECUTE values). */
export const Type = {
  Decimal: 0x00,
  Tiny: 0x01,
  Short: 0x02,
  Long: 0x03,
  Float: 0x04,
  Double: 0x05,
  Null: 0x06,
  Timestamp: 0x07,
  LongLong: 0x08,
  Int24: 0x09,
  Date: 0x0a,
  Time: 0x0b,
  DateTime: 0x0c,
  Year: 0x0d,
  NewDate: 0x0e,
  VarChar: 0x0f,
  Bit: 0x10,
  Timestamp2: 0x11,
  DateTime2: 0x12,
  Time2: 0x13,
  Json: 0xf5,
  NewDecimal: 0xf6,
  Enum: 0xf7,
  Set: 0xf8,
  TinyBlob: 0xf9,
  MediumBlob: 0xfa,
  LongBlob: 0xfb,
  Blob: 0xfc,
  VarString: 0xfd,
  String: 0xfe,
  Geometry: 0xff,
} as const;

/** Payload length of the 32-byte SSLRequest (the first part of a HandshakeResponse41). */
export const SSL_REQUEST_LENGTH = 32;

// ---- little-endian reads over a WireReader (it fails, never throws, past the end) ----

export function u16(r: WireReader): number {
  const at = r.skip(2);
  return at < 0 ? 0 : r.buffer.readUInt16LE(at);
}

export function u24(r: WireReader): number {
  const at = r.skip(3);
  if (at < 0) return 0;
  const b = r.buffer;
  return b[at] | (b[at + 1] << 8) | (b[at + 2] << 16);
}

export function u32(r: WireReader): number {
  const at = r.skip(4);
  return at < 0 ? 0 : r.buffer.readUInt32LE(at);
}

/** A length-encoded integer; -1 for the NULL marker 0xFB (and on failure: check `r.ok`). Values above 2^53 fail. */
export function lenenc(r: WireReader): number {
  const c = r.uint8();
  if (c < 0xfb) return c;
  if (c === 0xfc) return u16(r);
  if (c === 0xfd) return u24(r);
  if (c === 0xfe) {
    const lo = u32(r);
    const hi = u32(r);
    if (hi > 0x1fffff) {
      r.fail();
      return 0;
    }
    return hi * 0x100000000 + lo;
  }
  if (c === 0xff) r.fail();
  return -1; // 0xfb: NULL
}

/** A length-encoded string as a span: returns its start (the length is `lenencLast`), or -1. */
export function lenencSpan(r: WireReader): number {
  const n = lenenc(r);
  if (n < 0) return -1;
  lenencLast = n;
  return r.skip(n);
}
/** Length of the span `lenencSpan` returned last. */
export let lenencLast = 0;

export function lenencString(r: WireReader): string {
  const at = lenencSpan(r);
  return at < 0 ? '' : r.buffer.toString('utf8', at, at + lenencLast);
}

/** The rest of the payload as UTF-8 (MySQL's string<EOF>). */
export function restString(r: WireReader): string {
  const n = r.remaining;
  const at = r.skip(n);
  return at < 0 ? '' : r.buffer.toString('utf8', at, at + n);
}

/** A 4-byte packet header for `payloadLength` and `seq`, written at `out[at]`. */
export function writeHeader(out: Buffer, at: number, payloadLength: number, seq: number): void {
  out[at] = payloadLength & 0xff;
  out[at + 1] = (payloadLength >> 8) & 0xff;
  out[at + 2] = (payloadLength >> 16) & 0xff;
  out[at + 3] = seq & 0xff;
}

/** A whole packet (header + payload) for one payload shorter than 16 MiB. */
export function packet(seq: number, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(4 + payload.length);
  writeHeader(out, 0, payload.length, seq);
  payload.copy(out, 4);
  return out;
}

/** An ERR packet: code, SQLSTATE, message (PROTOCOL_41 layout). */
export function errPacket(seq: number, code: number, sqlstate: string, message: string): Buffer {
  const msg = Buffer.from(message, 'utf8');
  const payload = Buffer.allocUnsafe(9 + msg.length);
  payload[0] = Resp.Err;
  payload.writeUInt16LE(code, 1);
  payload[3] = 0x23; // '#'
  payload.write(sqlstate.padEnd(5, '0').slice(0, 5), 4, 'latin1');
  msg.copy(payload, 9);
  return packet(seq, payload);
}
