import { POSTGRES, POSTGRES_BACKSLASH, SqlLexer, StatementSpan, nextStatement } from '../../lib/sql-lexer.js';
import { Backlog, type TrackerOptions } from '../protocol.js';
import { WireReader } from '../wire/reader.js';
import { clientOp } from './client-ops.js';
import { Backend, ErrorFields, Frontend, TARGET_STATEMENT, parseCommandTag, parseErrorFields, type CommandTag } from './messages.js';
import { BoundedMap, Op, Portal, PortalRun, RingQueue, StatementText, UNKNOWN_STATEMENT, type PendingOp } from './pending.js';
import { Unfinished, type StatementRecorder } from './statements.js';

/** A Query string that mentions a password; its error is masked as the pipeline masks the error of a statement that carried one. */
const CARRIES_PASSWORD = /password|identified/i;
const MASKED_ERROR = '<masked: error of a statement that carried a password>';

export interface FlowLimits {
  pendingOps: number;
  pendingBytes: number;
  /** Backlog marks: above a high mark the connection stops reading from the client, at or below both low marks it reads again. */
  pendingOpsHigh: number;
  pendingOpsLow: number;
  pendingBytesHigh: number;
  pendingBytesLow: number;
  statements: number;
  statementBytes: number;
  portals: number;
  portalBytes: number;
}

/**
 * Statement bookkeeping after login: client operations are queued in the
 * order sent and the server's responses, which come in the same order,
 * complete them. State changes (prepared statements, portals) are applied
 * when the server confirms them, so a failed Parse or Bind leaves no trace.
 *
 * Events: one per statement of a simple Query that the server completed or
 * failed (statements after an error did not run: none); one per portal run
 * in the extended protocol (Executes that hit their row limit and got
 * PortalSuspended are summed into the run, emitted when it completes, fails,
 * or its portal is closed); one for a failed Parse or Bind (the statement
 * was attempted); none for operations the server discarded after an error
 * until Sync; none for an empty query.
 */
export class StatementFlow {
  readonly #opts: TrackerOptions;
  readonly #rec: StatementRecorder;
  readonly #fail: (reason: string, detail: string) => void;
  readonly #r = new WireReader();
  #lex = new SqlLexer(POSTGRES);
  readonly #span = new StatementSpan();
  readonly #queue: RingQueue<PendingOp>;
  readonly #statements: BoundedMap<StatementText>;
  readonly #portals: BoundedMap<Portal>;
  readonly #limits: FlowLimits;
  readonly #maxPendingBytes: number;
  #pendingBytes: number;
  /** Operations (and their bytes) queued after the last Sync, Flush, Query or FunctionCall: their answers may wait in the server's buffer for one. */
  #unflushedOps: number;
  #unflushedBytes: number;
  /** The server waits for the client's COPY data. */
  #copyIn: boolean;
  /** The client sends COPY data (the server said so, no CopyDone/CopyFail yet): the server ignores its Syncs. */
  #clientCopy: boolean;
  #peakOps: number;
  /** After an extended-protocol error with no Sync queued yet: the server drops everything until the client's Sync. */
  #discarding: boolean;
  /** Last ReadyForQuery status ('I', 'T', 'E'). */
  txn: string;

  constructor(opts: TrackerOptions, rec: StatementRecorder, limits: FlowLimits, fail: (reason: string, detail: string) => void) {
    this.#opts = opts;
    this.#rec = rec;
    this.#fail = fail;
    this.#queue = new RingQueue<PendingOp>(limits.pendingOps);
    this.#statements = new BoundedMap<StatementText>(limits.statements, limits.statementBytes);
    this.#portals = new BoundedMap<Portal>(limits.portals, limits.portalBytes, (p) => this.#flushRun(p, Unfinished.PortalClosed));
    this.#limits = limits;
    this.#maxPendingBytes = limits.pendingBytes;
    this.#pendingBytes = 0;
    this.#unflushedOps = 0;
    this.#unflushedBytes = 0;
    this.#copyIn = false;
    this.#clientCopy = false;
    this.#peakOps = 0;
    this.#discarding = false;
    this.txn = '';
  }

  get pendingOps(): number {
    return this.#queue.size;
  }
  /** The most operations that waited at once in this session. */
  get peakPendingOps(): number {
    return this.#peakOps;
  }

  /**
   * See `SessionTracker.backlog`. Operations count whole: PostgreSQL sends
   * its buffered output once 8 KiB of it piles up, so at most about 1,600
   * answers (5 bytes each at least) can wait for the client's next Sync or
   * Flush, well under the low mark. SQL bytes count only up to the last
   * Sync, Flush, Query or FunctionCall: the answers after it can all wait
   * in that buffer, and pausing for their bytes could wait forever (those
   * stay under the hard bound alone).
   */
  backlog(): Backlog {
    if (this.#copyIn) return Backlog.Under;
    const l = this.#limits;
    const ops = this.#queue.size;
    const bytes = this.#pendingBytes - this.#unflushedBytes;
    if (ops > l.pendingOpsHigh || bytes > l.pendingBytesHigh) return Backlog.Over;
    return ops <= l.pendingOpsLow && bytes <= l.pendingBytesLow ? Backlog.Under : Backlog.Between;
  }

  /** Follows the server's standard_conforming_strings for splitting and redaction. */
  set standardStrings(on: boolean) {
    this.#rec.standardStrings = on;
    this.#lex = new SqlLexer(on ? POSTGRES : POSTGRES_BACKSLASH);
  }

  // ---- client → server ----

  /** A client message; `declared` >= 0: only its head is here, the whole body is that long. */
  client(type: number, buf: Buffer, start: number, end: number, declared = -1): boolean {
    const o = this.#opts;
    const op = clientOp(type, this.#r.reset(buf, start, end), o.clock, o.logParameters, o.maxStatementBytes, declared);
    if (op === undefined) {
      if (type === Frontend.Flush) this.#flushed();
      else if (type === Frontend.CopyDone || type === Frontend.CopyFail) this.#copyEnded();
      return true;
    }
    if (typeof op === 'string') return this.#bad(op);
    if (op.kind === Op.Sync) {
      if (this.#clientCopy) return true; // read as part of the COPY and ignored: no ReadyForQuery
      this.#discarding = false;
    }
    return this.#enqueue(op);
  }

  /** CopyData in either direction, counted on the operation being answered. */
  copyData(bytes: number): void {
    const head = this.#queue.peek();
    if (head === undefined) return;
    head.copyBytes += bytes;
    head.copyMessages++;
  }

  // ---- server → client ----

  server(type: number, buf: Buffer, start: number, end: number): boolean {
    const head = this.#queue.peek();
    this.#copyIn = false; // any server message but the two below ends a COPY FROM STDIN
    switch (type) {
      case Backend.CommandComplete: {
        const r = this.#r.reset(buf, start, end);
        const tag = r.cstring();
        if (!r.atEnd) return this.#bad('CommandComplete');
        const ct = parseCommandTag(tag);
        if (head?.kind === Op.Query) {
          if (!head.done) this.#queryStatement(head, ct.command, ct.hasRows ? ct.rows : head.rows, null, '');
          return true;
        }
        if (head?.kind === Op.Execute) {
          this.#shift();
          this.#finishExecute(head, ct, null);
          return true;
        }
        return this.#outOfSync('CommandComplete', head);
      }
      case Backend.ErrorResponse: {
        const f = parseErrorFields(this.#r.reset(buf, start, end));
        if (f === null) return this.#bad('ErrorResponse');
        return this.#error(f, head);
      }
      case Backend.ReadyForQuery: {
        const s = buf[start];
        if (s !== 0x49 && s !== 0x54 && s !== 0x45) return this.#bad('ReadyForQuery');
        if (head === undefined || (head.kind !== Op.Query && head.kind !== Op.Sync && head.kind !== Op.FunctionCall)) {
          return this.#outOfSync('ReadyForQuery', head);
        }
        this.#shift();
        this.txn = String.fromCharCode(s);
        if (s === 0x49 /* I */) this.#closePortals();
        return true;
      }
      case Backend.ParseComplete:
        if (head?.kind !== Op.Parse) return this.#outOfSync('ParseComplete', head);
        this.#shift();
        this.#statements.set(head.name, this.#rec.text(head.sql, head.sqlBytes, head.sqlCut));
        return true;
      case Backend.BindComplete: {
        if (head?.kind !== Op.Bind) return this.#outOfSync('BindComplete', head);
        this.#shift();
        const st = this.#statements.get(head.ref) ?? UNKNOWN_STATEMENT;
        this.#portals.set(head.name, new Portal(st, head.ref, head.params));
        return true;
      }
      case Backend.CloseComplete:
        if (head?.kind !== Op.Close) return this.#outOfSync('CloseComplete', head);
        this.#shift();
        if (head.target === TARGET_STATEMENT) this.#statements.delete(head.name);
        else {
          const p = this.#portals.delete(head.name);
          if (p !== undefined) this.#flushRun(p, Unfinished.PortalClosed);
        }
        return true;
      case Backend.NoData:
        if (head?.kind !== Op.Describe) return this.#outOfSync('NoData', head);
        this.#shift();
        return true;
      case Backend.PortalSuspended:
        if (head?.kind !== Op.Execute) return this.#outOfSync('PortalSuspended', head);
        this.#shift();
        this.#suspend(head);
        return true;
      case Backend.EmptyQueryResponse:
        if (head?.kind === Op.Query) head.done = true;
        else if (head?.kind === Op.Execute) this.#shift();
        else return this.#outOfSync('EmptyQueryResponse', head);
        return true;
      case Backend.CopyInResponse:
      case Backend.CopyOutResponse:
      case Backend.CopyBothResponse:
        if (head?.kind !== Op.Query && head?.kind !== Op.Execute) return this.#outOfSync('CopyResponse', head);
        this.#copyIn = type !== Backend.CopyOutResponse;
        if (type === Backend.CopyInResponse) this.#copyInStarted(head);
        return true;
      case Backend.CopyDone:
        return true;
      default:
        return this.#outOfSync(`message 0x${type.toString(16)}`, head);
    }
  }

  /** Server messages skipped by length: rows and COPY data are counted, RowDescription answers a Describe. */
  serverSkipped(type: number, bytes: number): boolean {
    const head = this.#queue.peek();
    switch (type) {
      case Backend.DataRow:
        if (head !== undefined) head.rows++;
        return true;
      case Backend.CopyData:
        this.copyData(bytes);
        return true;
      case Backend.RowDescription:
        if (head?.kind === Op.Describe) this.#shift();
        return true;
      case Backend.FunctionCallResponse:
        if (head?.kind !== Op.FunctionCall) return this.#outOfSync('FunctionCallResponse', head);
        if (!head.done) this.#functionCall(head, null, '');
        return true;
      default:
        return true;
    }
  }

  /** Emits what is still pending as unfinished (connection closed, decoding stopped) and forgets everything. */
  abandon(reason: string): void {
    const q = this.#queue;
    for (let i = 0; i < q.size; i++) {
      const op = q.at(i)!;
      if (op.kind === Op.Query && !op.done) {
        this.#queryStatement(op, '', op.rows, null, reason);
        const rest = nextStatement(this.#lex, op.sql, op.cursor, this.#span);
        if (rest.start < rest.end) {
          this.#rec.emit(this.#opts.meta, this.#rec.text(op.sql.slice(rest.start), -1, op.sqlCut), '', null, op.timeMs, op.mono, '', 0, null, reason, null);
        }
      } else if (op.kind === Op.Execute) {
        const p = this.#portals.get(op.name) ?? this.#pendingPortal(i, op.name);
        const run = p.run;
        p.run = null; // a suspended run continued by this Execute is one statement
        this.#rec.emit(this.#opts.meta, p.statement, p.statementName, p.params, run?.timeMs ?? op.timeMs, run?.mono ?? op.mono, '', op.rows + (run?.rows ?? 0), null, reason, op);
      } else if (op.kind === Op.FunctionCall && !op.done) {
        this.#functionCall(op, null, reason);
      }
    }
    while (q.size > 0) this.#shift();
    this.#copyIn = false;
    this.#clientCopy = false;
    this.#closePortals();
    this.#statements.clear();
  }

  // ---- internals ----

  #enqueue(op: PendingOp): boolean {
    if (this.#discarding) return true; // the server drops it: no response will come
    if (this.#pendingBytes + op.sqlBytes > this.#maxPendingBytes || !this.#queue.push(op)) {
      this.#fail('pending_overflow', `${this.#queue.size} operations, ${this.#pendingBytes} bytes waiting for the server`);
      return false;
    }
    this.#pendingBytes += op.sqlBytes;
    if (this.#queue.size > this.#peakOps) this.#peakOps = this.#queue.size;
    if (op.kind === Op.Sync || op.kind === Op.Query || op.kind === Op.FunctionCall) this.#flushed();
    else {
      this.#unflushedOps++;
      this.#unflushedBytes += op.sqlBytes;
    }
    return true;
  }

  /**
   * The server reads COPY data from here until the client's CopyDone or
   * CopyFail: Syncs the client sent after the command and before that are
   * read as part of the COPY and ignored (libpq sends one with the command
   * and another after CopyDone), so they get no ReadyForQuery.
   */
  #copyInStarted(head: PendingOp): void {
    const q = this.#queue;
    let ended = head.copyEnd;
    for (let i = 1; i < q.size && !ended; i++) {
      const op = q.at(i)!;
      if (op.kind === Op.Sync) op.kind = Op.IgnoredSync;
      ended = op.copyEnd;
    }
    this.#clientCopy = !ended;
  }

  #copyEnded(): void {
    this.#clientCopy = false;
    const last = this.#queue.at(this.#queue.size - 1);
    if (last !== undefined) last.copyEnd = true;
  }

  /** The server sends everything it answered so far once it reaches the last message queued. */
  #flushed(): void {
    this.#unflushedOps = 0;
    this.#unflushedBytes = 0;
  }

  #shift(): void {
    this.#drop();
    while (this.#queue.peek()?.kind === Op.IgnoredSync) this.#drop(); // no answer comes for these
  }

  #drop(): void {
    const op = this.#queue.shift();
    if (op === undefined) return;
    this.#pendingBytes -= op.sqlBytes;
    if (this.#queue.size < this.#unflushedOps) {
      // the answer to an operation after the last flush point came (the server's buffer filled)
      this.#unflushedOps--;
      this.#unflushedBytes -= op.sqlBytes;
    }
  }

  #error(f: ErrorFields, head: PendingOp | undefined): boolean {
    if (head === undefined) return true;
    switch (head.kind) {
      case Op.Query:
        // PostgreSQL parses the whole string first: a syntax error in a later statement comes back on the first,
        // quoting the text near it, so a password anywhere in the string masks the error.
        if (!head.done) this.#queryStatement(head, '', head.rows, CARRIES_PASSWORD.test(head.sql) ? new ErrorFields(f.severity, f.code, MASKED_ERROR) : f, '');
        head.done = true; // the rest of the string does not run
        return true;
      case Op.FunctionCall:
        if (!head.done) this.#functionCall(head, f, '');
        return true;
      case Op.Sync:
        return true; // e.g. the implicit COMMIT at Sync failed; ReadyForQuery follows
      case Op.Parse:
        this.#shift();
        this.#rec.emit(this.#opts.meta, this.#rec.text(head.sql, head.sqlBytes, head.sqlCut), head.name, null, head.timeMs, head.mono, '', 0, f, '', null);
        break;
      case Op.Bind: {
        this.#shift();
        const st = this.#statements.get(head.ref) ?? UNKNOWN_STATEMENT;
        this.#rec.emit(this.#opts.meta, st, head.ref, head.params, head.timeMs, head.mono, '', 0, f, '', null);
        break;
      }
      case Op.Execute:
        this.#shift();
        this.#finishExecute(head, null, f);
        break;
      default:
        this.#shift();
    }
    // Extended protocol: the server skips everything up to the next Sync.
    for (let next = this.#queue.peek(); next !== undefined && next.kind !== Op.Sync; next = this.#queue.peek()) this.#shift();
    if (this.#queue.size === 0) this.#discarding = true;
    return true;
  }

  /** The next statement of a simple Query completed (or failed, or will never complete). */
  #queryStatement(op: PendingOp, tag: string, rows: number, err: ErrorFields | null, unfinished: string): void {
    const span = nextStatement(this.#lex, op.sql, op.cursor, this.#span);
    // The last statement of a head runs on past it.
    const st = span.start < span.end ? this.#rec.text(op.sql.slice(span.start, span.end), -1, span.end >= op.sql.length ? op.sqlCut : 0) : UNKNOWN_STATEMENT;
    op.cursor = span.next;
    this.#rec.emit(this.#opts.meta, st, '', null, op.timeMs, op.mono, tag, rows, err, unfinished, op);
    op.rows = 0;
    op.copyBytes = 0;
    op.copyMessages = 0;
  }

  #functionCall(op: PendingOp, err: ErrorFields | null, unfinished: string): void {
    op.done = true;
    const text = `fastpath function call (oid ${op.oid})`;
    const st = new StatementText(text, text.length, false, 'FUNCTION');
    this.#rec.emit(this.#opts.meta, st, '', op.params, op.timeMs, op.mono, err === null && unfinished === '' ? 'FUNCTION CALL' : '', 0, err, unfinished, null);
  }

  #finishExecute(op: PendingOp, ct: CommandTag | null, err: ErrorFields | null): void {
    const p = this.#portals.get(op.name);
    const run = p?.run ?? null;
    const rows = (run !== null ? run.rows : 0) + (ct !== null && ct.hasRows ? ct.rows : op.rows);
    if (p !== undefined) p.run = null;
    const st = p?.statement ?? UNKNOWN_STATEMENT;
    this.#rec.emit(this.#opts.meta, st, p?.statementName ?? '', p?.params ?? null, run?.timeMs ?? op.timeMs, run?.mono ?? op.mono, ct?.command ?? '', rows, err, '', op);
  }

  #suspend(op: PendingOp): void {
    let p = this.#portals.get(op.name);
    if (p === undefined) {
      // A portal we never saw bound (e.g. a SQL-level cursor): keep its run anyway.
      p = new Portal(UNKNOWN_STATEMENT, '', null);
      this.#portals.set(op.name, p);
    }
    if (p.run === null) p.run = new PortalRun(op.timeMs, op.mono, op.rows);
    else p.run.rows += op.rows;
  }

  #flushRun(p: Portal, reason: string): void {
    const run = p.run;
    if (run === null) return;
    p.run = null;
    this.#rec.emit(this.#opts.meta, p.statement, p.statementName, p.params, run.timeMs, run.mono, '', run.rows, null, reason, null);
  }

  #closePortals(): void {
    for (const p of this.#portals.values()) this.#flushRun(p, Unfinished.PortalClosed);
    this.#portals.clear();
  }

  /** What an Execute still in the queue would have run, from the Bind and Parse queued before it. */
  #pendingPortal(index: number, portal: string): Portal {
    const q = this.#queue;
    for (let i = index - 1; i >= 0; i--) {
      const b = q.at(i)!;
      if (b.kind !== Op.Bind || b.name !== portal) continue;
      for (let j = i - 1; j >= 0; j--) {
        const p = q.at(j)!;
        if (p.kind === Op.Parse && p.name === b.ref) return new Portal(this.#rec.text(p.sql, p.sqlBytes, p.sqlCut), b.ref, b.params);
      }
      return new Portal(this.#statements.get(b.ref) ?? UNKNOWN_STATEMENT, b.ref, b.params);
    }
    return new Portal(UNKNOWN_STATEMENT, '', null);
  }

  #bad(what: string): false {
    this.#fail('bad_message', `malformed ${what}`);
    return false;
  }

  #outOfSync(what: string, head: PendingOp | undefined): false {
    this.#fail('out_of_sync', `${what} while waiting for ${head === undefined ? 'nothing' : opName(head.kind)}`);
    return false;
  }
}

function opName(kind: Op): string {
  return ['', 'Query', 'Parse', 'Bind', 'Describe', 'Close', 'Execute', 'Sync', 'FunctionCall', 'Sync'][kind];
}
