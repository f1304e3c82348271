// Tests of the harness itself: real servers, real clients, and the server-side
// audit logs parsed back exactly.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, describe, test, type TestContext } from 'node:test';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { needMariadb, needPostgres, needServer, readPgauditLog, skipUnless, startMariadb, startPostgres, type MariaServer, type PgServer } from './index.js';

describe('PostgreSQL with pgaudit', { skip: skipUnless('pgaudit') }, () => {
  let server: PgServer;
  let db: string;

  before(async () => {
    server = await startPostgres({ pgaudit: true, passwordAuth: true });
    db = await server.createDatabase('harness');
  });
  after(async () => {
    await server?.dispose();
  });

  test('listens on 127.0.0.1 and runs psql', async (t) => {
    if (!needPostgres(t, { pgaudit: true })) return;
    assert.equal(server.host, '127.0.0.1');
    assert.equal((await server.psql('select 1 + 1')).trim(), '2');
    assert.match(await server.psql('show shared_preload_libraries'), /pgaudit/);
  });

  test('pgaudit entries parse exactly: multi-line, commas and quotes, user and database', async (t) => {
    if (!needPostgres(t, { pgaudit: true })) return;
    const from = server.logOffset();
    const sql = [
      'create table items (id int primary key, name text);',
      `insert into items values (1, 'a, "quoted" and it''s');`,
      'select id,\n       name\n  from items\n where id = 1;',
      'update items set name = name || \',\' where id = 1;',
      '',
    ].join('\n');
    const out = await server.psql(sql, { db });
    assert.equal(out, '1|a, "quoted" and it\'s\n');
    const got = server.auditLog(from).map((e) => [e.user, e.database, e.class, e.command, e.statement, e.parameters]);
    assert.deepEqual(got, [
      ['postgres', db, 'DDL', 'CREATE TABLE', 'create table items (id int primary key, name text);', []],
      ['postgres', db, 'WRITE', 'INSERT', `insert into items values (1, 'a, "quoted" and it''s');`, []],
      ['postgres', db, 'READ', 'SELECT', 'select id,\n       name\n  from items\n where id = 1;', []],
      ['postgres', db, 'WRITE', 'UPDATE', `update items set name = name || ',' where id = 1;`, []],
    ]);
    // readPgauditLog on the file gives the same entries
    assert.equal(readPgauditLog(server.logFile, { fromOffset: from }).length, 4);
  });

  test('extended protocol parameters and a SCRAM user', async (t) => {
    if (!needPostgres(t, { pgaudit: true })) return;
    const user = await server.createUser({ prefix: 'scram' });
    const bad = await server.psqlResult('select 1', { user: user.name, password: 'wrong', db });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /password authentication failed/);

    const from = server.logOffset();
    const client = new pg.Client({ connectionString: server.url(db, user.name, user.password) });
    await client.connect();
    try {
      const r = await client.query('select $1::int + $2::int as sum, $3::text as s', [2, 3, 'x,"y"\nz']);
      assert.deepEqual(r.rows, [{ sum: 5, s: 'x,"y"\nz' }]);
    } finally {
      await client.end();
    }
    const entries = server.auditLog(from);
    assert.equal(entries.length, 1);
    const e = entries[0]!;
    assert.deepEqual(
      [e.user, e.database, e.class, e.command, e.statement, e.parameters],
      [user.name, db, 'READ', 'SELECT', 'select $1::int + $2::int as sum, $3::text as s', ['2', '3', 'x,"y"\nz']],
    );
    assert.match(e.client, /^127\.0\.0\.1\(\d+\)$/);
  });

  test('an md5 user logs in with md5', async (t) => {
    if (!needPostgres(t, { pgaudit: true })) return;
    const user = await server.createUser({ prefix: 'md5', md5: true });
    const from = server.logOffset();
    assert.equal((await server.psql('select current_user', { user: user.name, password: user.password, db })).trim(), user.name);
    const log = readFileSync(server.logFile, 'utf8').slice(from);
    assert.match(log, /method=md5/);
  });

  test('kill, then start again on the same port', async (t) => {
    if (!needPostgres(t, { pgaudit: true })) return;
    await server.kill();
    const down = await server.psqlResult('select 1');
    assert.notEqual(down.code, 0);
    await server.start();
    assert.equal((await server.psql('select 42', { db })).trim(), '42');
  });

  test('dispose removes the temporary directory', async (t) => {
    if (!needPostgres(t)) return;
    const other = await startPostgres();
    assert.ok(existsSync(other.dataDir));
    await other.dispose();
    assert.ok(!existsSync(other.baseDir));
  });
});

describe('MariaDB with server_audit', { skip: skipUnless('server_audit') }, () => {
  let server: MariaServer;
  let db: string;

  before(async () => {
    server = await startMariadb({ serverAudit: true });
    db = await server.createDatabase('harness');
  });
  after(async () => {
    await server?.dispose();
  });

  test('runs the mariadb client over the socket and over TCP', async (t) => {
    if (!needMariadb(t, { serverAudit: true })) return;
    assert.equal(server.host, '127.0.0.1');
    assert.match(server.version, /MariaDB/);
    assert.equal((await server.mysql('select 1 + 1')).trim(), '2');
    const u = server.tcpUser;
    assert.equal((await server.mysql('select current_user()', { user: u.name, password: u.password })).trim(), `${u.name}@%`);
  });

  test('server_audit entries parse exactly: multi-line, commas, quotes, backslashes, errors', async (t) => {
    if (!needMariadb(t, { serverAudit: true })) return;
    const user = await server.createUser({ prefix: 'aud' });
    const from = server.logOffset();
    const sql = [
      'create table items (id int primary key, name text);',
      `insert into items values (1, 'a, "quoted" and it''s \\\\ back\\tslash');`,
      'select id,\n       name\n  from items\n where id = 1;',
      'select * from no_such_table;',
      '',
    ].join('\n');
    const r = await server.mysqlResult(sql, { user: user.name, password: user.password, db, force: true });
    assert.match(r.stderr, /ERROR 1146/);
    assert.equal(r.stdout, '1\ta, "quoted" and it\'s \\\\ back\\tslash\n');
    const entries = await server.waitAuditLog((es) => es.some((e) => e.operation === 'DISCONNECT' && e.user === user.name), from);
    const got = entries.filter((e) => e.user === user.name).map((e) => [e.operation, e.database, e.statement, e.errno]);
    assert.deepEqual(got, [
      ['CONNECT', db, '', 0],
      ['QUERY', db, 'create table items (id int primary key, name text)', 0],
      ['QUERY', db, `insert into items values (1, 'a, "quoted" and it''s \\\\ back\\tslash')`, 0],
      ['QUERY', db, 'select id,\n       name\n  from items\n where id = 1', 0],
      ['QUERY', db, 'select * from no_such_table', 1146],
      ['DISCONNECT', db, '', 0],
    ]);
    const conn = entries.find((e) => e.user === user.name)!;
    assert.equal(conn.client, '127.0.0.1');
    assert.ok(entries.filter((e) => e.user === user.name).every((e) => e.connectionId === conn.connectionId));
  });

  test('mysql2 prepared statements are logged with their text', async (t) => {
    if (!needMariadb(t, { serverAudit: true })) return;
    const from = server.logOffset();
    const conn = await mysql.createConnection({ uri: server.url(db) });
    try {
      const [rows] = await conn.execute('select ? + ? as s, ? as t', [2, 3, 'x,"y"']);
      assert.deepEqual(rows, [{ s: 5, t: 'x,"y"' }]);
    } finally {
      await conn.end();
    }
    const entries = await server.waitAuditLog((es) => es.some((e) => e.operation === 'DISCONNECT' && e.user === 'dbaudit'), from);
    const queries = entries.filter((e) => e.operation === 'QUERY').map((e) => e.statement);
    assert.ok(queries.includes('select ? + ? as s, ? as t'), JSON.stringify(queries));
  });

  test('a failed login is logged as FAILED_CONNECT 1045', async (t) => {
    if (!needMariadb(t, { serverAudit: true })) return;
    const from = server.logOffset();
    const r = await server.mysqlResult('select 1', { user: server.tcpUser.name, password: 'wrong' });
    assert.match(r.stderr, /ERROR 1045/);
    const entries = await server.waitAuditLog((es) => es.some((e) => e.operation === 'FAILED_CONNECT'), from);
    assert.deepEqual(
      entries.filter((e) => e.operation === 'FAILED_CONNECT').map((e) => [e.user, e.errno]),
      [[server.tcpUser.name, 1045]],
    );
  });

  test('kill, then start again on the same port', async (t) => {
    if (!needMariadb(t)) return;
    await server.kill();
    assert.notEqual((await server.mysqlResult('select 1')).code, 0);
    await server.start();
    assert.equal((await server.mysql('select 7')).trim(), '7');
  });
});

describe('missing servers', () => {
  function withEnv<T>(env: Record<string, string | undefined>, fn: () => T): T {
    const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
    for (const [k, v] of Object.entries(env)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    try {
      return fn();
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  }
  const fakeContext = () => {
    const skipped: string[] = [];
    return { skipped, t: { skip: (msg?: string) => skipped.push(msg ?? '') } as unknown as TestContext };
  };

  test('outside CI a missing server skips the test with the reason', () => {
    const { skipped, t } = fakeContext();
    const ok = withEnv({ CI: undefined, DBAUDIT_TEST_HIDE: 'sysbench' }, () => needServer(t, 'sysbench'));
    assert.equal(ok, false);
    assert.deepEqual(skipped, ['sysbench unavailable: hidden by DBAUDIT_TEST_HIDE']);
    assert.equal(
      withEnv({ CI: undefined, DBAUDIT_TEST_HIDE: 'pgaudit' }, () => skipUnless('pgaudit')),
      'pgaudit unavailable: hidden by DBAUDIT_TEST_HIDE',
    );
  });

  test('with CI=true a missing server fails the test', () => {
    const { skipped, t } = fakeContext();
    assert.throws(
      () => withEnv({ CI: 'true', DBAUDIT_TEST_HIDE: 'mariadb' }, () => needMariadb(t)),
      /mariadb is required: hidden by DBAUDIT_TEST_HIDE \(CI=true/,
    );
    assert.deepEqual(skipped, []);
    assert.equal(withEnv({ CI: 'true', DBAUDIT_TEST_HIDE: 'pgaudit' }, () => skipUnless('pgaudit')), false);
  });
});
