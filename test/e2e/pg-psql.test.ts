import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sharedPostgres, skipUnless, type PgServer } from '../harness/index.js';
import { brief, eventJson, startStack, type Stack } from './stack.js';
import { compareWithPgaudit } from './ground-truth.js';

describe('PostgreSQL through the proxy: psql', { skip: skipUnless('pgaudit') }, () => {
  let pg: PgServer;
  let stack: Stack;

  before(async () => {
    pg = await sharedPostgres({ pgaudit: true, passwordAuth: true });
    stack = await startStack(`${pg.host}:${pg.port}`);
  });
  after(async () => {
    await stack?.close();
  });

  test('a psql script: one event per statement with tag, rows and user/database', async (t) => {
    const db = await pg.createDatabase('psql');
    await pg.psql(
      [
        'create table items(id int primary key, name text);',
        "insert into items values (1, 'one'), (2, 'two'), (3, 'three');",
        'select * from items order by id;',
        "update items set name = 'uno' where id = 1;",
        'delete from items where id > 1;',
      ].join('\n'),
      { host: stack.proxyHost, port: stack.proxyPort, db },
    );
    const evs = await stack.waitForEvents((e) => e.some((x) => x.kind === 'session_end'), { database: db });
    assert.deepEqual(evs.map(brief), [
      { kind: 'session_start', user: 'postgres', database: db },
      { kind: 'login_success', user: 'postgres', database: db },
      { kind: 'statement', user: 'postgres', database: db, statement: 'create table items(id int primary key, name text)', tag: 'CREATE TABLE', rows: 0 },
      { kind: 'statement', user: 'postgres', database: db, statement: 'insert into items values (?, ?), (?, ?), (?, ?)', tag: 'INSERT', rows: 3 },
      { kind: 'statement', user: 'postgres', database: db, statement: 'select * from items order by id', tag: 'SELECT', rows: 3 },
      { kind: 'statement', user: 'postgres', database: db, statement: 'update items set name = ? where id = ?', tag: 'UPDATE', rows: 1 },
      { kind: 'statement', user: 'postgres', database: db, statement: 'delete from items where id > ?', tag: 'DELETE', rows: 2 },
      { kind: 'session_end', user: 'postgres', database: db, reason: 'client_terminate' },
    ]);
    const end = evs[evs.length - 1];
    assert.ok(end.bytesFromClient > 0n && end.bytesToClient > 0n);
    const stmts = evs.filter((e) => e.kind === 'statement');
    assert.deepEqual(stmts.map((e) => e.statementClass), ['DDL', 'WRITE', 'READ', 'WRITE', 'WRITE']);
    const report = compareWithPgaudit(pg.auditLog().filter((a) => a.database === db), stmts);
    t.diagnostic(report.summary);
    assert.deepEqual(report.missing, []);
    assert.deepEqual(report.extra, []);
  });

  test('several statements in one Query with an error in the middle: later ones are not recorded as run', async (t) => {
    const db = await pg.createDatabase('multi');
    const r = await pg.psqlResult('select 1; select 1/0; select 2', { host: stack.proxyHost, port: stack.proxyPort, db, mode: 'command' });
    assert.match(r.stderr, /division by zero/);
    const evs = await stack.waitForEvents((e) => e.some((x) => x.kind === 'session_end'), { database: db });
    const stmts = evs.filter((e) => e.kind === 'statement').map(brief);
    assert.deepEqual(stmts, [
      { kind: 'statement', user: 'postgres', database: db, statement: 'select ?', tag: 'SELECT', rows: 1 },
      { kind: 'statement', user: 'postgres', database: db, statement: 'select ?/?', rows: 0, error: '22012' },
    ]);
    const failed = evs.find((e) => e.errorCode === '22012')!;
    assert.equal(failed.errorMessage, 'division by zero');
    assert.equal(failed.errorSeverity, 'ERROR');
  });

  test('login failure with a wrong password is recorded with the server SQLSTATE', async (t) => {
    const db = await pg.createDatabase('login');
    const user = await pg.createUser({ prefix: 'alice' });
    const bad = await pg.psqlResult('select 1', { host: stack.proxyHost, port: stack.proxyPort, db, user: user.name, password: 'wrong-password', allowError: true });
    assert.notEqual(bad.code, 0);
    const good = await pg.psql('select current_user', { host: stack.proxyHost, port: stack.proxyPort, db, user: user.name, password: user.password });
    assert.equal(good.trim(), user.name);
    const evs = await stack.waitForEvents((e) => e.filter((x) => x.kind === 'session_end').length === 2, { database: db });
    const logins = evs.filter((e) => e.kind.startsWith('login'));
    assert.deepEqual(
      logins.map((e) => [e.kind, e.user, e.errorCode, e.authMethod]),
      [
        ['login_failure', user.name, '28P01', 'scram-sha-256'],
        ['login_success', user.name, '', 'scram-sha-256'],
      ],
    );
    for (const e of evs) assert.ok(!eventJson(e).includes('wrong-password'));
  });

  test('a role password never reaches an event, in either redaction mode', async (t) => {
    const db = await pg.createDatabase('pw');
    await pg.psql("create role pw_marker_role login password 'Sup3r-Secret-Marker'; alter role pw_marker_role password 'An0ther-Secret-Marker'; drop role pw_marker_role;", {
      host: stack.proxyHost,
      port: stack.proxyPort,
      db,
    });
    const evs = await stack.waitForEvents((e) => e.some((x) => x.kind === 'session_end'), { database: db });
    const stmts = evs.filter((e) => e.kind === 'statement');
    assert.equal(stmts.length, 3);
    const text = JSON.stringify(stmts.map((e) => e.statement));
    assert.ok(!text.includes('Secret-Marker'), text);
  });
});
