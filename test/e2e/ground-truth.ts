import type { PgauditEntry } from '../harness/index.js';
import type { AuditEvent } from '../../proxy/events.js';

/** The command of a command tag: "INSERT 0 3" → "INSERT", "SELECT 3" → "SELECT". */
export function tagCommand(tag: string): string {
  return tag.replace(/(\s+\d+)+$/, '');
}

export interface GroundTruthReport {
  logged: number;
  stored: number;
  missing: string[];
  extra: string[];
  /** Failed statements pgaudit does not log (errors at parse or plan time). */
  unloggedErrors: number;
  summary: string;
}

/**
 * Matches each top-level statement pgaudit logged with exactly one stored
 * statement event of the same user, database and command. pgaudit logs a
 * statement when the executor starts it, so statements that fail before
 * (syntax errors, errors while planning) are absent from its log: stored
 * events with an error and no match are counted apart, not as extra.
 */
export function compareWithPgaudit(entries: readonly PgauditEntry[], events: readonly AuditEvent[]): GroundTruthReport {
  const top = entries.filter((e) => e.auditType === 'SESSION' && e.substatementId === 1);
  const pool = events.filter((e) => e.kind === 'statement').map((e) => ({ ev: e, used: false }));
  const missing: string[] = [];
  for (const a of top) {
    const hit = pool.find((p) => !p.used && p.ev.user === a.user && p.ev.database === a.database && tagCommand(p.ev.commandTag) === a.command);
    if (hit) hit.used = true;
    else missing.push(`${a.user}@${a.database} ${a.command}: ${a.statement.slice(0, 120)}`);
  }
  const unmatched = pool.filter((p) => !p.used);
  const unloggedErrors = unmatched.filter((p) => p.ev.errorCode !== '').length;
  const extra = unmatched.filter((p) => p.ev.errorCode === '').map((p) => `${p.ev.user}@${p.ev.database} ${p.ev.commandTag}: ${p.ev.statement.slice(0, 120)}`);
  const summary = `pgaudit logged ${top.length}, dbaudit stored ${pool.length}, missing ${missing.length}, extra ${extra.length}, failed statements pgaudit does not log ${unloggedErrors}`;
  return { logged: top.length, stored: pool.length, missing, extra, unloggedErrors, summary };
}
