import { isUtf8 } from 'node:buffer';
import type { WireReader } from '../wire/reader.js';
import { Type, lenenc, u16, u32 } from './packets.js';
import { UNREAD_VALUE } from '../postgres/pending.js';

/**
 * COM_STMT_EXECUTE: statement id, flags, and — when `render` — the bound
 * values as text. Layout after the command byte: stmt_id(4) flags(1)
 * iteration_count(4), then for n > 0 parameters: NULL bitmap ((n+7)/8),
 * new_params_bound_flag(1), [types: n × (type(1), flags(1))], values of
 * the non-NULL parameters that have no long data. Types are remembered per
 * statement: a later execute may send new_params_bound = 0 and reuse them.
 */

/** Rendered value of a parameter sent with COM_STMT_SEND_LONG_DATA. */
export function longDataValue(bytes: number): string {
  return `<long data: ${bytes} bytes>`;
}

export class ExecuteHead {
  statementId = 0;
  flags = 0;
  /** Types bound by this execute (2 bytes each), or null when it reuses the statement's. */
  types: Buffer | null = null;
}

/** The unsigned flag in a parameter type's second byte. */
const UNSIGNED = 0x80;

/**
 * Parses an execute. `types`: the statement's remembered types (null if
 * none); `longData`: bytes sent per parameter with SEND_LONG_DATA (null if
 * none). Returns the rendered values (null when `render` is off) or
 * undefined when the packet is malformed. `r` is after the command byte.
 * `cut`: `r` holds only the head of the execute (the rest streamed through
 * unread): the value the head ends in is rendered as far as it goes, the
 * ones after it as UNREAD_VALUE.
 */
export function parseExecute(
  r: WireReader,
  nParams: number,
  types: Buffer | null,
  longData: ReadonlyMap<number, number> | null,
  render: boolean,
  maxValueBytes: number,
  head: ExecuteHead,
  cut = false,
): string[] | null | undefined {
  head.statementId = u32(r);
  head.flags = r.uint8();
  u32(r); // iteration count, always 1
  head.types = null;
  if (!r.ok) return undefined;
  if (nParams <= 0 || r.remaining === 0) return render && nParams <= 0 ? [] : null;
  const bitmapAt = r.skip((nParams + 7) >> 3);
  const bound = r.uint8();
  if (!r.ok || bound > 1) return undefined;
  let typesAt: Buffer | null = types;
  let typesOff = 0;
  if (bound === 1) {
    const at = r.skip(nParams * 2);
    if (at < 0) return undefined;
    head.types = Buffer.from(r.buffer.subarray(at, at + nParams * 2)); // kept for later executes
    typesAt = r.buffer;
    typesOff = at;
  }
  if (!render) return null;
  const buf = r.buffer;
  const out = new Array<string>(nParams);
  for (let i = 0; i < nParams; i++) {
    const ld = longData?.get(i);
    if (ld !== undefined) {
      out[i] = longDataValue(ld); // the server takes long data first; its value is not in the packet
      continue;
    }
    if (buf[bitmapAt + (i >> 3)] & (1 << (i & 7))) {
      out[i] = 'NULL';
      continue;
    }
    if (typesAt === null) return undefined; // values without any known types
    const type = typesAt[typesOff + i * 2];
    const unsigned = (typesAt[typesOff + i * 2 + 1] & UNSIGNED) !== 0;
    const at = r.position;
    const end = at + r.remaining;
    const v = readValue(r, type, unsigned, maxValueBytes);
    if (v === undefined || !r.ok) {
      if (!cut) return undefined;
      out[i] = cutValue(r.reset(buf, at, end), maxValueBytes);
      out.fill(UNREAD_VALUE, i + 1);
      return out;
    }
    out[i] = v;
  }
  return out;
}

/** A length-prefixed value that runs past the end of a head: the bytes that are there; any other value: unread. */
function cutValue(r: WireReader, maxBytes: number): string {
  const n = lenenc(r);
  if (!r.ok || n < 0) return UNREAD_VALUE;
  const at = r.position;
  const avail = r.remaining;
  return avail > 0 && n > avail ? renderBytes(r.buffer, at, avail, maxBytes) : UNREAD_VALUE;
}

/** One binary-protocol value as text; undefined when malformed or of an unknown type. */
export function readValue(r: WireReader, type: number, unsigned: boolean, maxBytes: number): string | undefined {
  const b = r.buffer;
  switch (type) {
    case Type.Null:
      return 'NULL';
    case Type.Tiny: {
      const v = r.uint8();
      return String(unsigned || v < 0x80 ? v : v - 0x100);
    }
    case Type.Short:
    case Type.Year: {
      const v = u16(r);
      return String(unsigned || v < 0x8000 ? v : v - 0x10000);
    }
    case Type.Long:
    case Type.Int24: {
      const at = r.skip(4);
      if (at < 0) return undefined;
      return String(unsigned ? b.readUInt32LE(at) : b.readInt32LE(at));
    }
    case Type.LongLong: {
      const at = r.skip(8);
      if (at < 0) return undefined;
      return String(unsigned ? b.readBigUInt64LE(at) : b.readBigInt64LE(at));
    }
    case Type.Float: {
      const at = r.skip(4);
      return at < 0 ? undefined : String(b.readFloatLE(at));
    }
    case Type.Double: {
      const at = r.skip(8);
      return at < 0 ? undefined : String(b.readDoubleLE(at));
    }
    case Type.Date:
    case Type.DateTime:
    case Type.Timestamp:
    case Type.NewDate:
    case Type.DateTime2:
    case Type.Timestamp2:
      return readDateTime(r, type === Type.Date || type === Type.NewDate);
    case Type.Time:
    case Type.Time2:
      return readTime(r);
    case Type.Decimal:
    case Type.NewDecimal:
    case Type.VarChar:
    case Type.Bit:
    case Type.Json:
    case Type.Enum:
    case Type.Set:
    case Type.TinyBlob:
    case Type.MediumBlob:
    case Type.LongBlob:
    case Type.Blob:
    case Type.VarString:
    case Type.String:
    case Type.Geometry: {
      const n = lenenc(r);
      if (n < 0) return undefined;
      const at = r.skip(n);
      if (at < 0) return undefined;
      return renderBytes(b, at, n, maxBytes);
    }
    default:
      return undefined;
  }
}

/** Text as UTF-8 cut at a character boundary to `maxBytes`; bytes that are not UTF-8 text as hex (\\x…). */
export function renderBytes(b: Buffer, at: number, n: number, maxBytes: number): string {
  let cut = n;
  if (n > maxBytes) {
    cut = maxBytes;
    while (cut > 0 && (b[at + cut] & 0xc0) === 0x80) cut--; // do not split a UTF-8 sequence
  }
  const view = b.subarray(at, at + cut);
  if (isText(view)) return view.toString('utf8');
  const k = n * 2 + 2 > maxBytes ? Math.max(0, (maxBytes - 2) >> 1) : n;
  return '\\x' + b.toString('hex', at, at + k);
}

/** Valid UTF-8 without control characters other than tab, newline and carriage return. */
function isText(view: Buffer): boolean {
  for (let i = 0; i < view.length; i++) {
    const c = view[i];
    if ((c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) || c === 0x7f) return false;
  }
  return isUtf8(view);
}

const pad2 = (n: number): string => (n < 10 ? '0' + n : String(n));

function readDateTime(r: WireReader, dateOnly: boolean): string | undefined {
  const len = r.uint8();
  if (!r.ok || (len !== 0 && len !== 4 && len !== 7 && len !== 11)) return undefined;
  if (len === 0) return dateOnly ? '0000-00-00' : '0000-00-00 00:00:00';
  const year = u16(r);
  const month = r.uint8();
  const day = r.uint8();
  let s = `${String(year).padStart(4, '0')}-${pad2(month)}-${pad2(day)}`;
  if (len >= 7) {
    const h = r.uint8();
    const m = r.uint8();
    const sec = r.uint8();
    s += ` ${pad2(h)}:${pad2(m)}:${pad2(sec)}`;
    if (len === 11) s += '.' + String(u32(r)).padStart(6, '0');
  } else if (!dateOnly) s += ' 00:00:00';
  return r.ok ? s : undefined;
}

function readTime(r: WireReader): string | undefined {
  const len = r.uint8();
  if (!r.ok || (len !== 0 && len !== 8 && len !== 12)) return undefined;
  if (len === 0) return '00:00:00';
  const neg = r.uint8() === 1;
  const days = u32(r);
  const h = r.uint8() + days * 24;
  const m = r.uint8();
  const sec = r.uint8();
  let s = `${neg ? '-' : ''}${pad2(h)}:${pad2(m)}:${pad2(sec)}`;
  if (len === 12) s += '.' + String(u32(r)).padStart(6, '0');
  return r.ok ? s : undefined;
}
