import type { Clock } from '../lib/clock.js';
import { AuditError, ErrorCode, isAuditError } from '../lib/errors.js';
import { makeDir } from '../lib/make-dir.js';
import type { Logger } from '../lib/log.js';
import { uuidv7 } from '../lib/uuid.js';
import { EPOCH_KEY, META_KEY, OWNER_KEY, type Meta, RECORDS_END, RECORDS_START, decodeMeta, encodeMeta, epochFromBytes, epochToBytes, recordKey, seqOfKey } from './record.js';
import { type OpenOptions, Rocks, isCorruption } from './rocks.js';
import type { CacheOptions } from './types.js';
import type { Loss } from './losses.js';
import { readHeader } from './seal.js';

type State = { meta: Meta; oldest?: Edge; newest?: Edge };
type Lost = Loss;

/**
 * Checks the options, opens (creating if needed) the cache's database and
 * loads its state; a database RocksDB reports corrupt is repaired first.
 * @internal
 */
export async function openDatabase(opts: CacheOptions, clock: Clock, log: Logger): Promise<{ db: Rocks; st: State; lost?: Lost }> {
  if (!(opts.maxBytes > 0)) throw new AuditError(ErrorCode.Config, `cache maxBytes must be positive, got ${opts.maxBytes}`);
  if (!(opts.maxAgeMs >= 0)) throw new AuditError(ErrorCode.Config, `cache maxAgeMs must be >= 0, got ${opts.maxAgeMs}`);
  opts.keyring.writeKey(); // fails early without a write key
  const ropts = { writeBufferSize: opts.writeBufferSize };
  if (opts.memory) {
    const db = Rocks.memory();
    return { db, st: await loadState(db, clock, log) };
  }
  const where = opts.setting ? `cache ${opts.path} (${opts.setting})` : `cache ${opts.path}`;
  try {
    await makeDir(opts.path, 0o700); // not mkdir({ recursive }): it spins forever on a path under /proc or /sys
  } catch (err) {
    throw AuditError.from(err, ErrorCode.Cache, `${where}: cannot create the directory`);
  }
  let db: Rocks | undefined;
  try {
    db = await Rocks.open(opts.path, ropts);
    try {
      const st = await loadState(db, clock, log);
      await refuseUnknownKey(db, st.meta.lowSeq, opts, where);
      await claimOwner(db, st.meta, opts, where);
      return { db, st };
    } catch (err) {
      if (!isCorruption(err)) throw err;
      log.error({ err }, 'cache database corrupt: repairing');
      const before = await db.get(META_KEY).then((b) => (b ? decodeMeta(b) : undefined)).catch(() => undefined);
      await db.close();
      db = undefined;
      if (before) {
        const r = await repairDatabase(opts.path, ropts, before, log);
        db = r.db;
        return { db, st: { meta: r.meta, oldest: await peekEdge(db, r.meta.lowSeq, false), newest: await peekEdge(db, r.meta.lowSeq, true) }, lost: r.lost };
      }
      await Rocks.repair(opts.path);
      db = await Rocks.open(opts.path, ropts);
      return { db, st: await loadState(db, clock, log) };
    }
  } catch (err) {
    await db?.close().catch(() => undefined);
    throw AuditError.from(err, ErrorCode.Cache, `${where}: cannot open`);
  }
}

/**
 * A cache whose newest record is sealed with a key the keyring lacks was
 * almost surely opened with the wrong key (a new key without the old one in
 * read_key_files, a key file swapped by mistake): opening it would set every
 * record aside as unreadable and report them lost. The start is refused
 * instead, so the operator can give the key. (Older records under a key
 * dropped from read_key_files after a rotation are set aside and reported
 * as a loss when met: the newest records show that rotation happened.)
 */
async function refuseUnknownKey(db: Rocks, lowSeq: bigint, opts: CacheOptions, where: string): Promise<void> {
  // The newest record (the wrong key) and the oldest (a rotation whose old key was dropped from read_key_files while its events still wait).
  for (const [reverse, which] of [[true, 'newest'], [false, 'oldest']] as const) {
    let unknown: string | undefined;
    await db.forEach({ gte: recordKey(lowSeq), lt: RECORDS_END, reverse, limit: 1 }, (_key, value) => {
      const h = readHeader(value);
      if (h && !opts.keyring.has(h.keyId)) unknown = h.keyId;
      return false;
    });
    if (unknown === undefined) continue;
    throw new AuditError(
      ErrorCode.Config,
      `${where}: its ${which} events are sealed with cache key id ${unknown}, which is not configured (the configured key's id is ${opts.keyring.writeKey().id}); ` +
        'give that key in collector.cache.encryption.read_key_files (or as the key), or move the cache directory away to start empty. Refusing to start rather than drop the events',
    );
  }
}

/** Records the collector id the epoch belongs to, or refuses a cache that belongs to another. */
async function claimOwner(db: Rocks, meta: Meta, opts: CacheOptions, where: string): Promise<void> {
  if (opts.owner === undefined) return;
  const owner = (await db.get(OWNER_KEY))?.toString('utf8');
  if (owner === opts.owner) return;
  // unclaimed, or nothing committed in its epoch yet (no seq to continue): it can change hands
  if (owner === undefined || meta.lastSeq === 0n) {
    await db.write([{ type: 'put', key: OWNER_KEY, value: Buffer.from(opts.owner, 'utf8') }], true);
    return;
  }
  throw new AuditError(
    ErrorCode.Config,
    `${where}: belongs to collector ${JSON.stringify(owner)} (epoch ${meta.epoch}, ${meta.events} events waiting, up to seq ${meta.lastSeq}), not ${JSON.stringify(opts.owner)}: ` +
      'its sequence would go on under the new id and the gateway would see seqs 1.. missing. Start with the old collector.id until the cache is empty, or give the new id a cache directory of its own',
  );
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
export async function loadState(db: Rocks, clock: Clock, log: Logger): Promise<State> {
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
    const m: Meta = { epoch: epoch ?? uuidv7(clock.now()), createdMs: clock.now(), lastSeq: 0n, lowSeq: 1n, events: 0, bytes: 0, commit: 0, unreported: [] };
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

/**
 * After RocksDB reported corruption: RepairDB (unreadable table files go to
 * lost/, quarantined), reopen, and count what is left against `before` (the
 * exact counters up to then). The records lost cannot be named one by one
 * (acknowledged records leave the same holes), so the loss is reported as
 * the span of holes with the exact count.
 * @internal
 */
export async function repairDatabase(path: string, opts: OpenOptions, before: Meta, log: Logger): Promise<{ db: Rocks; meta: Meta; lost?: Lost }> {
  // `before.unreported` must hold only what is still undelivered; the span lost here joins it.
  await Rocks.repair(path);
  const db = await Rocks.open(path, opts);
  const meta: Meta = { ...before, events: 0, bytes: 0, commit: before.commit + 1 };
  let next = before.lowSeq;
  let holeFrom: bigint | undefined;
  let holeTo: bigint | undefined;
  const hole = (from: bigint, to: bigint): void => {
    if (from > to) return;
    holeFrom ??= from;
    holeTo = to;
  };
  await db.forEach({ gte: recordKey(before.lowSeq), lt: RECORDS_END }, (key, value) => {
    const seq = seqOfKey(key);
    if (seq === undefined) return true;
    meta.events++;
    meta.bytes += key.length + value.length;
    hole(next, seq - 1n);
    next = seq + 1n;
    if (seq > meta.lastSeq) meta.lastSeq = seq;
    return true;
  });
  hole(next, before.lastSeq);
  const count = before.events - meta.events;
  const lost = count > 0 && holeFrom !== undefined ? { fromSeq: holeFrom, toSeq: holeTo!, count, reason: 'corrupt' as const } : undefined;
  if (lost) meta.unreported = [...before.unreported, lost];
  await db.write(
    [
      { type: 'put', key: EPOCH_KEY, value: epochToBytes(meta.epoch) },
      { type: 'put', key: META_KEY, value: encodeMeta(meta) },
    ],
    true,
  );
  log.error({ path, lost: count, events: meta.events }, 'cache database repaired after corruption; unreadable files moved to lost/');
  return { db, meta, lost };
}
