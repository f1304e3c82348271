import type { CollectorMetrics } from '../lib/metrics.js';
import { type Loss, lossesOf } from './losses.js';
import { META_KEY, type Meta, RECORDS_END, encodeMeta, quarantineKey, recordKey, seqOfKey } from './record.js';
import type { BatchOp, Rocks } from './rocks.js';
import { readHeader } from './seal.js';

/**
 * Eviction support: walking the oldest records, and reporting every drop
 * (max_size, max_age, corrupt) to metrics, the log and the caller.
 * @internal
 */

export type { Loss, LossReason } from './losses.js';

export interface Victim {
  seq: bigint;
  key: Buffer;
  /** Key + value bytes, as counted in the meta record. */
  bytes: number;
  /** Undefined when the header does not parse (a corrupt record). */
  timeMs: number | undefined;
  /** Set to move the record to quarantine (sealed with a key not configured) instead of deleting it. */
  quarantine?: Buffer;
}

/**
 * Records from `fromSeq` upward, oldest first, until `stop` says so or
 * `limit` are collected. Only headers are read, no key is needed.
 */
export async function oldestRecords(db: Rocks, fromSeq: bigint, limit: number, stop: (v: Victim) => boolean): Promise<Victim[]> {
  const out: Victim[] = [];
  await db.forEach({ gte: recordKey(fromSeq), lt: RECORDS_END }, (key, value) => {
    const seq = seqOfKey(key);
    if (seq === undefined) return true;
    const v: Victim = { seq, key, bytes: key.length + value.length, timeMs: readHeader(value)?.timeMs };
    if (stop(v)) return false;
    out.push(v);
    return out.length < limit;
  });
  return out;
}

export interface CommitPlan<T> {
  ops: BatchOp[];
  /** The meta record after the batch. */
  meta: Meta;
  /** The batch records written (the newest, when max_size forces dropping some of the batch itself). */
  keep: T[];
  /** Seqs gone for max_size: durable records evicted, then batch records never written; ascending. */
  lost: bigint[];
  /** The same as losses, also in `meta.unreported`. */
  losses: Loss[];
}

/**
 * One group-commit batch: puts for `batch`, deletes of the oldest records
 * while the total would exceed `maxBytes`, and the meta record, all in one
 * atomic write. If evicting every record is not enough, the oldest records
 * of the batch itself are not written.
 */
export async function planCommit<T extends { seq: bigint; key: Buffer; value: Buffer; chain?: Buffer }>(
  db: Rocks,
  current: Meta,
  batch: T[],
  maxBytes: number,
  undelivered: Loss[],
): Promise<CommitPlan<T>> {
  const meta = { ...current };
  let add = 0;
  for (const p of batch) add += p.key.length + p.value.length;
  let need = meta.bytes + add - maxBytes;
  const evicted: Victim[] = [];
  if (need > 0 && meta.events > 0) {
    const got = await oldestRecords(db, meta.lowSeq, Infinity, (v) => {
      if (need <= 0) return true;
      need -= v.bytes;
      return false;
    });
    evicted.push(...got);
    for (const v of got) {
      meta.events--;
      meta.bytes -= v.bytes;
    }
    if (need > 0) {
      meta.events = 0; // every record is gone: the counters are exactly zero
      meta.bytes = 0;
    }
    if (got.length) meta.lowSeq = got[got.length - 1].seq + 1n;
  }
  const lost = evicted.map((v) => v.seq);
  let keep = batch;
  if (need > 0) {
    keep = batch.slice();
    while (need > 0 && keep.length) {
      const p = keep.shift()!;
      need -= p.key.length + p.value.length;
      lost.push(p.seq);
    }
  }
  const ops: BatchOp[] = evicted.map((v) => ({ type: 'del', key: v.key }));
  for (const p of keep) {
    ops.push({ type: 'put', key: p.key, value: p.value });
    meta.events++;
    meta.bytes += p.key.length + p.value.length;
    if (p.seq < meta.lowSeq) meta.lowSeq = p.seq;
  }
  for (const p of batch) {
    if (p.seq > meta.lastSeq) {
      meta.lastSeq = p.seq;
      meta.chain = p.chain;
    }
  }
  lost.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const losses = lossesOf('size', lost);
  meta.unreported = [...undelivered, ...losses];
  meta.commit++;
  ops.push({ type: 'put', key: META_KEY, value: encodeMeta(meta) });
  return { ops, meta, keep, lost, losses };
}

/** The records among `seqs` that exist, ascending, with their sizes (for ack: unknown seqs are ignored). */
export async function presentRecords(db: Rocks, seqs: readonly bigint[]): Promise<Victim[]> {
  const keys = [...new Set(seqs)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)).map(recordKey);
  const values = await db.getMany(keys);
  const out: Victim[] = [];
  values.forEach((v, i) => {
    if (v) out.push({ seq: seqOfKey(keys[i])!, key: keys[i], bytes: keys[i].length + v.length, timeMs: undefined });
  });
  return out;
}

const EXPIRE_BATCH = 10_000;

/**
 * max_age: removes records older than `cutoff`, oldest first, EXPIRE_BATCH
 * per write, stopping at the first younger record; records whose header
 * does not parse go too, reported as corrupt. Returns how many went.
 */
export async function expireOlderThan(
  db: () => Rocks,
  lowSeq: () => bigint,
  cutoff: number,
  remove: (db: Rocks, victims: Victim[], losses: Loss[]) => Promise<void>,
): Promise<number> {
  let total = 0;
  for (;;) {
    const d = db();
    const victims = await oldestRecords(d, lowSeq(), EXPIRE_BATCH, (v) => v.timeMs !== undefined && v.timeMs >= cutoff);
    if (victims.length === 0) break;
    const losses = [
      ...lossesOf('age', victims.filter((v) => v.timeMs !== undefined).map((v) => v.seq)),
      ...lossesOf('corrupt', victims.filter((v) => v.timeMs === undefined).map((v) => v.seq)),
    ];
    await remove(d, victims, losses);
    total += victims.length;
    if (victims.length < EXPIRE_BATCH) break;
  }
  return total;
}

/** Deletes of `gone` (all present) and the meta record that counts them out, for one atomic write. */
export function planRemoval(current: Meta, gone: readonly Victim[], advanceLow: boolean, unreported: Loss[]): { meta: Meta; ops: BatchOp[] } {
  const meta = { ...current };
  const ops: BatchOp[] = gone.map((v) => ({ type: 'del', key: v.key }));
  for (const v of gone) {
    if (v.quarantine) ops.push({ type: 'put', key: quarantineKey(v.seq), value: v.quarantine });
    meta.events--;
    meta.bytes -= v.bytes;
  }
  meta.events = Math.max(0, meta.events);
  meta.bytes = Math.max(0, meta.bytes);
  if (advanceLow && gone.length) meta.lowSeq = gone[gone.length - 1].seq + 1n;
  meta.unreported = unreported;
  meta.commit++;
  ops.push({ type: 'put', key: META_KEY, value: encodeMeta(meta) });
  return { meta, ops };
}

/** The cache gauges: size, count, max, records not yet acknowledged (held + not yet durable), age of the oldest. */
export function publishGauges(m: CollectorMetrics, meta: Meta, maxBytes: number, unsynced: number, oldestAgeMs: number): void {
  m.cacheSizeBytes.set(meta.bytes);
  m.cacheEventsCount.set(meta.events);
  m.cacheMaxBytes.set(maxBytes);
  m.cacheSyncPending.set(meta.events + unsynced);
  m.eventLag.set(Math.max(0, oldestAgeMs) / 1000);
}
