import * as grpc from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import type { TrailChunk, TrailRequest } from '../proto/gen/audit/v1/query_pb.js';
import { TrailChunkSchema } from '../proto/gen/audit/v1/query_pb.js';
import type { Clock } from '../lib/clock.js';
import { isAuditError, ErrorCode } from '../lib/errors.js';
import { httpStatusOf } from '../lib/grpc.js';
import { logIncident, type Logger } from '../lib/log.js';
import type { GatewayMetrics } from '../lib/metrics.js';
import {
  EpochVerifier, attestDrop, checkChainHash, checkHead, formatRange, makeSeal, rowDigest, splitChainHash, type Attested, type EpochReport, type Seal, type TrailKey,
  type TrailKeys, type TrailRow,
} from '../lib/trail.js';
import { uuidv7 } from '../lib/uuid.js';
import type { CallGuard } from './auth.js';
import { arrivedByReplication } from './replicate.js';
import { idBytes } from './store-keys.js';
import type { Sealer, Store, StoredEvent, TrailEpoch, TrailHead } from './store.js';

/**
 * The gateway's side of tamper evidence: seals for what it stores, the
 * chain check of each event on ingest, a background walk of the stored
 * trail that verifies links and finds gaps as out-of-order deliveries fill
 * them in, and the Trail API `dbaudit verify` reads.
 */

/** Rows read per page of one epoch's trail. */
const PAGE_ROWS = 2_000;
/** Break keys remembered per epoch so a full re-walk does not count them again. */
const COUNTED_MAX = 10_000;
/** Rows one audit pass walks per epoch at most (the rest in the next pass). */
const PASS_ROWS = 200_000;

/** A Sealer for a store: one seal per stored group and an attestation per retention drop, under the gateway's seal key. */
export function makeSealer(key: TrailKey | undefined, gatewayId: string, clock: Clock): Sealer {
  return {
    seal(events: readonly StoredEvent[]): Seal {
      const entries = Buffer.allocUnsafe(events.length * 48);
      events.forEach((ev, i) => {
        idBytes(ev.eventId).copy(entries, i * 48);
        rowDigest(ev.raw, ev.deliveredBy, ev.receivedAtMs).copy(entries, i * 48 + 16);
      });
      return makeSeal(key, { sealId: uuidv7(clock.now()), gatewayId, sealedAtMs: clock.now(), entries });
    },
    drop: (collectorId, epoch, r) => attestDrop(key, collectorId, epoch, r),
  };
}

/** One page of an epoch's stored trail, with the seals its rows name. */
export interface TrailPage {
  rows: TrailRow[];
  seals: Seal[];
}

/** Pages of an epoch's stored events after `afterSeq`, in seq order; seals each page names that were not in an earlier page. */
export async function* readTrail(store: Store, ep: TrailEpoch, afterSeq: bigint, opts: { sinceMicros?: number; maxRows?: number; seen?: Set<string> } = {}): AsyncGenerator<TrailPage> {
  const seen = opts.seen ?? new Set<string>();
  let after = afterSeq;
  let read = 0;
  const max = opts.maxRows ?? Number.MAX_SAFE_INTEGER;
  // A seq held twice is returned together: the page boundary never splits one seq.
  for (;;) {
    const want = Math.min(PAGE_ROWS, max - read);
    if (want <= 0) return;
    const rows = await store.trailRows(ep.collectorId, ep.epoch, after, want, opts.sinceMicros);
    if (rows.length === 0) return;
    const last = rows[rows.length - 1].seq;
    if (rows.length === want) {
      const more = await store.trailRows(ep.collectorId, ep.epoch, last - 1n, PAGE_ROWS, opts.sinceMicros);
      for (const r of more) if (r.seq === last && !rows.some((x) => x.seq === last && x.raw.length === r.raw.length && Buffer.compare(x.raw, r.raw) === 0)) rows.push(r);
    }
    const ids = [...new Set(rows.map((r) => r.sealId).filter((id) => id !== '' && !seen.has(id)))];
    const seals = ids.length > 0 ? await store.seals(ids) : [];
    for (const id of ids) seen.add(id);
    yield { rows, seals };
    read += rows.length;
    if (rows.length < want) return;
    after = last;
  }
}

interface Checkpoint {
  after?: { seq: bigint; hash: Uint8Array };
  /** Breaks already counted ("seq problem"), so a re-walk counts only new ones; the newest COUNTED_MAX are kept. */
  counted: Set<string>;
  missing: number;
  /** Rows up to the checkpoint that a collector delivered itself (not DR replication). */
  direct?: number;
}

/** A row a collector delivered itself: its batch carried an attested head. */
export const deliveredDirectly = (deliveredBy: string): boolean => !arrivedByReplication(deliveredBy);

export interface AuditorOptions {
  store: Store;
  metrics: GatewayMetrics;
  logger: Logger;
  /** Collectors' trail keys and this gateway's seal key. */
  keys: TrailKeys;
  /** Unkeyed events and seals are breaks (gateway.trail.keys_dir is set). */
  requireKeyed: boolean;
  /** gateway.trail.check_interval in ms (0: no background walk). */
  intervalMs: number;
  /** gateway.trail.full_check_interval in ms: a pass this long after the last full one walks every epoch from seq 1 again (0: only after a restart). */
  fullIntervalMs?: number;
}

/**
 * Checks events on ingest and walks the stored trail in the background.
 * Per collector epoch it keeps a checkpoint: everything up to it is held
 * or explained and linked, so each pass walks only what came after (and
 * re-walks from the first unexplained gap, which a late delivery may fill).
 * Heads reported in batches are kept in memory and written once a second.
 */
export class TrailAuditor {
  readonly #o: AuditorOptions;
  readonly #checkpoints = new Map<string, Checkpoint>();
  readonly #heads = new Map<string, TrailHead>();
  #timer: NodeJS.Timeout | undefined;
  #headTimer: NodeJS.Timeout | undefined;
  #running: Promise<unknown> = Promise.resolve();
  #stopped = false;
  #lastFull = Date.now();
  /** The reports of the last pass, by collector epoch. */
  readonly last = new Map<string, EpochReport>();

  constructor(opts: AuditorOptions) {
    this.#o = opts;
  }

  start(): void {
    if (this.#o.intervalMs > 0) {
      // A walk that fails must be seen: otherwise dbaudit_trail_gaps and the break counter go stale and report a clean trail.
      this.#timer = setInterval(() => void this.pass().catch((err: unknown) => this.#o.logger.error({ err: err instanceof Error ? err.message : String(err) }, 'audit trail walk failed; dbaudit_trail_* metrics are stale')), this.#o.intervalMs);
      this.#timer.unref();
    }
    this.#headTimer = setInterval(() => void this.flushHeads().catch(() => undefined), 1_000);
    this.#headTimer.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    clearInterval(this.#headTimer);
    await this.#running.catch(() => undefined);
    await this.flushHeads().catch(() => undefined);
  }

  /**
   * A collector's batch reported the highest seq of its epoch. A head whose
   * attestation does not check with a known key is not kept (anyone with a
   * gateway token could otherwise fake gaps): counted and logged instead.
   */
  noteHead(collectorId: string, epoch: string, highestSeq: bigint, attested: Attested): void {
    if (highestSeq <= 0n || collectorId === '' || epoch === '') return;
    const k = `${collectorId}\u0000${epoch}`;
    const h = this.#heads.get(k);
    if (h && h.highestSeq >= highestSeq) return;
    const check = checkHead(attested, collectorId, epoch, highestSeq, this.#o.keys, this.#o.requireKeyed);
    if (check.problem) {
      this.#o.metrics.trailChainBreaks.inc({ check: 'ingest' });
      logIncident(this.#o.logger, 'error', `trail-head-${collectorId}-${epoch}`, { collectorId, epoch, highestSeq: String(highestSeq), problem: check.problem }, 'reported head fails its attestation (not kept)');
      return;
    }
    this.#heads.set(k, { collectorId, epoch, highestSeq, attested });
  }

  async flushHeads(): Promise<void> {
    if (this.#heads.size === 0) return;
    const heads = [...this.#heads.values()];
    this.#heads.clear();
    try {
      await this.#o.store.noteHeads(heads);
    } catch (err) {
      for (const h of heads) this.noteHead(h.collectorId, h.epoch, h.highestSeq, h.attested); // again next time
      if (!isAuditError(err, ErrorCode.Closed)) this.#o.logger.warn({ err: (err as Error).message }, 'cannot record reported sequence heads; retried');
    }
  }

  /** The chain check on ingest: each event's own hash. Returns the events that fail it. */
  checkIngested(events: readonly StoredEvent[]): number {
    let bad = 0;
    for (const ev of events) {
      const r = checkChainHash(ev.raw, ev.event.chainKeyId, ev.event.collectorId, this.#o.keys, this.#o.requireKeyed);
      if (!r.problem) continue;
      bad++;
      this.#o.metrics.trailChainBreaks.inc({ check: 'ingest' });
      logIncident(this.#o.logger, 'error', `trail-ingest-${ev.event.collectorId}-${ev.event.epoch}`, {
        collectorId: ev.event.collectorId, epoch: ev.event.epoch, seq: String(ev.event.seq), eventId: ev.eventId, deliveredBy: ev.deliveredBy, problem: r.problem,
      }, 'event fails its chain check (stored, flagged)');
    }
    return bad;
  }

  /**
   * One walk over every epoch; resolves with the reports (also kept in
   * `last`). A full pass (`full`, or one due by fullIntervalMs) forgets the
   * checkpoints and walks each epoch from the start, so a row edited behind
   * a checkpoint is found by the gateway too, not only by `dbaudit verify`.
   */
  pass(opts: { full?: boolean } = {}): Promise<EpochReport[]> {
    const run = this.#running.then(() => this.#pass(opts.full === true));
    this.#running = run.catch(() => undefined);
    return run;
  }

  async #pass(forceFull: boolean): Promise<EpochReport[]> {
    await this.flushHeads();
    const every = this.#o.fullIntervalMs ?? 0;
    if (forceFull || (every > 0 && Date.now() - this.#lastFull >= every)) {
      this.#lastFull = Date.now();
      for (const cp of this.#checkpoints.values()) {
        cp.after = undefined;
        cp.direct = undefined;
      }
    }
    const { store, metrics, logger } = this.#o;
    const out: EpochReport[] = [];
    let gaps = 0;
    for (const ep of await store.trailEpochs()) {
      if (this.#stopped) break;
      const name = `${ep.collectorId}\u0000${ep.epoch}`;
      const cp = this.#checkpoints.get(name) ?? { counted: new Set<string>(), missing: 0 };
      const report = await this.#walk(ep, cp);
      this.#checkpoints.set(name, cp);
      this.last.set(name, report);
      out.push(report);
      gaps += report.missing.length;
      for (const b of report.breaks) {
        const k = `${b.seq} ${b.problem}`;
        if (cp.counted.has(k)) continue;
        cp.counted.add(k);
        if (cp.counted.size > COUNTED_MAX) cp.counted.delete(cp.counted.values().next().value as string);
        metrics.trailChainBreaks.inc({ check: 'store' });
        logIncident(logger, 'error', `trail-break-${name}`, { collectorId: ep.collectorId, epoch: ep.epoch, seq: String(b.seq), eventId: b.eventId, problem: b.problem }, 'audit trail chain break');
      }
      if (report.missing.length > 0 && report.missing.length !== cp.missing) {
        logIncident(logger, 'warn', `trail-gap-${name}`, { collectorId: ep.collectorId, epoch: ep.epoch, missing: report.missing.map(formatRange).slice(0, 20) }, 'audit trail has gaps no loss event explains');
      }
      cp.missing = report.missing.length;
    }
    metrics.trailGaps.set(gaps);
    return out;
  }

  async #walk(ep: TrailEpoch, cp: Checkpoint): Promise<EpochReport> {
    const seals = new Map<string, Seal>();
    const verifier = new EpochVerifier(ep.collectorId, ep.epoch, {
      keys: this.#o.keys, requireKeyed: this.#o.requireKeyed, after: cp.after, seal: (id) => seals.get(id), deliveredDirectly, directBefore: cp.direct,
    });
    const hashes: { seq: bigint; hash: Uint8Array }[] = [];
    let read = 0;
    for await (const page of readTrail(this.#o.store, ep, cp.after?.seq ?? 0n, { maxRows: PASS_ROWS })) {
      for (const s of page.seals) seals.set(s.sealId, s);
      for (const row of page.rows) {
        verifier.add(row);
        const split = splitChainHash(row.raw);
        if (split) hashes.push({ seq: row.seq, hash: split.hash });
      }
      read += page.rows.length;
    }
    // Past the rows read, the tail is unknown until the next pass: do not call it missing yet.
    const report = read >= PASS_ROWS ? verifier.finish(0n, ep.dropped, undefined, true) : verifier.finish(ep.highestReported, ep.dropped, ep.head);
    // The new checkpoint: the last row before the first unexplained gap (or the last row).
    const stop = report.missing.length > 0 ? report.missing[0].from : undefined;
    let next: { seq: bigint; hash: Uint8Array } | undefined;
    for (const h of hashes) {
      if (stop !== undefined && h.seq >= stop) break;
      next = h;
    }
    if (next) {
      cp.after = next;
      cp.direct = verifier.direct;
    }
    return report;
  }
}

/** QueryService.Trail: the stored trail, epoch by epoch, for `dbaudit verify`. */
export function trailHandler(opts: { store: Store; metrics: GatewayMetrics; logger: Logger; guard: CallGuard; flushHeads?: () => Promise<void> }) {
  return (call: grpc.ServerWritableStream<TrailRequest, TrailChunk>): void => {
    const started = process.hrtime.bigint();
    const { metrics, logger, store } = opts;
    const done = (code: grpc.status, details = ''): void => {
      metrics.apiRequests.inc({ endpoint: 'trail', status: httpStatusOf(code) });
      metrics.apiLatency.observe({ endpoint: 'trail' }, Number(process.hrtime.bigint() - started) / 1e9);
      if (code === grpc.status.OK) call.end();
      else call.emit('error', { code, details, metadata: new grpc.Metadata() });
    };
    const auth = opts.guard(call);
    if (!auth.ok) return done(auth.status.code, auth.status.details);
    const req = call.request;
    let since: number | undefined;
    if (req.since) {
      since = Number(req.since.seconds) * 1_000_000 + Math.floor(req.since.nanos / 1000);
      if (!Number.isSafeInteger(since) || since < 0 || req.since.nanos < 0 || req.since.nanos > 999_999_999) return done(grpc.status.INVALID_ARGUMENT, 'since is not a valid time after 1970-01-01');
    }
    const write = (chunk: TrailChunk): Promise<void> =>
      new Promise((resolve) => {
        if (call.write(chunk)) resolve();
        else call.once('drain', resolve);
      });
    (async () => {
      const seen = new Set<string>();
      // Heads this gateway received and holds in memory (written once a second) are in the store before it is read.
      await opts.flushHeads?.();
      for (const ep of await store.trailEpochs(req.collectorId || undefined)) {
        if (call.cancelled) return;
        await write(create(TrailChunkSchema, {
          epoch: {
            collectorId: ep.collectorId,
            epoch: ep.epoch,
            highestReported: ep.highestReported,
            headMac: ep.head?.mac,
            headKeyId: ep.head?.keyId,
            dropped: ep.dropped.map((r) => ({ fromSeq: r.from, toSeq: r.to, mac: r.mac, keyId: r.keyId })),
          },
        }));
        for await (const page of readTrail(store, ep, 0n, { sinceMicros: since, seen })) {
          if (call.cancelled) return;
          await write(create(TrailChunkSchema, {
            events: page.rows.map((r) => ({ seq: r.seq, raw: r.raw, deliveredBy: r.deliveredBy, receivedAtMs: BigInt(r.receivedAtMs), sealId: r.sealId })),
            seals: page.seals.map((s) => ({ sealId: s.sealId, gatewayId: s.gatewayId, keyId: s.keyId, sealedAtMs: BigInt(s.sealedAtMs), entries: s.entries, mac: s.mac })),
          }));
        }
      }
    })().then(
      () => done(grpc.status.OK),
      (err: unknown) => {
        const closed = isAuditError(err, ErrorCode.Closed);
        if (!closed) logger.error({ err }, 'trail read failed');
        done(grpc.status.UNAVAILABLE, closed ? 'the gateway is shutting down' : 'reading the trail failed in the gateway store');
      },
    );
  };
}
