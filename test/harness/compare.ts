// Ground-truth comparison: what the server's audit log (pgaudit,
// server_audit) recorded against what dbaudit stored, as multisets keyed by
// a caller-chosen key (typically user + database + statement text).
import type { PgauditEntry } from './pgaudit-log.js';
import type { ServerAuditEntry } from './server-audit-log.js';

export interface AuditComparison<L, S> {
  readonly logged: number;
  readonly stored: number;
  readonly matched: number;
  /** Logged by the server, not stored by us (each unmatched occurrence). */
  readonly missing: readonly L[];
  /** Stored by us, not logged by the server (each unmatched occurrence). */
  readonly extra: readonly S[];
}

/**
 * Match every logged item to one stored item with the same key. An item
 * logged twice must be stored twice ("exactly once" per occurrence).
 */
export function compareAudit<L, S>(logged: readonly L[], stored: readonly S[], keyOfLogged: (l: L) => string, keyOfStored: (s: S) => string): AuditComparison<L, S> {
  const pool = new Map<string, S[]>();
  for (const s of stored) {
    const k = keyOfStored(s);
    const list = pool.get(k);
    if (list === undefined) pool.set(k, [s]);
    else list.push(s);
  }
  const missing: L[] = [];
  let matched = 0;
  for (const l of logged) {
    const list = pool.get(keyOfLogged(l));
    if (list !== undefined && list.length > 0) {
      list.shift();
      matched++;
    } else {
      missing.push(l);
    }
  }
  const extra = [...pool.values()].flat();
  return { logged: logged.length, stored: stored.length, matched, missing, extra };
}

/** One line for the test output: "pgaudit vs dbaudit (psql): logged 12, stored 12, missing 0, extra 0". */
export function formatComparison(label: string, c: AuditComparison<unknown, unknown>): string {
  return `${label}: logged ${c.logged}, stored ${c.stored}, missing ${c.missing.length}, extra ${c.extra.length}`;
}

/**
 * The pgaudit entries that stand for statements a client sent: substatement
 * 1 only (higher substatement ids are statements run inside functions and DO
 * blocks). Note that for a simple Query holding several statements pgaudit
 * logs the whole query string once per statement (statement ids 1, 2 …).
 */
export function pgauditClientStatements(entries: readonly PgauditEntry[]): PgauditEntry[] {
  return entries.filter((e) => e.substatementId === 1);
}

/** The server_audit QUERY events (prepared statements appear with their `?` text). */
export function serverAuditQueries(entries: readonly ServerAuditEntry[]): ServerAuditEntry[] {
  return entries.filter((e) => e.operation === 'QUERY');
}

/** A key of user, database and statement text (whitespace at the ends and a final ';' ignored). */
export function statementKey(user: string, database: string, statement: string): string {
  return `${user}\u0000${database}\u0000${statement.trim().replace(/;$/, '').trim()}`;
}
