import { mkdir } from 'node:fs/promises';
import { type Clock, systemClock } from '../lib/clock.js';
import { AuditError, ErrorCode } from '../lib/errors.js';
import { type Logger, silentLogger } from '../lib/log.js';
import type { CollectorMetrics } from '../lib/metrics.js';
import { type Loss, LossReporter, oldestRecords, type Victim } from './evict.js';
import type { Keyring } from './keyring.js';
import { loadState, peekEdge, type Edge } from './load.js';
import { META_KEY, type Meta, RECORDS_END, encodeMeta, epochToBytes, recordKey, seqOfKey } from './record.js';
import { type BatchOp, Rocks } from './rocks.js';
import { openRecord, sealRecord } from './seal.js';

export type { Loss, LossReason } from './evict.js';

export interface CacheOptions {
  /** Directory; created if missing. */
  path: string;
  /** collector.cache.max_size, bytes of records (key + sealed value) held. */
  maxBytes: number;
  /** collector.cache.max_age; 0 disables expiry. */
  maxAgeMs: number;
  keyring: Keyring;
  /** Group-commit window (collector.cache.sync.commit_interval). */
  commitIntervalMs: number;
  clock?: Clock;
  logger?: Logger;
  metrics?: CollectorMetrics;
  /** Called when records are dropped by policy or found corrupt, so the caller can emit a loss event. */
  onLoss?: (loss: Loss) => void;
  /** Memory for appends held while writes fail, before the oldest are dropped (default 64 MiB). */
  maxPendingBytes?: number;
  /** How often max_age is enforced in the background (default maxAge/10, within 100 ms..60 s). */
  expireIntervalMs?: number;
  /** Retry delays after a failed write: first, then doubled up to the max (defaults 100 ms, 5 s). */
  retryMinMs?: number;
  retryMaxMs?: number;
  /** RocksDB memtable size (default 4 MiB). */
  writeBufferSize?: number;
}

export interface CachedRecord {
  seq: bigint;
  timeMs: number;
  payload: Uint8Array;
  bytes: number;
}

export interface ScanOptions {
  order: 'oldest_first' | 'newest_first';
  afterSeq?: bigint;
  beforeSeq?: bigint;
  limit: number;
}

export interface CacheStats {
  events: number;
  bytes: number;
  maxBytes: number;
  oldestTimeMs?: number;
  newestTimeMs?: number;
  pendingAppends: number;
  writable: boolean;
  lastError?: string;
}

interface Pending {
  seq: bigint;
  key: Buffer;
  value: Buffer;
  timeMs: number;
  ticket: number;
}
interface Waiter {
  ticket: number;
  cb: (err?: Error) => void;
}

const CORRUPT_BATCH = 1000;
const EXPIRE_BATCH = 10_000;

/**
 * The encrypted write-ahead event cache: a durable queue of sealed records
 * keyed by sequence number (ot persistent_queue.go). Appends are grouped
 * into one synced RocksDB batch at a time; counters live in a meta record
 * written in the same batch. All database work runs one task at a time.
 */
export class EventCache {
  readonly epoch: string;
  readonly #epochBytes: Buffer;
  readonly #opts: CacheOptions;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #losses: LossReporter;
  readonly #maxPending: number;
  #db: Rocks | undefined;
  #dbReadOnly = false;
  #meta: Meta;
  #nextSeq: bigint;
  #oldest: Edge | undefined;
  #newest: Edge | undefined;
  #pending: Pending[] = [];
  #pendingBytes = 0;
  #inflight = 0;
  #ticket = 0;
  #durableTicket = 0;
  #waiters: Waiter[] = [];
  #tail: Promise<unknown> = Promise.resolve();
  #committing = false;
  #timer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #expireTimer: NodeJS.Timeout | undefined;
  #failures = 0;
  /** The batch at the front of #pending whose write failed: did it land after all? */
  #failed: { commit: number; count: number; evicted: bigint[] } | undefined;
  #writable = true;
  #lastError: string | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;

  private constructor(opts: CacheOptions, db: Rocks, meta: Meta, oldest: Edge | undefined, newest: Edge | undefined) {
    this.#opts = opts;
    this.#clock = opts.clock ?? systemClock;
    this.#log = opts.logger ?? silentLogger;
    this.#losses = new LossReporter({ clock: this.#clock, logger: this.#log, metrics: opts.metrics, onLoss: opts.onLoss });
    this.#maxPending = opts.maxPendingBytes ?? 64 << 20;
    this.#db = db;
    this.#meta = meta;
    this.epoch = meta.epoch;
    this.#epochBytes = epochToBytes(meta.epoch);
    this.#nextSeq = meta.lastSeq + 1n;
    this.#oldest = oldest;
    this.#newest = newest;
  }

  static async open(opts: CacheOptions): Promise<EventCache> {
    if (!(opts.maxBytes > 0)) throw new AuditError(ErrorCode.Config, `cache maxBytes must be positive, got ${opts.maxBytes}`);
    if (!(opts.maxAgeMs >= 0)) throw new AuditError(ErrorCode.Config, `cache maxAgeMs must be >= 0, got ${opts.maxAgeMs}`);
    opts.keyring.writeKey(); // fails early without a write key
    const clock = opts.clock ?? systemClock;
    const log = opts.logger ?? silentLogger;
    let db: Rocks;
    try {
      await mkdir(opts.path, { recursive: true, mode: 0o700 });
      db = await Rocks.open(opts.path, { writeBufferSize: opts.writeBufferSize });
    } catch (err) {
      throw AuditError.from(err, ErrorCode.Cache, `cache ${opts.path}: cannot open`);
    }
    try {
      const st = await loadState(db, clock, log);
      const cache = new EventCache(opts, db, st.meta, st.oldest, st.newest);
      log.info({ path: opts.path, epoch: st.meta.epoch, events: st.meta.events, bytes: st.meta.bytes, lastSeq: String(st.meta.lastSeq) }, 'cache opened');
      await cache.expire();
      cache.#startExpiry();
      cache.#publish();
      return cache;
    } catch (err) {
      await db.close().catch(() => undefined);
      throw AuditError.from(err, ErrorCode.Cache, `cache ${opts.path}: cannot load`);
    }
  }

  /** Next gap-free sequence number of this epoch. Numbers reserved but never made durable before a crash are reused. */
  reserveSeq(): bigint {
    return this.#nextSeq++;
  }

  /** Highest seq that is durable. */
  get durableSeq(): bigint {
    return this.#meta.lastSeq;
  }

  get writable(): boolean {
    return this.#writable;
  }

  /** Queues a record for the next group commit; returns its ticket. Never throws on I/O. */
  append(seq: bigint, payload: Uint8Array, timeMs: number): number {
    const ticket = ++this.#ticket;
    if (this.#closed) return ticket;
    const key = recordKey(seq);
    const value = sealRecord(this.#opts.keyring, this.#epochBytes, key, timeMs, payload);
    this.#pending.push({ seq, key, value, timeMs, ticket });
    this.#pendingBytes += key.length + value.length;
    if (this.#pendingBytes > this.#maxPending) this.#boundPending();
    this.#schedule();
    return ticket;
  }

  /** cb() once every record up to `ticket` is durable, or cb(err) if that commit failed. */
  whenDurable(ticket: number, cb: (err?: Error) => void): void {
    if (ticket <= this.#durableTicket) {
      process.nextTick(cb);
      return;
    }
    if (this.#closed) {
      process.nextTick(cb, new AuditError(ErrorCode.Closed, 'cache is closed'));
      return;
    }
    const w = this.#waiters;
    if (w.length === 0 || w[w.length - 1].ticket <= ticket) w.push({ ticket, cb });
    else {
      let lo = 0;
      let hi = w.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (w[mid].ticket <= ticket) lo = mid + 1;
        else hi = mid;
      }
      w.splice(lo, 0, { ticket, cb });
    }
  }

  /** Resolves when everything appended so far is durable; rejects if that commit fails. */
  flush(): Promise<void> {
    const last = this.#ticket;
    if (last <= this.#durableTicket) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.whenDurable(last, (err) => (err ? reject(err) : resolve()));
      if (this.#timer) {
        clearTimeout(this.#timer);
        this.#timer = undefined;
      }
      if (!this.#retryTimer) void this.#commit();
    });
  }

  /** Durable, un-acknowledged records with seq in (afterSeq, beforeSeq), in the given order, at most `limit`. */
  scan(opts: ScanOptions): Promise<CachedRecord[]> {
    return this.#run(async () => {
      const out: CachedRecord[] = [];
      const reverse = opts.order === 'newest_first';
      let lo = opts.afterSeq !== undefined ? opts.afterSeq + 1n : 1n;
      if (lo < this.#meta.lowSeq) lo = this.#meta.lowSeq;
      let hi = opts.beforeSeq; // exclusive
      while (out.length < opts.limit && (hi === undefined || lo < hi)) {
        const db = this.#requireDb();
        const corrupt: Victim[] = [];
        let last: bigint | undefined;
        await db.forEach({ gte: recordKey(lo), lt: hi === undefined ? RECORDS_END : recordKey(hi), reverse }, (key, value) => {
          const seq = seqOfKey(key);
          if (seq === undefined) return true;
          last = seq;
          try {
            const r = openRecord(this.#opts.keyring, this.#epochBytes, key, value);
            out.push({ seq, timeMs: r.timeMs, payload: r.payload, bytes: key.length + value.length });
          } catch {
            corrupt.push({ seq, key, bytes: key.length + value.length, timeMs: undefined });
          }
          return out.length < opts.limit && corrupt.length < CORRUPT_BATCH;
        });
        if (corrupt.length) await this.#dropCorrupt(corrupt);
        if (corrupt.length < CORRUPT_BATCH || last === undefined) break;
        if (reverse) hi = last;
        else lo = last + 1n;
      }
      return out;
    });
  }

  /** Removes acknowledged records, durably. Unknown seqs are ignored. */
  ack(seqs: readonly bigint[]): Promise<void> {
    if (seqs.length === 0) return Promise.resolve();
    return this.#run(async () => {
      const db = this.#requireDb();
      const keys = [...new Set(seqs)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)).map(recordKey);
      const values = await db.getMany(keys);
      const gone: Victim[] = [];
      values.forEach((v, i) => {
        if (v) gone.push({ seq: seqOfKey(keys[i])!, key: keys[i], bytes: keys[i].length + v.length, timeMs: undefined });
      });
      await this.#remove(db, gone);
    });
  }

  /** Drops records older than max_age now (also runs on a timer). Resolves to the number dropped. */
  expire(): Promise<number> {
    return this.#run(async () => {
      const maxAge = this.#opts.maxAgeMs;
      if (!(maxAge > 0) || this.#closed) return 0;
      const cutoff = this.#clock.now() - maxAge;
      let total = 0;
      for (;;) {
        const db = this.#requireDb();
        const victims = await oldestRecords(db, this.#meta.lowSeq, EXPIRE_BATCH, (v) => v.timeMs !== undefined && v.timeMs >= cutoff);
        if (victims.length === 0) break;
        await this.#remove(db, victims, true);
        for (const r of ['age', 'corrupt'] as const) {
          const seqs = victims.filter((v) => (v.timeMs === undefined) === (r === 'corrupt')).map((v) => v.seq);
          this.#losses.report(r, seqs);
        }
        total += victims.length;
        if (victims.length < EXPIRE_BATCH) break;
      }
      if (total === 0) this.#losses.quiet('age');
      this.#publish();
      return total;
    });
  }

  stats(): CacheStats {
    return {
      events: this.#meta.events,
      bytes: this.#meta.bytes,
      maxBytes: this.#opts.maxBytes,
      oldestTimeMs: this.#oldest?.timeMs,
      newestTimeMs: this.#newest?.timeMs,
      pendingAppends: this.#pending.length + this.#inflight,
      writable: this.#writable,
      lastError: this.#lastError,
    };
  }

  /** Flushes, then closes. Rejects (after closing) if records could not be made durable. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      clearInterval(this.#expireTimer);
      let failure: unknown;
      try {
        await this.flush();
      } catch (err) {
        failure = err;
      }
      this.#closed = true;
      clearTimeout(this.#timer);
      clearTimeout(this.#retryTimer);
      const lost = this.#pending.length;
      this.#settle(Infinity, new AuditError(ErrorCode.Closed, 'cache closed before the record was durable'));
      await this.#run(async () => {
        const db = this.#db;
        this.#db = undefined;
        await db?.close();
      });
      if (failure !== undefined) throw AuditError.from(failure, ErrorCode.Cache, `cache closed with ${lost} records not durable`);
    })();
    return this.#closing;
  }

  // ---- internals ------------------------------------------------------

  #run<T>(task: () => Promise<T>): Promise<T> {
    const p = this.#tail.then(task);
    this.#tail = p.catch(() => undefined);
    return p;
  }

  #requireDb(): Rocks {
    if (!this.#db) throw new AuditError(this.#closed ? ErrorCode.Closed : ErrorCode.Cache, this.#closed ? 'cache is closed' : 'cache database is not open');
    return this.#db;
  }

  #schedule(): void {
    if (this.#committing || this.#timer || this.#retryTimer || this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#commit();
    }, this.#opts.commitIntervalMs);
  }

  async #commit(): Promise<void> {
    if (this.#committing) return;
    this.#committing = true;
    try {
      while (this.#pending.length > 0 && !this.#retryTimer && this.#db) {
        if (!(await this.#run(() => this.#commitOnce()))) break;
      }
    } catch (err) {
      this.#log.error({ err }, 'cache commit loop failed');
    } finally {
      this.#committing = false;
    }
  }

  /** Writes every pending record in one synced batch, evicting the oldest for max_size. False when the write failed. */
  async #commitOnce(): Promise<boolean> {
    const batch = this.#pending;
    if (batch.length === 0) return true;
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#inflight = batch.length;
    const meta = { ...this.#meta };
    const evicted: Victim[] = [];
    const dropped: bigint[] = [];
    let keep = batch;
    try {
      const db = this.#db;
      if (!db || this.#dbReadOnly) throw new AuditError(ErrorCode.Cache, 'cache database is not open for writing');
      let add = 0;
      for (const p of batch) add += p.key.length + p.value.length;
      let need = meta.bytes + add - this.#opts.maxBytes;
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
      if (need > 0) {
        keep = batch.slice();
        while (need > 0 && keep.length) {
          const p = keep.shift()!;
          need -= p.key.length + p.value.length;
          dropped.push(p.seq);
        }
      }
      const ops: BatchOp[] = evicted.map((v) => ({ type: 'del', key: v.key }));
      for (const p of keep) {
        ops.push({ type: 'put', key: p.key, value: p.value });
        meta.events++;
        meta.bytes += p.key.length + p.value.length;
        if (p.seq < meta.lowSeq) meta.lowSeq = p.seq;
      }
      for (const p of batch) if (p.seq > meta.lastSeq) meta.lastSeq = p.seq;
      meta.commit++;
      ops.push({ type: 'put', key: META_KEY, value: encodeMeta(meta) });
      await db.write(ops, true);
    } catch (err) {
      this.#inflight = 0;
      this.#pending = batch.concat(this.#pending);
      this.#pendingBytes = this.#pending.reduce((n, p) => n + p.key.length + p.value.length, 0);
      this.#failed = { commit: meta.commit, count: batch.length, evicted: evicted.map((v) => v.seq).concat(dropped) };
      this.#writeFailed(err);
      return false;
    }
    this.#inflight = 0;
    this.#meta = meta;
    if (evicted.length) this.#oldest = await peekEdge(this.#db!, meta.lowSeq, false).catch(() => undefined);
    if (!this.#oldest && keep.length) this.#oldest = { seq: keep[0].seq, timeMs: keep[0].timeMs };
    this.#durable(batch, keep, evicted.map((v) => v.seq).concat(dropped));
    this.#publish();
    return true;
  }

  #durable(batch: Pending[], kept: Pending[], evicted: bigint[]): void {
    const last = kept[kept.length - 1];
    if (last && (!this.#newest || last.seq >= this.#newest.seq)) this.#newest = { seq: last.seq, timeMs: last.timeMs };
    this.#markWritable();
    this.#durableTicket = Math.max(this.#durableTicket, batch[batch.length - 1].ticket);
    this.#settle(this.#durableTicket);
    if (evicted.length) this.#losses.report('size', evicted.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    else this.#losses.quiet('size');
  }

  #markWritable(): void {
    if (!this.#writable) this.#log.info({ afterFailures: this.#failures }, 'cache writable again');
    this.#writable = true;
    this.#lastError = undefined;
    this.#failures = 0;
  }

  /** Calls waiters with tickets up to `upTo`: success, or the error. */
  #settle(upTo: number, err?: Error): void {
    const w = this.#waiters;
    let i = 0;
    while (i < w.length && w[i].ticket <= upTo) i++;
    if (i === 0) return;
    const done = w.splice(0, i);
    for (const x of done) {
      try {
        x.cb(err);
      } catch (e) {
        this.#log.error({ err: e }, 'cache whenDurable callback threw');
      }
    }
  }

  /** A failed write: every waiting whenDurable gets the error now; the records stay queued and are retried. */
  #writeFailed(err: unknown): void {
    const e = AuditError.from(err, ErrorCode.Cache, 'cache write failed');
    this.#opts.metrics?.cacheWriteErrors.inc();
    if (this.#writable) this.#log.error({ err: e }, 'cache write failed; records kept in memory and retried');
    this.#writable = false;
    this.#lastError = e.message;
    this.#failures++;
    this.#settle(Infinity, e);
    if (!this.#closed && !this.#retryTimer) {
      const min = this.#opts.retryMinMs ?? 100;
      const delay = Math.min(this.#opts.retryMaxMs ?? 5000, min * 2 ** Math.min(this.#failures - 1, 20));
      this.#retryTimer = setTimeout(() => void this.#recover(), delay);
    }
    this.#publish();
  }

  /** After a failed write: reopen the database, learn whether the failed batch landed, probe with a synced write, then commit. */
  async #recover(): Promise<void> {
    const ok = await this.#run(async () => {
      this.#retryTimer = undefined;
      if (this.#closed) return false;
      try {
        const prev = this.#db;
        this.#db = undefined;
        if (prev) await prev.close().catch((err: unknown) => this.#log.debug({ err }, 'cache close before reopen failed'));
        this.#db = await Rocks.open(this.#opts.path, { writeBufferSize: this.#opts.writeBufferSize });
        this.#dbReadOnly = false;
        const st = await loadState(this.#db, this.#clock, this.#log);
        const f = this.#failed;
        if (f && st.meta.commit >= f.commit) {
          const landed = this.#pending.splice(0, f.count);
          this.#pendingBytes = this.#pending.reduce((n, p) => n + p.key.length + p.value.length, 0);
          const evicted = new Set(f.evicted);
          this.#durable(landed, landed.filter((p) => !evicted.has(p.seq)), f.evicted);
        }
        this.#failed = undefined;
        this.#meta = st.meta;
        this.#oldest = st.oldest;
        this.#newest = st.newest;
        await this.#db.write([{ type: 'put', key: META_KEY, value: encodeMeta(st.meta) }], true);
        this.#markWritable();
        return true;
      } catch (err) {
        this.#log.debug({ err }, 'cache reopen failed');
        if (!this.#db) {
          try {
            this.#db = await Rocks.open(this.#opts.path, { readOnly: true });
            this.#dbReadOnly = true;
          } catch {
            // neither mode opens: reads fail too until a later retry
          }
        }
        this.#writeFailed(err);
        return false;
      }
    });
    if (ok) void this.#commit();
  }

  /** Deletes `gone` (all present) durably and updates the counters. */
  async #remove(db: Rocks, gone: Victim[], advanceLow = false): Promise<void> {
    if (gone.length === 0) return;
    const meta = { ...this.#meta };
    const ops: BatchOp[] = gone.map((v) => ({ type: 'del', key: v.key }));
    for (const v of gone) {
      meta.events--;
      meta.bytes -= v.bytes;
    }
    if (meta.events <= 0 || meta.bytes < 0) {
      meta.events = Math.max(0, meta.events);
      meta.bytes = Math.max(0, meta.bytes);
    }
    if (advanceLow) meta.lowSeq = gone[gone.length - 1].seq + 1n;
    meta.commit++;
    ops.push({ type: 'put', key: META_KEY, value: encodeMeta(meta) });
    try {
      await db.write(ops, true);
    } catch (err) {
      this.#writeFailed(err);
      throw AuditError.from(err, ErrorCode.Cache, 'cache delete failed');
    }
    this.#meta = meta;
    if (!this.#oldest || gone.some((v) => v.seq === this.#oldest!.seq)) this.#oldest = await peekEdge(db, meta.lowSeq, false);
    if (this.#newest && gone.some((v) => v.seq === this.#newest!.seq)) this.#newest = await peekEdge(db, meta.lowSeq, true);
    this.#publish();
  }

  async #dropCorrupt(list: Victim[]): Promise<void> {
    try {
      await this.#remove(this.#requireDb(), list);
      this.#losses.report('corrupt', list.map((v) => v.seq).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    } catch (err) {
      this.#log.error({ err, count: list.length }, 'cache could not delete corrupt records; they will be skipped again');
    }
  }

  /** Keeps appends held in memory under maxPendingBytes by dropping the oldest (never the batch awaiting its retry verdict). */
  #boundPending(): void {
    const start = this.#failed?.count ?? 0;
    const gone: Pending[] = [];
    let i = start;
    while (this.#pendingBytes > this.#maxPending && i < this.#pending.length - 1) {
      const p = this.#pending[i++];
      this.#pendingBytes -= p.key.length + p.value.length;
      gone.push(p);
    }
    if (gone.length === 0) return;
    this.#pending.splice(start, gone.length);
    const tickets = new Set(gone.map((p) => p.ticket));
    const err = new AuditError(ErrorCode.CacheFull, 'cache write backlog full: record dropped');
    this.#waiters = this.#waiters.filter((w) => {
      if (!tickets.has(w.ticket)) return true;
      process.nextTick(w.cb, err);
      return false;
    });
    this.#losses.report('size', gone.map((p) => p.seq));
  }

  #startExpiry(): void {
    const age = this.#opts.maxAgeMs;
    if (!(age > 0)) return;
    const every = this.#opts.expireIntervalMs ?? Math.min(60_000, Math.max(100, Math.floor(age / 10)));
    this.#expireTimer = setInterval(() => {
      this.expire().catch((err: unknown) => this.#log.warn({ err }, 'cache expiry pass failed'));
    }, every);
    this.#expireTimer.unref();
  }

  #publish(): void {
    const m = this.#opts.metrics;
    if (!m) return;
    const meta = this.#meta;
    const unsynced = this.#pending.length + this.#inflight;
    m.cacheSizeBytes.set(meta.bytes);
    m.cacheEventsCount.set(meta.events);
    m.cacheMaxBytes.set(this.#opts.maxBytes);
    m.cacheSyncPending.set(meta.events + unsynced);
    const oldest = this.#oldest?.timeMs ?? this.#pending[0]?.timeMs;
    m.eventLag.set(oldest === undefined ? 0 : Math.max(0, this.#clock.now() - oldest) / 1000);
  }
}
