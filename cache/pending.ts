/** A sealed record waiting for its group commit. @internal */
export interface Pending {
  seq: bigint;
  key: Buffer;
  value: Buffer;
  timeMs: number;
  ticket: number;
  /** The record's chain hash, kept in the meta record when it is the newest. */
  chain?: Buffer;
}

const size = (p: Pending): number => p.key.length + p.value.length;

/**
 * Records appended and not yet durable: the queue for the next batch, the
 * batch in flight, and (after a failed write) the batch put back in front
 * to be retried. Memory is bounded by dropping the oldest queued records.
 * @internal
 */
export class PendingQueue {
  #items: Pending[] = [];
  #bytes = 0;
  #inflight = 0;

  get length(): number {
    return this.#items.length;
  }

  /** Queued plus in flight: records appended that are not durable yet. */
  get unsynced(): number {
    return this.#items.length + this.#inflight;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get first(): Pending | undefined {
    return this.#items[0];
  }

  push(p: Pending): void {
    this.#items.push(p);
    this.#bytes += size(p);
  }

  /** Takes everything queued as the batch now in flight. */
  take(): Pending[] {
    const batch = this.#items;
    this.#items = [];
    this.#bytes = 0;
    this.#inflight = batch.length;
    return batch;
  }

  /** The batch in flight is done: durable (`failed` false) or put back in front (`failed` true). */
  settle(batch: Pending[], failed: boolean): void {
    this.#inflight = 0;
    if (failed) {
      this.#items = batch.concat(this.#items);
      for (const p of batch) this.#bytes += size(p);
    }
  }

  /** Removes the first `n` records (a failed batch that turned out to have landed). */
  shift(n: number): Pending[] {
    const out = this.#items.splice(0, n);
    for (const p of out) this.#bytes -= size(p);
    return out;
  }

  /** Drops the oldest records after the first `keep` until at most `maxBytes` remain (one record always stays). */
  bound(maxBytes: number, keep: number): Pending[] {
    let i = keep;
    const gone: Pending[] = [];
    while (this.#bytes > maxBytes && i < this.#items.length - 1) {
      const p = this.#items[i++];
      this.#bytes -= size(p);
      gone.push(p);
    }
    if (gone.length) this.#items.splice(keep, gone.length);
    return gone;
  }
}
