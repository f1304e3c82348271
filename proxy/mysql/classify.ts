import { MYSQL, SqlLexer, Tok } from '../../lib/sql-lexer.js';

/**
 * MySQL statements in the classes the PostgreSQL side uses (pgaudit's), so
 * one query over the trail means the same for both databases:
 *
 *   READ      SELECT, TABLE, VALUES, WITH … SELECT, HANDLER … READ
 *   WRITE     INSERT, REPLACE, UPDATE, DELETE, TRUNCATE, LOAD DATA/XML,
 *             WITH … UPDATE/DELETE
 *   FUNCTION  CALL, DO
 *   ROLE      GRANT, REVOKE, CREATE/ALTER/DROP/RENAME USER|ROLE,
 *             SET PASSWORD, SET DEFAULT ROLE
 *   DDL       every other CREATE/ALTER/DROP/RENAME, INSTALL/UNINSTALL
 *             PLUGIN|SONIC, SELECT … INTO (a table) is not MySQL syntax
 *   MISC_SET  SET (variables, NAMES, CHARACTER SET, TRANSACTION, ROLE)
 *   MISC      everything else: transaction control (BEGIN, START, COMMIT,
 *             ROLLBACK, SAVEPOINT, RELEASE, XA), LOCK/UNLOCK, SHOW,
 *             DESCRIBE/DESC/EXPLAIN, USE, FLUSH, KILL, PREPARE/EXECUTE/
 *             DEALLOCATE, ANALYZE/CHECK/OPTIMIZE/REPAIR TABLE, HELP, …
 *
 * Leading comments, parentheses and `/*! … *\/` markers are skipped.
 */
const FIRST: Record<string, string> = {
  SELECT: 'READ',
  TABLE: 'READ',
  VALUES: 'READ',
  INSERT: 'WRITE',
  REPLACE: 'WRITE',
  UPDATE: 'WRITE',
  DELETE: 'WRITE',
  TRUNCATE: 'WRITE',
  LOAD: 'WRITE',
  CALL: 'FUNCTION',
  DO: 'FUNCTION',
  GRANT: 'ROLE',
  REVOKE: 'ROLE',
  CREATE: 'DDL',
  ALTER: 'DDL',
  DROP: 'DDL',
  RENAME: 'DDL',
  INSTALL: 'DDL',
  UNINSTALL: 'DDL',
  SET: 'MISC_SET',
};

/** After CREATE/ALTER/DROP/RENAME: these objects are ROLE. */
const ROLE_OBJECTS = new Set(['USER', 'ROLE']);
/** Words that may come between CREATE and the object (CREATE OR REPLACE …, CREATE DEFINER=… VIEW …). */
const WRITE_AFTER_WITH = new Set(['INSERT', 'UPDATE', 'DELETE', 'REPLACE']);

const lexer = new SqlLexer(MYSQL);

export function classifyMysql(sql: string): string {
  const lex = lexer.reset(sql);
  const first = nextWord(lex);
  if (first === '') return 'MISC';
  const cls = FIRST[first];
  if (first === 'WITH') {
    // WITH … the main statement follows the CTEs (at depth 0).
    let depth = 0;
    for (;;) {
      const t = lex.next();
      if (t === Tok.End || t === Tok.Error) return 'READ';
      if (t === Tok.OpenParen) depth++;
      else if (t === Tok.CloseParen) depth--;
      else if (t === Tok.Word && depth === 0) {
        const w = lex.value().toUpperCase();
        if (w === 'SELECT') return 'READ';
        if (WRITE_AFTER_WITH.has(w)) return 'WRITE';
      }
    }
  }
  if (first === 'HANDLER') return 'READ';
  if (cls === undefined) return 'MISC';
  if (first === 'SET') {
    const second = nextWord(lex);
    if (second === 'PASSWORD') return 'ROLE';
    if (second === 'DEFAULT' && nextWord(lex) === 'ROLE') return 'ROLE';
    return 'MISC_SET';
  }
  if (cls === 'DDL' && first !== 'INSTALL' && first !== 'UNINSTALL') {
    for (let i = 0; i < 8; i++) {
      const w = nextWord(lex);
      if (w === '') break;
      if (ROLE_OBJECTS.has(w)) return 'ROLE';
      if (w === 'OR' || w === 'REPLACE' || w === 'DEFINER' || w === 'IF' || w === 'NOT' || w === 'EXISTS' || w === 'DEFAULT') continue;
      if (w === 'TEMPORARY' || w === 'ONLINE' || w === 'IGNORE' || w === 'SQL' || w === 'SECURITY' || w === 'ALGORITHM' || w === 'AGGREGATE') continue;
      break;
    }
    return 'DDL';
  }
  return cls;
}

/** The next word (upper case), skipping space, comments, version-comment markers, parentheses and operators in DEFINER=…. */
function nextWord(lex: SqlLexer): string {
  for (;;) {
    const t = lex.next();
    if (t === Tok.End || t === Tok.Error || t === Tok.Semicolon) return '';
    if (t === Tok.Word) return lex.value().toUpperCase();
    if (t === Tok.Space || t === Tok.Comment || t === Tok.Version || t === Tok.OpenParen) continue;
    if (t === Tok.Op || t === Tok.QuotedIdent || t === Tok.String) continue;
    return '';
  }
}

const OBJECT_VERBS = new Set(['CREATE', 'ALTER', 'DROP', 'RENAME', 'SHOW']);
const SKIP_BEFORE_OBJECT = new Set(['OR', 'REPLACE', 'DEFINER', 'TEMPORARY', 'ONLINE', 'IGNORE', 'SQL', 'SECURITY', 'ALGORITHM', 'AGGREGATE', 'FULL', 'GLOBAL', 'SESSION', 'UNIQUE', 'FULLTEXT', 'SPATIAL']);

/**
 * A command tag for a statement MySQL completed (the server sends none):
 * its first keyword, and for CREATE/ALTER/DROP/RENAME/SHOW the object kind
 * too ("CREATE TABLE", "SHOW VARIABLES"), as PostgreSQL's tags read.
 */
export function commandOf(sql: string): string {
  const lex = lexer.reset(sql);
  const first = nextWord(lex);
  if (!OBJECT_VERBS.has(first)) return first;
  for (let i = 0; i < 8; i++) {
    const w = nextWord(lex);
    if (w === '') break;
    if (SKIP_BEFORE_OBJECT.has(w) || w === 'DEFAULT') continue;
    return `${first} ${w}`;
  }
  return first;
}
