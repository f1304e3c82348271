import { type Clock, systemClock } from '../lib/clock.js';
import { AuditError, ErrorCode } from '../lib/errors.js';
import { type Logger, silentLogger } from '../lib/log.js';
import { type CommitPlan, expireOlderThan, planCommit, planRemoval, presentRecords, publishGauges, type Victim } from './evict.js';
import { type Loss, LossReporter, lossesOf } from './losses.js';
import { loadState, openDatabase, peekEdge, repairDatabase, type Edge } from './load.js';
import { META_KEY, type Meta, encodeMeta, epochToBytes, recordKey } from './record.js';
import { Rocks, isCorruption } from './rocks.js';
import { type Pending, PendingQueue } from './pending.js';
import { RecentRecords } from './recent.js';
import { scanRecords } from './scan.js';
import { sealRecord } from './seal.js';
import { Tickets, startTicker } from './tickets.js';
import type { CacheOptions, CachedRecord, CacheStats, ScanOptions } from './types.js';

export type { Loss, LossReason } from './losses.js';
export type { CacheOptions, CachedRecord, CacheStats, ScanOptions } from './types.js';

/**
 * The encrypted write-ahead event cache: a durable queue of sealed records
 * keyed by sequence number (ot persistent_queue.go). Appends are grouped
 * into one synced RocksDB batch at a time; counters live in a meta record
 * written in the same batch. All database work runs one task at a time.
 * Acknowledged records are deleted by the next group commit's batch (one
 * write and one meta record for both), or by a write of their own when no
 * commit is coming.
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
  readonly #pending = new PendingQueue();
  /** Durable, unacknowledged records in plaintext: the shipper's scans of fresh records skip RocksDB. */
  readonly #recent = new RecentRecords();
  readonly #tickets: Tickets;
  #tail: Promise<unknown> = Promise.resolve();
  /** Acknowledged records not yet deleted (they ride on the next write), their seqs, and the ack() calls waiting for it. */
  #acked: Victim[] = [];
  readonly #ackedSeqs = new Set<bigint>();
  #ackWaiters: Array<(err?: Error) => void> = [];
  #committing = false;
  /** The pending start of a commit: a timer for commitIntervalMs, or an immediate when it is 0. */
  #timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #tickTimer: NodeJS.Timeout | undefined;
  #syncTimer: NodeJS.Timeout | undefined;
  #failures = 0;
  /** The batch at the front of #pending whose write failed: did it land after all? */
  #failed: { commit: number; count: number; evicted: bigint[]; losses: Loss[] } | undefined;
  #writable = true;
  #lastError: string | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;

  private constructor(opts: CacheOptions, db: Rocks, meta: Meta, oldest: Edge | undefined, newest: Edge | undefined) {
    this.#opts = opts;
    this.#clock = opts.clock ?? systemClock;
    this.#log = opts.logger ?? silentLogger;
    this.#losses = new LossReporter({ clock: this.#clock, logger: this.#log, metrics: opts.metrics, onLoss: opts.onLoss, sizeSetting: opts.memory ? 'memory_max_size' : 'max_size' });
    this.#maxPending = opts.maxPendingBytes ?? 64 << 20;
    this.#tickets = new Tickets(this.#log);
    this.#db = db;
    this.#meta = meta;
    this.epoch = meta.epoch;
    this.#epochBytes = epochToBytes(meta.epoch);
    this.#nextSeq = meta.lastSeq + 1n;
    this.#oldest = oldest;
    this.#newest = newest;
  }

  static async open(opts: CacheOptions): Promise<EventCache> {
    const log = opts.logger ?? silentLogger;
    const { db, st, lost } = await openDatabase(opts, opts.clock ?? systemClock, log);
    const cache = new EventCache(opts, db, st.meta, st.oldest, st.newest);
    log.info({ path: opts.memory ? '(in memory)' : opts.path, epoch: st.meta.epoch, events: st.meta.events, bytes: st.meta.bytes, lastSeq: String(st.meta.lastSeq) }, 'cache opened');
    cache.#losses.redeliver(lost ? st.meta.unreported.filter((l) => l !== lost) : st.meta.unreported);
    if (lost) cache.#losses.report([lost]);
    try {
      await cache.expire();
    } catch (err) {
      await db.close().catch(() => undefined);
      throw AuditError.from(err, ErrorCode.Cache, `cache ${opts.path}: cannot load`);
    }
    cache.#tickTimer = startTicker(opts.maxAgeMs, opts.expireIntervalMs, () => cache.#publish(), () => {
      cache.expire().catch((err: unknown) => log.warn({ err }, 'cache expiry pass failed'));
    });
    cache.#publish();
    setImmediate(() => cache.#losses.release()); // after the caller's `await open()` continuation has wired its onLoss target
    return cache;
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

  /** Chain hash of the newest durable record (lib/trail.ts), for the chain to go on after a restart. */
  get chainTail(): Buffer | undefined {
    return this.#meta.chain;
  }

  /** Queues a record for the next group commit; returns its ticket. Never throws on I/O. `chain`: the record's chain hash. */
  append(seq: bigint, payload: Uint8Array, timeMs: number, chain?: Buffer): number {
    const ticket = this.#tickets.issue();
    if (this.#closed) return ticket;
    const key = recordKey(seq);
    const value = sealRecord(this.#opts.keyring, this.#epochBytes, key, timeMs, payload);
    this.#pending.push({ seq, key, value, timeMs, ticket, chain });
    this.#recent.appended(seq, payload);
    if (this.#pending.bytes > this.#maxPending) this.#boundPending();
    this.#schedule();
    return ticket;
  }

  /** cb() once every record up to `ticket` is durable, or cb(err) if that commit failed. */
  whenDurable(ticket: number, cb: (err?: Error) => void): void {
    if (ticket <= this.#tickets.durable) process.nextTick(cb);
    else if (this.#closed) process.nextTick(cb, new AuditError(ErrorCode.Closed, 'cache is closed'));
    else this.#tickets.wait(ticket, cb);
  }

  /** Resolves when everything appended so far is durable; rejects if that commit fails. */
  flush(): Promise<void> {
    const last = this.#tickets.last;
    if (last <= this.#tickets.durable) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.whenDurable(last, (err) => (err ? reject(err) : resolve()));
      this.#cancelTimer();
      if (!this.#retryTimer) void this.#commit();
    });
  }

  /** Durable, un-acknowledged records with seq in (afterSeq, beforeSeq), in the given order, at most `limit`. */
  scan(opts: ScanOptions): Promise<CachedRecord[]> {
    // In the task queue like every read, so a scan never overtakes an ack or a commit queued before it.
    return this.#run(async () => {
      for (let o = opts; ; ) {
        const found =
          this.#recent.scan(o, this.#meta.lowSeq) ??
          (await scanRecords(() => this.#requireDb(), this.#opts.keyring, this.#epochBytes, this.#meta.lowSeq, o, (list) => this.#dropCorrupt(list)));
        if (this.#ackedSeqs.size === 0) return found;
        // acknowledged records waiting for their delete are gone already
        const out = found.filter((r) => !this.#ackedSeqs.has(r.seq));
        if (out.length > 0 || found.length < o.limit) return out;
        const last = found[found.length - 1].seq;
        o = o.order === 'newest_first' ? { ...o, beforeSeq: last } : { ...o, afterSeq: last };
      }
    });
  }

  /**
   * Removes acknowledged records. Unknown seqs are ignored. Resolves once the
   * deletes are written: with the next group commit's batch when one is
   * coming (one write, one meta record for both), else on their own.
   */
  ack(seqs: readonly bigint[]): Promise<void> {
    if (seqs.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#run(async () => {
        const db = this.#requireDb();
        const fresh = seqs.filter((s) => !this.#ackedSeqs.has(s));
        const victims = this.#recent.victims(fresh) ?? (await presentRecords(db, fresh));
        for (const v of victims) {
          this.#ackedSeqs.add(v.seq);
          this.#acked.push(v);
        }
        this.#ackWaiters.push((err) => (err ? reject(err) : resolve()));
      }).then(() => this.#kickAcks(), reject);
    });
  }

  /** Gets acknowledged records written: by the commit loop (running, or started here); refused at once while the cache cannot write. */
  #kickAcks(): void {
    if (this.#ackWaiters.length === 0) return;
    if (this.#failed || !this.#writable || this.#retryTimer || this.#closed) {
      this.#settleAcks(this.#takeAcks().waiters, new AuditError(ErrorCode.Cache, `cache is not writable: ${this.#lastError ?? 'recovering'}`));
      return;
    }
    if (!this.#committing) void this.#commit();
  }

  #takeAcks(): { victims: Victim[]; waiters: Array<(err?: Error) => void> } {
    const out = { victims: this.#acked, waiters: this.#ackWaiters };
    this.#acked = [];
    this.#ackWaiters = [];
    this.#ackedSeqs.clear();
    return out;
  }

  /** Records removed otherwise (expired, corrupt) leave the acknowledged ones waiting for their delete: never counted out twice. */
  #unstash(gone: readonly Victim[]): void {
    let hit = false;
    for (const v of gone) if (this.#ackedSeqs.delete(v.seq)) hit = true;
    if (hit) this.#acked = this.#acked.filter((v) => this.#ackedSeqs.has(v.seq));
  }

  #settleAcks(waiters: Array<(err?: Error) => void>, err?: unknown): void {
    const e = err === undefined ? undefined : AuditError.from(err, ErrorCode.Cache, 'cache delete failed');
    for (const w of waiters) w(e);
  }

  /** Writes the acknowledged deletes on their own (no commit to ride on, or one that must evict). */
  async #flushAcks(db: Rocks): Promise<void> {
    const { victims, waiters } = this.#takeAcks();
    try {
      // An acknowledgement need not be fsynced: if a crash loses it, the record
      // is shipped again and the gateway's dedup by event_id drops the copy.
      await this.#remove(db, victims, false, [], false);
    } catch (err) {
      this.#settleAcks(waiters, err);
      return;
    }
    this.#settleAcks(waiters);
  }

  /** Drops records older than max_age now (also runs on a timer). Resolves to the number dropped. */
  expire(): Promise<number> {
    return this.#run(async () => {
      const maxAge = this.#opts.maxAgeMs;
      if (!(maxAge > 0) || this.#closed) return 0;
      const remove = (db: Rocks, victims: Victim[], losses: Loss[]) => this.#remove(db, victims, true, losses);
      const total = await expireOlderThan(() => this.#requireDb(), () => this.#meta.lowSeq, this.#clock.now() - maxAge, remove);
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
      pendingAppends: this.#pending.unsynced,
      writable: this.#writable,
      lastError: this.#lastError,
    };
  }

  /** Flushes, then closes. Rejects (after closing) if records could not be made durable. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      clearInterval(this.#tickTimer);
      clearTimeout(this.#syncTimer);
      this.#syncTimer = undefined;
      const failure: unknown = await this.flush().then(() => undefined, (err: unknown) => err ?? new Error('flush failed'));
      this.#closed = true;
      this.#cancelTimer();
      clearTimeout(this.#retryTimer);
      const lost = this.#pending.length;
      this.#tickets.settle(Infinity, new AuditError(ErrorCode.Closed, 'cache closed before the record was durable'));
      await this.#run(async () => {
        if (this.#db && this.#ackWaiters.length > 0) await this.#flushAcks(this.#db);
        const db = this.#db;
        this.#db = undefined;
        const unreported = this.#losses.undelivered(this.#meta.unreported);
        if (db && this.#writable && unreported.length < this.#meta.unreported.length) {
          await db.write(planRemoval(this.#meta, [], false, unreported).ops, true).catch(() => undefined); // delivered: not again after restart
        }
        if (db && this.#writable && !this.#syncEachCommit) {
          await db.write([{ type: 'put', key: META_KEY, value: encodeMeta(this.#meta) }], true).catch(() => undefined); // sync what was only written
        }
        await db?.close();
      });
      if (failure !== undefined) throw AuditError.from(failure, ErrorCode.Cache, `cache closed with ${lost} records not durable`);
    })();
    return this.#closing;
  }

  /** Runs database work one task at a time; RocksDB corruption gets one repair, then the task runs again. */
  #run<T>(task: () => Promise<T>): Promise<T> {
    const p = this.#tail.then(() => task().catch(async (err: unknown) => (isCorruption(err) && !this.#closed ? (await this.#repair(err), task()) : Promise.reject(err))));
    this.#tail = p.catch(() => undefined);
    return p;
  }

  #requireDb(): Rocks {
    if (!this.#db) throw new AuditError(this.#closed ? ErrorCode.Closed : ErrorCode.Cache, this.#closed ? 'cache is closed' : 'cache database is not open');
    return this.#db;
  }

  #schedule(): void {
    if (this.#committing || this.#timer || this.#retryTimer || this.#closed) return;
    const start = (): void => {
      this.#timer = undefined;
      void this.#commit();
    };
    // 0: after the current I/O phase (every append of this turn rides along); a 0 ms
    // timer would wait for the next timers phase, about 1 ms later.
    const ms = this.#opts.commitIntervalMs;
    this.#timer = ms > 0 ? setTimeout(start, ms) : setImmediate(start);
  }

  #cancelTimer(): void {
    const t = this.#timer;
    this.#timer = undefined;
    if (t === undefined) return;
    if (this.#opts.commitIntervalMs > 0) clearTimeout(t as NodeJS.Timeout);
    else clearImmediate(t as NodeJS.Immediate);
  }

  async #commit(): Promise<void> {
    if (this.#committing) return;
    this.#committing = true;
    try {
      while ((this.#pending.length > 0 || this.#ackWaiters.length > 0) && !this.#retryTimer && this.#db) {
        if (!(await this.#run(() => this.#commitOnce()))) break;
      }
    } catch (err) {
      this.#log.error({ err }, 'cache commit loop failed');
    } finally {
      this.#committing = false;
    }
    if (this.#ackWaiters.length > 0) this.#kickAcks(); // stashed while the loop was ending
  }

  /**
   * Writes every pending record in one synced batch, evicting the oldest for
   * max_size, with the deletes of acknowledged records. False when the write failed.
   */
  async #commitOnce(): Promise<boolean> {
    if (this.#ackWaiters.length > 0 && this.#db && (this.#pending.length === 0 || this.#mustEvict())) await this.#flushAcks(this.#db);
    if (this.#pending.length === 0) return true;
    const batch = this.#pending.take();
    const acks = this.#takeAcks();
    const commitNo = this.#meta.commit + 1;
    let plan: CommitPlan<Pending> | undefined;
    try {
      const db = this.#db;
      if (!db || this.#dbReadOnly) throw new AuditError(ErrorCode.Cache, 'cache database is not open for writing');
      const undelivered = this.#losses.undelivered(this.#meta.unreported);
      // the acknowledged deletes first (their meta record dropped: the commit's counts both)
      const removal = acks.victims.length > 0 ? planRemoval(this.#meta, acks.victims, false, undelivered) : undefined;
      plan = await planCommit(db, removal?.meta ?? this.#meta, batch, this.#opts.maxBytes, undelivered);
      await db.write(removal ? [...removal.ops.slice(0, -1), ...plan.ops] : plan.ops, this.#syncEachCommit);
    } catch (err) {
      this.#pending.settle(batch, true);
      this.#settleAcks(acks.waiters, err);
      if (plan === undefined && isCorruption(err)) throw err; // a damaged read while planning: #run repairs, then commits again
      this.#failed = { commit: commitNo, count: batch.length, evicted: plan?.lost ?? [], losses: plan?.losses ?? [] };
      this.#writeFailed(err);
      return false;
    }
    this.#pending.settle(batch, false);
    const { meta, keep } = plan;
    this.#recent.committed(batch, keep, plan.lost, this.#meta.lastSeq);
    this.#meta = meta;
    if (acks.victims.length > 0) this.#recent.removed(acks.victims.map((v) => v.seq));
    if (plan.lost.length) this.#oldest = await peekEdge(this.#db!, meta.lowSeq, false).catch(() => undefined);
    if (!this.#oldest && keep.length) this.#oldest = { seq: keep[0].seq, timeMs: keep[0].timeMs };
    this.#durable(batch, keep, plan.losses);
    if (acks.victims.length > 0) await this.#afterRemoval(this.#db!, acks.victims).catch((err: unknown) => this.#log.warn({ err }, 'cache edge lookup after a delete failed'));
    this.#settleAcks(acks.waiters);
    this.#publish();
    if (!this.#syncEachCommit) this.#scheduleSync();
    return true;
  }

  /** The next commit would have to evict for max_size counting the acknowledged deletes: they go first, on their own. */
  #mustEvict(): boolean {
    let freed = 0;
    for (const v of this.#acked) freed += v.bytes;
    return this.#meta.bytes - freed + this.#pending.bytes > this.#opts.maxBytes;
  }

  get #syncEachCommit(): boolean {
    return this.#opts.durability !== 'write';
  }

  /** `write` durability: sync the log soon, so a power loss can take at most one interval of records. */
  #scheduleSync(): void {
    if (this.#syncTimer || this.#closed) return;
    this.#syncTimer = setTimeout(() => {
      this.#syncTimer = undefined;
      void this.#run(async () => {
        const db = this.#db;
        if (!db || this.#dbReadOnly || this.#closed) return;
        await db.write([{ type: 'put', key: META_KEY, value: encodeMeta(this.#meta) }], true);
      }).catch((err: unknown) => this.#log.warn({ err }, 'background sync of the cache log failed'));
    }, this.#opts.fsyncIntervalMs ?? 200);
    this.#syncTimer.unref();
  }

  #durable(batch: Pending[], kept: Pending[], losses: Loss[]): void {
    const last = kept[kept.length - 1];
    if (last && (!this.#newest || last.seq >= this.#newest.seq)) this.#newest = { seq: last.seq, timeMs: last.timeMs };
    this.#markWritable();
    this.#tickets.markDurable(batch[batch.length - 1].ticket);
    if (losses.length) this.#losses.report(losses);
    else this.#losses.quiet('size');
  }

  #markWritable(): void {
    if (this.#writable) return;
    this.#log.info({ afterFailures: this.#failures }, 'cache writable again');
    this.#writable = true;
    this.#opts.onWritableChange?.(true);
    this.#lastError = undefined;
    this.#failures = 0;
  }

  /** A failed write: every waiting whenDurable gets the error now; the records stay queued and are retried. */
  #writeFailed(err: unknown): void {
    const e = AuditError.from(err, ErrorCode.Cache, 'cache write failed');
    this.#opts.metrics?.cacheWriteErrors.inc();
    const was = this.#writable;
    this.#writable = false;
    this.#lastError = e.message;
    if (was) {
      this.#log.error({ err: e }, 'cache write failed; records kept in memory and retried');
      this.#opts.onWritableChange?.(false, e);
    }
    this.#failures++;
    this.#tickets.settle(Infinity, e);
    this.#settleAcks(this.#takeAcks().waiters, e); // not deleted: they are shipped again, the gateway drops the copies
    if (!this.#closed && !this.#retryTimer) {
      const min = this.#opts.retryMinMs ?? 100;
      const delay = Math.min(this.#opts.retryMaxMs ?? 5000, min * 2 ** Math.min(this.#failures - 1, 20));
      this.#retryTimer = setTimeout(() => void this.#recover(), delay);
    }
    this.#publish();
  }

  /** After a failed write: reopen the database, learn whether the failed batch landed, probe with a synced write, then commit. */
  async #recover(): Promise<void> {
    this.#recent.invalidate();
    const ok = await this.#run(async () => {
      this.#retryTimer = undefined;
      if (this.#closed) return false;
      const prev = this.#db;
      this.#db = undefined;
      // in memory there is nothing to reopen (and a reopen at opts.path would create a directory): retry on the same one
      if (prev && !this.#opts.memory) await prev.close().catch((err: unknown) => this.#log.debug({ err }, 'cache close before reopen failed'));
      const opened = this.#opts.memory && prev ? { db: prev, readOnly: false, error: undefined } : await Rocks.openWritableOrReadOnly(this.#opts.path, { writeBufferSize: this.#opts.writeBufferSize });
      this.#db = opened.db;
      this.#dbReadOnly = opened.readOnly;
      try {
        if (opened.error !== undefined) throw opened.error;
        const db = opened.db!;
        const st = await loadState(db, this.#clock, this.#log);
        const f = this.#failed;
        const landed = f && st.meta.commit >= f.commit ? this.#pending.shift(f.count) : [];
        if (f && landed.length) this.#durable(landed, landed.filter((p) => !f.evicted.includes(p.seq)), f.losses);
        this.#failed = undefined;
        // the same losses as on disk, as the objects this process delivered (or not yet)
        this.#meta = { ...st.meta, unreported: this.#losses.undelivered([...this.#meta.unreported, ...(landed.length ? f!.losses : [])]) };
        this.#oldest = st.oldest;
        this.#newest = st.newest;
        await db.write([{ type: 'put', key: META_KEY, value: encodeMeta(this.#meta) }], true);
        this.#markWritable();
        return true;
      } catch (err) {
        this.#log.debug({ err }, 'cache reopen failed');
        this.#writeFailed(err);
        return false;
      }
    });
    if (ok) void this.#commit();
  }

  async #repair(err: unknown): Promise<void> {
    this.#log.error({ err }, 'cache database corrupt: repairing');
    this.#recent.invalidate();
    this.#settleAcks(this.#takeAcks().waiters, err);
    await this.#db?.close().catch(() => undefined);
    this.#db = undefined;
    const r = await repairDatabase(this.#opts.path, { writeBufferSize: this.#opts.writeBufferSize }, { ...this.#meta, unreported: this.#losses.undelivered(this.#meta.unreported) }, this.#log);
    this.#db = r.db;
    this.#meta = r.meta;
    this.#oldest = await peekEdge(r.db, r.meta.lowSeq, false);
    if (r.lost) this.#losses.report([r.lost]);
  }

  /** Deletes `gone` (all present) durably and updates the counters. */
  async #remove(db: Rocks, gone: Victim[], advanceLow = false, losses: Loss[] = [], sync = true): Promise<void> {
    if (gone.length === 0) return;
    // While a failed batch awaits its verdict, its commit number must stay unused.
    if (this.#failed || !this.#writable) throw new AuditError(ErrorCode.Cache, `cache is not writable: ${this.#lastError ?? 'recovering'}`);
    if (this.#ackedSeqs.size > 0) this.#unstash(gone);
    const unreported = [...this.#losses.undelivered(this.#meta.unreported), ...losses];
    const { meta, ops } = planRemoval(this.#meta, gone, advanceLow, unreported);
    try {
      // a removal that records a loss is always synced: a loss must not be forgotten
      await db.write(ops, sync || unreported.length > 0);
      this.#recent.removed(gone.map((v) => v.seq));
    } catch (err) {
      this.#writeFailed(err);
      throw AuditError.from(err, ErrorCode.Cache, 'cache delete failed');
    }
    this.#meta = meta;
    this.#losses.report(losses);
    await this.#afterRemoval(db, gone);
  }

  /** After `gone` left the database (and #recent): the oldest/newest edges, and lowSeq past the deleted range. */
  async #afterRemoval(db: Rocks, gone: readonly Victim[]): Promise<void> {
    const meta = this.#meta;
    if (!this.#oldest || gone.some((v) => v.seq === this.#oldest!.seq)) {
      this.#oldest = (this.#recent.edge(meta.lowSeq, false) ?? { edge: await peekEdge(db, meta.lowSeq, false) }).edge;
      // Nothing below the oldest record is present: start later scans there, so
      // they do not step over the tombstones of every record acknowledged so far
      // (the stored lowSeq, written with the next meta, stays a valid lower bound).
      let top = meta.lowSeq;
      for (const v of gone) if (v.seq >= top) top = v.seq + 1n;
      const low = this.#oldest ? this.#oldest.seq : top;
      if (low > this.#meta.lowSeq) this.#meta = { ...this.#meta, lowSeq: low };
    }
    if (this.#newest && gone.some((v) => v.seq === this.#newest!.seq)) this.#newest = (this.#recent.edge(this.#meta.lowSeq, true) ?? { edge: await peekEdge(db, this.#meta.lowSeq, true) }).edge;
    this.#publish();
  }

  async #dropCorrupt(list: Victim[]): Promise<void> {
    try {
      const q = list.filter((v) => v.quarantine).length;
      if (q) this.#log.error({ count: q }, 'cache records sealed with a key not configured: set aside (quarantined) and reported as a loss; they are not shipped, and only `dbaudit cache inspect` given that key reads them');
      await this.#remove(this.#requireDb(), list, false, lossesOf('corrupt', list.map((v) => v.seq).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))));
    } catch (err) {
      this.#log.error({ err, count: list.length }, 'cache could not delete corrupt records; they will be skipped again');
    }
  }

  /** Keeps appends held in memory under maxPendingBytes by dropping the oldest (never the batch awaiting its retry verdict). */
  #boundPending(): void {
    const gone = this.#pending.bound(this.#maxPending, this.#failed?.count ?? 0);
    if (gone.length === 0) return;
    this.#recent.dropped(gone.map((p) => p.seq));
    this.#tickets.fail(new Set(gone.map((p) => p.ticket)), new AuditError(ErrorCode.CacheFull, 'cache write backlog full: record dropped'));
    this.#losses.report(lossesOf('size', gone.map((p) => p.seq))); // never written: nothing to persist
  }

  #publish(): void {
    if (!this.#opts.metrics) return;
    const oldest = this.#oldest?.timeMs ?? this.#pending.first?.timeMs;
    publishGauges(this.#opts.metrics, this.#meta, this.#opts.maxBytes, this.#pending.unsynced, oldest === undefined ? 0 : this.#clock.now() - oldest);
  }
}
