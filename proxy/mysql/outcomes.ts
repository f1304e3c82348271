import { MYSQL_NO_BACKSLASH } from '../../lib/redact-mysql.js';
import { MYSQL, SqlLexer, StatementSpan, nextStatement } from '../../lib/sql-lexer.js';
import { EventKind, makeEvent } from '../events.js';
import { UNKNOWN_STATEMENT, type StatementText } from '../postgres/pending.js';
import type { TrackerOptions } from '../protocol.js';
import { commandOf } from './classify.js';
import { useTarget } from './client-commands.js';
import { authSwitchPlugin } from './handshake.js';
import { Com, Resp as R, Sha2, Status } from './packets.js';
import { Command } from './pending.js';
import { ErrPacket, OkPacket, cutMessage } from './responses.js';
import type { MysqlStatementRecorder } from './statements.js';

/**
 * What a finished (or abandoned) command becomes in the audit: statement
 * events with the right text, rows and error, USE and COM_INIT_DB moving
 * the session's database, COM_CHANGE_USER logins. The command flow decides
 * when a command is finished; this decides what is recorded.
 */
export class Outcomes {
  readonly #opts: TrackerOptions;
  readonly #rec: MysqlStatementRecorder;
  readonly #lex = new SqlLexer(MYSQL);
  readonly #lexNoBackslash = new SqlLexer(MYSQL_NO_BACKSLASH);
  readonly #span = new StatementSpan();

  constructor(opts: TrackerOptions, rec: MysqlStatementRecorder) {
    this.#opts = opts;
    this.#rec = rec;
  }

  /** `text` of `h` as the audit keeps it; the part that ends a head (a command too long to hold) runs on unread. */
  #text(h: Command, text: string, bytes: number): StatementText {
    return this.#rec.text(text, bytes, h.sqlCut > 0 && h.sql.endsWith(text) ? h.sqlCut : 0);
  }

  /**
   * A result of a COM_QUERY (OK, or the end of a result set). Returns true
   * when more results follow for the same command. With more results to
   * come for the same statement (a CALL's result sets) they are added up.
   */
  queryResult(h: Command, rows: number, more: boolean, resultSet: boolean, detail: string, multi: boolean, ok: OkPacket): boolean {
    this.#ensureSpan(h, multi);
    const span = h.sql.slice(h.spanStart, h.spanEnd);
    if (more && (!h.spanHasNext || (resultSet && commandOf(span) === 'CALL'))) {
      h.acc += rows;
      h.rows = 0;
      return true;
    }
    // The last result takes the rest of the text (whatever the splitter made of it).
    const whole = !more && h.cursor === 0;
    const text = whole ? h.sql : more ? span : h.sql.slice(h.spanStart);
    if (h.infilePackets > 0) detail = joinDetail(`load_data_bytes=${h.infileBytes} load_data_packets=${h.infilePackets}`, detail);
    // A USE is recorded with the database it switched to (as server_audit logs it).
    if (!resultSet) this.#afterUse(text, ok);
    this.#rec.emit(this.#opts.meta, this.#text(h, text, whole ? h.sqlBytes : -1), '', null, h.timeMs, h.mono, commandOf(text), h.acc + rows, null, '', detail);
    h.acc = 0;
    h.rows = 0;
    if (!more) return false;
    h.cursor = h.spanNext;
    h.spanStart = -1;
    return true;
  }

  /** A result of COM_STMT_EXECUTE / BULK_EXECUTE; true when more follow (a procedure's result sets). */
  executeResult(h: Command, rows: number, status: number, detail: string): boolean {
    if (status & Status.MoreResultsExist) {
      h.acc += rows;
      h.rows = 0;
      return true;
    }
    const st = h.st ?? UNKNOWN_STATEMENT;
    const cursor = h.cursorFlag && status & Status.CursorExists ? 'cursor opened' : '';
    this.#rec.emit(this.#opts.meta, st, String(h.stmtId), h.params, h.timeMs, h.mono, commandOf(st.text), h.acc + rows, null, '', joinDetail(detail, cursor));
    return false;
  }

  /** COM_INIT_DB (the database changes) and the commands recorded with a made-up text (CREATE_DB, DROP_DB, PROCESS_KILL, SHUTDOWN). */
  commandDone(h: Command, rows: number): void {
    if (h.com === Com.InitDb) this.#opts.meta.database = h.database;
    this.#rec.emit(this.#opts.meta, this.#text(h, h.sql, -1), '', null, h.timeMs, h.mono, h.com === Com.InitDb ? 'INIT_DB' : commandOf(h.sql), rows, null, '', '');
  }

  /** An ERR answering `h`. A COM_QUERY ends there: the statements after the failed one did not run. */
  error(h: Command, e: ErrPacket, multi: boolean): void {
    const err = copyErr(e);
    const meta = this.#opts.meta;
    switch (h.com) {
      case Com.Query: {
        this.#ensureSpan(h, multi);
        const whole = h.cursor === 0 && !h.spanHasNext;
        const text = whole ? h.sql : h.spanHasNext ? h.sql.slice(h.spanStart, h.spanEnd) : h.sql.slice(h.spanStart);
        this.#rec.emit(meta, this.#text(h, text, whole ? h.sqlBytes : -1), '', null, h.timeMs, h.mono, '', h.acc + h.rows, err, '', '');
        return;
      }
      case Com.StmtPrepare:
        this.#rec.emit(meta, this.#text(h, h.sql, h.sqlBytes), '', null, h.timeMs, h.mono, '', 0, err, '', '');
        return;
      case Com.StmtExecute:
      case Com.StmtBulkExecute:
        this.#rec.emit(meta, h.st ?? UNKNOWN_STATEMENT, String(h.stmtId), h.params, h.timeMs, h.mono, '', h.acc + h.rows, err, '', '');
        return;
      case Com.InitDb:
      case Com.CreateDb:
      case Com.DropDb:
      case Com.ProcessKill:
      case Com.Shutdown:
        this.#rec.emit(meta, this.#text(h, h.sql, -1), '', null, h.timeMs, h.mono, '', 0, err, '', '');
        return;
      case Com.ChangeUser: {
        const ev = makeEvent(EventKind.LoginFailure, { ...meta, user: h.user, database: h.database }, this.#opts.clock.now());
        ev.errorCode = String(err.code);
        ev.sqlstate = err.sqlstate;
        ev.errorMessage = err.message;
        ev.errorSeverity = 'ERROR';
        ev.detail = 'change_user';
        this.#opts.emit(ev);
        return;
      }
    }
  }

  /**
   * A server packet answering COM_CHANGE_USER: an AuthSwitchRequest or
   * auth-more-data round ('wait'), the OK that makes the new user the
   * session's ('ok'), or something else ('bad').
   */
  changeUserAnswer(h: Command, first: number, buf: Buffer, start: number, end: number): 'wait' | 'ok' | 'bad' {
    if (first === R.Eof) {
      h.plugin = authSwitchPlugin(buf, start, end);
      return 'wait';
    }
    if (first === R.AuthMoreData) {
      if (end - start === 2 && (buf[start + 1] === Sha2.FastAuthSuccess || buf[start + 1] === Sha2.PerformFullAuth)) {
        h.params = [buf[start + 1] === Sha2.FastAuthSuccess ? 'fast_auth' : 'full_auth'];
      }
      return 'wait';
    }
    if (first !== R.Ok) return 'bad';
    const meta = this.#opts.meta;
    meta.user = h.user;
    meta.database = h.database;
    if (h.plugin !== '') meta.authMethod = h.plugin;
    const ev = makeEvent(EventKind.LoginSuccess, meta, this.#opts.clock.now());
    ev.detail = joinDetail('change_user', h.params !== null ? h.params[0]! : '');
    this.#opts.emit(ev);
    return 'ok';
  }

  /** A command the connection's end (or the end of decoding) left without an answer. */
  abandon(h: Command, reason: string, multi: boolean): void {
    const meta = this.#opts.meta;
    if (h.com === Com.Query) {
      this.#ensureSpan(h, multi);
      const text = h.cursor > 0 ? h.sql.slice(h.spanStart) : h.sql;
      if (text.trim() !== '') this.#rec.emit(meta, this.#text(h, text, text === h.sql ? h.sqlBytes : -1), '', null, h.timeMs, h.mono, '', h.acc + h.rows, null, reason, '');
    } else if (h.com === Com.StmtExecute || h.com === Com.StmtBulkExecute) {
      this.#rec.emit(meta, h.st ?? UNKNOWN_STATEMENT, String(h.stmtId), h.params, h.timeMs, h.mono, '', h.acc + h.rows, null, reason, '');
    } else if (h.com === Com.InitDb || h.com === Com.StmtPrepare) {
      this.#rec.emit(meta, this.#text(h, h.sql, h.com === Com.InitDb ? -1 : h.sqlBytes), '', null, h.timeMs, h.mono, '', 0, null, reason, '');
    }
  }

  /** USE db by COM_QUERY: the session's database follows (from session tracking when the server sends it). */
  #afterUse(text: string, ok: OkPacket): void {
    if (ok.schema !== null) {
      this.#opts.meta.database = ok.schema;
      return;
    }
    const db = useTarget(text);
    if (db !== null) this.#opts.meta.database = db;
  }

  /** The current statement of a COM_QUERY: the whole text, or (multi-statements) the next one from the cursor. */
  #ensureSpan(h: Command, multi: boolean): void {
    if (h.spanStart >= 0) return;
    if (!multi) {
      h.spanStart = 0;
      h.spanEnd = h.sql.length;
      h.spanNext = h.sql.length;
      h.spanHasNext = false;
      return;
    }
    const lex = this.#rec.noBackslashEscapes ? this.#lexNoBackslash : this.#lex;
    const s = nextStatement(lex, h.sql, h.cursor, this.#span);
    h.spanStart = s.start;
    h.spanEnd = s.end;
    h.spanNext = s.next;
    const after = nextStatement(lex, h.sql, s.next, this.#span);
    h.spanHasNext = after.start < after.end;
  }
}

export function copyErr(e: ErrPacket): ErrPacket {
  const c = new ErrPacket();
  c.code = e.code;
  c.sqlstate = e.sqlstate;
  c.message = cutMessage(e.message);
  return c;
}

export function okDetail(ok: OkPacket): string {
  let d = '';
  if (ok.lastInsertId > 0) d = `last_insert_id=${ok.lastInsertId}`;
  if (ok.warnings > 0) d = joinDetail(d, `warnings=${ok.warnings}`);
  return d;
}

export function joinDetail(a: string, b: string): string {
  return a === '' ? b : b === '' ? a : `${a} ${b}`;
}
