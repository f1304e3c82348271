import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/log.js';
import type { CollectorMetrics } from '../lib/metrics.js';
import { RECORDS_END, recordKey, runsOf, seqOfKey } from './record.js';
import type { Rocks } from './rocks.js';
import { readHeader } from './seal.js';

/**
 * Eviction support: walking the oldest records, and reporting every drop
 * (max_size, max_age, corrupt) to metrics, the log and the caller.
 * @internal
 */

export type LossReason = 'size' | 'age' | 'corrupt';
export interface Loss {
  fromSeq: bigint;
  toSeq: bigint;
  count: number;
  reason: LossReason;
}

export interface Victim {
  seq: bigint;
  key: Buffer;
  /** Key + value bytes, as counted in the meta record. */
  bytes: number;
  /** Undefined when the header does not parse (a corrupt record). */
  timeMs: number | undefined;
}

/**
 * Records from `fromSeq` upward, oldest first, until `stop` says so or
 * `limit` are collected. Only headers are read, no key is needed.
 */
export async function oldestRecords(db: Rocks, fromSeq: bigint, limit: number, stop: (v: Victim) => boolean): Promise<Victim[]> {
  const out: Victim[] = [];
  await db.forEach({ gte: recordKey(fromSeq), lt: RECORDS_END }, (key, value) => {
    const seq = seqOfKey(key);
    if (seq === undefined) return true;
    const v: Victim = { seq, key, bytes: key.length + value.length, timeMs: readHeader(value)?.timeMs };
    if (stop(v)) return false;
    out.push(v);
    return out.length < limit;
  });
  return out;
}

/** Logs a drop incident once when it starts, at most once a minute while it lasts, and once when it ends. */
const SUMMARY_EVERY_MS = 60_000;
const QUIET_AFTER_MS = 1_000;

interface Incident {
  startMs: number;
  lastDropMs: number;
  lastLogMs: number;
  count: number;
  fromSeq: bigint;
  toSeq: bigint;
}

export class LossReporter {
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #metrics: CollectorMetrics | undefined;
  readonly #onLoss: ((loss: Loss) => void) | undefined;
  readonly #incidents = new Map<LossReason, Incident>();

  constructor(opts: { clock: Clock; logger: Logger; metrics?: CollectorMetrics; onLoss?: (loss: Loss) => void }) {
    this.#clock = opts.clock;
    this.#log = opts.logger;
    this.#metrics = opts.metrics;
    this.#onLoss = opts.onLoss;
  }

  /** Records that `seqs` (ascending) are gone for `reason`; call only once the removal is durable. */
  report(reason: LossReason, seqs: readonly bigint[]): void {
    if (seqs.length === 0) return;
    if (reason === 'corrupt') this.#metrics?.cacheCorrupt.inc(seqs.length);
    else this.#metrics?.cacheDropped.inc({ reason }, seqs.length);
    const now = this.#clock.now();
    const first = seqs[0];
    const last = seqs[seqs.length - 1];
    let inc = this.#incidents.get(reason);
    if (!inc) {
      inc = { startMs: now, lastDropMs: now, lastLogMs: now, count: seqs.length, fromSeq: first, toSeq: last };
      this.#incidents.set(reason, inc);
      this.#log[reason === 'corrupt' ? 'error' : 'warn'](
        { reason, count: seqs.length, fromSeq: String(first), toSeq: String(last) },
        reason === 'corrupt' ? 'cache records corrupt or undecryptable: skipped and deleted' : `cache dropping oldest events (${reason === 'size' ? 'max_size' : 'max_age'})`,
      );
    } else {
      inc.count += seqs.length;
      inc.lastDropMs = now;
      if (first < inc.fromSeq) inc.fromSeq = first;
      if (last > inc.toSeq) inc.toSeq = last;
      if (now - inc.lastLogMs >= SUMMARY_EVERY_MS) {
        inc.lastLogMs = now;
        this.#log.warn({ reason, count: inc.count, fromSeq: String(inc.fromSeq), toSeq: String(inc.toSeq), sinceMs: inc.startMs }, 'cache drop incident continues');
      }
    }
    if (this.#onLoss) {
      for (const r of runsOf(seqs)) {
        try {
          this.#onLoss({ ...r, reason });
        } catch (err) {
          this.#log.error({ err }, 'cache onLoss callback threw');
        }
      }
    }
  }

  /** A pass that dropped nothing for `reason`: ends an incident that has been quiet long enough. */
  quiet(reason: LossReason): void {
    const inc = this.#incidents.get(reason);
    if (!inc) return;
    const now = this.#clock.now();
    if (now - inc.lastDropMs < QUIET_AFTER_MS) return;
    this.#incidents.delete(reason);
    this.#log.info({ reason, count: inc.count, fromSeq: String(inc.fromSeq), toSeq: String(inc.toSeq), durationMs: inc.lastDropMs - inc.startMs }, 'cache drop incident ended');
  }
}
