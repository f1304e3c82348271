import { makeDirSync } from '../lib/make-dir.js';
import { fromBinary } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { AuditEventSchema, type AuditEvent } from '../proto/gen/audit/v1/event_pb.js';
import { AuditError, ErrorCode } from '../lib/errors.js';
import { RocksDb } from './rocksdb-binding.js';
import { runsOf } from '../cache/record.js';
import type { Attested, DroppedRange, Seal, TrailRow } from '../lib/trail.js';
import {
  COUNT_KEY, TAG, TIME_MAX, decodeRecord, encodeRecord, epochPrefix, eventKey, eventKeyOfIndexKey, idBytes, idKey,
  indexKey, indexPrefix, sealKey, timeRange, timeValue, trailKey, u64Key, type IndexTag,
} from './store-keys.js';
import type { PutResult, Sealer, SearchFilter, Store, StoredEvent, TrailEpoch, TrailHead } from './store.js';

/**
 * The embedded store: RocksDB under the gateway's data directory, no
 * server needed. Key layout in store-keys.ts. All writes go through one
 * queue: concurrent `put` calls are merged into one synced batch (group
 * commit), and because only the queue writes, the "already held?" check
 * and the write cannot interleave with another writer's, so an event_id
 * is stored at most once however many streams deliver it.
 */

interface PutJob {
  readonly events: readonly StoredEvent[];
  resolve(r: PutResult): void;
  reject(e: unknown): void;
}

interface TaskJob {
  readonly task: () => Promise<void>;
}

type Job = PutJob | TaskJob;

/** Events merged into one group commit at most. */
const MAX_GROUP_EVENTS = 20_000;
/** Index keys read per getMany during an index scan. */
const FETCH_CHUNK = 128;
/** Events deleted per batch by retention. */
const DELETE_CHUNK = 1_000;

function indexesOf(ev: AuditEvent): Array<[IndexTag, string]> {
  const out: Array<[IndexTag, string]> = [];
  if (ev.user) out.push([TAG.User, ev.user]);
  if (ev.database) out.push([TAG.Database, ev.database]);
  if (ev.sessionId) out.push([TAG.Session, ev.sessionId]);
  if (ev.kind) out.push([TAG.Kind, ev.kind]);
  if (ev.collectorId) out.push([TAG.Collector, ev.collectorId]);
  return out;
}

/** The index to walk for a filter: the most selective one given, or none (walk the events). */
function chooseIndex(f: SearchFilter): [IndexTag, string] | undefined {
  if (f.sessionId) return [TAG.Session, f.sessionId];
  if (f.user) return [TAG.User, f.user];
  if (f.database) return [TAG.Database, f.database];
  if (f.collectorId) return [TAG.Collector, f.collectorId];
  if (f.kind) return [TAG.Kind, f.kind];
  return undefined;
}

function matches(ev: AuditEvent, f: SearchFilter, needle: string | undefined): boolean {
  if (f.user && ev.user !== f.user) return false;
  if (f.database && ev.database !== f.database) return false;
  if (f.sessionId && ev.sessionId !== f.sessionId) return false;
  if (f.kind && ev.kind !== f.kind) return false;
  if (f.collectorId && ev.collectorId !== f.collectorId) return false;
  if (needle !== undefined && !ev.statement.toLowerCase().includes(needle)) return false;
  return true;
}

interface EpochState {
  collectorId: string;
  epoch: string;
  highest: bigint;
  head?: Attested;
}

const epochName = (collectorId: string, epoch: string): string => `${collectorId}\u0000${epoch}`;

/** An escaped string of a key (store-keys `escaped`: 0x00 as 0x00 0xFF, ending in 0x00) starting at `at`, and where it ends. */
function unescapeAt(key: Buffer, at: number): { value: string; end: number } | undefined {
  const bytes: number[] = [];
  for (let i = at; i < key.length; i++) {
    if (key[i] !== 0) bytes.push(key[i]);
    else if (key[i + 1] === 0xff) bytes.push(0), i++;
    else return { value: Buffer.from(bytes).toString('utf8'), end: i + 1 };
  }
  return undefined;
}

function encodeHead(h: EpochState): Buffer {
  const a = h.head ? { m: Buffer.from(h.head.mac).toString('hex'), k: h.head.keyId } : {};
  return Buffer.from(JSON.stringify({ c: h.collectorId, e: h.epoch, h: String(h.highest), ...a }), 'utf8');
}

function decodeHead(b: Buffer): EpochState {
  const o = JSON.parse(b.toString('utf8')) as { c: string; e: string; h: string; m?: string; k?: string };
  return { collectorId: o.c, epoch: o.e, highest: BigInt(o.h), head: o.m !== undefined ? { mac: Buffer.from(o.m, 'hex'), keyId: o.k ?? '' } : undefined };
}

/** A retention drop record's value: the range's end and the gateway's attestation. */
function encodeDrop(to: bigint, a: Attested | undefined): Buffer {
  return Buffer.from(JSON.stringify({ t: String(to), ...(a ? { m: Buffer.from(a.mac).toString('hex'), k: a.keyId } : {}) }), 'utf8');
}

function decodeDrop(from: bigint, b: Buffer): DroppedRange {
  const o = JSON.parse(b.toString('utf8')) as { t: string; m?: string; k?: string };
  return { from, to: BigInt(o.t), ...(o.m !== undefined ? { mac: Buffer.from(o.m, 'hex'), keyId: o.k ?? '' } : {}) };
}

function encodeSeal(s: Seal): Buffer {
  return Buffer.from(JSON.stringify({ g: s.gatewayId, k: s.keyId, t: s.sealedAtMs, e: s.entries.toString('base64'), m: Buffer.from(s.mac).toString('base64') }), 'utf8');
}

function decodeSeal(sealId: string, b: Buffer): Seal {
  const o = JSON.parse(b.toString('utf8')) as { g: string; k: string; t: number; e: string; m: string };
  return { sealId, gatewayId: o.g, keyId: o.k, sealedAtMs: o.t, entries: Buffer.from(o.e, 'base64'), mac: Buffer.from(o.m, 'base64') };
}

function toEvent(value: Buffer): AuditEvent {
  const rec = decodeRecord(value);
  const ev = fromBinary(AuditEventSchema, rec.raw);
  ev.deliveredBy = rec.deliveredBy;
  ev.receivedAt = timestampFromMs(rec.receivedAtMs);
  return ev;
}

export class EmbeddedStore implements Store {
  readonly kind = 'embedded';
  readonly #dir: string;
  readonly #sealer: Sealer | undefined;
  /** Every collector epoch known (an 'H' key exists), by epochName. */
  readonly #epochs = new Map<string, EpochState>();
  #db: RocksDb | undefined;
  #count = 0;
  #closed = false;
  readonly #queue: Job[] = [];
  #running = false;
  #draining: Promise<void> = Promise.resolve();
  readonly #reads = new Set<Promise<unknown>>();

  readonly #writeBufferSize: number | undefined;

  constructor(dir: string, opts: { sealer?: Sealer; writeBufferSize?: number } = {}) {
    this.#dir = dir;
    this.#sealer = opts.sealer;
    this.#writeBufferSize = opts.writeBufferSize;
  }

  async open(): Promise<void> {
    if (this.#db) return;
    try {
      makeDirSync(this.#dir, 0o700); // not mkdirSync({ recursive }): it spins forever on a path under /proc or /sys
      const db = new RocksDb(this.#dir, { writeBufferSize: this.#writeBufferSize });
      await db.open();
      const [count] = await db.getMany([COUNT_KEY]);
      this.#count = count && count.length === 8 ? Number(count.readBigUInt64BE(0)) : 0;
      const it = db.iterator({ gte: Buffer.of(TAG.Head), lt: Buffer.of(TAG.Head + 1) });
      try {
        for (let e = await it.next(); e; e = await it.next()) {
          const st = decodeHead(e.value);
          this.#epochs.set(epochName(st.collectorId, st.epoch), st);
        }
      } finally {
        await it.end();
      }
      await this.#epochsHeld(db);
      this.#db = db;
    } catch (err) {
      throw AuditError.from(err, ErrorCode.Store, `cannot open the embedded store in ${this.#dir}`);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#draining;
    await Promise.allSettled([...this.#reads]);
    const db = this.#db;
    this.#db = undefined;
    if (db) await db.close();
  }

  put(events: readonly StoredEvent[]): Promise<PutResult> {
    if (events.length === 0) return Promise.resolve({ stored: 0, duplicates: 0, fresh: [] });
    return new Promise<PutResult>((resolve, reject) => {
      this.#enqueue({ events, resolve, reject });
    });
  }

  async count(): Promise<number> {
    this.#live();
    return this.#count;
  }

  async get(eventId: string): Promise<{ event: AuditEvent; raw: Uint8Array } | undefined> {
    const db = this.#live();
    const id = idBytes(eventId);
    if (id.length !== 16) return undefined;
    const [time] = await db.getMany([idKey(id)]);
    if (!time) return undefined;
    const [value] = await db.getMany([eventKey(Number(time.readBigUInt64BE(0)), id)]);
    if (!value) return undefined;
    return { event: toEvent(value), raw: Buffer.from(decodeRecord(value).raw) };
  }

  search(filter: SearchFilter): Promise<AuditEvent[]> {
    let db: RocksDb;
    try {
      db = this.#live();
    } catch (err) {
      return Promise.reject(err);
    }
    const p = this.#search(db, filter).catch((err: unknown) => {
      throw AuditError.from(err, ErrorCode.Store, 'search failed');
    });
    this.#reads.add(p);
    const done = (): void => {
      this.#reads.delete(p);
    };
    p.then(done, done);
    return p;
  }

  deleteBefore(micros: number): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      this.#enqueue({
        task: async () => {
          try {
            resolve(await this.#deleteBefore(micros));
          } catch (err) {
            reject(AuditError.from(err, ErrorCode.Store, 'retention delete failed'));
          }
        },
      });
    });
  }

  #live(): RocksDb {
    if (this.#closed) throw new AuditError(ErrorCode.Closed, 'the store is closed');
    if (!this.#db) throw new AuditError(ErrorCode.Store, 'the store is not open');
    return this.#db;
  }

  #enqueue(job: Job): void {
    try {
      this.#live();
    } catch (err) {
      if ('reject' in job) job.reject(err);
      else void job.task();
      return;
    }
    this.#queue.push(job);
    // #running flips back in the same synchronous step that finds the queue
    // empty, so a job pushed while the last group's callers resume is never
    // left without a drain loop.
    if (!this.#running) {
      this.#running = true;
      this.#draining = this.#drain();
    }
  }

  async #drain(): Promise<void> {
    for (;;) {
      if (this.#queue.length === 0) {
        this.#running = false;
        return;
      }
      const head = this.#queue[0];
      if ('task' in head) {
        this.#queue.shift();
        await head.task().catch(() => undefined); // tasks report their own errors
        continue;
      }
      const group: PutJob[] = [];
      let n = 0;
      while (this.#queue.length > 0 && 'events' in this.#queue[0] && (group.length === 0 || n + this.#queue[0].events.length <= MAX_GROUP_EVENTS)) {
        const job = this.#queue.shift() as PutJob;
        group.push(job);
        n += job.events.length;
      }
      try {
        const results = await this.#write(group);
        group.forEach((job, i) => job.resolve(results[i]));
      } catch (err) {
        const e = AuditError.from(err, ErrorCode.Store, 'store write failed');
        for (const job of group) job.reject(e);
      }
    }
  }

  /** One synced batch for a group of puts; only ever runs on the queue. */
  async #write(group: PutJob[]): Promise<PutResult[]> {
    const db = this.#db;
    if (!db) throw new AuditError(ErrorCode.Closed, 'the store is closed');
    const ids = new Map<string, Buffer>();
    for (const job of group) for (const ev of job.events) if (!ids.has(ev.eventId)) ids.set(ev.eventId, idBytes(ev.eventId));
    const idList = [...ids.keys()];
    const held = await db.getMany(idList.map((id) => idKey(ids.get(id) as Buffer)));
    const seen = new Set<string>();
    idList.forEach((id, i) => {
      if (held[i] !== undefined) seen.add(id);
    });

    const batch = db.writeBatch();
    const results: PutResult[] = [];
    const empty = Buffer.alloc(0);
    const newEpochs: EpochState[] = [];
    let added = 0;
    for (const job of group) {
      const r: PutResult = { stored: 0, duplicates: 0, fresh: [] };
      const fresh = job.events.filter((ev) => !seen.has(ev.eventId));
      const seal = fresh.length > 0 ? this.#sealer?.seal(fresh) : undefined;
      if (seal) batch.put(sealKey(seal.sealId), encodeSeal(seal));
      job.events.forEach((ev, i) => {
        if (seen.has(ev.eventId)) {
          r.duplicates++;
          return;
        }
        seen.add(ev.eventId);
        const id = ids.get(ev.eventId) as Buffer;
        const e = ev.event;
        batch.put(eventKey(ev.timeMicros, id), encodeRecord(ev.raw, ev.deliveredBy, ev.receivedAtMs, seal?.sealId));
        batch.put(idKey(id), timeValue(ev.timeMicros));
        for (const [tag, value] of indexesOf(e)) batch.put(indexKey(indexPrefix(tag, value), ev.timeMicros, id), empty);
        if (e.seq > 0n) {
          batch.put(trailKey(epochPrefix(TAG.Trail, e.collectorId, e.epoch), e.seq, id), timeValue(ev.timeMicros));
          const name = epochName(e.collectorId, e.epoch);
          if (!this.#epochs.has(name)) {
            const st = { collectorId: e.collectorId, epoch: e.epoch, highest: 0n };
            this.#epochs.set(name, st);
            newEpochs.push(st);
            batch.put(epochPrefix(TAG.Head, e.collectorId, e.epoch), encodeHead(st));
          }
        }
        r.stored++;
        r.fresh.push(i);
      });
      added += r.stored;
      results.push(r);
    }
    if (added > 0) {
      batch.put(COUNT_KEY, timeValue(this.#count + added));
      try {
        await batch.write(true);
      } catch (err) {
        for (const st of newEpochs) this.#epochs.delete(epochName(st.collectorId, st.epoch));
        throw err;
      }
      this.#count += added;
    }
    return results;
  }

  noteHeads(heads: readonly TrailHead[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#enqueue({
        task: async () => {
          try {
            const db = this.#live();
            const batch = db.writeBatch();
            let n = 0;
            for (const h of heads) {
              const name = epochName(h.collectorId, h.epoch);
              const st = this.#epochs.get(name) ?? { collectorId: h.collectorId, epoch: h.epoch, highest: 0n };
              if (this.#epochs.has(name) && st.highest >= h.highestSeq) continue;
              const next = { ...st, highest: h.highestSeq, head: h.attested };
              batch.put(epochPrefix(TAG.Head, h.collectorId, h.epoch), encodeHead(next));
              this.#epochs.set(name, next);
              n++;
            }
            if (n > 0) await batch.write(false); // a lost head is reported again by the next batch
            resolve();
          } catch (err) {
            reject(AuditError.from(err, ErrorCode.Store, 'recording reported sequence heads failed'));
          }
        },
      });
    });
  }

  /**
   * Every epoch the trail index holds ('Q' keys) is known, with or without an
   * 'H' key: a head key deleted behind the gateway's back must not take its
   * epoch (and any edit in it) out of the check. One iterator per epoch,
   * each starting past the one before.
   */
  async #epochsHeld(db: RocksDb): Promise<void> {
    let from = Buffer.of(TAG.Trail);
    for (;;) {
      const it = db.iterator({ gte: from, lt: Buffer.of(TAG.Trail + 1), values: false });
      let key: Buffer | undefined;
      try {
        key = (await it.next())?.key;
      } finally {
        await it.end();
      }
      if (!key) return;
      const collector = unescapeAt(key, 1);
      const epoch = collector && unescapeAt(key, collector.end);
      if (!collector || !epoch) return; // not a trail key this store wrote: stop here rather than guess
      const name = epochName(collector.value, epoch.value);
      if (!this.#epochs.has(name)) this.#epochs.set(name, { collectorId: collector.value, epoch: epoch.value, highest: 0n });
      from = Buffer.concat([key.subarray(0, epoch.end), Buffer.alloc(25, 0xff)]);
    }
  }

  async trailEpochs(collectorId?: string): Promise<TrailEpoch[]> {
    const db = this.#live();
    const out: TrailEpoch[] = [];
    for (const st of this.#epochs.values()) {
      if (collectorId !== undefined && st.collectorId !== collectorId) continue;
      const dropped: DroppedRange[] = [];
      const prefix = epochPrefix(TAG.Dropped, st.collectorId, st.epoch);
      const it = db.iterator({ gte: prefix, lt: Buffer.concat([prefix, Buffer.alloc(8, 0xff), Buffer.of(0xff)]) });
      try {
        for (let e = await it.next(); e; e = await it.next()) dropped.push(decodeDrop(e.key.readBigUInt64BE(prefix.length), e.value));
      } finally {
        await it.end();
      }
      out.push({ collectorId: st.collectorId, epoch: st.epoch, highestReported: st.highest, head: st.head, dropped });
    }
    return out.sort((a, b) => (a.collectorId < b.collectorId ? -1 : a.collectorId > b.collectorId ? 1 : a.epoch < b.epoch ? -1 : a.epoch > b.epoch ? 1 : 0));
  }

  async trailRows(collectorId: string, epoch: string, afterSeq: bigint, limit: number, sinceMicros?: number): Promise<TrailRow[]> {
    const db = this.#live();
    const prefix = epochPrefix(TAG.Trail, collectorId, epoch);
    const out: TrailRow[] = [];
    const it = db.iterator({ gt: Buffer.concat([u64Key(prefix, afterSeq), Buffer.alloc(16, 0xff)]), lt: Buffer.concat([prefix, Buffer.alloc(8, 0xff), Buffer.alloc(17, 0xff)]) });
    try {
      while (out.length < limit) {
        const keys: Buffer[] = [];
        const seqs: bigint[] = [];
        for (let e = await it.next(); e; e = keys.length < FETCH_CHUNK ? await it.next() : undefined) {
          const time = Number(e.value.readBigUInt64BE(0));
          if (sinceMicros !== undefined && time < sinceMicros) continue;
          seqs.push(e.key.readBigUInt64BE(prefix.length));
          keys.push(eventKey(time, e.key.subarray(prefix.length + 8, prefix.length + 24)));
        }
        if (keys.length === 0) break;
        const values = await db.getMany(keys);
        values.forEach((value, i) => {
          if (value === undefined || out.length >= limit) return; // removed by retention after the index was read
          let rec: ReturnType<typeof decodeRecord>;
          try {
            rec = decodeRecord(value);
          } catch {
            // A record that does not decode is a finding for this seq (its bytes are not an event), not a failure of the whole trail.
            out.push({ seq: seqs[i], raw: Buffer.from(value), deliveredBy: '', receivedAtMs: 0, sealId: '' });
            return;
          }
          out.push({ seq: seqs[i], raw: Buffer.from(rec.raw), deliveredBy: rec.deliveredBy, receivedAtMs: rec.receivedAtMs, sealId: rec.sealId });
        });
        if (keys.length < FETCH_CHUNK) break;
      }
    } finally {
      await it.end();
    }
    return out;
  }

  async seals(ids: readonly string[]): Promise<Seal[]> {
    const db = this.#live();
    const wanted = ids.filter((id) => idBytes(id).length === 16);
    const values = await db.getMany(wanted.map(sealKey));
    const out: Seal[] = [];
    values.forEach((v, i) => {
      if (!v) return;
      try {
        out.push(decodeSeal(wanted[i], v));
      } catch {
        // an unreadable seal is reported as missing by every row that names it
      }
    });
    return out;
  }

  async #search(db: RocksDb, f: SearchFilter): Promise<AuditEvent[]> {
    const since = Math.max(0, f.sinceMicros ?? 0);
    const until = Math.min(TIME_MAX, f.untilMicros ?? TIME_MAX);
    const out: AuditEvent[] = [];
    if (since >= until) return out;
    const needle = f.text ? f.text.toLowerCase() : undefined;
    const index = chooseIndex(f);
    if (!index) {
      const it = db.iterator({ ...timeRange(Buffer.of(TAG.Event), since, until), reverse: true });
      try {
        for (let e = await it.next(); e && out.length < f.limit; e = await it.next()) {
          const ev = toEvent(e.value);
          if (matches(ev, f, needle)) out.push(ev);
        }
      } finally {
        await it.end();
      }
      return out;
    }
    const it = db.iterator({ ...timeRange(indexPrefix(index[0], index[1]), since, until), reverse: true, values: false });
    try {
      let done = false;
      while (!done && out.length < f.limit) {
        const keys: Buffer[] = [];
        while (keys.length < FETCH_CHUNK) {
          const e = await it.next();
          if (!e) {
            done = true;
            break;
          }
          keys.push(eventKeyOfIndexKey(e.key));
        }
        const values = await db.getMany(keys);
        for (const value of values) {
          if (value === undefined) continue; // removed by retention after the index was read
          const ev = toEvent(value);
          if (matches(ev, f, needle)) {
            out.push(ev);
            if (out.length >= f.limit) break;
          }
        }
      }
    } finally {
      await it.end();
    }
    return out;
  }

  /** Retention: drops events (and their id and index keys) older than `micros`. Runs on the queue. */
  async #deleteBefore(micros: number): Promise<number> {
    const db = this.#db;
    if (!db) throw new AuditError(ErrorCode.Closed, 'the store is closed');
    let removed = 0;
    for (;;) {
      const it = db.iterator({ ...timeRange(Buffer.of(TAG.Event), 0, Math.max(0, Math.min(micros, TIME_MAX))), limit: DELETE_CHUNK });
      const batch = db.writeBatch();
      let n = 0;
      const gone = new Map<string, { collectorId: string; epoch: string; seqs: bigint[] }>();
      try {
        for (let e = await it.next(); e; e = await it.next()) {
          const time = Number(e.key.readBigUInt64BE(1));
          const id = Buffer.from(e.key.subarray(9, 25));
          const ev = fromBinary(AuditEventSchema, decodeRecord(e.value).raw);
          batch.del(e.key);
          batch.del(idKey(id));
          for (const [tag, value] of indexesOf(ev)) batch.del(indexKey(indexPrefix(tag, value), time, id));
          if (ev.seq > 0n) {
            batch.del(trailKey(epochPrefix(TAG.Trail, ev.collectorId, ev.epoch), ev.seq, id));
            const name = epochName(ev.collectorId, ev.epoch);
            const g = gone.get(name) ?? { collectorId: ev.collectorId, epoch: ev.epoch, seqs: [] };
            g.seqs.push(ev.seq);
            gone.set(name, g);
          }
          n++;
        }
      } finally {
        await it.end();
      }
      if (n === 0) return removed;
      // Retention removes on purpose and says so: each run of seqs it drops is kept, so verification still passes.
      for (const g of gone.values()) {
        const prefix = epochPrefix(TAG.Dropped, g.collectorId, g.epoch);
        for (const run of runsOf(g.seqs.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)))) {
          const r = { from: run.fromSeq, to: run.toSeq };
          batch.put(u64Key(prefix, run.fromSeq), encodeDrop(run.toSeq, this.#sealer?.drop(g.collectorId, g.epoch, r)));
        }
      }
      batch.put(COUNT_KEY, timeValue(Math.max(0, this.#count - n)));
      await batch.write(true);
      this.#count = Math.max(0, this.#count - n);
      removed += n;
    }
  }
}
