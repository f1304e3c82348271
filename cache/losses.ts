import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/log.js';
import type { CollectorMetrics } from '../lib/metrics.js';
import { runsOf } from './record.js';

export type LossReason = 'size' | 'age' | 'corrupt';
export interface Loss {
  fromSeq: bigint;
  toSeq: bigint;
  count: number;
  reason: LossReason;
}

/** `seqs` (ascending) gone for `reason`, as one loss per run of consecutive numbers. */
export function lossesOf(reason: LossReason, seqs: readonly bigint[]): Loss[] {
  return runsOf(seqs).map((r) => ({ ...r, reason }));
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

/**
 * Every loss (max_size, max_age, corrupt) goes to the metrics, the log and
 * the caller's onLoss. Losses are persisted in the meta record with the
 * removal that caused them and stay there until delivered (the batch after
 * delivery drops them), so a crash in between delivers them again at the
 * next open: no loss goes unreported. @internal
 */
export class LossReporter {
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #metrics: CollectorMetrics | undefined;
  readonly #onLoss: ((loss: Loss) => void) | undefined;
  /** The setting that bounds the size, named in the drop log (max_size, or memory_max_size with the cache in memory). */
  readonly #sizeSetting: string;
  readonly #incidents = new Map<LossReason, Incident>();
  readonly #delivered = new WeakSet<Loss>();
  /** Losses held back while the cache opens (the caller cannot take them yet). */
  #held: Loss[] | undefined = [];

  constructor(opts: { clock: Clock; logger: Logger; metrics?: CollectorMetrics; onLoss?: (loss: Loss) => void; sizeSetting?: string }) {
    this.#sizeSetting = opts.sizeSetting ?? 'max_size';
    this.#clock = opts.clock;
    this.#log = opts.logger;
    this.#metrics = opts.metrics;
    this.#onLoss = opts.onLoss;
  }

  /** Counts, logs and delivers `losses`; call once the removal (and the losses in the meta record) is durable. */
  report(losses: readonly Loss[]): void {
    for (const reason of ['size', 'age', 'corrupt'] as const) {
      const mine = losses.filter((l) => l.reason === reason);
      if (mine.length === 0) continue;
      const count = mine.reduce((n, l) => n + l.count, 0);
      if (reason === 'corrupt') this.#metrics?.cacheCorrupt.inc(count);
      else this.#metrics?.cacheDropped.inc({ reason }, count);
      this.#incident(reason, count, mine[0].fromSeq, mine.reduce((m, l) => (l.toSeq > m ? l.toSeq : m), mine[0].toSeq));
    }
    for (const l of losses) this.#tell(l);
  }

  /** Losses persisted but not delivered before the last stop: delivered again, not counted again. */
  redeliver(losses: readonly Loss[]): void {
    if (losses.length === 0) return;
    this.#log.warn({ count: losses.length }, 'cache delivering losses recorded before a stop but never reported');
    for (const l of losses) this.#tell(l);
  }

  /** Those of `losses` not yet handed to onLoss: they stay in the meta record. */
  undelivered(losses: readonly Loss[]): Loss[] {
    return losses.filter((l) => !this.#delivered.has(l));
  }

  /** Delivers the losses held back since construction, then delivers as they come. */
  release(): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    for (const l of held) this.#tell(l);
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

  #incident(reason: LossReason, count: number, first: bigint, last: bigint): void {
    const now = this.#clock.now();
    const inc = this.#incidents.get(reason);
    if (!inc) {
      this.#incidents.set(reason, { startMs: now, lastDropMs: now, lastLogMs: now, count, fromSeq: first, toSeq: last });
      this.#log[reason === 'corrupt' ? 'error' : 'warn'](
        { reason, count, fromSeq: String(first), toSeq: String(last) },
        reason === 'corrupt' ? 'cache records corrupt or undecryptable: skipped and removed' : `cache dropping oldest events (${reason === 'size' ? this.#sizeSetting : 'max_age'})`,
      );
      return;
    }
    inc.count += count;
    inc.lastDropMs = now;
    if (first < inc.fromSeq) inc.fromSeq = first;
    if (last > inc.toSeq) inc.toSeq = last;
    if (now - inc.lastLogMs >= SUMMARY_EVERY_MS) {
      inc.lastLogMs = now;
      this.#log.warn({ reason, count: inc.count, fromSeq: String(inc.fromSeq), toSeq: String(inc.toSeq), sinceMs: inc.startMs }, 'cache drop incident continues');
    }
  }

  #tell(loss: Loss): void {
    if (this.#held) {
      this.#held.push(loss);
      return;
    }
    this.#delivered.add(loss);
    try {
      this.#onLoss?.(loss);
    } catch (err) {
      this.#log.error({ err }, 'cache onLoss callback threw');
    }
  }
}
