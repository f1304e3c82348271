import type { Victim } from './evict.js';
import { recordKey } from './record.js';
import type { CachedRecord, ScanOptions } from './types.js';

/**
 * Durable, not yet acknowledged records kept in memory with their
 * plaintext, so that the shipper's scan of what was just committed needs
 * neither a RocksDB iterator nor a decryption. It "covers" seqs from
 * `#from` up: every durable, unacknowledged record with such a seq is in
 * the map. A scan whose whole range is covered is answered from memory;
 * any other goes to the database as before. Bounded by bytes: the oldest
 * entries are dropped first and coverage moves past them. Anything the
 * cache cannot account for exactly (a failed write, a repair, a reopen)
 * clears it; coverage restarts at the next commit. @internal
 */
export class RecentRecords {
  readonly #map = new Map<bigint, CachedRecord>();
  /** Plaintext of appended records not yet durable. */
  readonly #plain = new Map<bigint, Uint8Array>();
  readonly #maxBytes: number;
  #from: bigint | undefined;
  #bytes = 0;
  /**
   * The map's seqs in ascending order from #head on, while #ordered: commits
   * add seqs above every held one, so scans and edges binary-search here
   * instead of walking the whole map (20,000 unacknowledged records made
   * each shipper scan a 20,000-step walk). Seqs removed from the map stay
   * until they reach the head or the array is compacted. Anything out of
   * order clears #ordered and scans walk the map, as before, until the map
   * is empty again.
   */
  #seqs: bigint[] = [];
  #head = 0;
  #ordered = true;

  constructor(maxBytes = 32 << 20) {
    this.#maxBytes = maxBytes;
  }

  appended(seq: bigint, payload: Uint8Array): void {
    this.#plain.set(seq, payload);
  }

  /** Records dropped before they were written. */
  dropped(seqs: readonly bigint[]): void {
    for (const s of seqs) this.#plain.delete(s);
  }

  /**
   * A group commit landed: `batch` written, `kept` of them stored (the rest
   * evicted at once), `evicted` older seqs deleted; `lastSeqBefore` is the
   * highest seq durable before this commit.
   */
  committed(batch: readonly { seq: bigint; key: Buffer; value: Buffer; timeMs: number }[], kept: readonly { seq: bigint }[], evicted: readonly bigint[], lastSeqBefore: bigint): void {
    if (this.#from === undefined) this.#from = lastSeqBefore + 1n;
    const keep = kept.length === batch.length ? undefined : new Set(kept.map((k) => k.seq));
    for (const p of batch) {
      const payload = this.#plain.get(p.seq);
      this.#plain.delete(p.seq);
      if (keep && !keep.has(p.seq)) continue;
      if (payload === undefined) {
        // not appended through us (cannot happen today): stop claiming coverage below it
        if (p.seq >= this.#from) this.#from = p.seq + 1n;
        continue;
      }
      const bytes = p.key.length + p.value.length;
      if (this.#map.has(p.seq)) this.#ordered = false;
      else if (this.#ordered) {
        if (this.#head < this.#seqs.length && this.#seqs[this.#seqs.length - 1] >= p.seq) this.#ordered = false;
        else this.#seqs.push(p.seq);
      }
      this.#map.set(p.seq, { seq: p.seq, timeMs: p.timeMs, payload, bytes });
      this.#bytes += bytes;
    }
    this.removed(evicted);
    for (const [seq, r] of this.#map) {
      if (this.#bytes <= this.#maxBytes) break;
      this.#map.delete(seq);
      this.#bytes -= r.bytes;
      if (seq >= this.#from) this.#from = seq + 1n;
    }
    this.#tidy();
  }

  /** Records deleted from the database (acknowledged, evicted, expired, corrupt). */
  removed(seqs: Iterable<bigint>): void {
    for (const s of seqs) {
      const r = this.#map.get(s);
      if (r === undefined) continue;
      this.#map.delete(s);
      this.#bytes -= r.bytes;
    }
    this.#tidy();
  }

  /** Forget everything: the database is the only truth until the next commit. */
  invalidate(): void {
    this.#map.clear();
    this.#plain.clear();
    this.#bytes = 0;
    this.#from = undefined;
    this.#tidy();
  }

  /** Moves #head past removed seqs; compacts the array when removed seqs are most of it; an empty map starts in order again. */
  #tidy(): void {
    if (this.#map.size === 0) {
      this.#seqs = [];
      this.#head = 0;
      this.#ordered = true;
      return;
    }
    if (!this.#ordered) return;
    const seqs = this.#seqs;
    while (this.#head < seqs.length && !this.#map.has(seqs[this.#head])) this.#head++;
    const span = seqs.length - this.#head;
    if (this.#head > 1024 && this.#head > span) {
      this.#seqs = seqs.slice(this.#head);
      this.#head = 0;
    }
    if (span > 2 * this.#map.size + 1024) {
      this.#seqs = this.#seqs.slice(this.#head).filter((q) => this.#map.has(q));
      this.#head = 0;
    }
  }

  /** The first index at or after #head whose seq is >= `seq` (the array's length when none is). */
  #indexOf(seq: bigint): number {
    let lo = this.#head;
    let hi = this.#seqs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#seqs[mid] < seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The scan's answer when its whole range is covered; undefined to read the database. */
  scan(opts: ScanOptions, lowSeq: bigint): CachedRecord[] | undefined {
    if (this.#from === undefined) return undefined;
    let lo = opts.afterSeq !== undefined ? opts.afterSeq + 1n : 1n;
    if (lo < lowSeq) lo = lowSeq;
    if (lo < this.#from) return undefined;
    const hi = opts.beforeSeq;
    const out: CachedRecord[] = [];
    if (this.#ordered) {
      if (opts.limit <= 0) return out;
      if (opts.order === 'newest_first') {
        for (let i = (hi === undefined ? this.#seqs.length : this.#indexOf(hi)) - 1; i >= this.#head && this.#seqs[i] >= lo; i--) {
          const r = this.#map.get(this.#seqs[i]);
          if (r !== undefined && out.push(r) >= opts.limit) break;
        }
      } else {
        for (let i = this.#indexOf(lo); i < this.#seqs.length && (hi === undefined || this.#seqs[i] < hi); i++) {
          const r = this.#map.get(this.#seqs[i]);
          if (r !== undefined && out.push(r) >= opts.limit) break;
        }
      }
      return out;
    }
    let sorted = true;
    for (const r of this.#map.values()) {
      if (r.seq < lo || (hi !== undefined && r.seq >= hi)) continue;
      if (out.length > 0 && out[out.length - 1].seq > r.seq) sorted = false;
      out.push(r);
    }
    if (!sorted) out.sort((a, b) => (a.seq < b.seq ? -1 : 1));
    if (opts.order === 'newest_first') out.reverse();
    if (out.length > opts.limit) out.length = opts.limit;
    return out;
  }

  /** Victims for an acknowledgement when every seq is known present (no database read); undefined otherwise. */
  victims(seqs: readonly bigint[]): Victim[] | undefined {
    const uniq = [...new Set(seqs)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const out: Victim[] = [];
    for (const s of uniq) {
      const r = this.#map.get(s);
      if (r === undefined) return undefined;
      out.push({ seq: s, key: recordKey(s), bytes: r.bytes, timeMs: undefined });
    }
    return out;
  }

  /**
   * The oldest or newest record present, when memory holds every present
   * record (coverage reaches down to `lowSeq`): `{ edge }`, edge undefined
   * for none. Undefined when only the database knows.
   */
  edge(lowSeq: bigint, newest: boolean): { edge: { seq: bigint; timeMs: number } | undefined } | undefined {
    if (this.#from === undefined || this.#from > lowSeq) return undefined;
    if (this.#ordered) {
      // #tidy keeps #head on a held seq; from the top, skip seqs already removed
      let i = newest ? this.#seqs.length - 1 : this.#head;
      if (newest) while (i >= this.#head && !this.#map.has(this.#seqs[i])) i--;
      const r = i >= this.#head && i < this.#seqs.length ? this.#map.get(this.#seqs[i]) : undefined;
      return { edge: r && { seq: r.seq, timeMs: r.timeMs } };
    }
    if (this.#map.size > 4096) return undefined;
    let best: CachedRecord | undefined;
    for (const r of this.#map.values()) if (best === undefined || (newest ? r.seq > best.seq : r.seq < best.seq)) best = r;
    return { edge: best && { seq: best.seq, timeMs: best.timeMs } };
  }

  get size(): number {
    return this.#map.size;
  }
}
