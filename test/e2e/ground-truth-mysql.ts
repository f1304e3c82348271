import { compareAudit, formatComparison, serverAuditQueries, statementKey, type ServerAuditEntry } from '../harness/index.js';
import type { AuditEvent } from '../../proxy/events.js';

export interface MysqlGroundTruth {
  logged: number;
  stored: number;
  missing: string[];
  extra: string[];
  /** Stored events server_audit never logs (COM_INIT_DB), counted apart. */
  notLogged: number;
  /** Logins: server_audit's CONNECT / FAILED_CONNECT against login_success / login_failure. */
  connections: { logged: number; stored: number; missing: string[]; extra: string[] };
  summary: string;
}

/**
 * Matches each statement MariaDB's server_audit logged (QUERY entries, for
 * the given users) with exactly one stored statement event of the same
 * user, database and text, and each connection it logged (CONNECT,
 * FAILED_CONNECT) with one login event of the same user (and database for
 * a success). server_audit logs a prepared statement at each execute (with
 * its `?` text) and a failed prepare, not a successful prepare; it does not
 * log COM_INIT_DB, whose events are counted apart; COM_CHANGE_USER logins
 * (its CHANGEUSER lines) are left out. Compare with `audit.redact: none`.
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

  const conns = entries.filter((e) => (e.operation === 'CONNECT' || e.operation === 'FAILED_CONNECT') && users.includes(e.user));
  const logins = events.filter((e) => (e.kind === 'login_success' || e.kind === 'login_failure') && !e.detail.includes('change_user'));
  const k = compareAudit(
    conns,
    logins,
    (l) => (l.operation === 'CONNECT' && l.errno === 0 ? `ok\u0000${l.user}\u0000${l.database}` : `failed\u0000${l.user}`),
    (s) => (s.kind === 'login_success' ? `ok\u0000${s.user}\u0000${s.database}` : `failed\u0000${s.user}`),
  );
  const connections = {
    logged: k.logged,
    stored: k.stored,
    missing: k.missing.map((l) => `${l.operation} ${l.user}@${l.database} [${l.errno}]`),
    extra: k.extra.map((s) => `${s.kind} ${s.user}@${s.database}`),
  };
  const summary = `${formatComparison('server_audit vs dbaudit', c)}, COM_INIT_DB events server_audit does not log ${notLogged}; ${formatComparison('connections', k)}`;
  return { logged: c.logged, stored: c.stored, missing, extra, notLogged, connections, summary };
}
