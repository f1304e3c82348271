import type { Weighed } from '../postgres/pending.js';
import type { StatementText } from './statements.js';

/**
 * What the MySQL tracker remembers between a command and its response:
 * the command waiting (MySQL answers commands in order, one response
 * each), and the prepared statements the server confirmed. Bounded.
 */

/** Where the response to the command at the head of the queue stands. */
export const Resp = {
  /** The first response packet (OK, ERR, column count, LOCAL INFILE request, prepare OK…). */
  First: 0,
  /** Column definitions, skipped by count. */
  Columns: 1,
  /** The EOF after column definitions (without DEPRECATE_EOF). */
  ColumnsEof: 2,
  /** Rows, skipped by length, until EOF/OK (0xFE) or ERR. */
  Rows: 3,
  /** COM_STMT_PREPARE: parameter definitions, their EOF, column definitions, their EOF. */
  PrepParams: 4,
  PrepParamsEof: 5,
  PrepCols: 6,
  PrepColsEof: 7,
  /** LOAD DATA LOCAL: the client streams the file, ended by an empty packet. */
  Infile: 8,
  /** COM_FIELD_LIST: column definitions until EOF or ERR. */
  FieldList: 9,
  /** COM_CHANGE_USER: OK / ERR / AuthSwitchRequest / auth-more-data, client auth data. */
  Auth: 10,
  /** COM_STATISTICS: one text packet. */
  AnyOne: 11,
} as const;
export type Resp = (typeof Resp)[keyof typeof Resp];

/** One command waiting for its response. One class for every command so the flow stays monomorphic. */
export class Command {
  com: number;
  timeMs: number;
  mono: number;
  state: Resp;
  /** COM_QUERY / COM_STMT_PREPARE: the text; synthesized text for COM_INIT_DB and the like. */
  sql: string;
  sqlBytes: number;
  /** COM_QUERY with several statements: where the current one starts, and its span once computed. */
  cursor: number;
  /** COM_QUERY / COM_STMT_PREPARE delivered as a head (too long to hold): bytes of SQL past `sql`, streamed through unread. */
  sqlCut: number;
  spanStart: number;
  spanEnd: number;
  spanNext: number;
  /** More statements follow the current one in the text. */
  spanHasNext: boolean;
  /** COM_STMT_EXECUTE: the prepared statement's text (kept by the statement map). */
  st: StatementText | null;
  stmtId: number;
  cursorFlag: boolean;
  params: string[] | null;
  /** COM_INIT_DB / COM_CHANGE_USER: database and user asked for. */
  database: string;
  user: string;
  plugin: string;
  /** Rows of the current result set. */
  rows: number;
  /** Rows (or affected rows) of earlier results of the same statement (a CALL's result sets). */
  acc: number;
  /** Column definitions (or prepare parameters) still to skip; prepare: columns after the parameters. */
  left: number;
  prepColumns: number;
  infileBytes: number;
  infilePackets: number;
  /** The sequence id its answer starts with (after its last packet). */
  respSeq: number;
  constructor(com: number, timeMs: number, mono: number) {
    this.com = com;
    this.timeMs = timeMs;
    this.mono = mono;
    this.state = Resp.First;
    this.sql = '';
    this.sqlBytes = 0;
    this.cursor = 0;
    this.sqlCut = 0;
    this.spanStart = -1;
    this.spanEnd = 0;
    this.spanNext = 0;
    this.spanHasNext = false;
    this.st = null;
    this.stmtId = 0;
    this.cursorFlag = false;
    this.params = null;
    this.database = '';
    this.user = '';
    this.plugin = '';
    this.rows = 0;
    this.acc = 0;
    this.left = 0;
    this.prepColumns = 0;
    this.infileBytes = 0;
    this.infilePackets = 0;
    this.respSeq = 1;
  }
}

/** A statement the server prepared: its text, parameter count, last bound types and pending long data. */
export class Prepared implements Weighed {
  readonly st: StatementText;
  readonly nParams: number;
  types: Buffer | null;
  /** Bytes sent per parameter with COM_STMT_SEND_LONG_DATA since the last execute/reset. */
  longData: Map<number, number> | null;
  constructor(st: StatementText, nParams: number) {
    this.st = st;
    this.nParams = nParams;
    this.types = null;
    this.longData = null;
  }
  get weight(): number {
    return 96 + this.st.weight + this.nParams * 2;
  }
}
