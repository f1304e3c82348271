import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { loadConfig } from '../../lib/config.js';
import { silentLogger } from '../../lib/log.js';
import { GatewayMetrics } from '../../lib/metrics.js';
import { startGateway, type GatewayHandle } from '../../gateway/server.js';
import type { AuditEvent } from '../../proxy/events.js';
import { freePort, makeTempDir, sharedMariadb, sharedPostgres, skipUnless } from '../harness/index.js';
import { TEST_CACHE_KEY } from '../e2e/stack.js';

/**
 * Statements longer than the proxy will hold (1 MiB, or twice
 * max_statement_bytes) stream through: the event keeps a redacted head and
 * the whole length, the session stays audited, and memory does not grow
 * with the statement. Before: each session buffered its statement whole up
 * to 64 MiB (10 sessions trickling 60 MiB statements took the proxy from
 * 110 to 717 MB RSS), and one over 64 MiB stopped the session's audit.
 */

const MB = 1024 * 1024;
/** The stated bound on the proxy's growth while 10 sessions are each 30 MiB into a 60 MiB statement (measured +31 to +49 MB; holding the statements took +600 MB). */
const GROWTH_BOUND_MB = 100;

function rssMb(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
}

interface Proxy {
  port: number;
  process: ChildProcess;
  gateway: GatewayHandle;
  close(): Promise<void>;
  events(app: string): Promise<AuditEvent[]>;
}

/** A gateway here and the proxy in a child process (its memory is its own), as run in production. */
async function startProxy(upstream: string, extra: string[]): Promise<Proxy> {
  const dir = makeTempDir('giant');
  const { config } = loadConfig({ argv: [], env: {}, scope: 'gateway', defaults: { 'gateway.listen': '127.0.0.1:0', 'gateway.data_dir': join(dir.dir, 'gw'), 'log.level': 'silent' } });
  const gateway = await startGateway({ config, logger: silentLogger, metrics: new GatewayMetrics({ defaultMetrics: false }) });
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [join(import.meta.dirname, '../../bin/dbaudit.js'), 'proxy', '--listen', `127.0.0.1:${port}`, '--upstream', upstream, '--gateway', gateway.address,
      '--cache-dir', join(dir.dir, 'cache'), '--http', '127.0.0.1:0', '--log-level', 'error', '--collector.id', 'giant', '--audit.redact', 'literals', ...extra],
    { env: { ...process.env, DBAUDIT_CACHE_KEY: TEST_CACHE_KEY }, stdio: ['ignore', 'inherit', 'inherit'] },
  );
  for (let i = 0; ; i++) {
    const up = await new Promise<boolean>((r) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => (s.destroy(), r(true)));
      s.on('error', () => r(false));
    });
    if (up) break;
    if (i > 300 || child.exitCode !== null) throw new Error('proxy did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port,
    process: child,
    gateway,
    async events(app) {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const evs = (await gateway.store.search({ limit: 10_000 })).reverse().filter((e) => e.applicationName === app);
        if (evs.some((e) => e.kind === 'session_end') || Date.now() > deadline) return evs;
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async close() {
      child.kill('SIGTERM');
      if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
      await gateway.close();
      dir.remove();
    },
  };
}

/** A Query message of `size` bytes of SQL: select length('xxx…') (a valid statement of any size). */
function bigQuery(size: number): { sql: Buffer; message: Buffer } {
  const sql = Buffer.alloc(size, 0x78);
  sql.write("select length('", 0);
  sql.write("')", size - 2);
  const message = Buffer.alloc(5 + size + 1);
  message[0] = 0x51;
  message.writeInt32BE(4 + size + 1, 1);
  sql.copy(message, 5);
  return { sql, message };
}

describe('PostgreSQL: statements too long to hold stream through', { skip: skipUnless('postgres') }, () => {
  let proxy: Proxy;
  let db: string;
  before(async () => {
    const server = await sharedPostgres({ pgaudit: true, passwordAuth: true });
    db = await server.createDatabase('giant');
    proxy = await startProxy(`${server.host}:${server.port}`, []);
  });
  after(async () => proxy?.close());

  test('10 sessions each half-way through a 60 MiB statement: the proxy holds a head per session, not the statements', async (t) => {
    const base = rssMb(proxy.process.pid!);
    const { message } = bigQuery(60 * MB);
    const clients: pg.Client[] = [];
    for (let i = 0; i < 10; i++) {
      const c = new pg.Client({ host: '127.0.0.1', port: proxy.port, user: 'postgres', database: db, application_name: `half-${i}` });
      c.on('error', () => undefined);
      await c.connect();
      const sock = (c as unknown as { connection: { stream: net.Socket } }).connection.stream;
      // Half the statement, written as the socket drains: the proxy has read it all when the write callback runs.
      await new Promise<void>((resolve) => sock.write(message.subarray(0, 30 * MB), () => resolve()));
      clients.push(c);
    }
    const growth = rssMb(proxy.process.pid!) - base;
    t.diagnostic(`proxy RSS ${base.toFixed(0)} MB before, +${growth.toFixed(0)} MB with 10 sessions each 30 MiB into a 60 MiB statement`);
    for (const c of clients) (c as unknown as { connection: { stream: net.Socket } }).connection.stream.destroy();
    assert.ok(growth < GROWTH_BOUND_MB, `proxy grew ${growth.toFixed(0)} MB holding 10 half-sent 60 MiB statements`);
    assert.equal(proxy.process.exitCode, null);
  });

  test('a 70 MiB statement (over the old 64 MiB cap, which stopped the audit): run by the server, audited with its head and whole length, and the session stays audited', async () => {
    const { sql } = bigQuery(70 * MB);
    const c = new pg.Client({ host: '127.0.0.1', port: proxy.port, user: 'postgres', database: db, application_name: 'giant-70' });
    await c.connect();
    const r = await c.query(sql.toString('latin1'));
    assert.equal(Number(r.rows[0].length), 70 * MB - "select length('')".length);
    assert.equal((await c.query('select 42 as n')).rows[0].n, 42);
    await c.end();
    const evs = await proxy.events('giant-70');
    assert.deepEqual(evs.map((e) => e.kind), ['session_start', 'login_success', 'statement', 'statement', 'session_end']);
    const [big, next] = evs.filter((e) => e.kind === 'statement');
    // The head ends inside the string: literals mode keeps it as ? (what follows streamed through unread).
    assert.deepEqual([big!.statement, big!.statementLength, big!.statementTruncated, big!.commandTag, big!.rows], ['select length(?', BigInt(70 * MB), true, 'SELECT', 1n]);
    assert.deepEqual([next!.statement, next!.commandTag], ['select ? as n', 'SELECT']);
  });
});

describe('MySQL: commands too long to hold stream through', { skip: skipUnless('mariadb') }, () => {
  let proxy: Proxy;
  let db: string;
  let m: Awaited<ReturnType<typeof sharedMariadb>>;
  before(async () => {
    m = await sharedMariadb();
    await m.mysql('SET GLOBAL max_allowed_packet = 134217728');
    db = await m.createDatabase('giant');
    proxy = await startProxy(`${m.host}:${m.port}`, ['--protocol', 'mysql', '--audit.log_parameters', 'true']);
  });
  after(async () => proxy?.close());

  test('a 70 MiB query (five packets) and a 20 MiB execute value: run by the server, audited from their heads, the session stays audited', async () => {
    const c = await mysql.createConnection({ host: '127.0.0.1', port: proxy.port, user: m.tcpUser.name, password: m.tcpUser.password, database: db, connectAttributes: { program_name: 'giant-my' } });
    await c.query('CREATE TABLE b (id INT, v LONGBLOB)');
    const blob = 'y'.repeat(70 * MB);
    await c.query(`INSERT INTO b VALUES (1, '${blob}')`);
    await c.execute('INSERT INTO b VALUES (?, ?)', [2, Buffer.alloc(20 * MB, 0x7a)]);
    const [rows] = await c.query('SELECT id, LENGTH(v) AS n FROM b ORDER BY id');
    assert.deepEqual((rows as { id: number; n: number }[]).map((x) => [x.id, Number(x.n)]), [[1, 70 * MB], [2, 20 * MB]]);
    await c.end();
    const evs = await proxy.events('giant-my');
    assert.equal(evs.filter((e) => e.kind === 'anomaly').length, 0);
    const st = evs.filter((e) => e.kind === 'statement');
    assert.deepEqual(
      st.map((e) => [e.statement, e.statementTruncated, e.commandTag, Number(e.rows)]),
      [
        ['CREATE TABLE b (id INT, v LONGBLOB)', false, 'CREATE TABLE', 0],
        ['INSERT INTO b VALUES (?, ?', true, 'INSERT', 1],
        ['INSERT INTO b VALUES (?, ?)', false, 'INSERT', 1],
        ['SELECT id, LENGTH(v) AS n FROM b ORDER BY id', false, 'SELECT', 2],
      ],
    );
    assert.equal(st[1]!.statementLength, BigInt(blob.length + "INSERT INTO b VALUES (1, '')".length));
    // The value is kept as far as max_statement_bytes (64 KB), as for any long value.
    assert.deepEqual(st[2]!.parameters.map((p) => p.length), [1, 64 * 1024]);
  });
});
