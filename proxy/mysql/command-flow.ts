import { RingQueue } from '../postgres/pending.js';
import { Backlog, type TrackerOptions } from '../protocol.js';
import { WireReader } from '../wire/reader.js';
import { changeUserCommand, simpleCommand } from './client-commands.js';
import { Want, type SeqCounter } from './decoder.js';
import { Cap, Com, MAX_PACKET_PAYLOAD, MariaCap, Resp as R, Status, lenenc, u16, u32 } from './packets.js';
import { Resp, type Command } from './pending.js';
import { PreparedStatements } from './prepared.js';
import { Outcomes, copyErr, okDetail } from './outcomes.js';
import { ErrPacket, OkPacket, PROGRESS_CODE, parseEofStatus, parseErr, parseOk } from './responses.js';
import type { MysqlStatementRecorder } from './statements.js';

export interface FlowLimits {
  /** Client commands carrying SQL or values (COM_QUERY, PREPARE, EXECUTE, SEND_LONG_DATA). */
  statement: number;
  /** Other client packets (control commands, auth data). */
  control: number;
  /** Server packets that are parsed (OK, ERR, EOF, column counts, auth). */
  server: number;
  pendingOps: number;
  pendingBytes: number;
  /** Backlog marks (`SessionTracker.backlog`): the client is paused above a high mark, read again at or below both low ones. */
  pendingOpsHigh: number;
  pendingOpsLow: number;
  pendingBytesHigh: number;
  pendingBytesLow: number;
  statements: number;
  statementBytes: number;
}

/** Anomaly reasons raised by the flow. */
export const FlowAnomaly = {
  OutOfSync: 'out_of_sync',
  BadMessage: 'bad_message',
  UnknownCommand: 'unknown_command',
  PendingOverflow: 'pending_overflow',
} as const;

/** Commands the flow knows; anything else is an anomaly (bytes still forwarded). */
const KNOWN = new Set<number>(Object.values(Com));
const BIG = new Set<number>([Com.Query, Com.StmtPrepare, Com.StmtExecute, Com.StmtSendLongData, Com.StmtBulkExecute]);

/**
 * The command phase: each client command is queued with the response it
 * expects, and the server's packets, which answer in order, complete it.
 *
 * Events: one statement per statement of a COM_QUERY that ran (several
 * with CLIENT_MULTI_STATEMENTS: the results follow SERVER_MORE_RESULTS_EXISTS;
 * after an ERR the rest did not run and is not recorded; the result sets
 * of one CALL belong to it), one per COM_STMT_EXECUTE (the prepared text,
 * parameters when configured), one per failed COM_STMT_PREPARE, one per
 * COM_INIT_DB / CREATE_DB / DROP_DB / PROCESS_KILL / SHUTDOWN (text made up
 * as `USE \`db\`` …); login_success / login_failure for COM_CHANGE_USER.
 */
export class CommandFlow {
  readonly #opts: TrackerOptions;
  readonly #rec: MysqlStatementRecorder;
  readonly #limits: FlowLimits;
  readonly #fail: (reason: string, detail: string) => void;
  readonly #r = new WireReader();
  readonly #out: Outcomes;
  readonly #ok = new OkPacket();
  readonly #err = new ErrPacket();
  readonly #queue: RingQueue<Command>;
  readonly #prepared: PreparedStatements;
  #pendingBytes = 0;
  #peakOps = 0;
  /** Counts the continuation packets of the head just delivered (a command too long to hold); null otherwise. */
  #unread: ((bytes: number) => void) | null = null;
  /** The command whose packets arrive now, and the sequence id its answer will start with. */
  #last: Command | null = null;
  #respSeq = 1;
  /** Negotiated capabilities (client ∩ server) and MariaDB's extended ones. */
  caps = 0;
  mariaCaps = 0;
  multiStatements = false;
  /** Next expected sequence id (shared with the decoders). */
  readonly seq: SeqCounter;
  /** Last server status flags seen. */
  #status = 0;
  /** An ERR that answered nothing (server closing the session). */
  fatal: ErrPacket | null = null;
  terminated = false;

  constructor(opts: TrackerOptions, rec: MysqlStatementRecorder, limits: FlowLimits, seq: SeqCounter, fail: (reason: string, detail: string) => void) {
    this.seq = seq;
    this.#opts = opts;
    this.#rec = rec;
    this.#out = new Outcomes(opts, rec);
    this.#limits = limits;
    this.#fail = fail;
    this.#queue = new RingQueue<Command>(limits.pendingOps);
    this.#prepared = new PreparedStatements(limits.statements, limits.statementBytes);
  }

  get status(): number {
    return this.#status;
  }
  /** Server status flags (greeting, OK, EOF): the transaction state and sql_mode's NO_BACKSLASH_ESCAPES. */
  set status(s: number) {
    this.#status = s;
    this.#rec.noBackslashEscapes = (s & Status.NoBackslashEscapes) !== 0;
  }

  get pendingOps(): number {
    return this.#queue.size;
  }
  /** The most commands that waited at once in this session. */
  get peakPendingOps(): number {
    return this.#peakOps;
  }

  /**
   * See `SessionTracker.backlog`. The server answers each command as soon as
   * it has run it, so every waiting command and its bytes count; while the
   * server waits for the client (a LOAD DATA LOCAL file, COM_CHANGE_USER auth
   * data) the client must be read.
   */
  backlog(): Backlog {
    if (!this.clientPeek) return Backlog.Under;
    const l = this.#limits;
    const ops = this.#queue.size;
    if (ops > l.pendingOpsHigh || this.#pendingBytes > l.pendingBytesHigh) return Backlog.Over;
    return ops <= l.pendingOpsLow && this.#pendingBytes <= l.pendingBytesLow ? Backlog.Under : Backlog.Between;
  }
  get preparedCount(): number {
    return this.#prepared.size;
  }

  /** Client packets are peeked (never empty) unless file content or auth data is expected. */
  get clientPeek(): boolean {
    const h = this.#queue.peek();
    return h === undefined || (h.state !== Resp.Infile && h.state !== Resp.Auth);
  }

  // ---- client → server ----

  clientWants(first: number, length: number, seq: number): number {
    this.#unread = null;
    this.#last = null;
    const h = this.#queue.peek();
    // A command sent while another is being answered (pipelining) must not move the answer's sequence.
    this.seq.hold = h !== undefined && h.state !== Resp.Infile && h.state !== Resp.Auth;
    this.#respSeq = (seq + 1) & 0xff;
    if (h !== undefined && h.state === Resp.Infile) {
      if (seq !== this.seq.next) return this.#stop(FlowAnomaly.OutOfSync, `LOAD DATA packet with sequence ${seq}, expected ${this.seq.next}`);
      return length === 0 ? 0 : Want.Skip;
    }
    if (h !== undefined && h.state === Resp.Auth) return this.#limits.control;
    if (seq !== 0) return this.#stop(FlowAnomaly.OutOfSync, `command packet with sequence ${seq}`);
    if (!KNOWN.has(first)) return this.#stop(FlowAnomaly.UnknownCommand, `command 0x${first.toString(16)}`);
    return BIG.has(first) ? this.#limits.statement : this.#limits.control;
  }

  /** May this command be delivered as its head when it is too long to hold (`PacketSink.canHead`)? */
  canHead(first: number): boolean {
    return this.clientPeek && BIG.has(first);
  }

  clientSkipped(bytes: number, more: boolean): void {
    const last = this.#last;
    if (more && last !== null) {
      // a continuation packet: the answer starts one later
      last.respSeq = (last.respSeq + 1) & 0xff;
      if (this.#queue.peek() === last) this.seq.next = last.respSeq;
    }
    if (more && this.#unread !== null) {
      this.#unread(bytes);
      return;
    }
    const h = this.#queue.peek();
    if (h === undefined || h.state !== Resp.Infile) return;
    h.infileBytes += bytes;
    if (!more) h.infilePackets++;
  }

  /** A client packet; `declared` >= 0: only the head of a longer command (its first packet's payload is that long). */
  clientPacket(buf: Buffer, start: number, end: number, declared = -1): boolean {
    if (declared >= 0) return this.#clientHead(buf, start, end, declared - (end - start));
    const h = this.#queue.peek();
    if (h !== undefined && h.state === Resp.Infile) {
      h.state = Resp.First; // the empty packet: the server answers OK or ERR
      return true;
    }
    if (h !== undefined && h.state === Resp.Auth) return true; // auth data: passed through, never read
    const com = buf[start];
    const r = this.#r.reset(buf, start + 1, end);
    switch (com) {
      case Com.Quit:
        this.terminated = true;
        return true;
      case Com.StmtClose:
        this.#prepared.close(r);
        return true;
      case Com.StmtSendLongData:
        return this.#prepared.longData(r) || this.#bad('COM_STMT_SEND_LONG_DATA');
      case Com.StmtExecute:
      case Com.StmtBulkExecute: {
        const c = this.#prepared.execute(com, r, this.#opts);
        return c === null ? this.#bad('COM_STMT_EXECUTE') : this.#enqueue(c);
      }
      case Com.ChangeUser: {
        const c = changeUserCommand(buf, start, end, this.caps, this.#opts.clock);
        return c === null ? this.#bad('COM_CHANGE_USER') : this.#enqueue(c);
      }
      default: {
        const c = simpleCommand(com, r, this.#opts.clock);
        if (typeof c === 'string') return this.#bad(c);
        if (c === null) return this.#stop(FlowAnomaly.UnknownCommand, `command 0x${com.toString(16)}`) !== Want.Stop;
        return this.#enqueue(c);
      }
    }
  }

  /**
   * The head of a command too long to hold; `unread` bytes of its first
   * packet stream through, and any continuation packets after them
   * (`clientSkipped`): the statement keeps the head of its text and the
   * whole length, an execute its statement and the values the head holds,
   * long data its byte count.
   */
  #clientHead(buf: Buffer, start: number, end: number, unread: number): boolean {
    const com = buf[start];
    const r = this.#r.reset(buf, start + 1, end);
    switch (com) {
      case Com.Query:
      case Com.StmtPrepare: {
        const c = simpleCommand(com, r, this.#opts.clock);
        if (c === null || typeof c === 'string') return this.#bad(typeof c === 'string' ? c : 'COM_QUERY');
        c.sqlCut = unread;
        this.#unread = (n) => (c.sqlCut += n);
        return this.#enqueue(c);
      }
      case Com.StmtSendLongData: {
        const count = this.#prepared.longDataHead(r, unread);
        if (count === null) return this.#bad('COM_STMT_SEND_LONG_DATA');
        this.#unread = count;
        return true;
      }
      default: {
        const c = this.#prepared.execute(com, r, this.#opts, true);
        return c === null ? this.#bad('COM_STMT_EXECUTE') : this.#enqueue(c);
      }
    }
  }

  // ---- server → client ----

  serverWants(first: number, length: number, seq: number): number {
    const h = this.#queue.peek();
    if (h === undefined) {
      if (first === R.Err) return this.#limits.server; // not an answer: the server closing the session
      return this.#stop(FlowAnomaly.OutOfSync, `server packet 0x${first.toString(16)} with no command waiting`);
    }
    if (seq !== this.seq.next) return this.#stop(FlowAnomaly.OutOfSync, `server packet with sequence ${seq}, expected ${this.seq.next}`);
    switch (h.state) {
      case Resp.Columns:
      case Resp.PrepParams:
      case Resp.PrepCols:
        return first === R.Err ? this.#limits.server : Want.Skip;
      case Resp.Rows:
      case Resp.FieldList:
        // A row (or column definition) starting with 0xFE is at least 16 MiB long; shorter ones are the EOF/OK that ends them.
        return (first === R.Eof && length < MAX_PACKET_PAYLOAD) || first === R.Err ? this.#limits.server : Want.Skip;
      case Resp.Infile:
        return this.#stop(FlowAnomaly.OutOfSync, 'server packet during LOAD DATA content');
      default:
        return this.#limits.server;
    }
  }

  serverSkipped(more: boolean): void {
    const h = this.#queue.peek();
    if (h === undefined || more) return;
    switch (h.state) {
      case Resp.Rows:
      case Resp.FieldList:
        h.rows++;
        return;
      case Resp.Columns:
        if (--h.left <= 0) h.state = this.caps & Cap.DeprecateEof ? Resp.Rows : Resp.ColumnsEof;
        return;
      case Resp.PrepParams:
        if (--h.left <= 0) this.#afterPrepParams(h);
        return;
      case Resp.PrepCols:
        if (--h.left <= 0) {
          if (this.caps & Cap.DeprecateEof) this.#shift(h);
          else h.state = Resp.PrepColsEof;
        }
        return;
    }
  }

  serverPacket(buf: Buffer, start: number, end: number): boolean {
    const h = this.#queue.peek();
    const first = buf[start];
    const r = this.#r.reset(buf, start, end);
    if (h === undefined) {
      if (!parseErr(r, this.caps, this.#err)) return this.#bad('ERR');
      this.fatal = copyErr(this.#err);
      return true;
    }
    if (first === R.Err && h.state !== Resp.AnyOne) {
      if (!parseErr(r, this.caps, this.#err)) return this.#bad('ERR');
      if (this.#err.code === PROGRESS_CODE) return true; // MariaDB progress report: the real answer follows
      return this.#error(h, this.#err);
    }
    switch (h.state) {
      case Resp.First:
        return this.#first(h, first, r);
      case Resp.ColumnsEof: {
        const st = parseEofStatus(r, this.caps);
        if (first !== R.Eof || st < 0) return this.#bad('EOF');
        if (st & Status.CursorExists && h.cursorFlag) return this.#result(h, 0, st & ~Status.MoreResultsExist, true, '');
        h.state = Resp.Rows;
        return true;
      }
      case Resp.Rows:
      case Resp.FieldList: {
        let st: number;
        if (this.caps & Cap.DeprecateEof && h.state === Resp.Rows) st = parseOk(r, this.caps, this.#ok) ? this.#ok.status : -1;
        else st = parseEofStatus(r, this.caps);
        if (st < 0) return this.#bad('EOF');
        if (h.com === Com.StmtFetch || h.state === Resp.FieldList) {
          this.#shift(h);
          return true;
        }
        return this.#result(h, h.rows, st, true, '');
      }
      case Resp.PrepParamsEof:
      case Resp.PrepColsEof:
        if (first !== R.Eof) return this.#bad('EOF');
        if (h.state === Resp.PrepParamsEof && h.prepColumns > 0) {
          h.state = Resp.PrepCols;
          h.left = h.prepColumns;
        } else this.#shift(h);
        return true;
      case Resp.Auth:
        return this.#changeUserAnswer(h, first, buf, start, end);
      case Resp.AnyOne:
        this.#shift(h);
        return true;
      default:
        return this.#bad(`server packet 0x${first.toString(16)}`);
    }
  }

  /** The first packet of a response. */
  #first(h: Command, first: number, r: WireReader): boolean {
    if (first === R.Ok || (first === R.Eof && h.com !== Com.StmtPrepare)) {
      if (first === R.Ok && h.com === Com.StmtPrepare) return this.#prepareOk(h, r);
      let status: number;
      let detail = '';
      if (first === R.Ok || this.caps & Cap.DeprecateEof) {
        if (!parseOk(r, this.caps, this.#ok)) return this.#bad('OK');
        status = this.#ok.status;
        if (first === R.Ok) detail = okDetail(this.#ok);
      } else {
        status = parseEofStatus(r, this.caps);
        if (status < 0) return this.#bad('EOF');
      }
      return this.#result(h, first === R.Ok ? this.#ok.affectedRows : 0, status, false, detail);
    }
    if (first === R.LocalInfile && h.com === Com.Query) {
      h.state = Resp.Infile;
      return true;
    }
    if (h.com !== Com.Query && h.com !== Com.StmtExecute && h.com !== Com.StmtBulkExecute) return this.#bad(`response 0x${first.toString(16)} to command 0x${h.com.toString(16)}`);
    // A result set: column count, [metadata-follows flag], column definitions, [EOF], rows, EOF/OK.
    const n = lenenc(r);
    let follows = 1;
    if (this.caps & Cap.OptionalResultsetMetadata || this.mariaCaps & MariaCap.CacheMetadata) follows = r.uint8();
    if (!r.ok || n <= 0 || !r.atEnd) return this.#bad('column count');
    h.rows = 0;
    if (follows === 0) h.state = this.caps & Cap.DeprecateEof ? Resp.Rows : Resp.ColumnsEof; // definitions cached by the client; the EOF still comes
    else {
      h.state = Resp.Columns;
      h.left = n;
    }
    return true;
  }

  #prepareOk(h: Command, r: WireReader): boolean {
    r.uint8();
    const id = u32(r);
    const cols = u16(r);
    const params = u16(r);
    if (!r.ok) return this.#bad('COM_STMT_PREPARE OK');
    this.#prepared.add(id, this.#rec.text(h.sql, h.sqlBytes, h.sqlCut), params);
    h.prepColumns = cols;
    if (params > 0) {
      h.state = Resp.PrepParams;
      h.left = params;
    } else this.#afterPrepParams(h);
    return true;
  }

  #afterPrepParams(h: Command): void {
    const eof = (this.caps & Cap.DeprecateEof) === 0;
    if (h.state === Resp.PrepParams && eof) h.state = Resp.PrepParamsEof;
    else if (h.prepColumns > 0) {
      h.state = Resp.PrepCols;
      h.left = h.prepColumns;
    } else this.#shift(h);
  }

  /** A result (OK, or the end of a result set) for the head command. */
  #result(h: Command, rows: number, status: number, resultSet: boolean, detail: string): boolean {
    this.status = status;
    let continues = false;
    switch (h.com) {
      case Com.Query:
        continues = this.#out.queryResult(h, rows, (status & Status.MoreResultsExist) !== 0, resultSet, detail, this.multiStatements, this.#ok);
        break;
      case Com.StmtExecute:
      case Com.StmtBulkExecute:
        continues = this.#out.executeResult(h, rows, status, detail);
        break;
      case Com.InitDb:
      case Com.CreateDb:
      case Com.DropDb:
      case Com.ProcessKill:
      case Com.Shutdown:
        this.#out.commandDone(h, rows);
        break;
      case Com.SetOption:
        this.multiStatements = h.left === 0;
        break;
      case Com.ResetConnection:
        this.#prepared.clear();
        break;
      case Com.StmtReset:
        this.#prepared.reset(h.stmtId);
        break;
    }
    if (continues) h.state = Resp.First;
    else this.#shift(h);
    return true;
  }

  /** An ERR answering the head command. */
  #error(h: Command, e: ErrPacket): boolean {
    this.#out.error(h, e, this.multiStatements);
    this.#shift(h);
    return true;
  }

  #changeUserAnswer(h: Command, first: number, buf: Buffer, start: number, end: number): boolean {
    const a = this.#out.changeUserAnswer(h, first, buf, start, end);
    if (a === 'bad') return this.#bad(`change-user answer 0x${first.toString(16)}`);
    if (a === 'ok') {
      this.#prepared.clear(); // a new session state: prepared statements are gone
      this.#shift(h);
    }
    return true;
  }

  /** Emits what is still pending as unfinished (connection closed, decoding stopped) and forgets everything. */
  abandon(reason: string): void {
    for (let h = this.#queue.shift(); h !== undefined; h = this.#queue.shift()) this.#out.abandon(h, reason, this.multiStatements);
    this.#pendingBytes = 0;
  }

  #enqueue(c: Command): boolean {
    const bytes = c.sqlBytes > 0 ? c.sqlBytes : 0;
    if (this.#pendingBytes + bytes > this.#limits.pendingBytes || !this.#queue.push(c)) {
      this.#fail(FlowAnomaly.PendingOverflow, `more than ${this.#limits.pendingOps} commands or ${this.#limits.pendingBytes} bytes waiting`);
      return false;
    }
    this.#pendingBytes += bytes;
    if (this.#queue.size > this.#peakOps) this.#peakOps = this.#queue.size;
    c.respSeq = this.#respSeq;
    this.#last = c;
    // The answer before it may have ended while its packets came (their sequence was held): it is answered next.
    if (this.#queue.size === 1) this.seq.next = c.respSeq;
    return true;
  }

  #shift(h: Command): void {
    this.#queue.shift();
    if (h.sqlBytes > 0) this.#pendingBytes -= h.sqlBytes;
    const next = this.#queue.peek();
    if (next !== undefined) this.seq.next = next.respSeq; // a pipelined command: its answer comes next
  }

  #bad(what: string): false {
    this.#fail(FlowAnomaly.BadMessage, what);
    return false;
  }

  #stop(reason: string, detail: string): number {
    this.#fail(reason, detail);
    return Want.Stop;
  }
}
