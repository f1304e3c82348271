/**
 * A small SQL tokenizer for redaction, statement splitting and
 * classification. It recognises only what those need: where literals,
 * identifiers, comments and statement boundaries are. It never throws: an
 * unterminated string, identifier or comment becomes one `Tok.Error` token
 * running to the end of the text.
 *
 * Dialects are data (`SqlDialect`), so MySQL slots in beside PostgreSQL.
 */

export const Tok = {
  End: 0,
  Space: 1,
  Comment: 2,
  Word: 3,
  QuotedIdent: 4,
  String: 5,
  Number: 6,
  /** $1 (PostgreSQL) or ? (MySQL). */
  Param: 7,
  Op: 8,
  Semicolon: 9,
  OpenParen: 10,
  CloseParen: 11,
  Comma: 12,
  /** Unterminated string/identifier/comment: runs to the end of the text. */
  Error: 13,
  /** MySQL `/*!NNNNN` or its closing `*\/`: executable comment markers, kept as they are. */
  Version: 14,
} as const;
export type Tok = (typeof Tok)[keyof typeof Tok];

export interface SqlDialect {
  readonly name: 'postgres' | 'mysql';
  /** Backslash escapes in every string ('…'), not only E'…'. */
  readonly backslashStrings: boolean;
  /** "…" is a string (MySQL without ANSI_QUOTES) rather than an identifier. */
  readonly doubleQuoteString: boolean;
  readonly backtickIdent: boolean;
  readonly hashComment: boolean;
  /** `--` starts a comment only when followed by whitespace (MySQL). */
  readonly dashNeedsSpace: boolean;
  readonly nestedComments: boolean;
  readonly dollarQuotes: boolean;
  /** `/*! … *\/` holds SQL to run, not a comment. */
  readonly versionComments: boolean;
  /** E'', U&'' prefixes (B'', X'', N'' are common to both). */
  readonly escapePrefixes: boolean;
}

export const POSTGRES: SqlDialect = Object.freeze({
  name: 'postgres',
  backslashStrings: false,
  doubleQuoteString: false,
  backtickIdent: false,
  hashComment: false,
  dashNeedsSpace: false,
  nestedComments: true,
  dollarQuotes: true,
  versionComments: false,
  escapePrefixes: true,
});

/** PostgreSQL with standard_conforming_strings = off: backslash escapes in every '…' string. */
export const POSTGRES_BACKSLASH: SqlDialect = Object.freeze({ ...POSTGRES, backslashStrings: true });

export const MYSQL: SqlDialect = Object.freeze({
  name: 'mysql',
  backslashStrings: true,
  doubleQuoteString: true,
  backtickIdent: true,
  hashComment: true,
  dashNeedsSpace: true,
  nestedComments: false,
  dollarQuotes: false,
  versionComments: true,
  escapePrefixes: false,
});

export function dialectOf(name: 'postgres' | 'mysql'): SqlDialect {
  return name === 'mysql' ? MYSQL : POSTGRES;
}

const C_QUOTE = 0x27; // '
const C_DQUOTE = 0x22; // "
const C_BACKTICK = 0x60; // `
const C_BACKSLASH = 0x5c;
const C_DOLLAR = 0x24;
const C_DASH = 0x2d;
const C_SLASH = 0x2f;
const C_STAR = 0x2a;
const C_DOT = 0x2e;

function isSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}
function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}
function isIdentStart(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x5f || c >= 0x80;
}
function isIdentChar(c: number): boolean {
  return isIdentStart(c) || isDigit(c) || c === C_DOLLAR;
}

/** Reusable cursor over one text: call `next()` until it returns `Tok.End`; the token is `text.slice(start, end)`. */
export class SqlLexer {
  readonly #d: SqlDialect;
  #s: string;
  #pos: number;
  #inVersion: boolean;
  start: number;
  end: number;

  constructor(dialect: SqlDialect, text = '', from = 0) {
    this.#d = dialect;
    this.#s = text;
    this.#pos = from;
    this.#inVersion = false;
    this.start = from;
    this.end = from;
  }

  reset(text: string, from = 0): this {
    this.#s = text;
    this.#pos = from;
    this.#inVersion = false;
    this.start = from;
    this.end = from;
    return this;
  }

  get text(): string {
    return this.#s;
  }

  get dialect(): SqlDialect {
    return this.#d;
  }

  /** The current token's text. */
  value(): string {
    return this.#s.slice(this.start, this.end);
  }

  /** True if the current token is the word `upper` (case-insensitive; `upper` in capitals). No allocation. */
  isWord(upper: string): boolean {
    const n = upper.length;
    if (this.end - this.start !== n) return false;
    const s = this.#s;
    for (let i = 0; i < n; i++) {
      let c = s.charCodeAt(this.start + i);
      if (c >= 0x61 && c <= 0x7a) c -= 0x20;
      if (c !== upper.charCodeAt(i)) return false;
    }
    return true;
  }

  next(): Tok {
    const s = this.#s;
    const n = s.length;
    const d = this.#d;
    let i = this.#pos;
    this.start = i;
    if (i >= n) {
      this.end = n;
      return Tok.End;
    }
    const c = s.charCodeAt(i);
    const c1 = i + 1 < n ? s.charCodeAt(i + 1) : 0;
    let t: Tok;
    if (isSpace(c)) {
      i++;
      while (i < n && isSpace(s.charCodeAt(i))) i++;
      t = Tok.Space;
    } else if (c === C_DASH && c1 === C_DASH && (!d.dashNeedsSpace || i + 2 >= n || isSpace(s.charCodeAt(i + 2)))) {
      i = lineEnd(s, i);
      t = Tok.Comment;
    } else if (c === 0x23 /* # */ && d.hashComment) {
      i = lineEnd(s, i);
      t = Tok.Comment;
    } else if (c === C_SLASH && c1 === C_STAR) {
      // Executable comments: MySQL's /*!NNNNN … */ and MariaDB's /*M!NNNNNN … */ run their content.
      const mariadb = d.versionComments && i + 3 < n && (s.charCodeAt(i + 2) | 0x20) === 0x6d /* m */ && s.charCodeAt(i + 3) === 0x21;
      if (d.versionComments && i + 2 < n && (s.charCodeAt(i + 2) === 0x21 /* ! */ || mariadb)) {
        i += mariadb ? 4 : 3;
        while (i < n && isDigit(s.charCodeAt(i))) i++;
        this.#inVersion = true;
        t = Tok.Version;
      } else {
        i = blockEnd(s, i, d.nestedComments);
        t = i < 0 ? Tok.Error : Tok.Comment;
      }
    } else if (c === C_STAR && c1 === C_SLASH && this.#inVersion) {
      i += 2;
      this.#inVersion = false;
      t = Tok.Version;
    } else if (c === C_QUOTE) {
      i = quoteEnd(s, i + 1, C_QUOTE, d.backslashStrings);
      t = i < 0 ? Tok.Error : Tok.String;
    } else if (c === C_DQUOTE) {
      i = quoteEnd(s, i + 1, C_DQUOTE, d.doubleQuoteString && d.backslashStrings);
      t = i < 0 ? Tok.Error : d.doubleQuoteString ? Tok.String : Tok.QuotedIdent;
    } else if (c === C_BACKTICK && d.backtickIdent) {
      i = quoteEnd(s, i + 1, C_BACKTICK, false);
      t = i < 0 ? Tok.Error : Tok.QuotedIdent;
    } else if (isDigit(c) || (c === C_DOT && isDigit(c1))) {
      i = numberEnd(s, i);
      t = Tok.Number;
    } else if (c === C_DOLLAR && d.dollarQuotes) {
      if (isDigit(c1)) {
        i += 2;
        while (i < n && isDigit(s.charCodeAt(i))) i++;
        t = Tok.Param;
      } else {
        const r = dollarEnd(s, i);
        if (r === -2) {
          i++;
          t = Tok.Op;
        } else {
          i = r;
          t = i < 0 ? Tok.Error : Tok.String;
        }
      }
    } else if (isIdentStart(c)) {
      const r = this.#prefixed(s, i, c, c1);
      if (r !== 0) {
        i = r;
        t = i < 0 ? Tok.Error : Tok.String;
      } else {
        i++;
        while (i < n && isIdentChar(s.charCodeAt(i))) i++;
        t = Tok.Word;
      }
    } else if (c === 0x3b) {
      i++;
      t = Tok.Semicolon;
    } else if (c === 0x28) {
      i++;
      t = Tok.OpenParen;
    } else if (c === 0x29) {
      i++;
      t = Tok.CloseParen;
    } else if (c === 0x2c) {
      i++;
      t = Tok.Comma;
    } else if (c === 0x3f /* ? */ && d.name === 'mysql') {
      i++;
      t = Tok.Param;
    } else {
      // Operators and other punctuation, one character at a time.
      i++;
      t = Tok.Op;
    }
    if (i < 0) i = n;
    this.#pos = i;
    this.end = i;
    return t;
  }

  /** String literals with a letter prefix (E'', U&'', B'', X'', N''): the end, -1 unterminated, 0 not one. */
  #prefixed(s: string, i: number, c: number, c1: number): number {
    const u = c & ~0x20;
    if (c1 === C_QUOTE) {
      if (u === 0x45 /* E */ && this.#d.escapePrefixes) return quoteEnd(s, i + 2, C_QUOTE, true);
      if (u === 0x42 /* B */ || u === 0x58 /* X */ || u === 0x4e /* N */) return quoteEnd(s, i + 2, C_QUOTE, this.#d.backslashStrings);
      return 0;
    }
    if (u === 0x55 /* U */ && c1 === 0x26 /* & */ && this.#d.escapePrefixes && i + 2 < s.length && s.charCodeAt(i + 2) === C_QUOTE) {
      return quoteEnd(s, i + 3, C_QUOTE, false);
    }
    return 0;
  }
}

function lineEnd(s: string, i: number): number {
  const nl = s.indexOf('\n', i);
  return nl < 0 ? s.length : nl;
}

/** End of a block comment starting at i, or -1 when unterminated. */
function blockEnd(s: string, i: number, nested: boolean): number {
  const n = s.length;
  let depth = 1;
  i += 2;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (c === C_STAR && i + 1 < n && s.charCodeAt(i + 1) === C_SLASH) {
      i += 2;
      if (--depth === 0) return i;
    } else if (nested && c === C_SLASH && i + 1 < n && s.charCodeAt(i + 1) === C_STAR) {
      i += 2;
      depth++;
    } else i++;
  }
  return -1;
}

/** End (after the closing quote) of a quoted token whose body starts at i; doubled quotes escape; -1 unterminated. */
function quoteEnd(s: string, i: number, q: number, backslash: boolean): number {
  const n = s.length;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (backslash && c === C_BACKSLASH) {
      i += 2;
      continue;
    }
    if (c === q) {
      if (i + 1 < n && s.charCodeAt(i + 1) === q) {
        i += 2;
        continue;
      }
      return i + 1;
    }
    i++;
  }
  return -1;
}

/** Dollar-quoted string at i: its end, -1 unterminated, -2 when `$` does not open one. */
function dollarEnd(s: string, i: number): number {
  const n = s.length;
  let j = i + 1;
  if (j < n && s.charCodeAt(j) !== C_DOLLAR) {
    if (!isIdentStart(s.charCodeAt(j))) return -2;
    while (j < n && isIdentChar(s.charCodeAt(j)) && s.charCodeAt(j) !== C_DOLLAR) j++;
    if (j >= n || s.charCodeAt(j) !== C_DOLLAR) return -2;
  } else if (j >= n) return -2;
  const tag = s.slice(i, j + 1);
  const close = s.indexOf(tag, j + 1);
  return close < 0 ? -1 : close + tag.length;
}

/** Numbers: 42, 4.2, .5, 1e-3, 0x1F, 0o17, 0b101, 1_000 (and trailing junk PostgreSQL would reject). */
function numberEnd(s: string, i: number): number {
  const n = s.length;
  const c1 = i + 1 < n ? s.charCodeAt(i + 1) | 0x20 : 0;
  if (s.charCodeAt(i) === 0x30 && (c1 === 0x78 || c1 === 0x6f || c1 === 0x62)) {
    i += 2;
    while (i < n && isIdentChar(s.charCodeAt(i))) i++;
    return i;
  }
  while (i < n && (isDigit(s.charCodeAt(i)) || s.charCodeAt(i) === 0x5f)) i++;
  if (i < n && s.charCodeAt(i) === C_DOT && !(i + 1 < n && s.charCodeAt(i + 1) === C_DOT)) {
    i++;
    while (i < n && (isDigit(s.charCodeAt(i)) || s.charCodeAt(i) === 0x5f)) i++;
  }
  if (i < n && (s.charCodeAt(i) | 0x20) === 0x65) {
    let j = i + 1;
    if (j < n && (s.charCodeAt(j) === 0x2b || s.charCodeAt(j) === C_DASH)) j++;
    if (j < n && isDigit(s.charCodeAt(j))) {
      i = j;
      while (i < n && isDigit(s.charCodeAt(i))) i++;
    }
  }
  while (i < n && isIdentChar(s.charCodeAt(i))) i++;
  return i;
}

/**
 * The next statement of `text` from `from`: `[start, end)` of its text
 * (without the `;`, leading/trailing space) and `next`, where the following
 * one begins. Empty statements (only space, comments, `;`) are skipped;
 * `start === end` when none is left. As in psql, a `;` inside parentheses
 * (CREATE RULE … DO (a; b)) or inside a `BEGIN ATOMIC … END` function
 * body does not end a statement.
 */
export class StatementSpan {
  start = 0;
  end = 0;
  next = 0;
}

export function nextStatement(lex: SqlLexer, text: string, from: number, out: StatementSpan): StatementSpan {
  lex.reset(text, from);
  let first = -1;
  let last = from;
  let atomic = 0;
  let parens = 0;
  let prevBegin = false;
  for (;;) {
    const t = lex.next();
    if (t === Tok.End || (t === Tok.Semicolon && atomic === 0 && parens <= 0)) {
      if (first >= 0 || t === Tok.End) {
        out.start = first >= 0 ? first : text.length;
        out.end = first >= 0 ? last : text.length;
        out.next = lex.end;
        return out;
      }
      continue;
    }
    if (t === Tok.Space || t === Tok.Comment || t === Tok.Semicolon) continue;
    if (first < 0) first = lex.start;
    last = lex.end;
    if (t === Tok.OpenParen) parens++;
    else if (t === Tok.CloseParen) parens--;
    if (t === Tok.Word) {
      if (prevBegin && lex.isWord('ATOMIC')) atomic++;
      else if (atomic > 0 && lex.isWord('CASE')) atomic++;
      else if (atomic > 0 && lex.isWord('END')) atomic--;
      prevBegin = lex.isWord('BEGIN');
    } else prevBegin = false;
  }
}
