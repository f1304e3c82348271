import { ManualClock } from '../../lib/clock.js';
import { newSessionMeta, type AuditEvent } from '../events.js';
import type { TrackerOptions } from '../protocol.js';
import { DEFAULT_MYSQL_LIMITS, MysqlTracker, type MysqlLimits } from './tracker.js';

/** One step of a scripted session: bytes from the client (`c`) or the server (`s`), or a clock advance in ms (`t`). */
export type Step = readonly ['c' | 's', Buffer] | readonly ['t', number];

/** A MySQL tracker wired to an in-memory event list and a manual clock, for tests. */
export class TestSession {
  readonly events: AuditEvent[] = [];
  readonly anomalies: string[] = [];
  readonly clock = new ManualClock();
  readonly tracker: MysqlTracker;
  maxBuffered = 0;

  constructor(opts: Partial<Omit<TrackerOptions, 'emit' | 'clock' | 'meta'>> = {}, limits: MysqlLimits = DEFAULT_MYSQL_LIMITS) {
    const meta = newSessionMeta('mysql', '127.0.0.1:50000', '127.0.0.1:3306', this.clock.now());
    this.tracker = new MysqlTracker(
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

  /** Events as compact records for exact assertions. */
  get brief(): Record<string, unknown>[] {
    return this.events.map(summarize);
  }
}

export function summarize(ev: AuditEvent): Record<string, unknown> {
  const out: Record<string, unknown> = { kind: ev.kind };
  if (ev.user) out.user = ev.user;
  if (ev.database) out.database = ev.database;
  if (ev.statement) out.statement = ev.statement;
  if (ev.statementClass && ev.kind === 'statement') out.cls = ev.statementClass;
  if (ev.commandTag) out.tag = ev.commandTag;
  if (ev.kind === 'statement') out.rows = Number(ev.rows);
  if (ev.errorCode) out.error = ev.errorCode;
  if (ev.sqlstate) out.sqlstate = ev.sqlstate;
  if (ev.parameters.length > 0) out.params = [...ev.parameters];
  if (ev.reason) out.reason = ev.reason;
  if (ev.detail) out.detail = ev.detail;
  return out;
}
