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
 * whole. A string literal whose body mentions a password is redacted as
 * SQL too, at any depth and in its own quoting (DO $$ … EXECUTE 'ALTER
 * ROLE r PASSWORD ''…''' … $$, function bodies, dblink_exec, MySQL
 * PREPARE … FROM '…'); when such a body ends in an open password clause
 * ('… PASSWORD ' || quote_literal('…'), format('… PASSWORD %L', …),
 * CONCAT('… IDENTIFIED BY ''', '…', '''')) the statement's later strings
 * are masked as well.
 */
export type RedactMode = 'literals' | 'none';
export type SqlDialectName = 'postgres' | 'mysql';

/** What a masked password becomes in `none` mode. */
export const MASKED_PASSWORD = "'***'";
/** What a statement that cannot be tokenized becomes in `literals` mode. */
export const MASKED_STATEMENT = '<masked: unparseable statement>';

/** A quoted fragment of a server error message: PostgreSQL quotes values with "…", MySQL with '…'. */
const QUOTED_IN_ERROR = /"(?:[^"]|"")*"|'(?:[^'\\]|\\.|'')*'/g;

/**
 * A server error message with every quoted fragment replaced by `?`. For a
 * statement run with bound values while audit.log_parameters is off: the
 * server quotes values back ("invalid input syntax for type integer:
 * \"…\"", "Duplicate entry '…'"), and the values must not reach the event.
 */
export function maskQuotedValues(message: string): string {
  return message.replace(QUOTED_IN_ERROR, '?');
}

/** Words after which a '-' followed by a number is a sign (a value can follow them). */
const SIGN_AFTER = new Set(['SELECT', 'WHERE', 'AND', 'OR', 'NOT', 'THEN', 'ELSE', 'WHEN', 'RETURN', 'VALUES', 'LIMIT', 'OFFSET', 'BY', 'IN', 'IS', 'BETWEEN', 'CASE', 'ON', 'SET', 'HAVING', 'DEFAULT', 'LIKE', 'ILIKE', 'ANY', 'ALL', 'SOME', 'RETURNING', 'INTERVAL', 'TO', 'FROM', 'WITH']);

const MAX_SIGN_WORD = Math.max(...[...SIGN_AFTER].map((w) => w.length));

const lexers = new Map<SqlDialect, SqlLexer>([POSTGRES, POSTGRES_BACKSLASH, MYSQL].map((d) => [d, new SqlLexer(d)]));

/** Quick test: can the text hold a password clause at all? */
const PASSWORD_HINT = /password|identified/i;

/** How deep string bodies are redacted as SQL (DO $$ … EXECUTE '… ''…'' …' … $$ is two); a deeper body that mentions a password is masked whole. */
const MAX_NESTING = 6;
/**
 * The longest string body redacted as SQL (UTF-16 units); a longer one that
 * mentions a password is masked whole. Keeps the work per statement small
 * and bounded (a 64 MiB literal would otherwise hold the event loop for
 * seconds and its position map hundreds of MB).
 */
const MAX_NESTED_BODY = 256 * 1024;
/** String body units one statement may redact as SQL, all depths together; past it, bodies that mention a password are masked whole. */
const NESTED_BUDGET = 1024 * 1024;
/** What is left of NESTED_BUDGET for the statement being redacted (redaction is synchronous: one statement at a time). */
let nestedBudget = 0;

export function redactSql(sql: string, mode: RedactMode, dialect: SqlDialectName): string {
  return redactSqlAs(sql, mode, dialect === 'mysql' ? MYSQL : POSTGRES);
}

/**
 * `redactSql` with an explicit lexical dialect (e.g. POSTGRES_BACKSLASH
 * when standard_conforming_strings is off). `limit` > 0: only a prefix is
 * wanted; redaction stops building output at a token boundary once it is
 * longer than `limit` units (what follows cannot change what came before),
 * so a 64 MiB statement costs a lexing pass and the kept prefix. The rest is
 * still lexed: an unterminated token anywhere masks the statement whole.
 * `cut`: `sql` is only the head of a longer statement (the rest streamed
 * through unread), so a token left open at its end is cut, not
 * unterminated: after the kept prefix it changes nothing; before it, in
 * `literals` mode the open token ends the text as `?`, in `none` mode a
 * statement that mentions a password is masked whole.
 */
export function redactSqlAs(sql: string, mode: RedactMode, dialect: SqlDialect, limit = 0, cut = false): string {
  if (mode === 'none' && !PASSWORD_HINT.test(sql)) return sql;
  let lex = lexers.get(dialect);
  if (lex === undefined) {
    lex = new SqlLexer(dialect);
    lexers.set(dialect, lex);
  }
  nestedBudget = NESTED_BUDGET;
  return redactText(sql, mode, lex.reset(sql), 0, null, limit, cut);
}

/**
 * What a pass over a string literal's body reports: its replacements as
 * (start, end, text) triples in the body's text, and whether a password
 * clause runs past the body's end (`'ALTER ROLE r PASSWORD ' || …`,
 * `format('… PASSWORD %L', …)`), so that the enclosing statement's later
 * strings must be masked.
 */
class Nested {
  readonly spans: (number | string)[] = [];
  open = false;
}

/** First words of a statement whose password clause may continue outside a string (dynamic SQL built by concatenation or format()). */
const CLAUSE_STATEMENTS = ['CREATE', 'ALTER', 'SET', 'GRANT'];

/**
 * The redaction of `sql` (the lexer is reset on it). `nest` is null at the
 * top; for a string body (`depth` > 0, `none` mode only) it collects the
 * replacements instead of the text being whole-masked on an error.
 */
function redactText(sql: string, mode: RedactMode, lex: SqlLexer, depth: number, nest: Nested | null, limit = 0, cut = false): string {
  const hint = PASSWORD_HINT.test(sql);
  const literals = mode === 'literals';
  let out = '';
  let copied = 0; // sql[copied, lex.start) is still to be copied verbatim
  let prevSign = true; // may a '-' start a signed number here?
  let pw: number = Pw.Idle;
  let identified = false;
  let clause = -1; // does the current statement start with CREATE/ALTER/SET/GRANT? -1: no word yet
  let maskRest = false; // a string before opened a password clause: mask the statement's later strings
  for (;;) {
    const t = lex.next();
    if (t === Tok.End) break;
    if (t === Tok.Error) {
      if (nest === null) {
        // A head cut inside a token: an open comment is dropped (literals mode drops comments), anything else is a value.
        if (cut && literals) return sql.charCodeAt(lex.start) === 0x2f /* / */ ? (out + sql.slice(copied, lex.start)).trimEnd() : out + sql.slice(copied, lex.start) + '?';
        return literals || hint ? MASKED_STATEMENT : sql;
      }
      // Inside a string body: what tokenized is kept (redacted), the rest is masked.
      if (hint) {
        nest.spans.push(lex.start, sql.length, MASKED_PASSWORD);
        if (clause === 1) nest.open = true;
        return out + sql.slice(copied, lex.start) + MASKED_PASSWORD;
      }
      break;
    }
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
    if (t === Tok.Word && clause < 0) clause = isClauseStatement(lex) ? 1 : 0;
    let replace: string | null = null;
    if (pw === Pw.Armed && (t === Tok.QuotedIdent || (t === Tok.Word && !isPasswordClauseWord(lex) && (nest === null || clause === 1)))) {
      // A password written without quotes or in double quotes (a syntax error the server still echoes): masked all the same.
      // Inside a string body only in a statement that sets one (not in free text such as 'password is %').
      replace = literals ? '?' : MASKED_PASSWORD;
    } else if (t === Tok.String) {
      if (pw === Pw.Armed || maskRest) replace = literals ? '?' : MASKED_PASSWORD;
      else if (literals) replace = '?';
      else if (hint) {
        const sub = new Nested();
        replace = maskInLiteral(sql.slice(lex.start, lex.end), lex, depth, sub);
        if (sub.open) maskRest = true;
      }
    } else if (t === Tok.Number) {
      if (literals) replace = '?';
    } else if (t === Tok.Word && literals && (lex.isWord('TRUE') || lex.isWord('FALSE'))) {
      replace = '?';
    } else if (nest !== null && pw === Pw.Armed && clause === 1 && (t === Tok.Param || (t === Tok.Op && c === 0x25 /* % */))) {
      // '… PASSWORD ?' / '… PASSWORD $1' / format('… PASSWORD %L', …): the value comes from outside the string.
      nest.open = true;
    }
    pw = passwordState(pw, t, c, lex, identified);
    if (t === Tok.Word && lex.isWord('IDENTIFIED')) identified = true;
    else if (t === Tok.Semicolon) {
      identified = false;
      clause = -1;
      maskRest = false;
    }
    if (replace !== null) {
      out += sql.slice(copied, lex.start) + replace;
      if (nest !== null) nest.spans.push(lex.start, lex.end, replace);
      copied = lex.end;
    }
    if (limit > 0 && out.length + (lex.end - copied) > limit) {
      // Enough for the kept prefix. The rest is only lexed: a statement that does not tokenize is masked whole all the same.
      const prefix = out + sql.slice(copied, lex.end);
      for (;;) {
        const rest = lex.next();
        if (rest === Tok.End) return prefix;
        if (rest === Tok.Error) return nest === null && (literals || hint) && !cut ? MASKED_STATEMENT : prefix;
      }
    }
    prevSign = signMayFollow(t, lex);
  }
  if (nest !== null && ((pw !== Pw.Idle && clause === 1) || maskRest)) nest.open = true;
  if (copied === 0) return sql;
  return out + sql.slice(copied);
}

function isClauseStatement(lex: SqlLexer): boolean {
  for (const w of CLAUSE_STATEMENTS) if (lex.isWord(w)) return true;
  return false;
}

/**
 * The replacement of a string literal in `none` mode, or null to keep it:
 * a libpq connection string's password is masked, and a body that
 * mentions a password is redacted as SQL in the same dialect, at any depth
 * (DO / CREATE FUNCTION bodies in '…' or $tag$…$tag$, EXECUTE '…',
 * dblink_exec(…, '…'), MySQL PREPARE … FROM '…' | "…", SET @s = '…'),
 * its replacements written back in the literal's own quoting.
 */
function maskInLiteral(literal: string, outer: SqlLexer, depth: number, sub: Nested): string | null {
  const conninfo = maskConninfoPassword(literal);
  const lit = conninfo ?? literal;
  const form = literalForm(lit, outer.dialect);
  if (form === null || !PASSWORD_HINT.test(lit.slice(form.from, form.to))) return conninfo;
  const size = form.to - form.from;
  if (depth + 1 >= MAX_NESTING || size > MAX_NESTED_BODY || size > nestedBudget) return MASKED_PASSWORD;
  nestedBudget -= size;
  const body = decodeBody(lit, form);
  if (!PASSWORD_HINT.test(body.text)) return conninfo;
  redactText(body.text, 'none', new SqlLexer(outer.dialect, body.text), depth + 1, sub);
  const spans = sub.spans;
  if (spans.length === 0) return conninfo;
  let out = '';
  let copied = 0;
  for (let k = 0; k < spans.length; k += 3) {
    const a = body.map[spans[k] as number];
    out += lit.slice(copied, a) + encodeIn(spans[k + 2] as string, form);
    copied = body.map[spans[k + 1] as number];
  }
  return out + lit.slice(copied);
}

/** Where a string literal's body lies and how it is escaped. */
interface LiteralForm {
  readonly from: number;
  readonly to: number;
  /** The quote character (doubled inside to escape it), 0 for a dollar-quoted body (no escapes). */
  readonly quote: number;
  readonly backslash: boolean;
}

function literalForm(lit: string, d: SqlDialect): LiteralForm | null {
  const n = lit.length;
  const c = lit.charCodeAt(0);
  if (c === 0x24 /* $ */) {
    const tag = lit.indexOf('$', 1) + 1;
    return tag > 0 && n >= 2 * tag ? { from: tag, to: n - tag, quote: 0, backslash: false } : null;
  }
  if (c === 0x27 || c === 0x22) return { from: 1, to: n - 1, quote: c, backslash: d.backslashStrings };
  const u = c & ~0x20;
  if (lit.charCodeAt(1) === 0x27) {
    if (u === 0x45 /* E */) return { from: 2, to: n - 1, quote: 0x27, backslash: true };
    if (u === 0x4e /* N */) return { from: 2, to: n - 1, quote: 0x27, backslash: d.backslashStrings };
    return null; // B'…', X'…': digits, not text
  }
  if (u === 0x55 /* U */ && lit.charCodeAt(1) === 0x26 /* & */) return { from: 3, to: n - 1, quote: 0x27, backslash: false };
  return null;
}

/** A literal's body with its quote escapes undone; `map[k]` is where decoded character k starts in the literal (`map[length]` is the body's end). */
function decodeBody(lit: string, f: LiteralForm): { text: string; map: Int32Array } {
  const map = new Int32Array(f.to - f.from + 1);
  const parts: string[] = [];
  let n = 0;
  let run = f.from; // lit[run, i) is copied as it is
  let i = f.from;
  while (i < f.to) {
    const c = lit.charCodeAt(i);
    map[n++] = i;
    if (i + 1 < f.to) {
      const c2 = lit.charCodeAt(i + 1);
      // \' \" \\ in backslash strings, a doubled quote in any: two units, one character (the second).
      if ((f.backslash && c === 0x5c && (c2 === 0x27 || c2 === 0x22 || c2 === 0x5c)) || (f.quote !== 0 && c === f.quote && c2 === f.quote)) {
        parts.push(lit.slice(run, i), lit[i + 1]);
        i += 2;
        run = i;
        continue;
      }
      // Any other backslash escape stays two characters (\n …), as the inner lexer expects them.
    }
    i++;
  }
  parts.push(lit.slice(run, f.to));
  map[n] = f.to;
  return { text: parts.join(''), map };
}

/** `s` written inside a literal of form `f`. */
function encodeIn(s: string, f: LiteralForm): string {
  if (f.quote === 0) return s;
  let r = f.backslash ? s.replaceAll('\\', '\\\\') : s;
  const q = String.fromCharCode(f.quote);
  r = r.replaceAll(q, q + q);
  return r;
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
