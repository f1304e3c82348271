// A throwaway MariaDB on 127.0.0.1 for tests and benchmarks.
//
// `--no-defaults` comes first so Debian's /etc/mysql settings are not read.
// The datadir lives in a fresh temporary directory owned by `mysql`; root
// logs in over the Unix socket without a password, and a password user
// (`dbaudit`, all privileges, mysql_native_password) is made for TCP clients
// such as sysbench and mysql2.
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { binary, mariadbPluginDir } from './binaries.js';
import { chownTree, makeTempDir, shellCommand, startReaper, trackServer, untrackServer } from './cleanup.js';
import { killAndWait, pidAlive, spawnDaemon, waitUntil } from './daemon.js';
import { CommandError, isRoot, run, type RunResult } from './exec.js';
import { freePort, isAddressInUse } from './ports.js';
import { readServerAuditLog, waitForServerAudit, type ServerAuditEntry } from './server-audit-log.js';
import { sharedState, templateDir } from './shared.js';

export interface MariaOptions {
  /** Load server_audit logging CONNECT and QUERY events to `auditFile`. */
  readonly serverAudit?: boolean;
  /** Turn on TLS with this certificate and key (and CA, to verify clients). */
  readonly ssl?: { readonly certFile: string; readonly keyFile: string; readonly caFile?: string };
  /** Extra mariadbd options, `--name=value` each. */
  readonly settings?: Readonly<Record<string, string>>;
}

export interface MysqlOptions {
  readonly db?: string;
  /** With user, host or port: TCP. Without: root over the Unix socket. */
  readonly user?: string;
  readonly password?: string;
  readonly host?: string;
  readonly port?: number;
  /** Default true: batch, no column names (`-B -N`). */
  readonly batch?: boolean;
  /** Keep going after an error (`--force`). */
  readonly force?: boolean;
  readonly allowError?: boolean;
  readonly args?: readonly string[];
}

export interface MariaServer {
  readonly host: string;
  readonly port: number;
  readonly user: 'root';
  readonly socket: string;
  readonly baseDir: string;
  readonly dataDir: string;
  readonly errorLog: string;
  /** server_audit's log file ('' when serverAudit is off). */
  readonly auditFile: string;
  /** A user with all privileges for TCP clients (mysql_native_password). */
  readonly tcpUser: { readonly name: string; readonly password: string };
  readonly version: string;
  url(db?: string, user?: string, password?: string): string;
  /** Run the real mariadb client (plain text, --skip-ssl); returns stdout. */
  mysql(sql: string, opts?: MysqlOptions): Promise<string>;
  mysqlResult(sql: string, opts?: MysqlOptions): Promise<RunResult>;
  logOffset(): number;
  auditLog(fromOffset?: number): ServerAuditEntry[];
  /** Read the audit log until `done` holds: server_audit writes after the client got its answer. */
  waitAuditLog(done: (e: ServerAuditEntry[]) => boolean, fromOffset?: number, timeoutMs?: number): Promise<ServerAuditEntry[]>;
  createDatabase(prefix?: string): Promise<string>;
  createUser(opts?: { prefix?: string; password?: string; plugin?: string }): Promise<{ name: string; password: string }>;
  stop(): Promise<void>;
  kill(): Promise<void>;
  start(): Promise<void>;
  dispose(): Promise<void>;
}

interface MariaState {
  readonly port: number;
  readonly baseDir: string;
  readonly args: readonly string[];
  readonly serverAudit: boolean;
  readonly version: string;
  pid: number;
}

const OS_USER = 'mysql';
const TCP_USER = { name: 'dbaudit', password: 'dbaudit-pw' } as const;

function serverArgs(base: string, port: number, opts: MariaOptions): string[] {
  const a = [
    '--no-defaults',
    // only root can switch users; as anyone else mariadbd runs as that user
    ...(isRoot() ? [`--user=${OS_USER}`] : []),
    `--datadir=${join(base, 'data')}`,
    `--plugin-dir=${mariadbPluginDir()}`,
    '--bind-address=127.0.0.1',
    `--port=${port}`,
    `--socket=${join(base, 'mysqld.sock')}`,
    `--pid-file=${join(base, 'mysqld.pid')}`,
    `--log-error=${join(base, 'error.log')}`,
    '--skip-name-resolve',
    '--skip-log-bin',
    '--character-set-server=utf8mb4',
    '--collation-server=utf8mb4_general_ci',
    '--innodb-flush-log-at-trx-commit=0',
    '--innodb-doublewrite=0',
    '--innodb-buffer-pool-size=256M',
    '--max-connections=500',
    '--max-allowed-packet=256M',
    '--local-infile=1',
    '--skip-ssl',
  ];
  if (opts.serverAudit === true) {
    a.push(
      '--plugin-load-add=server_audit',
      '--server-audit-logging=ON',
      '--server-audit-events=CONNECT,QUERY',
      `--server-audit-file-path=${join(base, 'audit.log')}`,
      '--server-audit-file-rotations=0',
      '--server-audit-file-rotate-size=1099511627776',
      '--server-audit-query-log-limit=16777216',
    );
  }
  if (opts.ssl !== undefined) {
    // copies in the base dir (see create): readable by mysql
    a.splice(a.indexOf('--skip-ssl'), 1);
    a.push(`--ssl-cert=${join(base, 'server.crt')}`, `--ssl-key=${join(base, 'server.key')}`);
    if (opts.ssl.caFile !== undefined) a.push(`--ssl-ca=${join(base, 'ca.crt')}`);
  }
  for (const [k, v] of Object.entries(opts.settings ?? {})) a.push(`--${k}=${v}`);
  return a;
}

function clientArgs(state: { port: number; baseDir: string }, o: MysqlOptions): string[] {
  const a = ['--no-defaults'];
  if (o.user !== undefined || o.host !== undefined || o.port !== undefined) {
    a.push('-h', o.host ?? '127.0.0.1', '-P', String(o.port ?? state.port), '--protocol=TCP', '-u', o.user ?? 'root');
  } else {
    a.push('-S', join(state.baseDir, 'mysqld.sock'), '-u', 'root');
  }
  a.push('--skip-ssl');
  if (o.batch !== false) a.push('-B', '-N');
  if (o.force === true) a.push('--force');
  a.push(...(o.args ?? []));
  if (o.db !== undefined) a.push(o.db);
  return a;
}

function mysqlRun(state: { port: number; baseDir: string }, sql: string, o: MysqlOptions = {}): Promise<RunResult> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.MYSQL_PWD;
  if (o.password !== undefined) env.MYSQL_PWD = o.password;
  return run(binary('mariadb'), clientArgs(state, o), { input: sql, env, allowFail: true });
}

async function launch(base: string, args: readonly string[]): Promise<number> {
  const pid = spawnDaemon(binary('mariadbd'), args, join(base, 'mariadbd.out'));
  const sock = join(base, 'mysqld.sock');
  await waitUntil(
    'mariadbd',
    async () => (await run(binary('mariadb-admin'), ['--no-defaults', '-S', sock, '-u', 'root', '--connect-timeout=2', 'ping'], { allowFail: true })).code === 0,
    pid,
  );
  return pid;
}

async function create(opts: MariaOptions, ownerPid: number, bindToProcess: boolean): Promise<MariaState> {
  const base = makeTempDir('maria', OS_USER);
  try {
    // install the system tables once per run into a template, then copy it
    const template = await templateDir('maria-data', async (dir) => {
      mkdirSync(dir);
      chownTree(dir, OS_USER);
      await run(binary('mariadb-install-db'), [
        '--no-defaults', ...(isRoot() ? [`--user=${OS_USER}`] : []), `--datadir=${join(dir, 'data')}`, '--auth-root-authentication-method=normal', '--skip-test-db',
      ]);
    });
    await run('cp', ['-a', join(template, 'data'), join(base.dir, 'data')]);
  } catch (e) {
    base.remove();
    throw e;
  }
  if (opts.ssl !== undefined) {
    copyFileSync(opts.ssl.certFile, join(base.dir, 'server.crt'));
    copyFileSync(opts.ssl.keyFile, join(base.dir, 'server.key'));
    if (opts.ssl.caFile !== undefined) copyFileSync(opts.ssl.caFile, join(base.dir, 'ca.crt'));
    chmodSync(join(base.dir, 'server.key'), 0o600);
    chownTree(base.dir, OS_USER);
  }
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const args = serverArgs(base.dir, port, opts);
    let pid: number;
    try {
      pid = await launch(base.dir, args);
    } catch (e) {
      const log = readText(join(base.dir, 'error.log'));
      if (attempt < 4 && isAddressInUse(log)) continue;
      base.remove();
      throw new Error(`MariaDB did not start: ${(e as Error).message}\n${log.split('\n').slice(-15).join('\n')}`, { cause: e });
    }
    // kill whatever pid the pid file names by then (start() after kill() makes a new one)
    const pidFile = join(base.dir, 'mysqld.pid');
    const reaper = startReaper(ownerPid, [`kill -9 "$(cat ${shellCommand([pidFile])})"`, 'sleep 1', shellCommand(['rm', '-rf', base.dir])]);
    if (bindToProcess) {
      trackServer(base.dir, () => {
        const current = Number.parseInt(readText(pidFile), 10);
        try {
          process.kill(Number.isFinite(current) && current > 0 ? current : pid, 'SIGKILL');
        } catch {
          // gone
        }
      }, reaper);
    } else {
      base.keepAtExit();
    }
    const state = { port, baseDir: base.dir };
    const setup = [
      `CREATE USER '${TCP_USER.name}'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('${TCP_USER.password}');`,
      `GRANT ALL PRIVILEGES ON *.* TO '${TCP_USER.name}'@'%' WITH GRANT OPTION;`,
      'SELECT VERSION();',
    ].join('\n');
    const r = await mysqlRun(state, setup);
    if (r.code !== 0) throw new CommandError('mariadb (setup)', r);
    return { port, baseDir: base.dir, args, serverAudit: opts.serverAudit === true, version: r.stdout.trim(), pid };
  }
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

let counter = 0;
function uniqueName(prefix: string): string {
  counter += 1;
  return `${prefix}_${process.pid}_${counter}_${Math.random().toString(36).slice(2, 7)}`;
}

function attach(state: MariaState, owned: boolean): MariaServer {
  const auditFile = state.serverAudit ? join(state.baseDir, 'audit.log') : '';
  const guard = (what: string): void => {
    if (!owned) throw new Error(`${what}() on the shared MariaDB: start your own with startMariadb()`);
  };
  const server: MariaServer = {
    host: '127.0.0.1',
    port: state.port,
    user: 'root',
    socket: join(state.baseDir, 'mysqld.sock'),
    baseDir: state.baseDir,
    dataDir: join(state.baseDir, 'data'),
    errorLog: join(state.baseDir, 'error.log'),
    auditFile,
    tcpUser: TCP_USER,
    version: state.version,
    url(db = '', user: string = TCP_USER.name, password?: string) {
      const pw = password ?? (user === TCP_USER.name ? TCP_USER.password : undefined);
      const auth = encodeURIComponent(user) + (pw !== undefined ? `:${encodeURIComponent(pw)}` : '');
      return `mysql://${auth}@127.0.0.1:${state.port}/${encodeURIComponent(db)}`;
    },
    mysqlResult: (sql, o) => mysqlRun(state, sql, o),
    async mysql(sql, o = {}) {
      const r = await mysqlRun(state, sql, o);
      if (r.code !== 0 && o.allowError !== true) throw new CommandError('mariadb', r);
      return r.stdout;
    },
    logOffset: () => (auditFile === '' ? 0 : statSafe(auditFile)),
    auditLog: (fromOffset = 0) => (auditFile === '' ? [] : readServerAuditLog(auditFile, { fromOffset })),
    waitAuditLog: (done, fromOffset = 0, timeoutMs = 5_000) => waitForServerAudit(auditFile, done, { fromOffset, timeoutMs }),
    async createDatabase(prefix = 'db') {
      const name = uniqueName(prefix);
      await server.mysql(`CREATE DATABASE \`${name}\``);
      return name;
    },
    async createUser(o = {}) {
      const name = uniqueName(o.prefix ?? 'user');
      const password = o.password ?? `pw-${Math.random().toString(36).slice(2)}`;
      const plugin = o.plugin ?? 'mysql_native_password';
      const how = plugin === 'mysql_native_password' ? `VIA mysql_native_password USING PASSWORD('${password}')` : `VIA ${plugin} USING PASSWORD('${password}')`;
      await server.mysql(`CREATE USER '${name}'@'%' IDENTIFIED ${how}; GRANT ALL PRIVILEGES ON *.* TO '${name}'@'%';`);
      return { name, password };
    },
    async stop() {
      guard('stop');
      if (!pidAlive(state.pid)) return;
      await run(binary('mariadb-admin'), ['--no-defaults', '-S', server.socket, '-u', 'root', 'shutdown'], { allowFail: true });
      for (let i = 0; i < 600 && pidAlive(state.pid); i++) await new Promise((r) => setTimeout(r, 50));
    },
    async kill() {
      guard('kill');
      await killAndWait([state.pid]);
      rmSync(join(state.baseDir, 'mysqld.pid'), { force: true });
    },
    async start() {
      guard('start');
      state.pid = await launch(state.baseDir, state.args);
    },
    async dispose() {
      guard('dispose');
      await killAndWait([state.pid]);
      await run('rm', ['-rf', state.baseDir], { allowFail: true });
      untrackServer(state.baseDir);
    },
  };
  return server;
}

function statSafe(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/** A new MariaDB owned by this process, killed and removed at its exit. */
export async function startMariadb(opts: MariaOptions = {}): Promise<MariaServer> {
  return attach(await create(opts, process.pid, true), true);
}

/** The MariaDB (server_audit on) shared by every test file of this run; see sharedPostgres. */
export async function sharedMariadb(): Promise<MariaServer> {
  const state = await sharedState<MariaState>({
    key: 'mariadb-audit',
    start: (owner) => create({ serverAudit: true }, owner, owner === process.pid),
    alive: (st) => pidAlive(st.pid),
  });
  return attach(state, false);
}
