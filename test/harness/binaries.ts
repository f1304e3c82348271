// Finding server and client programs, and the one rule every integration test
// follows when one is missing: with CI=true the test FAILS (a CI machine that
// lacks PostgreSQL must not report green); elsewhere it is skipped with a
// reason that says what to install.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { TestContext } from 'node:test';
import { userIds } from './cleanup.js';

const EXTRA_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/local/bin', '/usr/bin', '/bin'];

function isExecutable(path: string): boolean {
  try {
    const st = statSync(path);
    return st.isFile() && (st.mode & 0o111) !== 0;
  } catch {
    return false;
  }
}

/** PostgreSQL's bin directories, newest major version first. */
export function postgresBinDirs(): string[] {
  const dirs: string[] = [];
  if (process.env.PG_BINDIR) dirs.push(process.env.PG_BINDIR);
  try {
    const versions = readdirSync('/usr/lib/postgresql')
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    for (const v of versions) dirs.push(`/usr/lib/postgresql/${v}/bin`);
  } catch {
    // not a Debian layout
  }
  return dirs;
}

const cache = new Map<string, string | undefined>();

/** Absolute path of a program, or undefined. PostgreSQL's bin dirs come first. */
export function findBinary(name: string): string | undefined {
  if (cache.has(name)) return cache.get(name);
  const pathDirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  const dirs = [...postgresBinDirs(), ...pathDirs, ...EXTRA_DIRS];
  let found: string | undefined;
  for (const d of dirs) {
    const p = join(d, name);
    if (isExecutable(p)) {
      found = p;
      break;
    }
  }
  cache.set(name, found);
  return found;
}

/** Like findBinary but throws an error that says which package to install. */
export function binary(name: string): string {
  const p = findBinary(name);
  if (p === undefined) {
    throw new Error(`${name} not found (searched PostgreSQL bin dirs, PATH, /usr/sbin): ${installHint(name)}`);
  }
  return p;
}

export type ServerName =
  | 'postgres'
  | 'pgaudit'
  | 'mariadb'
  | 'server_audit'
  | 'pgbouncer'
  | 'pgbench'
  | 'sysbench'
  | 'promtool'
  | 'openssl';

const PROGRAMS: Record<ServerName, readonly string[]> = {
  postgres: ['initdb', 'pg_ctl', 'postgres', 'psql'],
  pgaudit: ['initdb', 'pg_ctl', 'postgres', 'psql'],
  mariadb: ['mariadb-install-db', 'mariadbd', 'mariadb-admin', 'mariadb'],
  server_audit: ['mariadb-install-db', 'mariadbd', 'mariadb-admin', 'mariadb'],
  pgbouncer: ['pgbouncer'],
  pgbench: ['pgbench'],
  sysbench: ['sysbench'],
  promtool: ['promtool'],
  openssl: ['openssl'],
};

function installHint(program: string): string {
  if (/^(initdb|pg_ctl|postgres|psql|pgbench)$/.test(program)) return 'apt-get install postgresql';
  if (/^maria/.test(program)) return 'apt-get install mariadb-server';
  if (program === 'promtool') return 'apt-get install prometheus';
  return `apt-get install ${program}`;
}

function pgLibDir(): string | undefined {
  const initdb = findBinary('initdb');
  return initdb === undefined ? undefined : join(initdb, '..', '..', 'lib');
}

/**
 * Why `name` cannot be used on this machine, or undefined when it can.
 * DBAUDIT_TEST_HIDE=pgbouncer,sysbench pretends those are missing (to check
 * what a test does without them).
 */
export function serverMissing(name: ServerName): string | undefined {
  const hidden = (process.env.DBAUDIT_TEST_HIDE ?? '').split(',').map((s) => s.trim());
  if (hidden.includes(name)) return `hidden by DBAUDIT_TEST_HIDE`;
  for (const prog of PROGRAMS[name]) {
    if (findBinary(prog) === undefined) return `${prog} not found (${installHint(prog)})`;
  }
  if (name === 'postgres' || name === 'pgaudit' || name === 'pgbouncer') {
    if (isRootProcess() && userIds('postgres') === undefined) {
      return 'OS user postgres missing (PostgreSQL and pgbouncer refuse to run as root)';
    }
  }
  if ((name === 'mariadb' || name === 'server_audit') && isRootProcess() && userIds('mysql') === undefined) {
    return 'OS user mysql missing (apt-get install mariadb-server creates it)';
  }
  if (name === 'pgaudit') {
    const lib = pgLibDir();
    if (lib === undefined || !existsSync(join(lib, 'pgaudit.so'))) {
      return 'pgaudit.so not found (apt-get install postgresql-15-pgaudit)';
    }
  }
  if (name === 'server_audit' && !existsSync(mariadbPluginDir() + '/server_audit.so')) {
    return 'server_audit.so not found in the MariaDB plugin dir (apt-get install mariadb-server)';
  }
  return undefined;
}

export function mariadbPluginDir(): string {
  for (const d of ['/usr/lib/mysql/plugin', '/usr/lib/x86_64-linux-gnu/mariadb19/plugin', '/usr/lib64/mysql/plugin']) {
    if (existsSync(d)) return d;
  }
  return '/usr/lib/mysql/plugin';
}

function isRootProcess(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

export function inCI(): boolean {
  return process.env.CI === 'true';
}

/**
 * The rule for integration tests. Returns true when every named server is
 * usable. When one is not: with CI=true it throws (the test fails with the
 * reason); otherwise it marks the test skipped and returns false.
 *
 *   test('…', async (t) => { if (!needServer(t, 'pgaudit')) return; … })
 */
export function needServer(t: TestContext, ...names: ServerName[]): boolean {
  for (const name of names) {
    const reason = serverMissing(name);
    if (reason === undefined) continue;
    if (inCI()) throw new Error(`${name} is required: ${reason} (CI=true: a missing server fails the test)`);
    t.skip(`${name} unavailable: ${reason}`);
    return false;
  }
  return true;
}

export function needPostgres(t: TestContext, opts: { pgaudit?: boolean } = {}): boolean {
  return needServer(t, opts.pgaudit === true ? 'pgaudit' : 'postgres');
}

export function needMariadb(t: TestContext, opts: { serverAudit?: boolean } = {}): boolean {
  return needServer(t, opts.serverAudit === true ? 'server_audit' : 'mariadb');
}

export function needPgbouncer(t: TestContext): boolean {
  return needServer(t, 'postgres', 'pgbouncer');
}

/**
 * For the `skip` option of test()/describe(): a reason string when the
 * server is missing and we are not in CI, false otherwise. In CI it is always
 * false, so the test runs and fails loudly at the server's start.
 *
 *   describe('pg e2e', { skip: skipUnless('pgaudit') }, () => { … })
 */
export function skipUnless(...names: ServerName[]): string | false {
  if (inCI()) return false;
  for (const name of names) {
    const reason = serverMissing(name);
    if (reason !== undefined) return `${name} unavailable: ${reason}`;
  }
  return false;
}
