import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../../lib/config.js';
import { silentLogger } from '../../lib/log.js';
import { GatewayMetrics } from '../../lib/metrics.js';
import { startGateway, type GatewayHandle } from '../../gateway/server.js';
import { binary, freePort, makeTempDir, run, sharedPostgres, skipUnless, type PgServer } from '../harness/index.js';
import { compareWithPgaudit } from './ground-truth.js';
import { startStack, TEST_CACHE_KEY, type Stack } from './stack.js';

function pgbench(args: string[], port: number, db: string, opts: { allowFail?: boolean; cwd?: string } = {}) {
  return run(binary('pgbench'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', ...args, db], {
    env: { ...process.env, PGSSLMODE: 'disable' },
    timeoutMs: 180_000,
    allowFail: opts.allowFail,
    cwd: opts.cwd,
  });
}

describe('PostgreSQL through the proxy: pgbench', { skip: skipUnless('pgaudit', 'pgbench') }, () => {
  let pg: PgServer;
  let stack: Stack;

  before(async () => {
    pg = await sharedPostgres({ pgaudit: true, passwordAuth: true });
    stack = await startStack(`${pg.host}:${pg.port}`);
  });
  after(async () => {
    await stack?.close();
  });

  test('pgbench -i and a pgbench -t run: every statement pgaudit logged is stored exactly once', async (t) => {
    const db = await pg.createDatabase('bench');
    const from = pg.logOffset();
    await pgbench(['-i', '-s', '1', '-q'], stack.proxyPort, db);
    const clients = 2;
    const perClient = 25;
    await pgbench(['-n', '-c', String(clients), '-t', String(perClient), '-M', 'extended'], stack.proxyPort, db);
    // TPC-B is 7 statements a transaction (BEGIN, 3 UPDATE, SELECT, INSERT, END).
    const evs = await stack.waitForEvents(
      // Sessions: pgbench -i, pgbench's own first connection, then one per client.
      (e) => e.filter((x) => x.kind === 'session_end').length >= 2 + clients,
      { database: db },
      60_000,
    );
    const stmts = evs.filter((e) => e.kind === 'statement');
    const audit = pg.auditLog(from).filter((a) => a.database === db);
    const report = compareWithPgaudit(audit, stmts);
    t.diagnostic(report.summary);
    assert.deepEqual(report.missing, []);
    assert.deepEqual(report.extra, []);
    const txns = clients * perClient;
    const byTag = (tag: string, table: string): number => stmts.filter((e) => e.commandTag === tag && e.statement.includes(table)).length;
    assert.equal(byTag('UPDATE', 'pgbench_accounts'), txns);
    assert.equal(byTag('SELECT', 'pgbench_accounts'), txns);
    assert.equal(byTag('UPDATE', 'pgbench_tellers'), txns);
    assert.equal(byTag('UPDATE', 'pgbench_branches'), txns);
    assert.equal(byTag('INSERT', 'pgbench_history'), txns);
    assert.equal(stmts.filter((e) => e.commandTag === 'BEGIN' && e.statement.startsWith('BEGIN')).length, txns);
    assert.equal(stmts.filter((e) => e.commandTag === 'COMMIT' && e.statement.startsWith('END')).length, txns);
    assert.equal(stmts.filter((e) => e.parameters.length > 0).length, 0, 'parameters are off by default');
    assert.equal(stmts.filter((e) => e.errorCode !== '').length, 0);
    assert.equal(new Set(evs.map((e) => e.eventId)).size, evs.length);
  });
});

describe('kill -9 of the proxy during pgbench', { skip: skipUnless('pgaudit', 'pgbench') }, () => {
  let pg: PgServer;
  let gateway: GatewayHandle;
  const dir = makeTempDir('kill9');

  before(async () => {
    pg = await sharedPostgres({ pgaudit: true, passwordAuth: true });
    const { config } = loadConfig({
      argv: [],
      env: {},
      scope: 'gateway',
      defaults: { 'gateway.listen': '127.0.0.1:0', 'gateway.data_dir': join(dir.dir, 'gateway'), 'log.level': 'silent' },
    });
    gateway = await startGateway({ config, logger: silentLogger, metrics: new GatewayMetrics({ defaultMetrics: false }) });
  });
  after(async () => {
    await gateway?.close();
    dir.remove();
  });

  async function startProxy(port: number): Promise<ChildProcess> {
    const child = spawn(
      process.execPath,
      [
        join(import.meta.dirname, '../../bin/dbaudit.js'),
        'proxy',
        '--listen', `127.0.0.1:${port}`,
        '--upstream', `${pg.host}:${pg.port}`,
        '--gateway', gateway.address,
        '--cache-dir', join(dir.dir, 'cache'),
        '--http', '127.0.0.1:0',
        '--log-level', 'warn',
        '--collector.id', 'kill9',
        '--collector.retry.initial_delay', '100ms',
      ],
      { env: { ...process.env, DBAUDIT_CACHE_KEY: TEST_CACHE_KEY }, stdio: ['ignore', 'inherit', 'inherit'] },
    );
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (await canConnect(port)) return child;
      if (child.exitCode !== null || Date.now() > deadline) throw new Error('proxy did not start');
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  test('every statement whose result pgbench received is at the gateway once', async (t) => {
    const db = await pg.createDatabase('kill9');
    await pgbench(['-i', '-s', '1', '-q'], pg.port, db);
    const port = await freePort();
    const logDir = makeTempDir('kill9-log');
    let proxy = await startProxy(port);
    const clients = 4;
    const bench = pgbench(['-n', '-c', String(clients), '-T', '20', '-l', '--log-prefix', join(logDir.dir, 'tx')], port, db, { allowFail: true });
    await new Promise((r) => setTimeout(r, 2_500));
    proxy.kill('SIGKILL');
    await new Promise((r) => proxy.once('exit', r));
    const result = await bench;
    assert.notEqual(result.code, 0, 'pgbench should have lost its connections');
    // Transactions pgbench completed, per client, from its per-transaction log.
    const completed = new Map<number, number>();
    for (const f of readdirSync(logDir.dir)) {
      for (const line of readFileSync(join(logDir.dir, f), 'utf8').split('\n')) {
        const [client] = line.split(' ');
        if (client !== '' && client !== undefined) completed.set(Number(client), (completed.get(Number(client)) ?? 0) + 1);
      }
    }
    const totalTx = [...completed.values()].reduce((a, b) => a + b, 0);
    assert.ok(totalTx > 0, 'pgbench completed no transaction before the kill');

    proxy = await startProxy(port);
    try {
      const count = async (): Promise<number> => (await gateway.store.search({ database: db, kind: 'statement', limit: 10_000 })).length;
      // Restarted, the proxy ships what the killed one had cached; wait until the count settles.
      let last = -1;
      for (let i = 0; i < 100; i++) {
        const n = await count();
        if (n === last && n > 0) break;
        last = n;
        await new Promise((r) => setTimeout(r, 300));
      }
      const stmts = (await gateway.store.search({ database: db, kind: 'statement', limit: 10_000 })).reverse();
      const bySession = new Map<string, number>();
      for (const e of stmts) if (e.commandTag === 'END' || e.commandTag === 'COMMIT') bySession.set(e.sessionId, (bySession.get(e.sessionId) ?? 0) + 1);
      // Each client is one session: match the largest counts with each other.
      const stored = [...bySession.values()].sort((a, b) => b - a);
      const done = [...completed.values()].sort((a, b) => b - a);
      t.diagnostic(`transactions completed by pgbench per client ${JSON.stringify(done)}; COMMITs stored per session ${JSON.stringify(stored)}`);
      assert.equal(stored.length, clients);
      for (let i = 0; i < done.length; i++) assert.ok(stored[i] >= done[i], `session ${i}: ${stored[i]} stored < ${done[i]} completed`);
      const report = compareWithPgaudit(pg.auditLog().filter((a) => a.database === db && a.client.startsWith('127.0.0.1')), stmts);
      t.diagnostic(report.summary);
      assert.deepEqual(report.extra, [], 'an event was stored twice or for a statement that never ran');
      assert.equal(new Set(stmts.map((e) => e.eventId)).size, stmts.length);
    } finally {
      proxy.kill('SIGTERM');
      await new Promise((r) => proxy.once('exit', r));
      logDir.remove();
    }
  });
});

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
