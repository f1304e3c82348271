import { MASKED_PASSWORD, redactSql, type RedactMode } from './redact.js';
import { MYSQL, SqlLexer, Tok } from './sql-lexer.js';

/**
 * MySQL / MariaDB statement redaction: the shared redactor in MySQL's
 * lexical rules (backslash escapes in strings, '…' and "…" strings,
 * `backtick` identifiers, `#` and `-- ` comments, `/*! … *\/` version
 * comments whose body is redacted as SQL, X'…', 0x…, B'…', 0b… literals),
 * plus what only MySQL has: the current password in
 * `ALTER USER … IDENTIFIED BY 'new' REPLACE 'current'`.
 *
 * Passwords are masked in every mode: CREATE/ALTER USER … IDENTIFIED BY
 * '…', IDENTIFIED WITH plugin BY|AS '…', IDENTIFIED VIA plugin USING
 * PASSWORD('…'), SET PASSWORD [FOR user] = '…' | PASSWORD('…'), GRANT …
 * IDENTIFIED BY [PASSWORD] '…', and REPLACE '…' in an IDENTIFIED clause.
 */
export function redactMysql(sql: string, mode: RedactMode): string {
  const out = redactSql(sql, mode, 'mysql');
  // In literals mode every string is already a placeholder.
  if (mode === 'literals' || !REPLACE_HINT.test(out) || !IDENTIFIED_HINT.test(out)) return out;
  return maskReplaced(out);
}

const REPLACE_HINT = /replace/i;
const IDENTIFIED_HINT = /identified/i;
const lexer = new SqlLexer(MYSQL);

/** Masks the string after REPLACE in statements that have an IDENTIFIED clause. */
function maskReplaced(sql: string): string {
  const lex = lexer.reset(sql);
  let identified = false;
  let armed = false;
  let res = '';
  let copied = 0;
  for (;;) {
    const t = lex.next();
    if (t === Tok.End || t === Tok.Error) break;
    if (t === Tok.Space || t === Tok.Comment) continue;
    if (t === Tok.Semicolon) {
      identified = false;
      armed = false;
      continue;
    }
    if (t === Tok.Word) {
      if (lex.isWord('IDENTIFIED')) identified = true;
      armed = identified && lex.isWord('REPLACE');
      continue;
    }
    if (t === Tok.String && armed) {
      res += sql.slice(copied, lex.start) + MASKED_PASSWORD;
      copied = lex.end;
    }
    armed = false;
  }
  return copied === 0 ? sql : res + sql.slice(copied);
}
