import { redactSqlAs, type RedactMode } from './redact.js';
import { MYSQL, type SqlDialect } from './sql-lexer.js';

/**
 * MySQL / MariaDB statement redaction: the shared redactor (lib/redact.ts)
 * in MySQL's lexical rules — backslash escapes in strings, '…' and "…"
 * strings, `backtick` identifiers, `#` and `-- ` comments, `/*! … *\/`
 * version comments whose body is redacted as SQL, X'…', 0x…, B'…', 0b…
 * literals — following the session's sql_mode where the server tells it:
 * with NO_BACKSLASH_ESCAPES (SERVER_STATUS_NO_BACKSLASH_ESCAPES in every
 * OK) a backslash is an ordinary character, as the server reads it.
 *
 * Passwords are masked in every mode: CREATE/ALTER USER … IDENTIFIED BY
 * '…' [REPLACE '…'], IDENTIFIED WITH plugin BY|AS '…', IDENTIFIED VIA
 * plugin USING PASSWORD('…'), SET PASSWORD [FOR user] = '…' | PASSWORD('…'),
 * GRANT … IDENTIFIED BY [PASSWORD] '…' — also inside strings holding SQL
 * (PREPARE s FROM '…', SET @s = CONCAT('… IDENTIFIED BY ''', '…', '''')).
 *
 * ANSI_QUOTES ("…" as an identifier) is not announced by the server; such
 * text is lexed with "…" as a string, which redacts more, never less.
 */
export const MYSQL_NO_BACKSLASH: SqlDialect = Object.freeze({ ...MYSQL, backslashStrings: false });

export function mysqlDialect(noBackslashEscapes: boolean): SqlDialect {
  return noBackslashEscapes ? MYSQL_NO_BACKSLASH : MYSQL;
}

/** `limit`: see redactSqlAs. */
export function redactMysql(sql: string, mode: RedactMode, noBackslashEscapes = false, limit = 0, cut = false): string {
  return redactSqlAs(sql, mode, mysqlDialect(noBackslashEscapes), limit, cut);
}
