/**
 * Byte builders for PostgreSQL protocol messages, for tests only: one
 * function per message, both directions (server messages are what a real
 * server sends; frontend ones are checked against pg-protocol's serializer).
 */

function typed(type: string, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = type.charCodeAt(0);
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

const cstr = (s: string): Buffer => Buffer.from(s + '\0', 'utf8');
const i16 = (n: number): Buffer => {
  const b = Buffer.allocUnsafe(2);
  b.writeInt16BE(n, 0);
  return b;
};
const i32 = (n: number): Buffer => {
  const b = Buffer.allocUnsafe(4);
  b.writeInt32BE(n, 0);
  return b;
};
const cat = (...parts: Buffer[]): Buffer => Buffer.concat(parts);

// ---- frontend ----

export function startup(params: Record<string, string>, protocol = 196608): Buffer {
  const body = cat(i32(protocol), ...Object.entries(params).flatMap(([k, v]) => [cstr(k), cstr(v)]), Buffer.from([0]));
  return cat(i32(body.length + 4), body);
}
export const sslRequest = (): Buffer => cat(i32(8), i32(80877103));
export const gssEncRequest = (): Buffer => cat(i32(8), i32(80877104));
export const cancelRequest = (pid: number, key: number): Buffer => cat(i32(16), i32(80877102), i32(pid), i32(key));
export const query = (sql: string): Buffer => typed('Q', cstr(sql));
export const parse = (name: string, sql: string, types: number[] = []): Buffer => typed('P', cat(cstr(name), cstr(sql), i16(types.length), ...types.map(i32)));

/** Bind with values: string = text, Buffer = binary, null = NULL. */
export function bind(portal: string, statement: string, values: (string | Buffer | null)[] = [], resultFormats: number[] = []): Buffer {
  const formats = values.map((v) => (Buffer.isBuffer(v) ? 1 : 0));
  const vals = values.map((v) => (v === null ? i32(-1) : cat(i32(Buffer.byteLength(v)), Buffer.isBuffer(v) ? v : Buffer.from(v))));
  return typed('B', cat(cstr(portal), cstr(statement), i16(formats.length), ...formats.map(i16), i16(values.length), ...vals, i16(resultFormats.length), ...resultFormats.map(i16)));
}
export const describe = (kind: 'S' | 'P', name: string): Buffer => typed('D', cat(Buffer.from(kind), cstr(name)));
export const execute = (portal = '', maxRows = 0): Buffer => typed('E', cat(cstr(portal), i32(maxRows)));
export const close = (kind: 'S' | 'P', name: string): Buffer => typed('C', cat(Buffer.from(kind), cstr(name)));
export const sync = (): Buffer => typed('S', Buffer.alloc(0));
export const flush = (): Buffer => typed('H', Buffer.alloc(0));
export const terminate = (): Buffer => typed('X', Buffer.alloc(0));
export const copyData = (data: string | Buffer): Buffer => typed('d', Buffer.isBuffer(data) ? data : Buffer.from(data));
export const copyDone = (): Buffer => typed('c', Buffer.alloc(0));
export const copyFail = (message: string): Buffer => typed('f', cstr(message));
export const password = (pw: string): Buffer => typed('p', cstr(pw));
export const saslInitial = (mechanism: string, data: string): Buffer => typed('p', cat(cstr(mechanism), i32(data.length), Buffer.from(data)));
export function functionCall(oid: number, args: (string | null)[]): Buffer {
  const vals = args.map((v) => (v === null ? i32(-1) : cat(i32(Buffer.byteLength(v)), Buffer.from(v))));
  return typed('F', cat(i32(oid), i16(0), i16(args.length), ...vals, i16(0)));
}

// ---- backend ----

export const authOk = (): Buffer => typed('R', i32(0));
export const authCleartext = (): Buffer => typed('R', i32(3));
export const authMd5 = (): Buffer => typed('R', cat(i32(5), Buffer.from([1, 2, 3, 4])));
export const authSasl = (mechs: string[] = ['SCRAM-SHA-256']): Buffer => typed('R', cat(i32(10), ...mechs.map(cstr), Buffer.from([0])));
export const authSaslContinue = (data: string): Buffer => typed('R', cat(i32(11), Buffer.from(data)));
export const authSaslFinal = (data: string): Buffer => typed('R', cat(i32(12), Buffer.from(data)));
export const authCode = (code: number): Buffer => typed('R', i32(code));
export const parameterStatus = (name: string, value: string): Buffer => typed('S', cat(cstr(name), cstr(value)));
export const backendKeyData = (pid: number, key: number): Buffer => typed('K', cat(i32(pid), i32(key)));
export const readyForQuery = (status: 'I' | 'T' | 'E' = 'I'): Buffer => typed('Z', Buffer.from(status));
export function rowDescription(names: string[]): Buffer {
  const fields = names.map((n) => cat(cstr(n), i32(0), i16(0), i32(25), i16(-1), i32(-1), i16(0)));
  return typed('T', cat(i16(names.length), ...fields));
}
export function dataRow(values: (string | null)[]): Buffer {
  return typed('D', cat(i16(values.length), ...values.map((v) => (v === null ? i32(-1) : cat(i32(Buffer.byteLength(v)), Buffer.from(v))))));
}
export const commandComplete = (tag: string): Buffer => typed('C', cstr(tag));
export function errorResponse(code: string, message: string, severity = 'ERROR'): Buffer {
  return typed('E', cat(Buffer.from('S'), cstr(severity), Buffer.from('V'), cstr(severity), Buffer.from('C'), cstr(code), Buffer.from('M'), cstr(message), Buffer.from([0])));
}
export function noticeResponse(message: string): Buffer {
  return typed('N', cat(Buffer.from('S'), cstr('NOTICE'), Buffer.from('C'), cstr('00000'), Buffer.from('M'), cstr(message), Buffer.from([0])));
}
export const notification = (pid: number, channel: string, payload: string): Buffer => typed('A', cat(i32(pid), cstr(channel), cstr(payload)));
export const parseComplete = (): Buffer => typed('1', Buffer.alloc(0));
export const bindComplete = (): Buffer => typed('2', Buffer.alloc(0));
export const closeComplete = (): Buffer => typed('3', Buffer.alloc(0));
export const noData = (): Buffer => typed('n', Buffer.alloc(0));
export const portalSuspended = (): Buffer => typed('s', Buffer.alloc(0));
export const emptyQuery = (): Buffer => typed('I', Buffer.alloc(0));
export const parameterDescription = (oids: number[]): Buffer => typed('t', cat(i16(oids.length), ...oids.map(i32)));
export const copyInResponse = (columns: number): Buffer => typed('G', cat(Buffer.from([0]), i16(columns), ...Array.from({ length: columns }, () => i16(0))));
export const copyOutResponse = (columns: number): Buffer => typed('H', cat(Buffer.from([0]), i16(columns), ...Array.from({ length: columns }, () => i16(0))));
export const functionCallResponse = (value: string | null): Buffer => typed('V', value === null ? i32(-1) : cat(i32(Buffer.byteLength(value)), Buffer.from(value)));
/** Any typed message, for hostile cases. */
export const raw = (type: string, body: Buffer): Buffer => typed(type, body);
/** A header with an arbitrary declared length and no body. */
export function header(type: string, declaredLength: number): Buffer {
  const out = Buffer.allocUnsafe(5);
  out[0] = type.charCodeAt(0);
  out.writeInt32BE(declaredLength, 1);
  return out;
}

/** The server side of a trust login. */
export function loginOk(pid = 4242): Buffer {
  return cat(authOk(), parameterStatus('server_version', '15.8'), parameterStatus('application_name', 'app'), backendKeyData(pid, 0x5ec12e7), readyForQuery('I'));
}
