// A throwaway PostgreSQL on 127.0.0.1 for tests and benchmarks.
//
// initdb and pg_ctl run as the `postgres` OS user (PostgreSQL refuses root)
// in a fresh temporary directory holding data/, sock/ and postgres.log, all
// owned by postgres. The log line prefix names the user and database so that
// pgaudit's lines can be attributed (see pgaudit-log.ts).
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { binary } from './binaries.js';
import { chownTree, makeTempDir, shellCommand, startReaper, trackServer, untrackServer } from './cleanup.js';
import { childPids, killAndWait, pidAlive } from './daemon.js';
import { asUser, CommandError, run, runSyncQuiet, type RunResult } from './exec.js';
import { readPgauditLog, type PgauditEntry } from './pgaudit-log.js';
import { freePort, isAddressInUse } from './ports.js';
import { sharedState, templateDir } from './shared.js';

export interface PgOptions {
  /** Load pgaudit with pgaudit.log = 'all' and pgaudit.log_parameter = on. */
  readonly pgaudit?: boolean;
  /**
   * pg_hba: trust for `postgres`; scram-sha-256 for every other user on
   * 127.0.0.1, except members of role `md5users`, who get md5. Without it
   * every user is trusted.
   */
  readonly passwordAuth?: boolean;
  /** Turn on TLS with this certificate and key (e.g. from makeTlsFiles). */
  readonly ssl?: { readonly certFile: string; readonly keyFile: string };
  /** Extra postgresql.conf settings, written verbatim: value quoted by you. */
  readonly settings?: Readonly<Record<string, string>>;
}

export interface PsqlOptions {
  readonly db?: string;
  readonly user?: string;
  readonly password?: string;
  /** Connect somewhere else (e.g. through the proxy); default: this server. */
  readonly host?: string;
  readonly port?: number;
  /** Default 'disable' so captures and timings have no SSL probe. */
  readonly sslmode?: string;
  readonly appName?: string;
  /**
   * 'file' (default): the SQL goes in on stdin (`-f -`), psql splits it into
   * statements and sends each as one Query. 'command': `-c SQL`, sent as a
   * single Query message even when it holds several statements.
   */
  readonly mode?: 'file' | 'command';
  /** Default true: unaligned, tuples only, quiet (`-A -t -q`). */
  readonly tuplesOnly?: boolean;
  /** Default true: stop at the first error (ON_ERROR_STOP=1). */
  readonly onErrorStop?: boolean;
  /** Resolve with stdout even when psql exits non-zero. */
  readonly allowError?: boolean;
  readonly args?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
}

export interface PgServer {
  readonly host: string;
  readonly port: number;
  readonly user: 'postgres';
  readonly baseDir: string;
  readonly dataDir: string;
  readonly logFile: string;
  readonly socketDir: string;
  readonly pgaudit: boolean;
  /** postgres://user[:password]@127.0.0.1:port/db, percent-encoded. */
  url(db?: string, user?: string, password?: string): string;
  /** Run the real psql client; returns its stdout (throws on failure). */
  psql(sql: string, opts?: PsqlOptions): Promise<string>;
  /** Like psql() but returns exit code, stdout and stderr, never throws on exit code. */
  psqlResult(sql: string, opts?: PsqlOptions): Promise<RunResult>;
  /** Current size of the log: pass to auditLog() to see only later entries. */
  logOffset(): number;
  /** pgaudit entries logged since `fromOffset` (default: the beginning). */
  auditLog(fromOffset?: number): PgauditEntry[];
  /** CREATE DATABASE with a unique name; returns the name. */
  createDatabase(prefix?: string): Promise<string>;
  /** CREATE ROLE … LOGIN PASSWORD with a unique name (md5: stored as md5 and in md5users). */
  createUser(opts?: { prefix?: string; password?: string; md5?: boolean; superuser?: boolean }): Promise<{ name: string; password: string }>;
  /** Stop (fast shutdown), keeping the data: start() brings it back on the same port. */
  stop(): Promise<void>;
  /** SIGKILL the postmaster and its children (upstream-failure tests). */
  kill(): Promise<void>;
  start(): Promise<void>;
  /** Stop and remove the temporary directory now (also done at exit). */
  dispose(): Promise<void>;
}

interface PgState {
  readonly port: number;
  readonly baseDir: string;
  readonly pgaudit: boolean;
}

const OS_USER = 'postgres';
export const PG_LOG_LINE_PREFIX = '%m [%p] %c user=%u db=%d client=%r ';

function confLines(port: number, socketDir: string, opts: PgOptions): string[] {
  const s: Record<string, string> = {
    listen_addresses: `'127.0.0.1'`,
    port: String(port),
    unix_socket_directories: `'${socketDir}'`,
    max_connections: '200',
    shared_buffers: `'128MB'`,
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
    wal_level: `'minimal'`,
    max_wal_senders: '0',
    checkpoint_timeout: `'30min'`,
    autovacuum: 'off',
    logging_collector: 'off',
    log_destination: `'stderr'`,
    log_line_prefix: `'${PG_LOG_LINE_PREFIX}'`,
    log_timezone: `'UTC'`,
    timezone: `'UTC'`,
    lc_messages: `'C'`,
    log_min_messages: `'warning'`,
    log_connections: 'on',
    log_disconnections: 'on',
  };
  if (opts.pgaudit === true) {
    s.shared_preload_libraries = `'pgaudit'`;
    s['pgaudit.log'] = `'all'`;
    s['pgaudit.log_parameter'] = 'on';
    s['pgaudit.log_level'] = `'log'`;
  }
  if (opts.ssl !== undefined) {
    s.ssl = 'on';
    s.ssl_cert_file = `'server.crt'`;
    s.ssl_key_file = `'server.key'`;
  }
  Object.assign(s, opts.settings ?? {});
  return Object.entries(s).map(([k, v]) => `${k} = ${v}`);
}

function hbaLines(opts: PgOptions): string[] {
  const other = opts.passwordAuth === true ? 'scram-sha-256' : 'trust';
  return [
    'local all all trust',
    'host all postgres 127.0.0.1/32 trust',
    ...(opts.passwordAuth === true ? ['host all +md5users 127.0.0.1/32 md5'] : []),
    `host all all 127.0.0.1/32 ${other}`,
  ];
}

function pgCtl(dataDir: string, args: readonly string[]): Promise<RunResult> {
  return run(binary('pg_ctl'), ['-D', dataDir, ...args], { user: OS_USER, timeoutMs: 90_000 });
}

function stopCommand(dataDir: string): string {
  const [file, argv] = asUser(OS_USER, binary('pg_ctl'), ['-D', dataDir, '-m', 'immediate', '-w', '-t', '20', 'stop']);
  return shellCommand([file, ...argv]);
}

function postmasterPid(dataDir: string): number | undefined {
  try {
    const n = Number.parseInt(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0] ?? '', 10);
    return Number.isFinite(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

async function create(opts: PgOptions, ownerPid: number, bindToProcess: boolean): Promise<PgState> {
  const base = makeTempDir('pg', OS_USER);
  const dataDir = join(base.dir, 'data');
  const socketDir = join(base.dir, 'sock');
  const logFile = join(base.dir, 'postgres.log');
  mkdirSync(socketDir);
  writeFileSync(logFile, '');
  chownTree(base.dir, OS_USER);
  // initdb once per run into a template, then copy it (cp -a keeps the owner)
  const template = await templateDir('pg-data', async (dir) => {
    mkdirSync(dir);
    chownTree(dir, OS_USER);
    await run(binary('initdb'), ['-D', join(dir, 'data'), '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync'], {
      user: OS_USER,
    });
  });
  await run('cp', ['-a', join(template, 'data'), dataDir]);
  if (opts.ssl !== undefined) {
    copyFileSync(opts.ssl.certFile, join(dataDir, 'server.crt'));
    copyFileSync(opts.ssl.keyFile, join(dataDir, 'server.key'));
    chmodSync(join(dataDir, 'server.key'), 0o600);
    chownTree(dataDir, OS_USER);
  }
  writeFileSync(join(dataDir, 'pg_hba.conf'), hbaLines(opts).join('\n') + '\n');
  const conf = readFileSync(join(dataDir, 'postgresql.conf'), 'utf8');
  writeFileSync(join(dataDir, 'postgresql.conf'), conf + `\ninclude 'dbaudit-harness.conf'\n`);

  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    writeFileSync(join(dataDir, 'dbaudit-harness.conf'), confLines(port, socketDir, opts).join('\n') + '\n');
    chownTree(dataDir, OS_USER);
    try {
      await pgCtl(dataDir, ['-l', logFile, '-w', '-t', '60', 'start']);
    } catch (e) {
      const log = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
      if (attempt < 4 && isAddressInUse(log)) continue;
      base.remove();
      throw new Error(`PostgreSQL did not start: ${(e as Error).message}\n${log.split('\n').slice(-15).join('\n')}`, { cause: e });
    }
    // the reaper's commands run when ownerPid is gone: stop, then remove
    const reaper = startReaper(ownerPid, [stopCommand(dataDir), shellCommand(['rm', '-rf', base.dir])]);
    if (bindToProcess) {
      const ctl = binary('pg_ctl');
      trackServer(base.dir, () => runSyncQuiet(ctl, ['-D', dataDir, '-m', 'immediate', '-w', '-t', '20', 'stop'], OS_USER), reaper);
    } else {
      // shared: other processes will use it; only the reaper stops it
      base.keepAtExit();
    }
    if (opts.passwordAuth === true) {
      await run(binary('psql'), ['-X', '-q', '-h', socketDir, '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-c', 'CREATE ROLE md5users NOLOGIN'], {
        user: OS_USER,
      });
    }
    return { port, baseDir: base.dir, pgaudit: opts.pgaudit === true };
  }
}

let counter = 0;
function uniqueName(prefix: string): string {
  counter += 1;
  return `${prefix}_${process.pid}_${counter}_${Math.random().toString(36).slice(2, 7)}`;
}

function quoteIdent(s: string): string {
  return `"${s.replace(/"/g, '""')}"`;
}

function quoteLiteral(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

function attach(state: PgState, owned: boolean): PgServer {
  const host = '127.0.0.1';
  const dataDir = join(state.baseDir, 'data');
  const socketDir = join(state.baseDir, 'sock');
  const logFile = join(state.baseDir, 'postgres.log');
  const refuse = (what: string) => async (): Promise<void> => {
    if (!owned) throw new Error(`${what}() on the shared PostgreSQL: start your own with startPostgres()`);
  };

  const psqlResult = (sql: string, o: PsqlOptions = {}): Promise<RunResult> => {
    const args = ['-X', '-h', o.host ?? host, '-p', String(o.port ?? state.port), '-U', o.user ?? 'postgres', '-d', o.db ?? 'postgres'];
    args.push('-v', `ON_ERROR_STOP=${o.onErrorStop === false ? 0 : 1}`);
    if (o.tuplesOnly !== false) args.push('-A', '-t', '-q');
    args.push(...(o.args ?? []));
    if (o.mode === 'command') args.push('-c', sql);
    else args.push('-f', '-');
    const env: NodeJS.ProcessEnv = { ...process.env, PGSSLMODE: o.sslmode ?? 'disable', PGCONNECT_TIMEOUT: '10', ...o.env };
    delete env.PGPASSWORD;
    if (o.password !== undefined) env.PGPASSWORD = o.password;
    if (o.appName !== undefined) env.PGAPPNAME = o.appName;
    return run(binary('psql'), args, { env, input: o.mode === 'command' ? '' : sql, allowFail: true });
  };

  const server: PgServer = {
    host,
    port: state.port,
    user: 'postgres',
    baseDir: state.baseDir,
    dataDir,
    logFile,
    socketDir,
    pgaudit: state.pgaudit,
    url(db = 'postgres', user = 'postgres', password?: string): string {
      const auth = encodeURIComponent(user) + (password !== undefined ? `:${encodeURIComponent(password)}` : '');
      return `postgres://${auth}@${host}:${state.port}/${encodeURIComponent(db)}`;
    },
    psqlResult,
    async psql(sql, o = {}) {
      const r = await psqlResult(sql, o);
      if (r.code !== 0 && o.allowError !== true) throw new CommandError('psql', r);
      return r.stdout;
    },
    logOffset: () => statSync(logFile).size,
    auditLog: (fromOffset = 0) => readPgauditLog(logFile, { fromOffset }),
    async createDatabase(prefix = 'db') {
      const name = uniqueName(prefix);
      await server.psql(`CREATE DATABASE ${quoteIdent(name)}`);
      return name;
    },
    async createUser(o = {}) {
      const name = uniqueName(o.prefix ?? 'user');
      const password = o.password ?? `pw-${Math.random().toString(36).slice(2)}`;
      const sql = [
        o.md5 === true ? `SET password_encryption = 'md5';` : '',
        `CREATE ROLE ${quoteIdent(name)} LOGIN ${o.superuser === true ? 'SUPERUSER' : ''} PASSWORD ${quoteLiteral(password)}`,
        o.md5 === true ? ` IN ROLE md5users` : '',
        ';',
      ].join('');
      await server.psql(sql);
      return { name, password };
    },
    stop: async () => {
      await refuse('stop')();
      if (postmasterPid(dataDir) !== undefined) await pgCtl(dataDir, ['-m', 'fast', '-w', '-t', '60', 'stop']);
    },
    kill: async () => {
      await refuse('kill')();
      const pid = postmasterPid(dataDir);
      if (pid === undefined) return;
      await killAndWait([pid, ...childPids(pid)]);
      // A killed postmaster whose parent never reaps it stays a zombie, and
      // PostgreSQL's lock check (kill(pid, 0)) would still see it running.
      rmSync(join(dataDir, 'postmaster.pid'), { force: true });
      rmSync(join(socketDir, `.s.PGSQL.${state.port}.lock`), { force: true });
    },
    start: async () => {
      await refuse('start')();
      await pgCtl(dataDir, ['-l', logFile, '-w', '-t', '60', 'start']);
    },
    dispose: async () => {
      await refuse('dispose')();
      const pid = postmasterPid(dataDir);
      if (pid !== undefined && pidAlive(pid)) await pgCtl(dataDir, ['-m', 'immediate', '-w', '-t', '60', 'stop']).catch(() => undefined);
      runSyncQuiet('rm', ['-rf', state.baseDir]);
      untrackServer(state.baseDir);
    },
  };
  return server;
}

/** A new PostgreSQL owned by this process, stopped and removed at its exit. */
export async function startPostgres(opts: PgOptions = {}): Promise<PgServer> {
  const state = await create(opts, process.pid, true);
  return attach(state, true);
}

/**
 * The PostgreSQL shared by every test file of this run (pgaudit on, password
 * auth on by default): started by the first caller, stopped when the run
 * ends. Its stop/kill/start/dispose throw: tests that need those start their
 * own. Give each test its own database (createDatabase) and read the audit
 * log from a logOffset() taken at the test's start.
 */
export async function sharedPostgres(opts: Omit<PgOptions, 'ssl'> = { pgaudit: true, passwordAuth: true }): Promise<PgServer> {
  const key = `postgres-${opts.pgaudit === true ? 'a' : ''}${opts.passwordAuth === true ? 'p' : ''}-${hash(JSON.stringify(opts.settings ?? {}))}`;
  const state = await sharedState<PgState>({
    key,
    start: (owner) => create(opts, owner, owner === process.pid),
    alive: (st) => {
      const pid = postmasterPid(join(st.baseDir, 'data'));
      return pid !== undefined && pidAlive(pid);
    },
  });
  return attach(state, false);
}

function hash(s: string): string {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return (h >>> 0).toString(16);
}
