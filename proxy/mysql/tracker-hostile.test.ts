import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Com, MAX_PACKET_PAYLOAD, Type } from './packets.js';
import * as B from './test-builders.js';
import { TestSession, type Step } from './test-session.js';
import { DEFAULT_MYSQL_LIMITS, maxTrackerBuffered, type MysqlLimits } from './tracker.js';

const cat = Buffer.concat;
const [G, HR, OK] = B.login();
const LOGIN: Step[] = [['s', G], ['c', HR], ['s', OK]];
const SMALL: MysqlLimits = { ...DEFAULT_MYSQL_LIMITS, statement: 4096, control: 256, server: 1024, handshake: 1024, pendingOps: 8, pendingBytes: 8192, statements: 4, statementBytes: 4096 };

/** Runs `steps`, then more traffic: decoding stopped, so nothing else is recorded, and nothing throws. */
function hostile(steps: Step[], limits: MysqlLimits = SMALL): TestSession {
  const s = new TestSession({ logParameters: true }, limits);
  s.run(steps).run([['c', B.query('SELECT 1')], ['s', B.resultSet(1, ['1'], [['1']])]]).end();
  assert.ok(s.maxBuffered <= maxTrackerBuffered(limits), `buffered ${s.maxBuffered}`);
  assert.equal(s.events.filter((e) => e.kind === 'anomaly').length, s.anomalies.length);
  assert.equal(s.events.at(-1)!.kind, 'session_end');
  return s;
}

describe('mysql tracker: hostile input', () => {
  it('test-not-a-mysql-server: garbage instead of the greeting', () => {
    assert.deepEqual(hostile([['s', Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n')]]).anomalies, ['oversized_message']);
    assert.deepEqual(hostile([['s', B.packets(0, Buffer.from([9, 1, 2, 3]))]]).anomalies, ['unsupported_protocol']);
    assert.deepEqual(hostile([['s', B.packets(0, Buffer.from([10, 0x41]))]]).anomalies, ['bad_message']);
  });

  it('test-client-speaks-first: client bytes before the greeting', () => {
    assert.deepEqual(hostile([['c', B.query('SELECT 1')]]).anomalies, ['out_of_sync']);
  });

  it('test-handshake-response-truncated-fields: user without NUL, attributes longer than the packet', () => {
    const hr = B.handshakeResponse({ db: 'd' });
    assert.deepEqual(hostile([['s', G], ['c', B.packets(1, hr.subarray(4, 40))]]).anomalies, ['bad_message']);
    const attrsLie = Buffer.from(hr);
    attrsLie[attrsLie.indexOf('mysql_native_password\0') + 'mysql_native_password\0'.length] = 0xfa; // attributes claim 250 bytes
    assert.deepEqual(hostile([['s', G], ['c', attrsLie]]).anomalies, ['bad_message']);
  });

  it('test-packet-length-over-cap: a command over the cap is audited from its head with its whole length; the rest streams through unread', () => {
    for (const redact of ['literals', 'none'] as const) {
      const sql = `SELECT 'a', ${'1'.repeat(10_000)}`;
      const s = new TestSession({ redact, maxStatementBytes: 100 }, SMALL);
      s.run([...LOGIN, ['c', B.query(sql)]], 7).run([['s', B.resultSet(1, ['a'], [['a']])], ['c', B.query('SELECT 2')], ['s', B.resultSet(1, ['2'], [['2']])]]).end();
      assert.deepEqual(s.anomalies, []);
      assert.ok(s.maxBuffered <= maxTrackerBuffered(SMALL), `buffered ${s.maxBuffered}`);
      const st = s.events.filter((e) => e.kind === 'statement');
      assert.deepEqual(st.map((e) => [e.statement, e.statementLength, e.statementTruncated]), [
        [redact === 'literals' ? 'SELECT ?, ?' : `SELECT 'a', ${'1'.repeat(100 - 12)}`, BigInt(sql.length), true],
        [redact === 'literals' ? 'SELECT ?' : 'SELECT 2', 8n, false],
      ]);
    }
  });

  it('test-continuation-chain-over-cap: a command of several packets is audited from its head; every continuation streams through, counted in its length', () => {
    const sql = Buffer.alloc(MAX_PACKET_PAYLOAD + 10, 0x20);
    sql.write("SELECT 'x' /* ", 0);
    sql.write(' */', sql.length - 3);
    const big = B.packets(0, cat([Buffer.from([Com.Query]), sql]));
    const s = new TestSession({ redact: 'literals', maxStatementBytes: 64 }, SMALL);
    s.run(LOGIN);
    for (let i = 0; i < big.length; i += 1 << 20) s.run([['c', big.subarray(i, i + (1 << 20))]]);
    s.run([['s', B.resultSet(2, ['x'], [['x']])], ['c', B.query('SELECT 2')], ['s', B.resultSet(1, ['2'], [['2']])]]).end();
    assert.deepEqual(s.anomalies, []);
    assert.ok(s.maxBuffered <= maxTrackerBuffered(SMALL), `buffered ${s.maxBuffered}`);
    const st = s.events.filter((e) => e.kind === 'statement');
    assert.deepEqual(st.map((e) => [e.statement, e.statementLength, e.statementTruncated]), [
      ['SELECT ?', BigInt(sql.length), true],
      ['SELECT ?', 8n, false],
    ]);
  });

  it('long data and an execute over the cap: long data counted whole, the execute recorded with the values its head holds, nothing more held', () => {
    const limits = { ...SMALL, pendingBytes: 1 << 20 }; // rendered values count against the pending bound
    const s = new TestSession({ logParameters: true }, limits);
    const blob = Buffer.alloc(50_000, 0x61);
    const value = cat([Buffer.from([0xfc, 0x50, 0xc3]), blob]); // lenenc 50 000
    s.run([...LOGIN, ['c', B.prepare('INSERT INTO t VALUES (?, ?, ?)')], ['s', B.prepareOk(1, 7, 3, 0)]]);
    s.run([['c', B.sendLongData(7, 0, blob)]], 5);
    s.run([['c', B.execute(7, [{ type: Type.VarString, value }, { type: Type.VarString, value }, { type: Type.Long, value: Buffer.from([1, 0, 0, 0]) }])], ['s', B.ok(1, { affected: 1 })]], 5).end();
    assert.deepEqual(s.anomalies, []);
    assert.ok(s.maxBuffered <= maxTrackerBuffered(limits), `buffered ${s.maxBuffered}`);
    const ex = s.events.filter((e) => e.kind === 'statement').at(-1)!;
    assert.deepEqual([ex.statement, ex.rows], ['INSERT INTO t VALUES (?, ?, ?)', 1n]);
    // Parameter 0 came as long data (counted whole); 1 runs past the head (kept as far as it goes); 2 was never read.
    assert.deepEqual(ex.parameters.map((p) => p.replace(/^a+$/, `a×${p.length}`)), ['<long data: 50000 bytes>', `a×${4096 - 1 - 4 - 1 - 4 - 1 - 1 - 6 - 3}`, '<not read: past the head of a message too long to hold>']);
  });

  it('test-unknown-command: an anomaly naming the command byte, decoding stops', () => {
    const s = hostile([...LOGIN, ['c', B.command(0x99, 'abc')]]);
    assert.deepEqual(s.anomalies, ['unknown_command']);
    assert.equal(s.events.find((e) => e.kind === 'anomaly')!.detail, 'command 0x99');
    assert.equal(s.events.filter((e) => e.kind === 'statement').length, 0);
  });

  it('test-replication-commands-unsupported: COM_BINLOG_DUMP is an unknown command here', () => {
    assert.deepEqual(hostile([...LOGIN, ['c', B.command(0x12, Buffer.alloc(10))]]).anomalies, ['unknown_command']);
  });

  it('test-command-with-nonzero-sequence: out of sync', () => {
    const q = Buffer.from(B.query('SELECT 1'));
    q[3] = 5;
    assert.deepEqual(hostile([...LOGIN, ['c', q]]).anomalies, ['out_of_sync']);
  });

  it('test-server-packet-wrong-sequence and test-server-packet-unasked: out of sync', () => {
    assert.deepEqual(hostile([...LOGIN, ['c', B.query('SELECT 1')], ['s', B.ok(3)]]).anomalies, ['out_of_sync']);
    assert.deepEqual(hostile([...LOGIN, ['s', B.ok(1)]]).anomalies, ['out_of_sync']);
  });

  it('test-unsolicited-err: the server closing the session (killed) is not an anomaly; session_end names it', () => {
    const s = new TestSession().run([...LOGIN, ['s', B.err(0, 1927, '70100', 'Connection was killed')]]).end('server_disconnect');
    assert.deepEqual(s.anomalies, []);
    assert.equal(s.events.at(-1)!.detail, '1927: Connection was killed');
  });

  it('test-malformed-ok: a length-encoded integer with the 0xFF marker', () => {
    assert.deepEqual(hostile([...LOGIN, ['c', B.query('DO 1')], ['s', B.packets(1, Buffer.from([0, 0xff, 0, 2, 0, 0, 0]))]]).anomalies, ['bad_message']);
  });

  it('test-column-count-zero and test-column-count-trailing-bytes', () => {
    assert.deepEqual(hostile([...LOGIN, ['c', B.query('SELECT 1')], ['s', B.packets(1, Buffer.from([0x01, 7, 7]))]]).anomalies, ['bad_message']);
  });

  it('test-execute-bad-bound-flag and test-execute-value-past-end', () => {
    const prep: Step[] = [...LOGIN, ['c', B.prepare('SELECT ?')], ['s', B.prepareOk(1, 1, 1, 0)]];
    const bad = Buffer.from(B.execute(1, [{ type: Type.Long, value: B.V.long(1) }]));
    bad[4 + 1 + 4 + 1 + 4 + 1] = 2; // new_params_bound_flag must be 0 or 1
    assert.deepEqual(hostile([...prep, ['c', bad]]).anomalies, ['bad_message']);
    const short = B.execute(1, [{ type: Type.VarString, value: Buffer.from([0xfc, 0xff, 0xff, 0x41]) }]);
    assert.deepEqual(hostile([...prep, ['c', short]]).anomalies, ['bad_message']);
  });

  it('test-execute-unknown-type: a parameter type the protocol does not have', () => {
    const prep: Step[] = [...LOGIN, ['c', B.prepare('SELECT ?')], ['s', B.prepareOk(1, 1, 1, 0)]];
    assert.deepEqual(hostile([...prep, ['c', B.execute(1, [{ type: 0x42, value: Buffer.from([1]) }])]]).anomalies, ['bad_message']);
  });

  it('test-progress-report: MariaDB progress packets (ERR 0xFFFF) are not errors', () => {
    const progress = B.packets(1, Buffer.from([0xff, 0xff, 0xff, 1, 1, 2, 0x10, 0, 0, 3, 0x41, 0x42, 0x43]));
    const s = new TestSession().run([...LOGIN, ['c', B.query('ALTER TABLE t ADD c INT')], ['s', cat([progress, B.ok(2)])]]).end();
    assert.deepEqual(s.anomalies, []);
    assert.deepEqual(s.brief.filter((e) => e.kind === 'statement').map((e) => [e.tag, e.error]), [['ALTER TABLE', undefined]]);
  });

  it('test-pipelined-flood: more waiting commands than the bound', () => {
    const q = B.query('SELECT 1');
    assert.deepEqual(hostile([...LOGIN, ['c', cat(Array.from({ length: 20 }, () => q))]]).anomalies, ['pending_overflow']);
  });

  it('test-prepared-statement-flood: the map forgets the oldest (bounded), an execute of a forgotten one has no text', () => {
    const steps: Step[] = [...LOGIN];
    for (let i = 1; i <= 10; i++) steps.push(['c', B.prepare(`SELECT ${i}`)], ['s', B.prepareOk(1, i, 0, 1)]);
    steps.push(['c', B.execute(1, [])], ['s', B.ok(1)], ['c', B.execute(10, [])], ['s', B.ok(1)]);
    const s = new TestSession({}, SMALL).run(steps).end();
    assert.deepEqual(s.anomalies, []);
    assert.equal(s.tracker.preparedStatements, 4);
    assert.deepEqual(s.events.filter((e) => e.kind === 'statement').map((e) => e.statement), ['', 'SELECT 10']);
  });

  it('test-connection-cut-mid-packet: truncated_message, the pending statement is unfinished', () => {
    const r = B.resultSet(1, ['a'], [['1'], ['2']]);
    const s = new TestSession().run([...LOGIN, ['c', B.query('SELECT a FROM t')], ['s', r.subarray(0, r.length - 5)]]).end('server_disconnect');
    assert.deepEqual(s.anomalies, ['truncated_message']);
    assert.deepEqual(s.brief.filter((e) => e.kind === 'statement').map((e) => [e.rows, e.reason]), [[2, 'connection_closed']]);
  });

  it('test-after-anomaly-bytes-ignored: later traffic of any size is not decoded, not buffered, and never throws', () => {
    const s = new TestSession({}, SMALL).run([...LOGIN, ['c', B.command(0x99)], ['c', Buffer.alloc(1 << 20, 0xff)], ['s', Buffer.alloc(1 << 20, 0xfe)]]).end();
    assert.deepEqual(s.anomalies, ['unknown_command']);
    assert.equal(s.tracker.bufferedBytes, 0);
    assert.equal(Number(s.events.at(-1)!.bytesFromClient), HR.length + B.command(0x99).length + (1 << 20));
  });

  it('test-emit-throws: a failing sink does not escape the tracker', () => {
    const s = new TestSession();
    const t = s.tracker;
    const thrower = new TestSession();
    void thrower;
    s.run(LOGIN);
    (s as unknown as { events: unknown[] }).events.push = () => {
      throw new Error('sink broken');
    };
    assert.doesNotThrow(() => t.clientData(B.query('SELECT 1')));
    assert.doesNotThrow(() => t.serverData(B.resultSet(1, ['1'], [['1']])));
    assert.doesNotThrow(() => t.end('client_disconnect'));
  });
});
