// pgbouncer in front of a harness PostgreSQL, as a baseline for benchmarks.
//
// pgbouncer refuses root: it runs as `postgres` from a temporary directory it
// owns. auth_type = trust with the users listed in auth_file; no Unix socket.
import { readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { binary } from './binaries.js';
import { chownTree, makeTempDir, onExit, shellCommand, startReaper, stopReaper } from './cleanup.js';
import { killAndWait, pidAlive, spawnDaemon, waitUntil } from './daemon.js';
import { freePort, isAddressInUse } from './ports.js';

export interface PgbouncerOptions {
  /** Default 'session'. */
  readonly poolMode?: 'session' | 'transaction' | 'statement';
  /** Users pgbouncer accepts (trust) and uses upstream. Default ['postgres']. */
  readonly users?: readonly string[];
  readonly maxClientConn?: number;
  readonly defaultPoolSize?: number;
  /** Extra [pgbouncer] settings. */
  readonly settings?: Readonly<Record<string, string>>;
}

export interface PgbouncerServer {
  readonly host: string;
  readonly port: number;
  readonly baseDir: string;
  readonly configFile: string;
  readonly logFile: string;
  readonly pid: number;
  url(db?: string, user?: string): string;
  stop(): Promise<void>;
  dispose(): Promise<void>;
}

const OS_USER = 'postgres';

function tcpReady(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Start pgbouncer (session mode by default) in front of `upstream`. */
export async function startPgbouncer(upstream: { host: string; port: number }, opts: PgbouncerOptions = {}): Promise<PgbouncerServer> {
  const base = makeTempDir('pgbouncer', OS_USER);
  const configFile = join(base.dir, 'pgbouncer.ini');
  const logFile = join(base.dir, 'pgbouncer.log');
  const users = opts.users ?? ['postgres'];
  writeFileSync(join(base.dir, 'userlist.txt'), users.map((u) => `"${u.replace(/"/g, '""')}" ""`).join('\n') + '\n');
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const settings: Record<string, string> = {
      listen_addr: '127.0.0.1',
      listen_port: String(port),
      unix_socket_dir: '',
      auth_type: 'trust',
      auth_file: join(base.dir, 'userlist.txt'),
      pool_mode: opts.poolMode ?? 'session',
      max_client_conn: String(opts.maxClientConn ?? 2000),
      default_pool_size: String(opts.defaultPoolSize ?? 100),
      max_db_connections: '0',
      logfile: logFile,
      pidfile: join(base.dir, 'pgbouncer.pid'),
      admin_users: 'postgres',
      ignore_startup_parameters: 'extra_float_digits,options',
      server_tls_sslmode: 'disable',
      client_tls_sslmode: 'disable',
      log_connections: '0',
      log_disconnections: '0',
      ...opts.settings,
    };
    const ini = [
      '[databases]',
      `* = host=${upstream.host} port=${upstream.port}`,
      '',
      '[pgbouncer]',
      ...Object.entries(settings).map(([k, v]) => `${k} = ${v}`),
      '',
    ].join('\n');
    writeFileSync(configFile, ini);
    chownTree(base.dir, OS_USER);
    const pid = spawnDaemon(binary('pgbouncer'), [configFile], join(base.dir, 'pgbouncer.out'), OS_USER);
    try {
      await waitUntil('pgbouncer', () => tcpReady(port), pid, 30_000);
    } catch (e) {
      let log = '';
      try {
        log = readFileSync(join(base.dir, 'pgbouncer.out'), 'utf8') + readFileSync(logFile, 'utf8');
      } catch {
        // no log yet
      }
      await killAndWait([pid]);
      if (attempt < 4 && isAddressInUse(log)) continue;
      base.remove();
      throw new Error(`pgbouncer did not start: ${(e as Error).message}\n${log.split('\n').slice(-15).join('\n')}`, { cause: e });
    }
    const reaper = startReaper(process.pid, [shellCommand(['kill', '-9', String(pid)]), shellCommand(['rm', '-rf', base.dir])]);
    const unhook = onExit(() => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
      stopReaper(reaper);
    });
    return {
      host: '127.0.0.1',
      port,
      baseDir: base.dir,
      configFile,
      logFile,
      pid,
      url: (db = 'postgres', user = 'postgres') => `postgres://${encodeURIComponent(user)}@127.0.0.1:${port}/${encodeURIComponent(db)}`,
      async stop() {
        if (!pidAlive(pid)) return;
        process.kill(pid, 'SIGINT'); // pgbouncer: SIGINT = safe shutdown
        for (let i = 0; i < 100 && pidAlive(pid); i++) await new Promise((r) => setTimeout(r, 50));
        await killAndWait([pid]);
      },
      async dispose() {
        await killAndWait([pid]);
        unhook();
        stopReaper(reaper);
        base.remove();
      },
    };
  }
}
