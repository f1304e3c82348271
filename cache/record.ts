import { AuditError, ErrorCode } from '../lib/errors.js';
import type { Loss, LossReason } from './losses.js';

/**
 * RocksDB key space of the cache (one cache per directory):
 *   'e'                  the epoch, 16 bytes (written once, when the cache is created)
 *   'm'                  meta record, JSON, rewritten in every batch that changes records
 *   'o'                  the collector id the epoch belongs to, UTF-8 (written at the first
 *                        open that names one; a cache opened under another id is refused)
 *   'q' + u64 BE seq     a sealed event set aside: its key id is not configured (rotation
 *                        without the old key as a read key); out of the queue and the counters,
 *                        kept so that it can still be read once the key is given
 *   'r' + u64 BE seq     one sealed event (see seal.ts)
 * Keys carry no event bytes: only the fixed prefixes and the sequence number.
 * @internal
 */
export const EPOCH_KEY = Buffer.from('e');
export const META_KEY = Buffer.from('m');
export const OWNER_KEY = Buffer.from('o');
const RECORD_PREFIX = 0x72; // 'r'
export const RECORD_KEY_BYTES = 9;
/** Just past every record key. */
export const RECORDS_END = Buffer.from('s');
export const RECORDS_START = Buffer.from('r');

const QUARANTINE_PREFIX = 0x71; // 'q'
export const QUARANTINE_START = Buffer.from('q');

export function quarantineKey(seq: bigint): Buffer {
  const k = recordKey(seq);
  k[0] = QUARANTINE_PREFIX;
  return k;
}

export function recordKey(seq: bigint): Buffer {
  const k = Buffer.allocUnsafe(RECORD_KEY_BYTES);
  k[0] = RECORD_PREFIX;
  k.writeBigUInt64BE(seq, 1);
  return k;
}

/** The seq of a record key, or undefined for any other key. */
export function seqOfKey(key: Uint8Array): bigint | undefined {
  if (key.length !== RECORD_KEY_BYTES || key[0] !== RECORD_PREFIX) return undefined;
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).readBigUInt64BE(1);
}

export const MAX_SEQ = 0xffff_ffff_ffff_ffffn;

export function epochToBytes(epoch: string): Buffer {
  const hex = epoch.replace(/-/g, '');
  if (!/^[0-9a-f]{32}$/.test(hex)) throw new AuditError(ErrorCode.CacheCorrupt, 'cache epoch is not a UUID');
  return Buffer.from(hex, 'hex');
}

export function epochFromBytes(b: Uint8Array): string {
  const h = Buffer.from(b).toString('hex');
  if (h.length !== 32) throw new AuditError(ErrorCode.CacheCorrupt, 'cache epoch record has the wrong length');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Durable counters, written atomically with every batch so a restart needs no full scan. */
export interface Meta {
  epoch: string;
  createdMs: number;
  /** Highest seq ever committed in this epoch (0 before the first). */
  lastSeq: bigint;
  /** No record has a seq below this (a hint that skips deleted ranges). */
  lowSeq: bigint;
  /** Records held and their bytes (key + sealed value). */
  events: number;
  bytes: number;
  /** Number of batches committed; tells after a failed write whether it landed. */
  commit: number;
  /** Losses written with the removal that caused them and not yet handed to onLoss. */
  unreported: Loss[];
  /** Chain hash of the event at lastSeq (lib/trail.ts), so the chain goes on after a restart; undefined when unknown. */
  chain?: Buffer;
}

export function encodeMeta(m: Meta): Buffer {
  return Buffer.from(
    JSON.stringify({
      v: 1,
      epoch: m.epoch,
      createdMs: m.createdMs,
      lastSeq: String(m.lastSeq),
      lowSeq: String(m.lowSeq),
      events: m.events,
      bytes: m.bytes,
      commit: m.commit,
      unreported: m.unreported.map((l) => [String(l.fromSeq), String(l.toSeq), l.count, l.reason]),
      ...(m.chain ? { chain: m.chain.toString('hex') } : {}),
    }),
  );
}

export function decodeMeta(b: Uint8Array): Meta {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(Buffer.from(b).toString('utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new AuditError(ErrorCode.CacheCorrupt, 'cache meta record is not valid JSON', { cause: err });
  }
  const num = (k: string): number => {
    const v = o[k];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new AuditError(ErrorCode.CacheCorrupt, `cache meta record: bad ${k}`);
    return v;
  };
  const big = (k: string): bigint => {
    const v = o[k];
    if (typeof v !== 'string' || !/^\d{1,20}$/.test(v)) throw new AuditError(ErrorCode.CacheCorrupt, `cache meta record: bad ${k}`);
    return BigInt(v);
  };
  if (o.v !== 1 || typeof o.epoch !== 'string') throw new AuditError(ErrorCode.CacheCorrupt, 'cache meta record: unknown version');
  const unreported: Loss[] = [];
  for (const u of Array.isArray(o.unreported) ? (o.unreported as unknown[]) : []) {
    if (!Array.isArray(u) || u.length !== 4) continue;
    const [f, t, c, r] = u as unknown[];
    if (typeof f === 'string' && /^\d{1,20}$/.test(f) && typeof t === 'string' && /^\d{1,20}$/.test(t) && typeof c === 'number' && (r === 'size' || r === 'age' || r === 'corrupt')) {
      unreported.push({ fromSeq: BigInt(f), toSeq: BigInt(t), count: c, reason: r as LossReason });
    }
  }
  const chain = typeof o.chain === 'string' && /^[0-9a-f]{64}$/.test(o.chain) ? Buffer.from(o.chain, 'hex') : undefined;
  return { epoch: o.epoch, createdMs: num('createdMs'), lastSeq: big('lastSeq'), lowSeq: big('lowSeq'), events: num('events'), bytes: num('bytes'), commit: num('commit'), unreported, chain };
}

/** Splits ascending seqs into maximal runs of consecutive numbers. */
export function runsOf(seqs: readonly bigint[]): { fromSeq: bigint; toSeq: bigint; count: number }[] {
  const out: { fromSeq: bigint; toSeq: bigint; count: number }[] = [];
  for (const s of seqs) {
    const last = out[out.length - 1];
    if (last && s === last.toSeq + 1n) {
      last.toSeq = s;
      last.count++;
    } else out.push({ fromSeq: s, toSeq: s, count: 1 });
  }
  return out;
}
