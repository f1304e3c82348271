// Building blocks of the chaos run (scripts/chaos.ts): real dbaudit
// processes on loopback, a pgbench load that keeps reconnecting, and the
// reconciliation of what PostgreSQL executed (pgaudit's log) with what each
// region stored.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { join } from 'node:path';
import pg from 'pg';
import { binary } from '../test/harness/index.js';

const BIN = join(import.meta.dirname, '../bin/dbaudit.js');

/** Keys every process gets in its environment: cache keys, the collectors' trail key (one for the fleet) and the gateways' seal key. */
export const KEYS = {
  DBAUDIT_CACHE_KEY: randomBytes(32).toString('base64'),
  DBAUDIT_REPLICATION_KEY: randomBytes(32).toString('base64'),
  DBAUDIT_TRAIL_KEY: randomBytes(32).toString('base64'),
  DBAUDIT_SEAL_KEY: randomBytes(32).toString('base64'),
};

/** One dbaudit process that can be started, killed with SIGKILL, stopped (SIGSTOP) and continued. */
export class Proc {
  child: ChildProcess | undefined;
  readonly name: string;
  readonly args: string[];
  readonly port: number;

  constructor(name: string, args: string[], port: number) {
    this.name = name;
    this.args = args;
    this.port = port;
  }

  async start(): Promise<void> {
    this.child = spawn(process.execPath, [BIN, ...this.args, '--log-level', 'error'], { env: { ...process.env, ...KEYS }, stdio: ['ignore', 'ignore', 'inherit'] });
    const deadline = Date.now() + 60_000;
    while (!(await canConnect(this.port))) {
      if (Date.now() > deadline || this.child.exitCode !== null) throw new Error(`${this.name} did not start`);
      await sleep(100);
    }
  }

  async kill9(): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null) return;
    c.kill('SIGKILL');
    await new Promise((r) => c.once('exit', r));
  }

  pause(): void {
    this.child?.kill('SIGSTOP');
  }

  resume(): void {
    this.child?.kill('SIGCONT');
  }

  async stop(): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null) return;
    c.kill('SIGCONT');
    c.kill('SIGTERM');
    await Promise.race([new Promise((r) => c.once('exit', r)), sleep(30_000)]);
    if (c.exitCode === null) await this.kill9();
  }
}

export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * pgbench -S in short segments against one proxy, again and again until
 * stopped, so clients come back after their proxy was killed. Counts the
 * transactions pgbench reports as processed.
 */
export class Load {
  #running = false;
  #done: Promise<void> | undefined;
  transactions = 0;
  failedSegments = 0;
  readonly port: number;
  readonly db: string;
  readonly clients: number;

  constructor(port: number, db: string, clients: number) {
    this.port = port;
    this.db = db;
    this.clients = clients;
  }

  start(): void {
    this.#running = true;
    this.#done = (async () => {
      while (this.#running) {
        const out = await pgbenchSegment(this.port, this.db, this.clients, 3);
        const m = /number of transactions actually processed: (\d+)/.exec(out);
        if (m) this.transactions += Number(m[1]);
        else this.failedSegments++;
        if (!m) await sleep(200);
      }
    })();
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#done;
  }
}

function pgbenchSegment(port: number, db: string, clients: number, seconds: number): Promise<string> {
  return new Promise((resolve) => {
    const p = spawn(binary('pgbench'), ['-n', '-S', '-M', 'prepared', '-c', String(clients), '-j', '2', '-T', String(seconds), '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', db], {
      env: { ...process.env, PGSSLMODE: 'disable' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    p.stdout.on('data', (b: Buffer) => (out += b.toString()));
    p.stderr.on('data', (b: Buffer) => (out += b.toString()));
    p.on('close', () => resolve(out));
  });
}

/** Statement events of `db` stored in a region's PostgreSQL store since `sinceMs`: id → received time (ms). */
export async function storedSince(storeUrl: string, db: string, sinceMs: number): Promise<Map<string, number>> {
  const c = new pg.Client({ connectionString: storeUrl });
  await c.connect();
  try {
    const r = await c.query<{ event_id: string; received_ms: string }>(
      `select event_id::text as event_id, round(extract(epoch from received_at) * 1000)::text as received_ms
         from events where database_name = $1 and kind = 'statement' and time_us >= $2`,
      [db, sinceMs * 1000],
    );
    return new Map(r.rows.map((x) => [x.event_id, Number(x.received_ms)]));
  } finally {
    await c.end();
  }
}

/** First time (ms) an event of `collector` was received after `afterMs`, in a store. */
export async function firstReceivedAfter(storeUrl: string, collector: string, afterMs: number): Promise<number | undefined> {
  const c = new pg.Client({ connectionString: storeUrl });
  await c.connect();
  try {
    const r = await c.query<{ ms: string | null }>(`select round(extract(epoch from min(received_at)) * 1000)::text as ms from events where collector_id = $1 and received_at > to_timestamp($2 / 1000.0)`, [collector, afterMs]);
    return r.rows[0].ms === null ? undefined : Number(r.rows[0].ms);
  } finally {
    await c.end();
  }
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}
