import { MYSQL, POSTGRES, POSTGRES_BACKSLASH, SqlLexer, Tok, type SqlDialect } from './sql-lexer.js';

/**
 * Statement redaction.
 *
 * `literals`: every constant (strings in all their forms, dollar-quoted
 * bodies, numbers, a unary minus before a number, TRUE/FALSE, bit strings)
 * becomes `?`. `?` rather than `$n` so a redacted statement is never taken
 * for a parameterised one. Identifiers, keywords, operators, `$n` and
 * whitespace are kept. Comments are removed (they can hold anything,
 * secrets included); a removed comment leaves one space when needed to keep
 * tokens apart. MySQL `/*! … *\/` bodies are SQL and are redacted as such.
 * Text the lexer cannot tokenize (an unterminated string, identifier or
 * comment) is replaced whole by `MASKED_STATEMENT`.
 *
 * `none`: the text as sent, except that in every mode passwords are masked:
 * the string after PASSWORD (CREATE/ALTER ROLE|USER … [ENCRYPTED] PASSWORD
 * '…', USER MAPPING OPTIONS (password '…'), MySQL PASSWORD('…') and SET
 * PASSWORD = '…') and after BY / AS in a statement with IDENTIFIED (MySQL
 * IDENTIFIED BY '…', IDENTIFIED WITH plugin AS '…', … REPLACE '…'). In `none` mode a text
 * that cannot be tokenized and mentions PASSWORD or IDENTIFIED is masked
 * whole.
 */
export type RedactMode = 'literals' | 'none';
export type SqlDialectName = 'postgres' | 'mysql';

/** What a masked password becomes in `none` mode. */
export const MASKED_PASSWORD = "'***'";
/** What a statement that cannot be tokenized becomes in `literals` mode. */
export const MASKED_STATEMENT = '<masked: unparseable statement>';

/** Words after which a '-' followed by a number is a sign (a value can follow them). */
const SIGN_AFTER = new Set(['SELECT', 'WHERE', 'AND', 'OR', 'NOT', 'THEN', 'ELSE', 'WHEN', 'RETURN', 'VALUES', 'LIMIT', 'OFFSET', 'BY', 'IN', 'IS', 'BETWEEN', 'CASE', 'ON', 'SET', 'HAVING', 'DEFAULT', 'LIKE', 'ILIKE', 'ANY', 'ALL', 'SOME', 'RETURNING', 'INTERVAL', 'TO', 'FROM', 'WITH']);

const MAX_SIGN_WORD = Math.max(...[...SIGN_AFTER].map((w) => w.length));

const lexers = new Map<SqlDialect, SqlLexer>([POSTGRES, POSTGRES_BACKSLASH, MYSQL].map((d) => [d, new SqlLexer(d)]));

/** Quick test: can the text hold a password clause at all? */
const PASSWORD_HINT = /password|identified/i;

export function redactSql(sql: string, mode: RedactMode, dialect: SqlDialectName): string {
  return redactSqlAs(sql, mode, dialect === 'mysql' ? MYSQL : POSTGRES);
}

/** `redactSql` with an explicit lexical dialect (e.g. POSTGRES_BACKSLASH when standard_conforming_strings is off). */
export function redactSqlAs(sql: string, mode: RedactMode, dialect: SqlDialect): string {
  const hint = PASSWORD_HINT.test(sql);
  if (mode === 'none' && !hint) return sql;
  let lex = lexers.get(dialect);
  if (lex === undefined) {
    lex = new SqlLexer(dialect);
    lexers.set(dialect, lex);
  }
  lex.reset(sql);
  const literals = mode === 'literals';
  let out = '';
  let copied = 0; // sql[copied, lex.start) is still to be copied verbatim
  let prevSign = true; // may a '-' start a signed number here?
  let pw: number = Pw.Idle;
  let identified = false;
  for (;;) {
    const t = lex.next();
    if (t === Tok.End) break;
    if (t === Tok.Error) return literals || hint ? MASKED_STATEMENT : sql;
    if (t === Tok.Space) continue;
    if (t === Tok.Comment) {
      if (literals) {
        out += sql.slice(copied, lex.start);
        const before = out.length > 0 ? out.charCodeAt(out.length - 1) : 0x20;
        const after = lex.end < sql.length ? sql.charCodeAt(lex.end) : 0x20;
        if (!isBlank(before) && !isBlank(after)) out += ' ';
        copied = lex.end;
      }
      continue;
    }
    const c = sql.charCodeAt(lex.start);
    if (t === Tok.Op && c === 0x2d /* - */ && literals && prevSign && startsNumber(sql, lex.end)) {
      const minusAt = lex.start;
      lex.next();
      out += sql.slice(copied, minusAt) + '?';
      copied = lex.end;
      prevSign = false;
      pw = Pw.Idle;
      continue;
    }
    let replace: string | null = null;
    if (pw === Pw.Armed && (t === Tok.QuotedIdent || (t === Tok.Word && !isPasswordClauseWord(lex)))) {
      // A password written without quotes or in double quotes (a syntax error the server still echoes): masked all the same.
      replace = literals ? '?' : MASKED_PASSWORD;
    } else if (t === Tok.String) {
      if (pw === Pw.Armed) replace = literals ? '?' : MASKED_PASSWORD;
      else if (literals) replace = '?';
      else if (hint) replace = maskConninfoPassword(sql.slice(lex.start, lex.end));
    } else if (t === Tok.Number) {
      if (literals) replace = '?';
    } else if (t === Tok.Word && literals && (lex.isWord('TRUE') || lex.isWord('FALSE'))) {
      replace = '?';
    }
    pw = passwordState(pw, t, c, lex, identified);
    if (t === Tok.Word && lex.isWord('IDENTIFIED')) identified = true;
    else if (t === Tok.Semicolon) identified = false;
    if (replace !== null) {
      out += sql.slice(copied, lex.start) + replace;
      copied = lex.end;
    }
    prevSign = signMayFollow(t, lex);
  }
  if (copied === 0) return sql;
  return out + sql.slice(copied);
}

/**
 * A libpq connection string inside a literal (CREATE SUBSCRIPTION …
 * CONNECTION '…', dblink_connect('…')) can carry `password=…`: its value is
 * masked, quoted (`password='a b'`) or not. Null when there is none.
 */
function maskConninfoPassword(literal: string): string | null {
  const masked = literal.replace(/(\bpassword\s*=\s*)(?:''(?:[^']|'''')*''|\\'(?:[^'\\]|\\.)*\\'|[^\s']+)/gi, '$1***');
  return masked === literal ? null : masked;
}

/** Words that may follow PASSWORD without being one: NULL, SET PASSWORD FOR, MySQL's PASSWORD('…') and its PASSWORD EXPIRE/HISTORY/REUSE/REQUIRE… options. */
const PASSWORD_CLAUSE_WORDS = ['NULL', 'FOR', 'PASSWORD', 'EXPIRE', 'HISTORY', 'REUSE', 'REQUIRE', 'LOCK', 'UNLOCK', 'DEFAULT', 'NEVER', 'INTERVAL'];
function isPasswordClauseWord(lex: SqlLexer): boolean {
  for (const w of PASSWORD_CLAUSE_WORDS) if (lex.isWord(w)) return true;
  return false;
}

/** Where the masking of a password clause stands. */
const Pw = {
  Idle: 0,
  /** The next string is a password (after PASSWORD, or BY/AS in an IDENTIFIED clause). */
  Armed: 1,
  /** MySQL SET PASSWORD FOR user = '…': waiting for the '='. */
  AwaitEquals: 2,
} as const;

function passwordState(pw: number, t: Tok, c: number, lex: SqlLexer, identified: boolean): number {
  if (t === Tok.Semicolon) return Pw.Idle;
  if (t === Tok.Word) {
    if (lex.isWord('PASSWORD')) return Pw.Armed;
    // IDENTIFIED BY '…' / IDENTIFIED WITH plugin AS '…', and MySQL 8's REPLACE '<current password>'.
    if (identified && (lex.isWord('BY') || lex.isWord('AS') || lex.isWord('REPLACE'))) return Pw.Armed;
    if (pw === Pw.Armed && lex.isWord('FOR')) return Pw.AwaitEquals;
    return pw === Pw.AwaitEquals ? pw : Pw.Idle;
  }
  if (pw === Pw.AwaitEquals) return t === Tok.Op && c === 0x3d ? Pw.Armed : pw;
  if (pw === Pw.Armed && ((t === Tok.Op && c === 0x3d) || t === Tok.OpenParen)) return Pw.Armed;
  return Pw.Idle;
}

function startsNumber(s: string, i: number): boolean {
  const c = s.charCodeAt(i);
  if (c >= 0x30 && c <= 0x39) return true;
  const c1 = s.charCodeAt(i + 1);
  return c === 0x2e && c1 >= 0x30 && c1 <= 0x39;
}

function isBlank(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

/** After this token, is a '-' before a number a sign (true) or a subtraction (false)? */
function signMayFollow(t: Tok, lex: SqlLexer): boolean {
  switch (t) {
    case Tok.Number:
    case Tok.String:
    case Tok.QuotedIdent:
    case Tok.Param:
    case Tok.CloseParen:
      return false;
    case Tok.Word:
      return lex.end - lex.start <= MAX_SIGN_WORD && SIGN_AFTER.has(lex.value().toUpperCase());
    case Tok.Op:
      return lex.text.charCodeAt(lex.start) !== 0x5d; // ']'
    default:
      return true;
  }
}
