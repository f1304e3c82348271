import type { Clock } from '../../lib/clock.js';
import { redactMysql } from '../../lib/redact-mysql.js';
import { maskQuotedValues, type RedactMode } from '../../lib/redact.js';
import { EventKind, makeEvent, type AuditEvent, type SessionMeta } from '../events.js';
import { StatementText } from '../postgres/pending.js';
import { classifyMysql } from './classify.js';

/** A bound-value placeholder in the statement text. */
const PLACEHOLDER = /\?/;

export { StatementText };

/** Why a statement event carries no server result. */
export const Unfinished = {
  ConnectionClosed: 'connection_closed',
  DecodingStopped: 'decoding_stopped',
} as const;

/** The server's error for a statement event. */
export interface StatementError {
  readonly code: number;
  readonly sqlstate: string;
  readonly message: string;
}

/**
 * Turns MySQL statement text into what the audit keeps (redacted in
 * MySQL's lexical rules, cut to `maxBytes` at a character boundary,
 * classified) and builds statement events. Knows nothing of the wire.
 */
export class MysqlStatementRecorder {
  readonly #mode: RedactMode;
  readonly #maxBytes: number;
  readonly #clock: Clock;
  readonly #emit: (ev: AuditEvent) => void;
  readonly #logParameters: boolean;
  /** The session's sql_mode has NO_BACKSLASH_ESCAPES (from the server status flags). */
  noBackslashEscapes = false;

  constructor(mode: RedactMode, maxBytes: number, clock: Clock, emit: (ev: AuditEvent) => void, logParameters: boolean) {
    this.#mode = mode;
    this.#maxBytes = maxBytes > 0 ? maxBytes : 0;
    this.#clock = clock;
    this.#emit = emit;
    this.#logParameters = logParameters;
  }

  /**
   * `sql` as sent, `bytes` its UTF-8 length (or -1 to measure it); `unread`:
   * bytes of the statement past `sql` that streamed through unread (its
   * command was too long to hold), so the text is a head and is truncated.
   */
  text(sql: string, bytes: number, unread = 0): StatementText {
    const length = (bytes >= 0 ? bytes : Buffer.byteLength(sql)) + unread;
    const max = this.#maxBytes;
    // Over max characters is over max bytes: redaction may stop there (the text is cut below).
    const redacted = redactMysql(sql, this.#mode, this.noBackslashEscapes, max > 0 ? max : 0, unread > 0);
    const cls = classifyMysql(sql);
    if (redacted.length * 3 <= max) return new StatementText(redacted, length, unread > 0, cls);
    const buf = Buffer.from(redacted, 'utf8');
    if (buf.length <= max) return new StatementText(redacted, length, unread > 0, cls);
    let cut = max;
    while (cut > 0 && (buf[cut] & 0xc0) === 0x80) cut--;
    return new StatementText(buf.toString('utf8', 0, cut), length, true, cls);
  }

  /**
   * One statement event. `timeMs`/`mono`: when the client sent it; `tag`:
   * the command on success; `err`: the server's error; `unfinished`: why
   * there is no result (then `err` is null); `detail`: extra facts
   * (last insert id, warnings, LOAD DATA bytes).
   */
  emit(meta: SessionMeta, st: StatementText, preparedName: string, params: string[] | null, timeMs: number, mono: number, tag: string, rows: number, err: StatementError | null, unfinished: string, detail: string): void {
    const ev = makeEvent(EventKind.Statement, meta, timeMs);
    ev.statement = st.text;
    ev.statementClass = st.cls;
    ev.statementLength = BigInt(st.length);
    ev.statementTruncated = st.truncated;
    ev.preparedName = preparedName;
    ev.commandTag = tag;
    ev.rows = BigInt(rows > 0 ? rows : 0);
    const d = this.#clock.monoMicros() - mono;
    ev.durationUs = BigInt(d > 0 ? Math.round(d) : 0);
    if (params !== null && this.#logParameters) ev.parameters = params;
    if (err !== null) {
      ev.errorCode = String(err.code);
      ev.sqlstate = err.sqlstate;
      // Without log_parameters the bound values stay out of the event, also where the server quotes them in its error.
      ev.errorMessage = !this.#logParameters && PLACEHOLDER.test(st.text) ? maskQuotedValues(err.message) : err.message;
      ev.errorSeverity = 'ERROR';
    } else if (unfinished !== '') {
      ev.reason = unfinished;
      ev.errorMessage = unfinished === Unfinished.ConnectionClosed ? 'connection closed before completion' : 'outcome unknown: decoding stopped';
    }
    ev.detail = detail;
    this.#emit(ev);
  }
}
