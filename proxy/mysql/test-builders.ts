/**
 * Byte builders for MySQL protocol packets, for tests only: one function
 * per packet, both directions, as a real client or MariaDB sends them.
 * Every builder returns whole packets (header included); payloads of 16 MiB
 * or more are split the way the protocol does.
 */
import { Cap, Com, MAX_PACKET_PAYLOAD, MariaCap, Type } from './packets.js';

const cat = (...parts: Buffer[]): Buffer => Buffer.concat(parts);
const u8 = (n: number): Buffer => Buffer.from([n & 0xff]);
const u16 = (n: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n, 0);
  return b;
};
const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0, 0);
  return b;
};
const nul = (s: string): Buffer => Buffer.from(s + '\0', 'utf8');

export function lenenc(n: number): Buffer {
  if (n < 0xfb) return u8(n);
  if (n < 0x10000) return cat(u8(0xfc), u16(n));
  if (n < 0x1000000) return cat(u8(0xfd), u16(n & 0xffff), u8(n >> 16));
  const b = Buffer.alloc(9);
  b[0] = 0xfe;
  b.writeBigUInt64LE(BigInt(n), 1);
  return b;
}
export function lenstr(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  return cat(lenenc(b.length), b);
}

/** Packets for one payload (split at 16 MiB - 1, an empty packet after an exact multiple). */
export function packets(seq: number, payload: Buffer): Buffer {
  const out: Buffer[] = [];
  let at = 0;
  for (;;) {
    const n = Math.min(MAX_PACKET_PAYLOAD, payload.length - at);
    const h = Buffer.alloc(4);
    h[0] = n & 0xff;
    h[1] = (n >> 8) & 0xff;
    h[2] = (n >> 16) & 0xff;
    h[3] = seq++ & 0xff;
    out.push(h, payload.subarray(at, at + n));
    at += n;
    if (n < MAX_PACKET_PAYLOAD) break;
  }
  return cat(...out);
}

/** Capabilities of a typical modern client (mysql2 / libmariadb) — without DEPRECATE_EOF unless asked. */
export const CLIENT_CAPS = Cap.LongPassword | Cap.FoundRows | Cap.ConnectWithDb | Cap.LocalFiles | Cap.Protocol41 | Cap.Transactions | Cap.SecureConnection | Cap.MultiStatements | Cap.MultiResults | Cap.PsMultiResults | Cap.PluginAuth | Cap.ConnectAttrs | Cap.PluginAuthLenencData | Cap.SessionTrack;
export const SERVER_CAPS = (0xfffff7fe | Cap.Compress | Cap.Ssl | Cap.DeprecateEof) >>> 0;

// ---- server → client ----

export function greeting(o: { caps?: number; maria?: number; plugin?: string; version?: string; connectionId?: number; status?: number } = {}): Buffer {
  const caps = (o.caps ?? SERVER_CAPS) >>> 0;
  const scramble = Buffer.from('0123456789abcdefghij');
  const payload = cat(
    u8(10),
    nul(o.version ?? '5.5.5-10.11.19-MariaDB'),
    u32(o.connectionId ?? 42),
    scramble.subarray(0, 8),
    u8(0),
    u16(caps & 0xffff),
    u8(45),
    u16(o.status ?? 0x0002),
    u16(caps >>> 16),
    u8(21),
    Buffer.alloc(6),
    u32(o.maria ?? MariaCap.Progress | MariaCap.CacheMetadata),
    scramble.subarray(8),
    u8(0),
    nul(o.plugin ?? 'mysql_native_password'),
  );
  return packets(0, payload);
}

export function ok(seq: number, o: { affected?: number; insertId?: number; status?: number; warnings?: number; header?: number; schema?: string } = {}): Buffer {
  const parts = [u8(o.header ?? 0), lenenc(o.affected ?? 0), lenenc(o.insertId ?? 0), u16(o.status ?? 0x0002), u16(o.warnings ?? 0)];
  if (o.schema !== undefined) {
    const entry = cat(u8(1), lenstr(lenstr(o.schema)));
    parts.push(lenstr(''), lenstr(entry));
  }
  return packets(seq, cat(...parts));
}

export function err(seq: number, code: number, sqlstate: string, message: string): Buffer {
  return packets(seq, cat(u8(0xff), u16(code), Buffer.from('#' + sqlstate, 'latin1'), Buffer.from(message, 'utf8')));
}

export function eof(seq: number, status = 0x0002, warnings = 0): Buffer {
  return packets(seq, cat(u8(0xfe), u16(warnings), u16(status)));
}

/** The 0xFE OK that ends rows with DEPRECATE_EOF. */
export function okEof(seq: number, status = 0x0002): Buffer {
  return ok(seq, { header: 0xfe, status });
}

export function columnDef(seq: number, name: string, type: number = Type.VarString): Buffer {
  return packets(seq, cat(lenstr('def'), lenstr('db'), lenstr('t'), lenstr('t'), lenstr(name), lenstr(name), u8(0x0c), u16(45), u32(255), u8(type), u16(0), u8(0), u16(0)));
}

export function textRow(seq: number, values: readonly (string | null)[]): Buffer {
  return packets(seq, cat(...values.map((v) => (v === null ? u8(0xfb) : lenstr(v)))));
}

export function binaryRow(seq: number, values: readonly string[]): Buffer {
  const bitmap = Buffer.alloc((values.length + 7 + 2) >> 3);
  return packets(seq, cat(u8(0), bitmap, ...values.map((v) => lenstr(v))));
}

/**
 * A whole text result set from `seq`: column count (with MariaDB's
 * metadata-follows byte when `cacheMetadata`), definitions, EOF unless
 * `deprecateEof`, rows, and the EOF/OK that ends it.
 */
export function resultSet(seq: number, columns: readonly string[], rows: readonly (readonly (string | null)[])[], o: { deprecateEof?: boolean; status?: number; cacheMetadata?: boolean; binary?: boolean } = {}): Buffer {
  const out: Buffer[] = [packets(seq++, cat(lenenc(columns.length), o.cacheMetadata ? u8(1) : Buffer.alloc(0)))];
  for (const c of columns) out.push(columnDef(seq++, c));
  if (!o.deprecateEof) out.push(eof(seq++));
  for (const r of rows) out.push(o.binary ? binaryRow(seq++, r.map((v) => v ?? '')) : textRow(seq++, r));
  out.push(o.deprecateEof ? okEof(seq, o.status ?? 0x0002) : eof(seq, o.status ?? 0x0002));
  return cat(...out);
}

/** Number of packets a resultSet() call makes (to continue the sequence after it). */
export function resultSetPackets(columns: number, rows: number, deprecateEof = false): number {
  return 1 + columns + (deprecateEof ? 0 : 1) + rows + 1;
}

export function prepareOk(seq: number, id: number, params: number, columns: number, deprecateEof = false): Buffer {
  const out: Buffer[] = [packets(seq++, cat(u8(0), u32(id), u16(columns), u16(params), u8(0), u16(0)))];
  for (let i = 0; i < params; i++) out.push(columnDef(seq++, '?'));
  if (params > 0 && !deprecateEof) out.push(eof(seq++));
  for (let i = 0; i < columns; i++) out.push(columnDef(seq++, `c${i}`));
  if (columns > 0 && !deprecateEof) out.push(eof(seq++));
  return cat(...out);
}

export function localInfile(seq: number, file: string): Buffer {
  return packets(seq, cat(u8(0xfb), Buffer.from(file)));
}

export function authSwitch(seq: number, plugin: string): Buffer {
  return packets(seq, cat(u8(0xfe), nul(plugin), Buffer.from('abcdefghij0123456789\0')));
}

export function authMoreData(seq: number, data: Buffer): Buffer {
  return packets(seq, cat(u8(0x01), data));
}

// ---- client → server ----

export function handshakeResponse(o: { user?: string; db?: string; caps?: number; maria?: number; plugin?: string; attrs?: Record<string, string>; seq?: number } = {}): Buffer {
  let caps = (o.caps ?? CLIENT_CAPS) >>> 0;
  if (o.db === undefined) caps &= ~Cap.ConnectWithDb;
  const filler = Buffer.alloc(23);
  if (o.maria !== undefined) {
    caps &= ~Cap.LongPassword; // MariaDB: CLIENT_MYSQL unset, extended caps in the filler
    filler.writeUInt32LE(o.maria, 19);
  }
  const attrs = o.attrs ?? { _client_name: 'test', program_name: 'builder' };
  const attrBytes = cat(...Object.entries(attrs).map(([k, v]) => cat(lenstr(k), lenstr(v))));
  const parts = [u32(caps), u32(MAX_PACKET_PAYLOAD), u8(45), filler, nul(o.user ?? 'alice')];
  const auth = Buffer.from('01234567890123456789');
  parts.push(caps & Cap.PluginAuthLenencData ? lenstr(auth) : cat(u8(auth.length), auth));
  if (caps & Cap.ConnectWithDb) parts.push(nul(o.db ?? ''));
  if (caps & Cap.PluginAuth) parts.push(nul(o.plugin ?? 'mysql_native_password'));
  if (caps & Cap.ConnectAttrs) parts.push(lenstr(attrBytes));
  return packets(o.seq ?? 1, cat(...parts));
}

export function sslRequest(caps = CLIENT_CAPS | Cap.Ssl, seq = 1): Buffer {
  return packets(seq, cat(u32(caps), u32(MAX_PACKET_PAYLOAD), u8(45), Buffer.alloc(23)));
}

export function authData(seq: number, data: Buffer): Buffer {
  return packets(seq, data);
}

export function command(com: number, body: Buffer | string = Buffer.alloc(0)): Buffer {
  return packets(0, cat(u8(com), typeof body === 'string' ? Buffer.from(body, 'utf8') : body));
}

export const query = (sql: string): Buffer => command(Com.Query, sql);
export const initDb = (db: string): Buffer => command(Com.InitDb, db);
export const prepare = (sql: string): Buffer => command(Com.StmtPrepare, sql);
export const stmtClose = (id: number): Buffer => command(Com.StmtClose, u32(id));
export const stmtReset = (id: number): Buffer => command(Com.StmtReset, u32(id));
export const ping = (): Buffer => command(Com.Ping);
export const quit = (): Buffer => command(Com.Quit);
export const resetConnection = (): Buffer => command(Com.ResetConnection);
export const statistics = (): Buffer => command(Com.Statistics);
export const fieldList = (table: string): Buffer => command(Com.FieldList, nul(table));
export const setOption = (off: boolean): Buffer => command(Com.SetOption, u16(off ? 1 : 0));

export function sendLongData(id: number, param: number, data: Buffer): Buffer {
  return command(Com.StmtSendLongData, cat(u32(id), u16(param), data));
}

/** A typed parameter for `execute`: the wire type, unsigned flag, and the encoded value (null: NULL). */
export interface Param {
  type: number;
  unsigned?: boolean;
  value: Buffer | null;
}

export function execute(id: number, params: readonly Param[], bind = true, flags = 0): Buffer {
  const parts = [u32(id), u8(flags), u32(1)];
  if (params.length > 0) {
    const bitmap = Buffer.alloc((params.length + 7) >> 3);
    params.forEach((p, i) => {
      if (p.value === null) bitmap[i >> 3] |= 1 << (i & 7);
    });
    parts.push(bitmap, u8(bind ? 1 : 0));
    if (bind) for (const p of params) parts.push(u8(p.type), u8(p.unsigned ? 0x80 : 0));
    for (const p of params) if (p.value !== null) parts.push(p.value);
  }
  return command(Com.StmtExecute, cat(...parts));
}

export function changeUser(user: string, db: string, plugin = 'mysql_native_password'): Buffer {
  return command(Com.ChangeUser, cat(nul(user), u8(20), Buffer.alloc(20, 7), nul(db), u16(45), nul(plugin), lenstr(cat(lenstr('program_name'), lenstr('cu')))));
}

/** Value encoders for `execute`. */
export const V = {
  tiny: (n: number): Buffer => Buffer.from([n & 0xff]),
  short: (n: number): Buffer => u16(n & 0xffff),
  long: (n: number): Buffer => u32(n),
  longlong: (n: bigint): Buffer => {
    const b = Buffer.alloc(8);
    b.writeBigInt64LE(n, 0);
    return b;
  },
  float: (n: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeFloatLE(n, 0);
    return b;
  },
  double: (n: number): Buffer => {
    const b = Buffer.alloc(8);
    b.writeDoubleLE(n, 0);
    return b;
  },
  str: (s: string | Buffer): Buffer => lenstr(s),
  datetime: (y: number, mo: number, d: number, h = 0, mi = 0, s = 0, us = 0): Buffer => (us ? cat(u8(11), u16(y), u8(mo), u8(d), u8(h), u8(mi), u8(s), u32(us)) : h || mi || s ? cat(u8(7), u16(y), u8(mo), u8(d), u8(h), u8(mi), u8(s)) : cat(u8(4), u16(y), u8(mo), u8(d))),
  time: (neg: boolean, days: number, h: number, mi: number, s: number, us = 0): Buffer => (us ? cat(u8(12), u8(neg ? 1 : 0), u32(days), u8(h), u8(mi), u8(s), u32(us)) : cat(u8(8), u8(neg ? 1 : 0), u32(days), u8(h), u8(mi), u8(s))),
  zeroDate: (): Buffer => u8(0),
};

/** The usual login of a test session: greeting, response (user alice, db d), OK. */
export function login(o: { deprecateEof?: boolean; maria?: number; clientCaps?: number } = {}): [Buffer, Buffer, Buffer] {
  const caps = (o.clientCaps ?? CLIENT_CAPS) | (o.deprecateEof ? Cap.DeprecateEof : 0);
  return [greeting(), handshakeResponse({ user: 'alice', db: 'd', caps, ...(o.maria !== undefined ? { maria: o.maria } : {}) }), ok(2)];
}
