import type { Clock } from '../../lib/clock.js';
import { maskQuotedValues, redactSqlAs, type RedactMode } from '../../lib/redact.js';
import { POSTGRES, POSTGRES_BACKSLASH, type SqlDialect } from '../../lib/sql-lexer.js';
import { EventKind, makeEvent, type AuditEvent, type SessionMeta } from '../events.js';
import { classifyStatement } from './classify.js';
import type { ErrorFields } from './messages.js';
import { StatementText, type PendingOp } from './pending.js';

/** A bound-value placeholder in the statement text. */
const PLACEHOLDER = /\$[0-9]/;

/** Why a statement event carries no server result. */
export const Unfinished = {
  ConnectionClosed: 'connection_closed',
  DecodingStopped: 'decoding_stopped',
  PortalClosed: 'portal_closed',
} as const;

/**
 * Turns statement text into what the audit keeps (redacted, cut to
 * `maxBytes` at a character boundary, classified) and builds statement
 * events. Knows nothing of the wire.
 */
export class StatementRecorder {
  readonly #mode: RedactMode;
  readonly #maxBytes: number;
  readonly #clock: Clock;
  readonly #emit: (ev: AuditEvent) => void;
  readonly #logParameters: boolean;
  #dialect: SqlDialect;

  constructor(mode: RedactMode, maxBytes: number, clock: Clock, emit: (ev: AuditEvent) => void, logParameters: boolean) {
    this.#mode = mode;
    this.#maxBytes = maxBytes > 0 ? maxBytes : 0;
    this.#clock = clock;
    this.#emit = emit;
    this.#logParameters = logParameters;
    this.#dialect = POSTGRES;
  }

  /** The server's standard_conforming_strings (ParameterStatus): off means backslash escapes in every string. */
  set standardStrings(on: boolean) {
    this.#dialect = on ? POSTGRES : POSTGRES_BACKSLASH;
  }
  get dialect(): SqlDialect {
    return this.#dialect;
  }

  /**
   * `sql` as sent, `bytes` its UTF-8 length (or -1 to measure it); `unread`:
   * bytes of the statement past `sql` that streamed through unread (its
   * message was too long to hold), so the text is a head and is truncated.
   */
  text(sql: string, bytes: number, unread = 0): StatementText {
    const length = (bytes >= 0 ? bytes : Buffer.byteLength(sql)) + unread;
    const max = this.#maxBytes;
    // Over max characters is over max bytes: redaction may stop there (the text is cut below).
    const redacted = redactSqlAs(sql, this.#mode, this.#dialect, max > 0 ? max : 0, unread > 0);
    const cls = classifyStatement(sql);
    if (redacted.length * 3 <= max) return new StatementText(redacted, length, unread > 0, cls);
    const buf = Buffer.from(redacted, 'utf8');
    if (buf.length <= max) return new StatementText(redacted, length, unread > 0, cls);
    let cut = max;
    while (cut > 0 && (buf[cut] & 0xc0) === 0x80) cut--; // do not split a UTF-8 sequence
    return new StatementText(buf.toString('utf8', 0, cut), length, true, cls);
  }

  /**
   * One statement event. `timeMs`/`mono`: when the client sent it; `tag`:
   * the command of CommandComplete; `err`: the server's error, if any;
   * `unfinished`: why there is no result (then `err` is null).
   */
  emit(
    meta: SessionMeta,
    st: StatementText,
    preparedName: string,
    params: string[] | null,
    timeMs: number,
    mono: number,
    tag: string,
    rows: number,
    err: ErrorFields | null,
    unfinished: string,
    op: PendingOp | null,
  ): void {
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
      ev.errorCode = err.code;
      ev.sqlstate = err.code;
      // Without log_parameters the bound values stay out of the event, also where the server quotes them in its error.
      ev.errorMessage = !this.#logParameters && PLACEHOLDER.test(st.text) ? maskQuotedValues(err.message) : err.message;
      ev.errorSeverity = err.severity;
    } else if (unfinished !== '') {
      ev.reason = unfinished;
      ev.errorMessage = unfinished === Unfinished.PortalClosed ? 'portal closed before completion' : unfinished === Unfinished.ConnectionClosed ? 'connection closed before completion' : 'outcome unknown: decoding stopped';
    }
    if (op !== null && op.copyMessages > 0) ev.detail = `copy_bytes=${op.copyBytes} copy_messages=${op.copyMessages}`;
    this.#emit(ev);
  }
}
