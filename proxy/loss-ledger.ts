/**
 * The ranges named by loss events this collector made and may not have
 * delivered yet. A loss event sits in the cache like any other event, so a
 * cache that keeps overflowing can evict the loss event itself; the range
 * it named would then be a gap nothing explains. When a new loss takes the
 * seq of an earlier loss event, the new loss event names that event's
 * range too (from the lower start), so every evicted range stays named by
 * a loss event that survives.
 */
export class LossLedger {
  readonly #named = new Map<bigint, { from: bigint; to: bigint }>();
  readonly #max: number;

  constructor(max = 10_000) {
    this.#max = max;
  }

  /** The start of a new loss of [from, to]: lowered to cover the ranges of the loss events it swallowed. */
  widen(from: bigint, to: bigint): bigint {
    let start = from;
    for (const [seq, r] of this.#named) {
      if (seq < from || seq > to) continue;
      if (r.from < start) start = r.from;
      this.#named.delete(seq);
    }
    return start;
  }

  /** The loss event at `seq` named [from, to]. */
  made(seq: bigint, from: bigint, to: bigint): void {
    this.#named.set(seq, { from, to });
    if (this.#named.size > this.#max) this.#named.delete(this.#named.keys().next().value as bigint);
  }
}
