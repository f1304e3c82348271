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
 *   'Q' collector 0x00 epoch 0x00 seq(8) id(16) → time(8): the trail, per collector epoch in seq order
 *   'H' collector 0x00 epoch 0x00       → JSON {c, e, h}: an epoch known, and the highest seq reported
 *   'X' collector 0x00 epoch 0x00 from(8) → to(8): a seq range retention removed
 *   'G' seal id(16)                     → a storage seal (lib/trail.ts), JSON
 *
 * time is the event time in microseconds since the epoch, unsigned 64-bit
 * big-endian, so that byte order is time order; id is the event_id's 16
 * bytes, which breaks ties (UUIDv7 ids sort by creation time). Index
 * values are escaped (0x00 → 0x00 0xFF) and end in 0x00, so no value is a
 * prefix of another value's range.
 *
 * record: 0x02 | received_at ms u64 BE | seal id (16 bytes, zero: none) |
 *         len(delivered_by) u16 BE | delivered_by UTF-8 | the AuditEvent
 *         bytes exactly as received. (0x01: the same without the seal id.)
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
  Trail: 0x51, // 'Q'
  Head: 0x48, // 'H'
  Dropped: 0x58, // 'X'
  Seal: 0x47, // 'G'
} as const;
export type IndexTag = typeof TAG.User | typeof TAG.Database | typeof TAG.Session | typeof TAG.Kind | typeof TAG.Collector;

export const COUNT_KEY = Buffer.from('Mcount', 'latin1');
const RECORD_V1 = 0x01;
const RECORD_V2 = 0x02;
const NO_SEAL = Buffer.alloc(16);
/** Larger than any event time the store accepts; an open upper bound. */
export const TIME_MAX = 2 ** 53 - 1;

const HEX = new Int8Array(128).fill(-1);
for (let i = 0; i < 16; i++) {
  HEX['0123456789abcdef'.charCodeAt(i)] = i;
  HEX['0123456789ABCDEF'.charCodeAt(i)] = i;
}

/** An event_id's 16 bytes; anything but a canonical UUID gives what hex decoding of it without dashes gives (callers check for 16 bytes). */
export function idBytes(eventId: string): Buffer {
  if (eventId.length === 36) {
    // the canonical 8-4-4-4-12 form, decoded in one pass (this runs for every stored event)
    const out = Buffer.allocUnsafe(16);
    let o = 0;
    for (let i = 0; i < 36; i++) {
      if (i === 8 || i === 13 || i === 18 || i === 23) {
        if (eventId.charCodeAt(i) !== 0x2d) break;
        continue;
      }
      const hi = HEX[eventId.charCodeAt(i)] ?? -1;
      const lo = HEX[eventId.charCodeAt(++i)] ?? -1;
      if (hi < 0 || lo < 0) break;
      out[o++] = (hi << 4) | lo;
    }
    if (o === 16) return out;
  }
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

/** `value` as UTF-8 with 0x00 escaped as 0x00 0xFF, ending in 0x00: no escaped value is a prefix of another. */
function escaped(value: string): Buffer {
  const raw = Buffer.from(value, 'utf8');
  let zeros = 0;
  for (const byte of raw) if (byte === 0) zeros++;
  const out = Buffer.allocUnsafe(raw.length + zeros + 1);
  let p = 0;
  for (const byte of raw) {
    out[p++] = byte;
    if (byte === 0) out[p++] = 0xff;
  }
  out[p] = 0;
  return out;
}

/**
 * Prefixes built lately, by tag and value: users, databases, kinds and
 * collector epochs repeat from event to event. Callers only copy from them
 * (or hand them to RocksDB, which copies), never write into them.
 */
const prefixes = new Map<string, Buffer>();
const PREFIXES_MAX = 4096;

function memoPrefix(name: string, build: () => Buffer): Buffer {
  let p = prefixes.get(name);
  if (p === undefined) {
    if (prefixes.size >= PREFIXES_MAX) prefixes.clear();
    p = build();
    prefixes.set(name, p);
  }
  return p;
}

/** The prefix every index key for `value` under `tag` starts with. */
export function indexPrefix(tag: IndexTag, value: string): Buffer {
  return memoPrefix(String.fromCharCode(tag) + value, () => Buffer.concat([Buffer.of(tag), escaped(value)]));
}

/** The prefix of one collector epoch's keys under a trail tag. */
export function epochPrefix(tag: typeof TAG.Trail | typeof TAG.Head | typeof TAG.Dropped, collectorId: string, epoch: string): Buffer {
  // the collector id's length makes the name unambiguous whatever the two strings hold
  return memoPrefix(`${String.fromCharCode(tag)}${collectorId.length}:${collectorId}${epoch}`, () => Buffer.concat([Buffer.of(tag), escaped(collectorId), escaped(epoch)]));
}

export function u64Key(prefix: Buffer, v: bigint): Buffer {
  const k = Buffer.allocUnsafe(prefix.length + 8);
  prefix.copy(k, 0);
  k.writeBigUInt64BE(v, prefix.length);
  return k;
}

export function trailKey(prefix: Buffer, seq: bigint, id: Buffer): Buffer {
  return Buffer.concat([u64Key(prefix, seq), id]);
}

export function sealKey(sealId: string): Buffer {
  return Buffer.concat([Buffer.of(TAG.Seal), idBytes(sealId)]);
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

export function encodeRecord(raw: Uint8Array, deliveredBy: string, receivedAtMs: number, sealId = ''): Buffer {
  const by = Buffer.from(deliveredBy, 'utf8').subarray(0, 0xffff);
  const out = Buffer.allocUnsafe(1 + 8 + 16 + 2 + by.length + raw.length);
  out[0] = RECORD_V2;
  out.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(receivedAtMs))), 1);
  (sealId ? idBytes(sealId) : NO_SEAL).copy(out, 9);
  out.writeUInt16BE(by.length, 25);
  by.copy(out, 27);
  out.set(raw, 27 + by.length);
  return out;
}

export interface DecodedRecord {
  receivedAtMs: number;
  deliveredBy: string;
  raw: Buffer;
  /** '' when the row was stored unsealed. */
  sealId: string;
}

function uuidOf(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function decodeRecord(value: Buffer): DecodedRecord {
  const v = value[0];
  const head = v === RECORD_V2 ? 27 : 11;
  if (value.length < head || (v !== RECORD_V1 && v !== RECORD_V2)) throw new Error(`unknown record format (version byte ${v})`);
  const receivedAtMs = Number(value.readBigUInt64BE(1));
  const seal = v === RECORD_V2 ? value.subarray(9, 25) : NO_SEAL;
  const byLen = value.readUInt16BE(head - 2);
  if (head + byLen > value.length) throw new Error('truncated record');
  return {
    receivedAtMs,
    deliveredBy: value.toString('utf8', head, head + byLen),
    raw: value.subarray(head + byLen),
    sealId: seal.equals(NO_SEAL) ? '' : uuidOf(seal),
  };
}
