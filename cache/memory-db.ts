/**
 * An in-memory stand-in for the RocksDB binding, for a cache that must not
 * touch the disk (`collector.cache.enabled: false`). It answers the subset
 * of the abstract-leveldown API that cache/rocks.ts uses — get, getMany,
 * batch, iterator — with the same ordering (keys compare as unsigned bytes)
 * and the same range options, so every other part of the cache runs
 * unchanged on it.
 *
 * Keys are held as latin1 strings: one character per byte, so JavaScript's
 * string order is the keys' byte order. A sorted array of keys serves
 * ranges; a Map holds the values. Deleted keys stay in the array (skipped)
 * until they outnumber the live ones or seeks have walked over as many, so
 * deleting the oldest records, which is what a cache mostly does, costs no
 * array shifting; deleted keys at the end go at once. Iterators are live,
 * not snapshots: they resume after the last key they returned, so a write
 * between two steps is seen or not according to its key's place.
 * @internal
 */

import type { RangeOptions } from './rocks.js';

type Cb<T = void> = (err: Error | null | undefined, value?: T) => void;

interface MemOp {
  type: 'put' | 'del';
  key: Buffer;
  value?: Buffer;
}

const latin1 = (b: Buffer): string => b.toString('latin1');

export class MemoryDb {
  status = 'open';
  readonly #values = new Map<string, Buffer>();
  /** Every key put since the last compaction, sorted; some may be deleted since. */
  #keys: string[] = [];
  /** Bumped when #keys is rebuilt, so iterators find their place again. */
  #generation = 0;
  /** Deleted keys walked over by iterator steps since the last compaction. */
  #skipped = 0;

  open(_opts: Record<string, unknown>, cb: Cb): void {
    this.status = 'open';
    queueMicrotask(() => cb(null));
  }

  close(cb: Cb): void {
    this.status = 'closed';
    queueMicrotask(() => cb(null));
  }

  get(key: Buffer, _opts: Record<string, unknown>, cb: Cb<Buffer>): void {
    if (this.status !== 'open') return queueMicrotask(() => cb(new Error('Database is not open')));
    const v = this.#values.get(latin1(key));
    queueMicrotask(() => (v === undefined ? cb(new Error('NotFound: ')) : cb(null, Buffer.from(v))));
  }

  getMany(keys: Buffer[], _opts: Record<string, unknown>, cb: Cb<(Buffer | undefined)[]>): void {
    if (this.status !== 'open') return queueMicrotask(() => cb(new Error('Database is not open')));
    const out = keys.map((k) => {
      const v = this.#values.get(latin1(k));
      return v === undefined ? undefined : Buffer.from(v);
    });
    queueMicrotask(() => cb(null, out));
  }

  batch(ops: MemOp[], _opts: Record<string, unknown>, cb: Cb): void {
    if (this.status !== 'open') return queueMicrotask(() => cb(new Error('Database is not open')));
    // Copies (the caller may reuse its buffers, as it may with RocksDB), all of one batch in one
    // allocation of its own: a small Buffer.from() copy would be a slice of Node's shared 8KB pool
    // and keep the whole pool chunk alive (with the short-lived buffers around it) as long as the
    // record lives, several times the bytes memory_max_size counts.
    let total = 0;
    for (const op of ops) if (op.type === 'put' && op.value) total += op.value.length;
    const slab = total > 0 ? Buffer.allocUnsafeSlow(total) : undefined;
    let at = 0;
    for (const op of ops) {
      const k = latin1(op.key);
      if (op.type === 'del') {
        this.#values.delete(k);
        continue;
      }
      if (!this.#values.has(k)) this.#insertKey(k);
      const len = op.value?.length ?? 0;
      if (slab && len > 0) op.value!.copy(slab, at);
      this.#values.set(k, slab && len > 0 ? slab.subarray(at, at + len) : Buffer.alloc(0));
      at += len;
    }
    this.#trimTail();
    if (this.#keys.length > 1024 && this.#keys.length > 2 * this.#values.size) this.#compact();
    // answered in a later turn of the event loop, as RocksDB's worker thread answers: what the
    // caller does after a write (other appends joining the next commit) happens in between as on disk
    setImmediate(() => cb(null));
  }

  iterator(opts: RangeOptions): { next(cb: (err: Error | null | undefined, key?: Buffer, value?: Buffer) => void): void; end(cb: Cb): void } {
    const reverse = opts.reverse === true;
    const values = opts.values !== false; // as the binding: no value at all when not asked for
    const lo = opts.gte !== undefined ? { k: latin1(opts.gte), open: false } : opts.gt !== undefined ? { k: latin1(opts.gt), open: true } : undefined;
    const hi = opts.lte !== undefined ? { k: latin1(opts.lte), open: false } : opts.lt !== undefined ? { k: latin1(opts.lt), open: true } : undefined;
    let left = opts.limit === undefined || opts.limit < 0 ? Infinity : opts.limit;
    let last: string | undefined;
    let pos = -1;
    let generation = -1;
    const inRange = (k: string): boolean => {
      if (lo && (lo.open ? k <= lo.k : k < lo.k)) return false;
      if (hi && (hi.open ? k >= hi.k : k > hi.k)) return false;
      return true;
    };
    const step = (): [string, Buffer] | undefined => {
      const keys = this.#keys;
      if (generation !== this.#generation || pos < 0) {
        // (re)place: just past the last key returned, or at the range's start
        generation = this.#generation;
        if (last !== undefined) pos = reverse ? lowerBound(keys, last) - 1 : upperBound(keys, last);
        else if (reverse) pos = hi ? (hi.open ? lowerBound(keys, hi.k) : upperBound(keys, hi.k)) - 1 : keys.length - 1;
        else pos = lo ? (lo.open ? upperBound(keys, lo.k) : lowerBound(keys, lo.k)) : 0;
      }
      let found: [string, Buffer] | undefined;
      let skipped = 0;
      for (; reverse ? pos >= 0 : pos < keys.length; reverse ? pos-- : pos++) {
        const k = keys[pos];
        if (last !== undefined && (reverse ? k >= last : k <= last)) continue; // inserted behind us
        if (!inRange(k)) break;
        const v = this.#values.get(k);
        if (v === undefined) {
          skipped++; // deleted
          continue;
        }
        reverse ? pos-- : pos++;
        found = [k, v];
        break;
      }
      // Seeks that keep walking over the same deleted keys (a reverse seek from the end
      // after the newest records were acknowledged, as newest_first replay does) would
      // make a drain quadratic: once the walking done since the last compaction
      // exceeds the array, compact (no more work than the walking already done).
      this.#skipped += skipped;
      if (this.#skipped > 1024 && this.#skipped > keys.length) this.#compact();
      return found;
    };
    return {
      next: (cb) => {
        if (this.status !== 'open') return queueMicrotask(() => cb(new Error('Database is not open')));
        const e = left > 0 ? step() : undefined;
        if (e === undefined) return queueMicrotask(() => cb(null));
        left--;
        last = e[0];
        const key = Buffer.from(e[0], 'latin1');
        const value = values ? Buffer.from(e[1]) : undefined;
        queueMicrotask(() => cb(null, key, value));
      },
      end: (cb) => queueMicrotask(() => cb(null)),
    };
  }

  #insertKey(k: string): void {
    const keys = this.#keys;
    if (keys.length === 0 || keys[keys.length - 1] < k) {
      keys.push(k); // the usual case: a record key past every other
      return;
    }
    const at = lowerBound(keys, k);
    if (keys[at] === k) return; // deleted earlier, still in the array: live again
    keys.splice(at, 0, k);
    this.#generation++;
  }

  #compact(): void {
    this.#keys = this.#keys.filter((k) => this.#values.has(k));
    this.#generation++;
    this.#skipped = 0;
  }

  /** Deleted keys at the end go at once (the newest records, acknowledged first): a seek from the end never walks them. */
  #trimTail(): void {
    const keys = this.#keys;
    let n = keys.length;
    while (n > 0 && !this.#values.has(keys[n - 1])) n--;
    if (n === keys.length) return;
    keys.length = n;
    this.#generation++; // a forward iterator past the new end must find its place again
  }
}

/** First index whose key is >= k. */
function lowerBound(keys: readonly string[], k: string): number {
  let a = 0;
  let b = keys.length;
  while (a < b) {
    const m = (a + b) >>> 1;
    if (keys[m] < k) a = m + 1;
    else b = m;
  }
  return a;
}

/** First index whose key is > k. */
function upperBound(keys: readonly string[], k: string): number {
  let a = 0;
  let b = keys.length;
  while (a < b) {
    const m = (a + b) >>> 1;
    if (keys[m] <= k) a = m + 1;
    else b = m;
  }
  return a;
}
