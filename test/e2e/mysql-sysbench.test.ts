import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { binary, run, sharedMariadb, skipUnless, type MariaServer } from '../harness/index.js';
import { compareWithServerAudit } from './ground-truth-mysql.js';
import { startStack, type Stack } from './stack.js';

/** Statements of one oltp_read_write event: BEGIN, 10 point selects, 4 range selects, 2 updates, delete, insert, COMMIT. */
const PER_EVENT = { READ: 14, WRITE: 4, MISC: 2 } as const;
const EVENTS = 40;

describe('sysbench oltp_read_write through the proxy', { skip: skipUnless('server_audit', 'sysbench') }, () => {
  let m: MariaServer;
  let stack: Stack;

  before(async () => {
    m = await sharedMariadb();
    stack = await startStack(`${m.host}:${m.port}`, { 'collector.protocol': 'mysql', 'audit.redact': 'none' });
  });
  after(async () => {
    await stack?.close();
  });

  function sysbench(db: string, port: number, cmd: 'prepare' | 'run', psMode: 'auto' | 'disable'): Promise<unknown> {
    return run(binary('sysbench'), [
      'oltp_read_write',
      '--db-driver=mysql',
      `--mysql-host=${m.host}`,
      `--mysql-port=${port}`,
      `--mysql-user=${m.tcpUser.name}`,
      `--mysql-password=${m.tcpUser.password}`,
      `--mysql-db=${db}`,
      '--mysql-ssl=off',
      '--tables=1',
      '--table-size=1000',
      '--threads=1',
      `--events=${EVENTS}`,
      '--time=0',
      `--db-ps-mode=${psMode}`,
      cmd,
    ]);
  }

  for (const psMode of ['auto', 'disable'] as const) {
    test(`${EVENTS} events, ${psMode === 'auto' ? 'server-side prepared statements' : 'text protocol'}: exact counts per class, no anomaly, server_audit agrees`, async (t) => {
      const db = await m.createDatabase(`sb_${psMode}`);
      await sysbench(db, m.port, 'prepare', psMode); // directly: the table setup is not part of the audited run
      const from = m.logOffset();
      await sysbench(db, stack.proxyPort, 'run', psMode);
      const evs = await stack.waitForEvents((e) => e.some((x) => x.kind === 'session_end') && e.filter((x) => x.kind === 'statement').length >= 20 * EVENTS, { database: db });
      const stmts = evs.filter((e) => e.kind === 'statement');
      const byClass: Record<string, number> = {};
      for (const e of stmts) byClass[e.statementClass] = (byClass[e.statementClass] ?? 0) + 1;
      assert.deepEqual(byClass, { READ: PER_EVENT.READ * EVENTS, WRITE: PER_EVENT.WRITE * EVENTS, MISC: PER_EVENT.MISC * EVENTS });
      assert.equal(evs.filter((e) => e.kind === 'anomaly').length, 0);
      assert.equal(stmts.filter((e) => e.errorCode !== '').length, 0);
      assert.equal(evs.filter((e) => e.kind === 'login_success').length, evs.filter((e) => e.kind === 'session_start').length);
      // Rows: each point select returns 1 row, each range select 100 (table of 1000 rows, range 100).
      const rows = stmts.filter((e) => e.statement.startsWith('SELECT c FROM sbtest1 WHERE id BETWEEN')).map((e) => Number(e.rows));
      assert.ok(rows.length === 2 * EVENTS && rows.every((n) => n === 100), `range rows ${rows.slice(0, 4)}`);
      if (psMode === 'auto') assert.ok(stmts.filter((e) => e.preparedName !== '').length >= 18 * EVENTS);
      // Only the connections that went through the proxy (the direct `prepare` run may still be flushing its lines).
      const ids = new Set(evs.filter((e) => e.kind === 'login_success').map((e) => Number(/connection_id=(\d+)/.exec(e.detail)?.[1])));
      const ours = (e: { connectionId: number; database: string }): boolean => ids.has(e.connectionId) && e.database === db;
      const entries = await m.waitAuditLog((e) => e.filter((x) => x.operation === 'QUERY' && ours(x)).length >= 20 * EVENTS, from);
      const report = compareWithServerAudit(entries.filter(ours), evs, [m.tcpUser.name]);
      t.diagnostic(report.summary);
      assert.deepEqual(report.missing, []);
      assert.deepEqual(report.extra, []);
      assert.deepEqual([report.connections.missing, report.connections.extra], [[], []]);
      assert.equal(report.logged, 20 * EVENTS);
    });
  }
});
