import { mkdir } from 'node:fs/promises';
import type { Clock } from '../lib/clock.js';
import { AuditError, ErrorCode, isAuditError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { uuidv7 } from '../lib/uuid.js';
import { EPOCH_KEY, META_KEY, type Meta, RECORDS_END, RECORDS_START, decodeMeta, encodeMeta, epochFromBytes, epochToBytes, recordKey, seqOfKey } from './record.js';
import { Rocks } from './rocks.js';
import type { CacheOptions } from './types.js';
import { readHeader } from './seal.js';

/** Checks the options and opens (creating if needed) the cache's database. @internal */
export async function openDatabase(opts: CacheOptions): Promise<Rocks> {
  if (!(opts.maxBytes > 0)) throw new AuditError(ErrorCode.Config, `cache maxBytes must be positive, got ${opts.maxBytes}`);
  if (!(opts.maxAgeMs >= 0)) throw new AuditError(ErrorCode.Config, `cache maxAgeMs must be >= 0, got ${opts.maxAgeMs}`);
  opts.keyring.writeKey(); // fails early without a write key
  try {
    await mkdir(opts.path, { recursive: true, mode: 0o700 });
    return await Rocks.open(opts.path, { writeBufferSize: opts.writeBufferSize });
  } catch (err) {
    throw AuditError.from(err, ErrorCode.Cache, `cache ${opts.path}: cannot open`);
  }
}

/** The seq and time of the oldest or newest record. @internal */
export interface Edge {
  seq: bigint;
  timeMs: number;
}

/** The first record at or above `lowSeq` (or the last, with `newest`), by its plaintext header. @internal */
export async function peekEdge(db: Rocks, lowSeq: bigint, newest: boolean): Promise<Edge | undefined> {
  let out: Edge | undefined;
  await db.forEach({ gte: recordKey(lowSeq), lt: RECORDS_END, reverse: newest }, (key, value) => {
    const seq = seqOfKey(key);
    if (seq === undefined) return true;
    const h = readHeader(value);
    if (!h) return true; // a corrupt record is not an edge; scan removes it
    out = { seq, timeMs: h.timeMs };
    return false;
  });
  return out;
}

/**
 * Reads (or creates) the epoch and meta record. A fresh directory gets a
 * new epoch; a missing or unreadable meta record is rebuilt by one full
 * scan of the record keys, keeping the stored epoch while records remain.
 * @internal
 */
export async function loadState(db: Rocks, clock: Clock, log: Logger): Promise<{ meta: Meta; oldest?: Edge; newest?: Edge }> {
  const [metaBuf, epochBuf] = await db.getMany([META_KEY, EPOCH_KEY]);
  let meta: Meta | undefined;
  if (metaBuf) {
    try {
      meta = decodeMeta(metaBuf);
      epochToBytes(meta.epoch);
      if (epochBuf && epochFromBytes(epochBuf) !== meta.epoch) throw new Error('epoch record and meta record disagree');
    } catch (err) {
      if (!isAuditError(err) && !(err instanceof Error)) throw err;
      log.error({ err }, 'cache meta record unreadable; rebuilding it from the records');
      meta = undefined;
    }
  }
  if (!meta) {
    let epoch: string | undefined;
    try {
      epoch = epochBuf ? epochFromBytes(epochBuf) : undefined;
    } catch {
      epoch = undefined;
    }
    const m: Meta = { epoch: epoch ?? uuidv7(clock.now()), createdMs: clock.now(), lastSeq: 0n, lowSeq: 1n, events: 0, bytes: 0, commit: 0 };
    let first: bigint | undefined;
    await db.forEach({ gte: RECORDS_START, lt: RECORDS_END }, (key, value) => {
      const seq = seqOfKey(key);
      if (seq === undefined) return true;
      first ??= seq;
      m.events++;
      m.bytes += key.length + value.length;
      if (seq > m.lastSeq) m.lastSeq = seq;
      return true;
    });
    if (first !== undefined) m.lowSeq = first;
    // With no record left, lastSeq is unknown: continuing the old epoch could reuse numbers, so start a new one.
    if (m.events === 0) m.epoch = uuidv7(clock.now());
    if (metaBuf || m.events > 0) log.warn({ epoch: m.epoch, events: m.events, keptEpoch: epoch !== undefined }, 'cache meta record rebuilt');
    await db.write(
      [
        { type: 'put', key: EPOCH_KEY, value: epochToBytes(m.epoch) },
        { type: 'put', key: META_KEY, value: encodeMeta(m) },
      ],
      true,
    );
    meta = m;
  }
  const oldest = meta.events > 0 ? await peekEdge(db, meta.lowSeq, false) : undefined;
  const newest = meta.events > 0 ? await peekEdge(db, meta.lowSeq, true) : undefined;
  return { meta, oldest, newest };
}
