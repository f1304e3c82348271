/**
 * Key layout of the embedded store (one RocksDB keyspace, a tag byte first):
 *
 *   'E' time(8) id(16)                  → record: the event, time order = key order
 *   'I' id(16)                          → time(8): dedup and lookup by event_id
 *   'U' user 0x00 time(8) id(16)        → empty: index by user
 *   'D' database 0x00 time(8) id(16)    → empty: index by database
 *   'S' session_id 0x00 time(8) id(16)  → empty: index by session
 *   'K' kind 0x00 time(8) id(16)        → empty: index by kind
 *   'C' collector_id 0x00 time(8) id(16)→ empty: index by collector
 *   'M' "count"                         → u64: number of events held
 *
 * time is the event time in microseconds since the epoch, unsigned 64-bit
 * big-endian, so that byte order is time order; id is the event_id's 16
 * bytes, which breaks ties (UUIDv7 ids sort by creation time). Index
 * values are escaped (0x00 → 0x00 0xFF) and end in 0x00, so no value is a
 * prefix of another value's range.
 *
 * record: 0x01 | received_at ms u64 BE | len(delivered_by) u16 BE |
 *         delivered_by UTF-8 | the AuditEvent bytes exactly as received.
 * @internal
 */

export const TAG = {
  Event: 0x45, // 'E'
  Id: 0x49, // 'I'
  User: 0x55, // 'U'
  Database: 0x44, // 'D'
  Session: 0x53, // 'S'
  Kind: 0x4b, // 'K'
  Collector: 0x43, // 'C'
  Meta: 0x4d, // 'M'
} as const;
export type IndexTag = typeof TAG.User | typeof TAG.Database | typeof TAG.Session | typeof TAG.Kind | typeof TAG.Collector;

export const COUNT_KEY = Buffer.from('Mcount', 'latin1');
const RECORD_VERSION = 0x01;
/** Larger than any event time the store accepts; an open upper bound. */
export const TIME_MAX = 2 ** 53 - 1;

export function idBytes(eventId: string): Buffer {
  return Buffer.from(eventId.replace(/-/g, ''), 'hex');
}

function u64(n: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(BigInt(Math.floor(n)));
  return b;
}

export function eventKey(timeMicros: number, id: Buffer): Buffer {
  const k = Buffer.allocUnsafe(25);
  k[0] = TAG.Event;
  k.writeBigUInt64BE(BigInt(Math.floor(timeMicros)), 1);
  id.copy(k, 9);
  return k;
}

export function idKey(id: Buffer): Buffer {
  const k = Buffer.allocUnsafe(17);
  k[0] = TAG.Id;
  id.copy(k, 1);
  return k;
}

export function timeValue(timeMicros: number): Buffer {
  return u64(timeMicros);
}

/** The prefix every index key for `value` under `tag` starts with. */
export function indexPrefix(tag: IndexTag, value: string): Buffer {
  const raw = Buffer.from(value, 'utf8');
  let zeros = 0;
  for (const byte of raw) if (byte === 0) zeros++;
  const out = Buffer.allocUnsafe(1 + raw.length + zeros + 1);
  out[0] = tag;
  let p = 1;
  for (const byte of raw) {
    out[p++] = byte;
    if (byte === 0) out[p++] = 0xff;
  }
  out[p] = 0;
  return out;
}

export function indexKey(prefix: Buffer, timeMicros: number, id: Buffer): Buffer {
  const k = Buffer.allocUnsafe(prefix.length + 24);
  prefix.copy(k, 0);
  k.writeBigUInt64BE(BigInt(Math.floor(timeMicros)), prefix.length);
  id.copy(k, prefix.length + 8);
  return k;
}

/** The 'E' key an index key points at (its last 24 bytes are time and id). */
export function eventKeyOfIndexKey(key: Buffer): Buffer {
  return Buffer.concat([Buffer.of(TAG.Event), key.subarray(key.length - 24)]);
}

/** Bounds for a reverse scan of `prefix` over times in [since, until). */
export function timeRange(prefix: Buffer, sinceMicros: number, untilMicros: number): { gte: Buffer; lt: Buffer } {
  return { gte: Buffer.concat([prefix, u64(sinceMicros)]), lt: Buffer.concat([prefix, u64(untilMicros)]) };
}

export function encodeRecord(raw: Uint8Array, deliveredBy: string, receivedAtMs: number): Buffer {
  const by = Buffer.from(deliveredBy, 'utf8').subarray(0, 0xffff);
  const out = Buffer.allocUnsafe(1 + 8 + 2 + by.length + raw.length);
  out[0] = RECORD_VERSION;
  out.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(receivedAtMs))), 1);
  out.writeUInt16BE(by.length, 9);
  by.copy(out, 11);
  out.set(raw, 11 + by.length);
  return out;
}

export interface DecodedRecord {
  receivedAtMs: number;
  deliveredBy: string;
  raw: Buffer;
}

export function decodeRecord(value: Buffer): DecodedRecord {
  if (value.length < 11 || value[0] !== RECORD_VERSION) throw new Error(`unknown record format (version byte ${value[0]})`);
  const receivedAtMs = Number(value.readBigUInt64BE(1));
  const byLen = value.readUInt16BE(9);
  if (11 + byLen > value.length) throw new Error('truncated record');
  return {
    receivedAtMs,
    deliveredBy: value.toString('utf8', 11, 11 + byLen),
    raw: value.subarray(11 + byLen),
  };
}
