import { ManualClock } from '../../lib/clock.js';
import { newSessionMeta, type AuditEvent } from '../events.js';
import type { TrackerOptions } from '../protocol.js';
import { DEFAULT_TRACKER_LIMITS, PostgresTracker, type TrackerLimits } from './tracker.js';

/** One step of a scripted session: bytes from the client (`c`) or the server (`s`), or a clock advance in ms (`t`). */
export type Step = readonly ['c' | 's', Buffer] | readonly ['t', number];

/** A tracker wired to an in-memory event list and a manual clock, for tests. */
export class TestSession {
  readonly events: AuditEvent[] = [];
  readonly anomalies: string[] = [];
  readonly clock = new ManualClock();
  readonly tracker: PostgresTracker;
  maxBuffered = 0;

  constructor(opts: Partial<Omit<TrackerOptions, 'emit' | 'clock' | 'meta'>> = {}, limits: TrackerLimits = DEFAULT_TRACKER_LIMITS) {
    const meta = newSessionMeta('postgres', '127.0.0.1:50000', '127.0.0.1:5432', this.clock.now());
    this.tracker = new PostgresTracker(
      {
        meta,
        emit: (ev) => this.events.push(ev),
        clock: this.clock,
        redact: opts.redact ?? 'none',
        logParameters: opts.logParameters ?? false,
        maxStatementBytes: opts.maxStatementBytes ?? 4096,
        onAnomaly: (r) => this.anomalies.push(r),
      },
      limits,
    );
  }

  /** Runs the steps, cutting every buffer into pieces of at most `chunk` bytes (0: whole), or at `splitAt` (two pieces). */
  run(steps: readonly Step[], chunk = 0, splitAt = -1): this {
    for (const st of steps) {
      if (st[0] === 't') {
        this.clock.advance(st[1]);
        continue;
      }
      const [side, buf] = st;
      const feed = (b: Buffer): void => {
        if (side === 'c') this.tracker.clientData(b);
        else this.tracker.serverData(b);
        if (this.tracker.bufferedBytes > this.maxBuffered) this.maxBuffered = this.tracker.bufferedBytes;
      };
      if (splitAt >= 0 && splitAt < buf.length) {
        feed(buf.subarray(0, splitAt));
        feed(buf.subarray(splitAt));
      } else if (chunk > 0) {
        for (let i = 0; i < buf.length; i += chunk) feed(buf.subarray(i, i + chunk));
      } else feed(buf);
    }
    return this;
  }

  end(reason = 'client_disconnect'): this {
    this.tracker.end(reason);
    return this;
  }

  /** The events reduced to the fields a test asserts. */
  summary(): Record<string, unknown>[] {
    return this.events.map(summarize);
  }
}

export function summarize(e: AuditEvent): Record<string, unknown> {
  const o: Record<string, unknown> = { kind: e.kind };
  if (e.statement) o.statement = e.statement;
  if (e.statementClass) o.class = e.statementClass;
  if (e.commandTag) o.tag = e.commandTag;
  if (e.rows) o.rows = Number(e.rows);
  if (e.errorCode) o.error = e.errorCode;
  if (e.parameters.length) o.params = e.parameters;
  if (e.preparedName) o.prepared = e.preparedName;
  if (e.reason) o.reason = e.reason;
  return o;
}

/**
 * Runs `steps` whole, one byte at a time, and split in two at every offset
 * of every step; returns the summaries of each run (they must all agree).
 */
export function runAllSplits(steps: readonly Step[], opts: Partial<Omit<TrackerOptions, 'emit' | 'clock' | 'meta'>> = {}, endReason = 'client_disconnect'): Record<string, unknown>[][] {
  const runs: Record<string, unknown>[][] = [];
  runs.push(new TestSession(opts).run(steps).end(endReason).summary());
  runs.push(new TestSession(opts).run(steps, 1).end(endReason).summary());
  let longest = 0;
  for (const st of steps) if (st[0] !== 't' && st[1].length > longest) longest = st[1].length;
  for (let k = 1; k < longest; k++) runs.push(new TestSession(opts).run(steps, 0, k).end(endReason).summary());
  return runs;
}
