import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import mysql from 'mysql2/promise';
import { makeTempDir, sharedMariadb, skipUnless, type MariaServer } from '../harness/index.js';
import type { AuditEvent } from '../../proxy/events.js';
import { compareWithServerAudit } from './ground-truth-mysql.js';
import { brief, eventJson, startStack, type Stack } from './stack.js';

describe('MariaDB through the proxy: the mariadb client and mysql2', { skip: skipUnless('server_audit') }, () => {
  let m: MariaServer;
  let stack: Stack;
  const tmp = makeTempDir('mysql-e2e');

  before(async () => {
    m = await sharedMariadb();
    // Values asserted exactly: redaction off, parameters on.
    stack = await startStack(`${m.host}:${m.port}`, { 'collector.protocol': 'mysql', 'audit.redact': 'none', 'audit.log_parameters': true, 'collector.limits.max_statement_bytes': '4KB' });
  });
  after(async () => {
    await stack?.close();
    tmp.remove();
  });

  const user = (): string => m.tcpUser.name;
  const through = (db: string) => ({ host: stack.proxyHost, port: stack.proxyPort, user: m.tcpUser.name, password: m.tcpUser.password, db });

  async function connect(db: string, extra: mysql.ConnectionOptions = {}): Promise<mysql.Connection> {
    return mysql.createConnection({ host: stack.proxyHost, port: stack.proxyPort, user: user(), password: m.tcpUser.password, database: db, ...extra });
  }

  /** Events of the sessions that ended `n` times in `db`, oldest first. */
  async function sessionEvents(db: string, ends = 1): Promise<AuditEvent[]> {
    return stack.waitForEvents((e) => e.filter((x) => x.kind === 'session_end').length >= ends, { database: db });
  }

  /** server_audit's lines for the sessions in `evs` (by connection id), compared with their stored statements. */
  async function groundTruth(t: { diagnostic(s: string): void }, from: number, evs: AuditEvent[]): Promise<void> {
    const ids = new Set(evs.filter((e) => e.kind === 'login_success' || e.kind === 'login_failure').map((e) => Number(/connection_id=(\d+)/.exec(e.detail)?.[1])));
    const expected = evs.filter((e) => e.kind === 'statement' && e.commandTag !== 'INIT_DB').length;
    const ours = (e: { connectionId: number; operation: string }): boolean => ids.has(e.connectionId) && e.operation === 'QUERY';
    const entries = (await m.waitAuditLog((e) => e.filter(ours).length >= expected, from)).filter((e) => ids.has(e.connectionId));
    const report = compareWithServerAudit(entries, evs, [user()]);
    t.diagnostic(report.summary);
    assert.deepEqual(report.missing, []);
    assert.deepEqual(report.extra, []);
    assert.deepEqual(report.connections.missing, []);
    assert.deepEqual(report.connections.extra, []);
  }

  test('the mariadb client: a script, an error, USE (COM_INIT_DB): exact events, server_audit agrees', async (t) => {
    const db = await m.createDatabase('cli');
    const from = m.logOffset();
    const r = await m.mysqlResult(
      [
        'CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20));',
        "INSERT INTO items VALUES (1, 'one'), (2, 'two'), (3, 'it''s');",
        'SELECT * FROM items ORDER BY id;',
        "UPDATE items SET name = 'uno' WHERE id = 1;",
        'SELECT * FROM no_such_table;',
        'DELETE FROM items WHERE id > 1;',
      ].join('\n'),
      { ...through(db), force: true, allowError: true },
    );
    assert.match(r.stderr, /1146/);
    const evs = await sessionEvents(db);
    const u = user();
    const base = { kind: 'statement', user: u, database: db };
    assert.deepEqual(evs.map(brief), [
      { kind: 'session_start', user: u, database: db },
      { kind: 'login_success', user: u, database: db },
      { ...base, statement: 'CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20))', tag: 'CREATE TABLE', rows: 0 },
      { ...base, statement: "INSERT INTO items VALUES (1, 'one'), (2, 'two'), (3, 'it''s')", tag: 'INSERT', rows: 3 },
      { ...base, statement: 'SELECT * FROM items ORDER BY id', tag: 'SELECT', rows: 3 },
      { ...base, statement: "UPDATE items SET name = 'uno' WHERE id = 1", tag: 'UPDATE', rows: 1 },
      { ...base, statement: 'SELECT * FROM no_such_table', rows: 0, error: '1146' },
      { ...base, statement: 'DELETE FROM items WHERE id > 1', tag: 'DELETE', rows: 2 },
      { kind: 'session_end', user: u, database: db, reason: 'client_terminate' },
    ]);
    const err = evs.find((e) => e.errorCode === '1146')!;
    assert.equal(err.sqlstate, '42S02');
    assert.equal(evs[0]!.applicationName, 'mysql'); // the mariadb client's program_name attribute
    assert.deepEqual(evs.filter((e) => e.kind === 'statement').map((e) => e.statementClass), ['DDL', 'WRITE', 'READ', 'WRITE', 'READ', 'WRITE']);
    await groundTruth(t, from, evs);

    // USE in the client is COM_INIT_DB: the session's database changes and is recorded.
    const other = await m.createDatabase('cli2');
    const from2 = m.logOffset();
    await m.mysql(`USE ${other}; SELECT 7;`, through(db));
    const evs2 = await stack.waitForEvents((e) => e.some((x) => x.kind === 'session_end' && x.database === other), {});
    const sid = evs2.find((e) => e.database === other && e.kind === 'statement')!.sessionId;
    const mine = evs2.filter((e) => e.sessionId === sid);
    assert.deepEqual(mine.map((e) => [e.kind, e.database]).slice(0, 2), [['session_start', db], ['login_success', db]]);
    const stmts = mine.filter((e) => e.kind === 'statement').map(brief);
    assert.deepEqual(stmts.slice(-2), [
      { kind: 'statement', user: u, database: other, statement: `USE \`${other}\``, tag: 'INIT_DB', rows: 0 },
      { kind: 'statement', user: u, database: other, statement: 'SELECT 7', tag: 'SELECT', rows: 1 },
    ]);
    await groundTruth(t, from2, mine);
  });

  test('mysql2: query, execute with parameters of every common type, errors, ping, USE by query', async (t) => {
    const db = await m.createDatabase('m2');
    const db2 = await m.createDatabase('m2b');
    const from = m.logOffset();
    const c = await connect(db, { connectAttributes: { program_name: 'm2-basic' } });
    await c.query('CREATE TABLE t (id INT PRIMARY KEY, score DOUBLE, name VARCHAR(40), at DATETIME, data BLOB, big BIGINT)');
    await c.execute('INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)', [1, 1.5, 'a "b"', new Date(Date.UTC(2026, 0, 2, 3, 4, 5)), Buffer.from([0, 1, 2, 255]), 9007199254740993n]);
    await c.execute('INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)', [2, -0.25, "it's", null, null, -5]);
    const [rows] = await c.execute('SELECT id FROM t WHERE score > ? ORDER BY id', [-1]);
    assert.equal((rows as unknown[]).length, 2);
    await assert.rejects(c.execute('INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)', [1, 0, 'dup', null, null, 0]), /Duplicate entry/);
    await assert.rejects(c.query('SELECT * FROM missing_table'), /doesn't exist/);
    await c.ping(); // COM_PING: answered, not a statement
    await c.query(`USE \`${db2}\``); // COM_QUERY USE: the database follows (the server tracks the schema)
    await c.query('SELECT 2');
    await c.end();
    const all = await stack.waitForEvents((e) => e.some((x) => x.kind === 'session_end' && x.database === db2));
    const sid = all.find((e) => e.kind === 'session_start' && e.database === db)!.sessionId;
    const evs = all.filter((e) => e.sessionId === sid);
    const u = user();
    const base = { kind: 'statement', user: u, database: db };
    const ins = 'INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)';
    assert.deepEqual(evs.filter((e) => e.kind === 'statement').map(brief), [
      { ...base, statement: 'CREATE TABLE t (id INT PRIMARY KEY, score DOUBLE, name VARCHAR(40), at DATETIME, data BLOB, big BIGINT)', tag: 'CREATE TABLE', rows: 0 },
      { ...base, statement: ins, tag: 'INSERT', rows: 1, params: ['1', '1.5', 'a "b"', evs.find((e) => e.parameters.length > 3)!.parameters[3]!, '\\x000102ff', '9007199254740993'] },
      { ...base, statement: ins, tag: 'INSERT', rows: 1, params: ['2', '-0.25', "it's", 'NULL', 'NULL', '-5'] },
      { ...base, statement: 'SELECT id FROM t WHERE score > ? ORDER BY id', tag: 'SELECT', rows: 2, params: ['-1'] },
      { ...base, statement: ins, rows: 0, error: '1062', params: ['1', '0', 'dup', 'NULL', 'NULL', '0'] },
      { ...base, statement: 'SELECT * FROM missing_table', rows: 0, error: '1146' },
      { ...base, database: db2, statement: `USE \`${db2}\``, tag: 'USE', rows: 0 },
      { ...base, database: db2, statement: 'SELECT 2', tag: 'SELECT', rows: 1 },
    ]);
    assert.equal(evs.filter((e) => e.kind === 'anomaly').length, 0);
    assert.match(evs.find((e) => e.parameters.length > 3)!.parameters[3]!, /^2026-01-0[12] \d\d:04:05/);
    assert.equal(evs[0]!.applicationName, 'm2-basic');
    assert.equal(evs.find((e) => e.kind === 'login_success')!.authMethod, 'mysql_native_password');
    await groundTruth(t, from, evs);
  });

  test('mysql2 multipleStatements: several result sets, and an error part way (later statements not recorded as run)', async (t) => {
    const db = await m.createDatabase('multi');
    const from = m.logOffset();
    const c = await connect(db, { multipleStatements: true });
    const [res] = await c.query('CREATE TABLE n (v INT); INSERT INTO n VALUES (1), (2); SELECT * FROM n; SELECT 42 AS x');
    assert.equal((res as unknown[]).length, 4);
    await assert.rejects(c.query('SELECT 1; SELECT * FROM nope; SELECT 3'), /doesn't exist/);
    await c.query('SELECT 5;');
    await c.end();
    const evs = await sessionEvents(db);
    const u = user();
    const base = { kind: 'statement', user: u, database: db };
    assert.deepEqual(evs.filter((e) => e.kind === 'statement').map(brief), [
      { ...base, statement: 'CREATE TABLE n (v INT)', tag: 'CREATE TABLE', rows: 0 },
      { ...base, statement: 'INSERT INTO n VALUES (1), (2)', tag: 'INSERT', rows: 2 },
      { ...base, statement: 'SELECT * FROM n', tag: 'SELECT', rows: 2 },
      { ...base, statement: 'SELECT 42 AS x', tag: 'SELECT', rows: 1 },
      { ...base, statement: 'SELECT 1', tag: 'SELECT', rows: 1 },
      { ...base, statement: 'SELECT * FROM nope', rows: 0, error: '1146' },
      { ...base, statement: 'SELECT 5;', tag: 'SELECT', rows: 1 },
    ]);
    await groundTruth(t, from, evs);
  });

  test('mysql2 changeUser: the user and database change, the re-authentication is recorded', async () => {
    const db = await m.createDatabase('cu');
    const db2 = await m.createDatabase('cu2');
    const other = await m.createUser({ prefix: 'cu', password: 'pw-2' });
    const c = await connect(db);
    await c.query('SELECT 1');
    await c.changeUser({ user: other.name, password: other.password, database: db2 });
    await c.query('SELECT 2');
    await assert.rejects(c.changeUser({ user: other.name, password: 'wrong', database: db2 }), /Access denied/);
    await c.end().catch(() => undefined);
    const evs = await stack.waitForEvents((e) => e.some((x) => x.kind === 'session_end' && (x.database === db2 || x.database === db)) && e.some((x) => x.kind === 'login_failure'), {});
    const session = evs.filter((e) => e.sessionId === evs.find((x) => x.kind === 'session_start' && x.database === db)!.sessionId);
    const b = session.map(brief);
    assert.deepEqual(b.slice(0, 6), [
      { kind: 'session_start', user: user(), database: db },
      { kind: 'login_success', user: user(), database: db },
      { kind: 'statement', user: user(), database: db, statement: 'SELECT 1', tag: 'SELECT', rows: 1 },
      { kind: 'login_success', user: other.name, database: db2 },
      { kind: 'statement', user: other.name, database: db2, statement: 'SELECT 2', tag: 'SELECT', rows: 1 },
      { kind: 'login_failure', user: other.name, database: db2, error: '1045' },
    ]);
    assert.equal(session[3]!.detail, 'change_user');
    assert.equal(session[5]!.sqlstate, '28000');
  });

  test('mysql2 LOAD DATA LOCAL INFILE: the file streams through, counted, not stored', async (t) => {
    const db = await m.createDatabase('load');
    const from = m.logOffset();
    const lines = Array.from({ length: 500 }, (_, i) => `${i},secret-value-${i}`).join('\n') + '\n';
    const file = join(tmp.dir, 'rows.csv');
    writeFileSync(file, lines);
    const c = await connect(db, { infileStreamFactory: () => Readable.from([Buffer.from(lines)]) });
    await c.query('CREATE TABLE l (id INT, name VARCHAR(40))');
    await c.query({ sql: `LOAD DATA LOCAL INFILE '${file}' INTO TABLE l FIELDS TERMINATED BY ','` });
    const [cnt] = await c.query('SELECT COUNT(*) AS n FROM l');
    assert.equal((cnt as { n: number }[])[0]!.n, 500);
    await c.end();
    const evs = await sessionEvents(db);
    const load = evs.find((e) => e.statement.startsWith('LOAD DATA'))!;
    assert.deepEqual(brief(load), { kind: 'statement', user: user(), database: db, statement: `LOAD DATA LOCAL INFILE '${file}' INTO TABLE l FIELDS TERMINATED BY ','`, tag: 'LOAD', rows: 500 });
    assert.equal(load.statementClass, 'WRITE');
    assert.match(load.detail, new RegExp(`load_data_bytes=${Buffer.byteLength(lines)} `));
    for (const e of evs) assert.ok(!eventJson(e).includes('secret-value'), 'file content must not be stored');
    await groundTruth(t, from, evs);
  });

  test('a blob over 16 MiB by query and by execute: multi-packet framing, statement and value cut, bytes intact', async () => {
    await m.mysql('SET GLOBAL max_allowed_packet = 67108864');
    const db = await m.createDatabase('blob');
    const c = await connect(db);
    await c.query('CREATE TABLE b (id INT, v LONGBLOB)');
    const big = 'z'.repeat(17 * 1024 * 1024 + 3);
    await c.query(`INSERT INTO b VALUES (1, '${big}')`);
    await c.execute('INSERT INTO b VALUES (?, ?)', [2, Buffer.from(big)]);
    const [rows] = await c.query('SELECT id, LENGTH(v) AS n, v FROM b ORDER BY id');
    const r = rows as { id: number; n: number; v: Buffer }[];
    assert.deepEqual(r.map((x) => [x.id, x.n]), [[1, big.length], [2, big.length]]);
    assert.ok(r[1]!.v.equals(Buffer.from(big)));
    await c.end();
    const evs = await sessionEvents(db);
    const stmts = evs.filter((e) => e.kind === 'statement');
    assert.equal(evs.filter((e) => e.kind === 'anomaly').length, 0);
    assert.deepEqual(stmts.map((e) => [e.commandTag, Number(e.rows), e.statementTruncated]), [['CREATE TABLE', 0, false], ['INSERT', 1, true], ['INSERT', 1, false], ['SELECT', 2, false]]);
    assert.equal(Number(stmts[1]!.statementLength), big.length + 'INSERT INTO b VALUES (1, \'\')'.length);
    assert.ok(Buffer.byteLength(stmts[1]!.statement) <= 4096);
    assert.equal(stmts[2]!.parameters[0], '2');
    assert.equal(stmts[2]!.parameters[1], 'z'.repeat(4096));
  });
});
