import type { CachedRecord, CacheStats, EventCache, ScanOptions } from '../cache/wal.js';

/**
 * The replication cache as the Shipper sees it: records appended by a put
 * that is still waiting for the store's verdict are not visible yet. A put
 * copies its events into the cache (durably) *before* the store write and
 * only then learns which were duplicates; holding its seqs back until then
 * means a duplicate's copy is removed before the Shipper could send it, so
 * the peer never receives an event twice because a collector delivered it
 * twice. Records of later puts wait behind an earlier put still held (seq
 * order is kept), which costs at most one store write of latency.
 *
 * The Shipper reads only `epoch`, `durableSeq`, `stats`, `scan` and `ack`:
 * scans stop before the lowest held seq, and `durableSeq` (the boundary
 * between backlog and live records when a stream opens) stays below it,
 * so a held record is picked up by the live scan once released.
 * @internal
 */
export class GatedCache {
  readonly #cache: EventCache;
  /** First seq of each put in flight (a put's seqs are consecutive: reserved in one synchronous loop). */
  readonly #held = new Map<number, bigint>();
  #nextHold = 1;

  constructor(cache: EventCache) {
    this.#cache = cache;
  }

  get epoch(): string {
    return this.#cache.epoch;
  }

  get durableSeq(): bigint {
    const low = this.#low();
    const durable = this.#cache.durableSeq;
    return low !== undefined && low - 1n < durable ? low - 1n : durable;
  }

  stats(): CacheStats {
    return this.#cache.stats();
  }

  scan(opts: ScanOptions): Promise<CachedRecord[]> {
    const low = this.#low();
    if (low === undefined) return this.#cache.scan(opts);
    if (opts.afterSeq !== undefined && opts.afterSeq >= low - 1n) return Promise.resolve([]);
    const beforeSeq = opts.beforeSeq === undefined || opts.beforeSeq > low ? low : opts.beforeSeq;
    return this.#cache.scan({ ...opts, beforeSeq });
  }

  ack(seqs: readonly bigint[]): Promise<void> {
    return this.#cache.ack(seqs);
  }

  /** Hides seqs from `first` on until `release(handle)`. */
  hold(first: bigint): number {
    const handle = this.#nextHold++;
    this.#held.set(handle, first);
    return handle;
  }

  release(handle: number): void {
    this.#held.delete(handle);
  }

  #low(): bigint | undefined {
    let low: bigint | undefined;
    for (const s of this.#held.values()) if (low === undefined || s < low) low = s;
    return low;
  }

  /** This facade where the Shipper expects the cache: it uses only the members above. */
  asCache(): EventCache {
    return this as unknown as EventCache;
  }
}
