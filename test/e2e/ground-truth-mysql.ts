import { compareAudit, formatComparison, serverAuditQueries, statementKey, type ServerAuditEntry } from '../harness/index.js';
import type { AuditEvent } from '../../proxy/events.js';

export interface MysqlGroundTruth {
  logged: number;
  stored: number;
  missing: string[];
  extra: string[];
  /** Stored events server_audit never logs (COM_INIT_DB), counted apart. */
  notLogged: number;
  summary: string;
}

/**
 * Matches each statement MariaDB's server_audit logged (QUERY entries, for
 * the given users) with exactly one stored statement event of the same
 * user, database and text. server_audit logs a prepared statement at each
 * execute (with its `?` text) and a failed prepare, not a successful
 * prepare; it does not log COM_INIT_DB, whose events are counted apart.
 * Compare with `audit.redact: none` so texts are as sent.
 */
export function compareWithServerAudit(entries: readonly ServerAuditEntry[], events: readonly AuditEvent[], users: readonly string[]): MysqlGroundTruth {
  const logged = serverAuditQueries(entries).filter((e) => users.includes(e.user));
  const stmts = events.filter((e) => e.kind === 'statement');
  const stored = stmts.filter((e) => e.commandTag !== 'INIT_DB');
  const c = compareAudit(
    logged,
    stored,
    (l) => statementKey(l.user, l.database, l.statement),
    (s) => statementKey(s.user, s.database, s.statement),
  );
  const missing = c.missing.map((l) => `${l.user}@${l.database} [${l.errno}] ${l.statement.slice(0, 120)}`);
  const extra = c.extra.map((s) => `${s.user}@${s.database} [${s.errorCode}] ${s.statement.slice(0, 120)}`);
  const notLogged = stmts.length - stored.length;
  const summary = `${formatComparison('server_audit vs dbaudit', c)}, COM_INIT_DB events server_audit does not log ${notLogged}`;
  return { logged: c.logged, stored: c.stored, missing, extra, notLogged, summary };
}
