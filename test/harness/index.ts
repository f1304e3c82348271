// The test harness: real servers on loopback in temporary directories.
// Import from here: `import { sharedPostgres, needPostgres } from '../test/harness/index.js'`.
export { freePort } from './ports.js';
export {
  binary,
  findBinary,
  inCI,
  needMariadb,
  needPgbouncer,
  needPostgres,
  needServer,
  serverMissing,
  skipUnless,
  type ServerName,
} from './binaries.js';
export { makeTempDir, onExit, type TempDir } from './cleanup.js';
export { CommandError, run, type RunOptions, type RunResult } from './exec.js';
export { PG_LOG_LINE_PREFIX, sharedPostgres, startPostgres, type PgOptions, type PgServer, type PsqlOptions } from './postgres.js';
export { parseCsvRecord, readLogMessages, readPgauditLog, type PgauditEntry } from './pgaudit-log.js';
export { sharedMariadb, startMariadb, type MariaOptions, type MariaServer, type MysqlOptions } from './mariadb.js';
export { parseServerAuditLine, readServerAuditLog, waitForServerAudit, type ServerAuditEntry } from './server-audit-log.js';
export { startPgbouncer, type PgbouncerOptions, type PgbouncerServer } from './pgbouncer.js';
export { makeTlsFiles, type TlsFiles, type TlsOptions } from './tls.js';
export { compareAudit, formatComparison, pgauditClientStatements, serverAuditQueries, statementKey, type AuditComparison } from './compare.js';
