import { POSTGRES, SqlLexer, Tok } from '../../lib/sql-lexer.js';

/**
 * Statement classes, as pgaudit names them (pgaudit.log): the audit trail
 * can then be compared class for class with the server's own. The mapping
 * follows pgaudit's log_audit_event() (statement log level + node type):
 *
 *   READ      SELECT, VALUES, TABLE, WITH … SELECT, DECLARE … CURSOR, COPY … TO
 *   WRITE     INSERT, UPDATE, DELETE, MERGE, TRUNCATE, COPY … FROM, WITH … <write>
 *   FUNCTION  DO, CALL (pgaudit: MISC for the CALL itself, FUNCTION for the
 *             procedure it runs) and the protocol's FunctionCall message
 *   ROLE      GRANT, REVOKE, CREATE/ALTER/DROP ROLE|USER|GROUP, CREATE/ALTER USER
 *             MAPPING, ALTER DEFAULT PRIVILEGES
 *   DDL       every other CREATE/ALTER/DROP (DROP USER MAPPING, ALTER SYSTEM
 *             included), COMMENT, SECURITY LABEL, REFRESH MATERIALIZED VIEW,
 *             IMPORT FOREIGN SCHEMA, REASSIGN OWNED, SELECT … INTO
 *   MISC_SET  SET, RESET (pgaudit filters them with MISC_SET, prints MISC)
 *   MISC      everything else: BEGIN/START/COMMIT/END/ROLLBACK/ABORT/SAVEPOINT/
 *             RELEASE/PREPARE TRANSACTION (pgaudit has no TCL class), FETCH, MOVE,
 *             CLOSE, DISCARD, CHECKPOINT, VACUUM, ANALYZE, CLUSTER, REINDEX,
 *             LISTEN, NOTIFY, UNLISTEN, LOAD, LOCK, SHOW, EXPLAIN (EXPLAIN ANALYZE
 *             takes the class of the statement it runs), EXECUTE,
 *             DEALLOCATE, and anything not recognised
 * PREPARE name AS <stmt> takes the class of <stmt>, as in pgaudit.
 */
export const StatementClass = {
  Read: 'READ',
  Write: 'WRITE',
  Function: 'FUNCTION',
  Role: 'ROLE',
  Ddl: 'DDL',
  MiscSet: 'MISC_SET',
  Misc: 'MISC',
} as const;
export type StatementClass = (typeof StatementClass)[keyof typeof StatementClass];

const FIRST: Record<string, StatementClass> = {
  SELECT: 'READ',
  VALUES: 'READ',
  TABLE: 'READ',
  DECLARE: 'READ',
  INSERT: 'WRITE',
  UPDATE: 'WRITE',
  DELETE: 'WRITE',
  MERGE: 'WRITE',
  TRUNCATE: 'WRITE',
  DO: 'FUNCTION',
  CALL: 'FUNCTION',
  GRANT: 'ROLE',
  REVOKE: 'ROLE',
  CREATE: 'DDL',
  ALTER: 'DDL',
  DROP: 'DDL',
  COMMENT: 'DDL',
  SECURITY: 'DDL',
  REFRESH: 'DDL',
  IMPORT: 'DDL',
  REASSIGN: 'DDL',
  SET: 'MISC_SET',
  RESET: 'MISC_SET',
};

const ROLE_OBJECTS = new Set(['ROLE', 'USER', 'GROUP']);
const WRITES = new Set(['INSERT', 'UPDATE', 'DELETE', 'MERGE']);

const lex = new SqlLexer(POSTGRES);

/** The class of one statement of SQL text (PostgreSQL). */
export function classifyStatement(sql: string): StatementClass {
  lex.reset(sql);
  const first = firstWord();
  if (first === '') return 'MISC';
  const cls = FIRST[first];
  if (cls === undefined) {
    if (first === 'COPY') return copyClass();
    if (first === 'WITH') return withClass();
    if (first === 'PREPARE') return prepareClass();
    if (first === 'EXPLAIN') return explainClass();
    return 'MISC';
  }
  if (first === 'SELECT') return selectInto();
  if (cls !== 'DDL') return cls;
  let second = nextWord(0);
  if (first === 'ALTER' && second === 'DEFAULT') return 'ROLE';
  if (first === 'CREATE' && second === 'OR') {
    nextWord(0);
    second = nextWord(0);
  }
  if (ROLE_OBJECTS.has(second)) {
    // USER MAPPING: pgaudit counts CREATE/ALTER as ROLE (they may carry a password), DROP as DDL.
    if (second === 'USER' && nextWord(0) === 'MAPPING') return first === 'DROP' ? 'DDL' : 'ROLE';
    return 'ROLE';
  }
  return 'DDL';
}

/** The first word, inside any leading parentheses: `(SELECT …) UNION …`. */
function firstWord(): string {
  for (;;) {
    const t = lex.next();
    if (t === Tok.Word) return lex.value().toUpperCase();
    if (t !== Tok.Space && t !== Tok.Comment && t !== Tok.OpenParen) return '';
  }
}

/**
 * The next word (upper-cased) at parenthesis depth `depth` relative to the
 * current one, skipping anything nested deeper; '' at the end of the text.
 */
function nextWord(depth: number): string {
  let d = 0;
  for (;;) {
    const t = lex.next();
    if (t === Tok.End || t === Tok.Error) return '';
    if (t === Tok.OpenParen) d++;
    else if (t === Tok.CloseParen) d--;
    else if (t === Tok.Word && d === depth) return lex.value().toUpperCase();
  }
}

function copyClass(): StatementClass {
  for (let w = nextWord(0); w !== ''; w = nextWord(0)) {
    if (w === 'FROM') return 'WRITE';
    if (w === 'TO') return 'READ';
  }
  return 'READ';
}

function withClass(): StatementClass {
  for (let w = nextWord(0); w !== ''; w = nextWord(0)) {
    if (WRITES.has(w)) return 'WRITE';
    if (w === 'SELECT' || w === 'VALUES' || w === 'TABLE') return selectInto();
  }
  return 'READ';
}

/** SELECT … INTO new_table creates a table (pgaudit: DDL). */
function selectInto(): StatementClass {
  for (let w = nextWord(0); w !== ''; w = nextWord(0)) {
    if (w === 'INTO') return 'DDL';
    if (w === 'FROM' || w === 'WHERE') return 'READ';
  }
  return 'READ';
}

/** EXPLAIN runs nothing (MISC); EXPLAIN ANALYZE runs its statement and takes its class (as pgaudit). */
function explainClass(): StatementClass {
  let analyze = false;
  for (;;) {
    const t = lex.next();
    if (t === Tok.End || t === Tok.Error) return 'MISC';
    if (t !== Tok.Word) continue;
    if (lex.isWord('ANALYZE') || lex.isWord('ANALYSE')) analyze = true;
    else if (STATEMENT_START.has(lex.value().toUpperCase())) return analyze ? classifyStatement(lex.text.slice(lex.start)) : 'MISC';
  }
}

const STATEMENT_START = new Set(['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'MERGE', 'WITH', 'VALUES', 'TABLE', 'EXECUTE', 'DECLARE', 'CREATE']);

function prepareClass(): StatementClass {
  const second = nextWord(0);
  if (second === 'TRANSACTION') return 'MISC';
  for (let w = nextWord(0); w !== ''; w = nextWord(0)) {
    if (w === 'AS') return classifyStatement(lex.text.slice(lex.end));
  }
  return 'MISC';
}
