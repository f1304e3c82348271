import type { Victim } from './evict.js';
import type { Keyring } from './keyring.js';
import { RECORDS_END, recordKey, seqOfKey } from './record.js';
import type { Rocks } from './rocks.js';
import { openRecord, readHeader } from './seal.js';
import type { CachedRecord, ScanOptions } from './types.js';

/** Corrupt records handed to `dropCorrupt` at a time. */
const CORRUPT_BATCH = 1000;

/**
 * Reads up to `opts.limit` records in (afterSeq, beforeSeq) in the asked
 * order, decrypting each; records that do not open are collected and handed
 * to `dropCorrupt` (at most CORRUPT_BATCH at a time; those sealed with a key
 * id the keyring lacks marked for quarantine), and the walk goes on past
 * them. @internal
 */
export async function scanRecords(
  db: () => Rocks,
  keyring: Keyring,
  epoch: Uint8Array,
  lowSeq: bigint,
  opts: ScanOptions,
  dropCorrupt: (list: Victim[]) => Promise<void>,
): Promise<CachedRecord[]> {
  const out: CachedRecord[] = [];
  const reverse = opts.order === 'newest_first';
  let lo = opts.afterSeq !== undefined ? opts.afterSeq + 1n : 1n;
  if (lo < lowSeq) lo = lowSeq;
  let hi = opts.beforeSeq; // exclusive
  while (out.length < opts.limit && (hi === undefined || lo < hi)) {
    const corrupt: Victim[] = [];
    let last: bigint | undefined;
    await db().forEach({ gte: recordKey(lo), lt: hi === undefined ? RECORDS_END : recordKey(hi), reverse }, (key, value) => {
      const seq = seqOfKey(key);
      if (seq === undefined) return true;
      last = seq;
      try {
        const r = openRecord(keyring, epoch, key, value);
        out.push({ seq, timeMs: r.timeMs, payload: r.payload, bytes: key.length + value.length });
      } catch {
        const h = readHeader(value);
        const unknownKey = h !== undefined && !keyring.has(h.keyId);
        corrupt.push({ seq, key, bytes: key.length + value.length, timeMs: undefined, quarantine: unknownKey ? value : undefined });
      }
      return out.length < opts.limit && corrupt.length < CORRUPT_BATCH;
    });
    if (corrupt.length) await dropCorrupt(corrupt);
    if (corrupt.length < CORRUPT_BATCH || last === undefined) break;
    if (reverse) hi = last;
    else lo = last + 1n;
  }
  return out;
}
