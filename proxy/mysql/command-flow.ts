import { MYSQL, SqlLexer, StatementSpan, nextStatement } from '../../lib/sql-lexer.js';
import { EventKind, makeEvent } from '../events.js';
import { BoundedMap, RingQueue, UNKNOWN_STATEMENT } from '../postgres/pending.js';
import type { TrackerOptions } from '../protocol.js';
import { WireReader } from '../wire/reader.js';
import { commandOf } from './classify.js';
import { quoteIdent, simpleCommand, useTarget } from './client-commands.js';
import { Want, type SeqCounter } from './decoder.js';
import { authSwitchPlugin, parseChangeUser } from './handshake.js';
import { Cap, Com, MAX_PACKET_PAYLOAD, MariaCap, Resp as R, Sha2, Status, lenenc, u16, u32 } from './packets.js';
import { ExecuteHead, parseExecute } from './params.js';
import { Command, Prepared, Resp } from './pending.js';
import { ErrPacket, OkPacket, PROGRESS_CODE, cutMessage, parseEofStatus, parseErr, parseOk } from './responses.js';
import { Unfinished, type MysqlStatementRecorder, type StatementText } from './statements.js';

export interface FlowLimits {
  /** Client commands carrying SQL or values (COM_QUERY, PREPARE, EXECUTE, SEND_LONG_DATA). */
  statement: number;
  /** Other client packets (control commands, auth data). */
  control: number;
  /** Server packets that are parsed (OK, ERR, EOF, column counts, auth). */
  server: number;
  pendingOps: number;
  pendingBytes: number;
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
  readonly #lex = new SqlLexer(MYSQL);
  readonly #span = new StatementSpan();
  readonly #ok = new OkPacket();
  readonly #err = new ErrPacket();
  readonly #exec = new ExecuteHead();
  readonly #queue: RingQueue<Command>;
  readonly #prepared: BoundedMap<Prepared>;
  #pendingBytes = 0;
  /** Negotiated capabilities (client ∩ server) and MariaDB's extended ones. */
  caps = 0;
  mariaCaps = 0;
  multiStatements = false;
  /** Next expected sequence id (shared with the decoders). */
  readonly seq: SeqCounter;
  /** Last server status flags seen. */
  status = 0;
  /** An ERR that answered nothing (server closing the session). */
  fatal: ErrPacket | null = null;
  terminated = false;

  constructor(opts: TrackerOptions, rec: MysqlStatementRecorder, limits: FlowLimits, seq: SeqCounter, fail: (reason: string, detail: string) => void) {
    this.seq = seq;
    this.#opts = opts;
    this.#rec = rec;
    this.#limits = limits;
    this.#fail = fail;
    this.#queue = new RingQueue<Command>(limits.pendingOps);
    this.#prepared = new BoundedMap<Prepared>(limits.statements, limits.statementBytes);
  }

  get pendingOps(): number {
    return this.#queue.size;
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
    const h = this.#queue.peek();
    if (h !== undefined && h.state === Resp.Infile) {
      if (seq !== this.seq.next) return this.#stop(FlowAnomaly.OutOfSync, `LOAD DATA packet with sequence ${seq}, expected ${this.seq.next}`);
      return length === 0 ? 0 : Want.Skip;
    }
    if (h !== undefined && h.state === Resp.Auth) return this.#limits.control;
    if (seq !== 0) return this.#stop(FlowAnomaly.OutOfSync, `command packet with sequence ${seq}`);
    if (!KNOWN.has(first)) return this.#stop(FlowAnomaly.UnknownCommand, `command 0x${first.toString(16)}`);
    return BIG.has(first) ? this.#limits.statement : this.#limits.control;
  }

  clientSkipped(bytes: number, more: boolean): void {
    const h = this.#queue.peek();
    if (h === undefined || h.state !== Resp.Infile) return;
    h.infileBytes += bytes;
    if (!more) h.infilePackets++;
  }

  clientPacket(buf: Buffer, start: number, end: number): boolean {
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
        this.#prepared.delete(String(u32(r)));
        return true;
      case Com.StmtSendLongData: {
        const id = u32(r);
        const param = u16(r);
        if (!r.ok) return this.#bad('COM_STMT_SEND_LONG_DATA');
        const p = this.#prepared.get(String(id));
        if (p !== undefined) {
          p.longData ??= new Map();
          p.longData.set(param, (p.longData.get(param) ?? 0) + r.remaining);
        }
        return true;
      }
      case Com.StmtExecute:
      case Com.StmtBulkExecute:
        return this.#execute(com, r);
      case Com.ChangeUser: {
        const m = parseChangeUser(buf, start + 1, end, this.caps);
        if (m === null) return this.#bad('COM_CHANGE_USER');
        const c = new Command(com, this.#opts.clock.now(), this.#opts.clock.monoMicros());
        c.user = m.user;
        c.database = m.database;
        c.plugin = m.authPlugin;
        c.state = Resp.Auth;
        return this.#enqueue(c);
      }
      default: {
        const c = simpleCommand(com, r, this.#opts.clock);
        if (typeof c === 'string') return this.#bad(c);
        if (c === null) return this.#stop(FlowAnomaly.UnknownCommand, `command 0x${com.toString(16)}`) !== Want.Stop;
        return this.#enqueue(c);
      }
    }
  }

  #execute(com: number, r: WireReader): boolean {
    const o = this.#opts;
    const at = r.position;
    const end = at + r.remaining;
    const id = u32(r);
    if (!r.ok) return this.#bad('COM_STMT_EXECUTE');
    const p = this.#prepared.get(String(id));
    const c = new Command(com, o.clock.now(), o.clock.monoMicros());
    c.stmtId = id;
    c.st = p?.st ?? UNKNOWN_STATEMENT;
    if (com === Com.StmtExecute) {
      r.reset(r.buffer, at, end); // parseExecute reads the id again with the rest of the head
      const params = parseExecute(r, p?.nParams ?? 0, p?.types ?? null, p?.longData ?? null, o.logParameters && p !== undefined, o.maxStatementBytes, this.#exec);
      if (params === undefined) return this.#bad('COM_STMT_EXECUTE');
      c.params = params;
      c.cursorFlag = (this.#exec.flags & 0x07) !== 0;
      if (p !== undefined) {
        if (this.#exec.types !== null) p.types = this.#exec.types;
        p.longData = null; // long data is consumed by the execute
      }
    }
    return this.#enqueue(c);
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
        return (first === R.Eof && length < MAX_PACKET_PAYLOAD) || first === R.Err ? this.#limits.server : Want.Skip;
      case Resp.FieldList:
        return (first === R.Eof && length < 9) || first === R.Err ? this.#limits.server : Want.Skip;
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
    this.#prepared.set(String(id), new Prepared(this.#rec.text(h.sql, h.sqlBytes), params));
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

  /**
   * A result: OK, or the end of a result set. Emits the statement it
   * completes, or — with more results to come for the same statement (a
   * CALL's result sets) — adds it up.
   */
  #result(h: Command, rows: number, status: number, resultSet: boolean, detail: string): boolean {
    this.status = status;
    const more = (status & Status.MoreResultsExist) !== 0;
    switch (h.com) {
      case Com.Query: {
        this.#ensureSpan(h);
        const span = h.sql.slice(h.spanStart, h.spanEnd);
        if (more && (!h.spanHasNext || (resultSet && commandOf(span) === 'CALL'))) {
          h.acc += rows; // results of one statement (a procedure's result sets)
          h.rows = 0;
          h.state = Resp.First;
          return true;
        }
        // The last result takes the rest of the text (whatever the splitter made of it).
        const whole = !more && h.cursor === 0;
        const text = whole ? h.sql : more ? span : h.sql.slice(h.spanStart);
        if (h.infilePackets > 0) detail = joinDetail(`load_data_bytes=${h.infileBytes} load_data_packets=${h.infilePackets}`, detail);
        // A USE is recorded with the database it switched to (as server_audit logs it).
        if (!resultSet) this.#afterUse(text);
        this.#rec.emit(this.#opts.meta, this.#rec.text(text, whole ? h.sqlBytes : -1), '', null, h.timeMs, h.mono, commandOf(text), h.acc + rows, null, '', detail);
        h.acc = 0;
        h.rows = 0;
        if (more) {
          h.cursor = h.spanNext;
          h.spanStart = -1;
          h.state = Resp.First;
          return true;
        }
        this.#shift(h);
        return true;
      }
      case Com.StmtExecute:
      case Com.StmtBulkExecute: {
        if (more) {
          h.acc += rows;
          h.rows = 0;
          h.state = Resp.First;
          return true;
        }
        const st = h.st ?? UNKNOWN_STATEMENT;
        const cursor = h.cursorFlag && status & Status.CursorExists ? 'cursor opened' : '';
        this.#rec.emit(this.#opts.meta, st, String(h.stmtId), h.params, h.timeMs, h.mono, commandOf(st.text), h.acc + rows, null, '', joinDetail(detail, cursor));
        this.#shift(h);
        return true;
      }
      case Com.InitDb:
        this.#opts.meta.database = h.database;
        this.#rec.emit(this.#opts.meta, this.#rec.text(h.sql, -1), '', null, h.timeMs, h.mono, 'INIT_DB', 0, null, '', '');
        this.#shift(h);
        return true;
      case Com.CreateDb:
      case Com.DropDb:
      case Com.ProcessKill:
      case Com.Shutdown:
        this.#rec.emit(this.#opts.meta, this.#rec.text(h.sql, -1), '', null, h.timeMs, h.mono, commandOf(h.sql), rows, null, '', '');
        this.#shift(h);
        return true;
      case Com.SetOption:
        this.multiStatements = h.left === 0;
        this.#shift(h);
        return true;
      case Com.ResetConnection:
        this.#prepared.clear();
        this.#shift(h);
        return true;
      case Com.StmtReset: {
        const p = this.#prepared.get(String(h.stmtId));
        if (p !== undefined) p.longData = null;
        this.#shift(h);
        return true;
      }
      default:
        this.#shift(h);
        return true;
    }
  }

  /** An ERR answering the head command. */
  #error(h: Command, e: ErrPacket): boolean {
    const err = copyErr(e);
    const meta = this.#opts.meta;
    switch (h.com) {
      case Com.Query: {
        // Statements after the error did not run: the query ends here.
        this.#ensureSpan(h);
        const whole = h.cursor === 0 && !h.spanHasNext;
        const text = whole ? h.sql : h.spanHasNext ? h.sql.slice(h.spanStart, h.spanEnd) : h.sql.slice(h.spanStart);
        this.#rec.emit(meta, this.#rec.text(text, whole ? h.sqlBytes : -1), '', null, h.timeMs, h.mono, '', h.acc + h.rows, err, '', '');
        break;
      }
      case Com.StmtPrepare:
        this.#rec.emit(meta, this.#rec.text(h.sql, h.sqlBytes), '', null, h.timeMs, h.mono, '', 0, err, '', '');
        break;
      case Com.StmtExecute:
      case Com.StmtBulkExecute:
        this.#rec.emit(meta, h.st ?? UNKNOWN_STATEMENT, String(h.stmtId), h.params, h.timeMs, h.mono, '', h.acc + h.rows, err, '', '');
        break;
      case Com.InitDb:
      case Com.CreateDb:
      case Com.DropDb:
      case Com.ProcessKill:
      case Com.Shutdown:
        this.#rec.emit(meta, this.#rec.text(h.sql, -1), '', null, h.timeMs, h.mono, '', 0, err, '', '');
        break;
      case Com.ChangeUser: {
        const ev = makeEvent(EventKind.LoginFailure, { ...meta, user: h.user, database: h.database }, this.#opts.clock.now());
        ev.errorCode = String(err.code);
        ev.sqlstate = err.sqlstate;
        ev.errorMessage = err.message;
        ev.errorSeverity = 'ERROR';
        ev.detail = 'change_user';
        this.#opts.emit(ev);
        break;
      }
    }
    this.#shift(h);
    return true;
  }

  #changeUserAnswer(h: Command, first: number, buf: Buffer, start: number, end: number): boolean {
    if (first === R.Eof) {
      h.plugin = authSwitchPlugin(buf, start, end);
      return true;
    }
    if (first === R.AuthMoreData) {
      if (end - start === 2 && (buf[start + 1] === Sha2.FastAuthSuccess || buf[start + 1] === Sha2.PerformFullAuth)) {
        h.params = [buf[start + 1] === Sha2.FastAuthSuccess ? 'fast_auth' : 'full_auth'];
      }
      return true;
    }
    if (first !== R.Ok) return this.#bad(`change-user answer 0x${first.toString(16)}`);
    const meta = this.#opts.meta;
    meta.user = h.user;
    meta.database = h.database;
    if (h.plugin !== '') meta.authMethod = h.plugin;
    this.#prepared.clear(); // a new session state: prepared statements are gone
    const ev = makeEvent(EventKind.LoginSuccess, meta, this.#opts.clock.now());
    ev.detail = joinDetail('change_user', h.params !== null ? h.params[0]! : '');
    this.#opts.emit(ev);
    this.#shift(h);
    return true;
  }

  /** USE db by COM_QUERY: the session's database follows (from session tracking when the server sends it). */
  #afterUse(text: string): void {
    const ok = this.#ok;
    if (ok.schema !== null) {
      this.#opts.meta.database = ok.schema;
      return;
    }
    const db = useTarget(text);
    if (db !== null) this.#opts.meta.database = db;
  }

  /** The current statement of a COM_QUERY: the whole text, or (multi-statements) the next one from the cursor. */
  #ensureSpan(h: Command): void {
    if (h.spanStart >= 0) return;
    if (!this.multiStatements) {
      h.spanStart = 0;
      h.spanEnd = h.sql.length;
      h.spanNext = h.sql.length;
      h.spanHasNext = false;
      return;
    }
    const s = nextStatement(this.#lex, h.sql, h.cursor, this.#span);
    h.spanStart = s.start;
    h.spanEnd = s.end;
    h.spanNext = s.next;
    const after = nextStatement(this.#lex, h.sql, s.next, this.#span);
    h.spanHasNext = after.start < after.end;
  }

  /** Emits what is still pending as unfinished (connection closed, decoding stopped) and forgets everything. */
  abandon(reason: string): void {
    const q = this.#queue;
    const meta = this.#opts.meta;
    for (let h = q.shift(); h !== undefined; h = q.shift()) {
      if (h.com === Com.Query) {
        this.#ensureSpan(h);
        const text = h.cursor > 0 ? h.sql.slice(h.spanStart) : h.sql;
        if (text.trim() !== '') this.#rec.emit(meta, this.#rec.text(text, text === h.sql ? h.sqlBytes : -1), '', null, h.timeMs, h.mono, '', h.rows, null, reason, '');
      } else if (h.com === Com.StmtExecute || h.com === Com.StmtBulkExecute) {
        this.#rec.emit(meta, h.st ?? UNKNOWN_STATEMENT, String(h.stmtId), h.params, h.timeMs, h.mono, '', h.rows, null, reason, '');
      } else if (h.com === Com.InitDb || h.com === Com.StmtPrepare) {
        this.#rec.emit(meta, this.#rec.text(h.sql, h.sqlBytes), '', null, h.timeMs, h.mono, '', 0, null, reason, '');
      }
    }
    this.#pendingBytes = 0;
  }

  #enqueue(c: Command): boolean {
    const bytes = c.sqlBytes > 0 ? c.sqlBytes : 0;
    if (this.#pendingBytes + bytes > this.#limits.pendingBytes || !this.#queue.push(c)) {
      this.#fail(FlowAnomaly.PendingOverflow, `more than ${this.#limits.pendingOps} commands or ${this.#limits.pendingBytes} bytes waiting`);
      return false;
    }
    this.#pendingBytes += bytes;
    return true;
  }

  #shift(h: Command): void {
    this.#queue.shift();
    if (h.sqlBytes > 0) this.#pendingBytes -= h.sqlBytes;
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

function copyErr(e: ErrPacket): ErrPacket {
  const c = new ErrPacket();
  c.code = e.code;
  c.sqlstate = e.sqlstate;
  c.message = cutMessage(e.message);
  return c;
}

function okDetail(ok: OkPacket): string {
  let d = '';
  if (ok.lastInsertId > 0) d = `last_insert_id=${ok.lastInsertId}`;
  if (ok.warnings > 0) d = joinDetail(d, `warnings=${ok.warnings}`);
  return d;
}

function joinDetail(a: string, b: string): string {
  return a === '' ? b : b === '' ? a : `${a} ${b}`;
}

export { quoteIdent };
