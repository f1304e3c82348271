import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { sharedMariadb, sharedPostgres, skipUnless } from '../harness/index.js';
import { eventJson, startStack } from '../e2e/stack.js';

const SECRET = 'S3cretMarkerQz';
const MASKED_ERROR = '<masked: error of a statement that carried a password>';

describe('PostgreSQL: a password in a later statement of one Query string never reaches the first statement\'s error', { skip: skipUnless('postgres') }, () => {
  for (const mode of ['none', 'literals'] as const) {
    test(`select 1; create user … password '<unterminated> (audit.redact ${mode}): the parse error, reported on "select 1", is masked`, async () => {
      const server = await sharedPostgres({ pgaudit: true, passwordAuth: true });
      const stack = await startStack(`${server.host}:${server.port}`, { 'audit.redact': mode });
      try {
        const db = await server.createDatabase('secret-split');
        const c = new pg.Client({ host: stack.proxyHost, port: stack.proxyPort, user: 'postgres', database: db });
        await c.connect();
        // PostgreSQL parses the whole string before running any of it; the error quotes the text near the open string.
        await assert.rejects(c.query(`select 1; create user x with password '${SECRET}`), (err: Error) => err.message.includes(SECRET));
        await c.end();
        const evs = await stack.waitForEvents((e) => e.some((x) => x.kind === 'session_end'), { database: db });
        const st = evs.filter((e) => e.kind === 'statement');
        assert.deepEqual(
          st.map((e) => [e.statement, e.sqlstate, e.errorMessage]),
          [[mode === 'none' ? 'select 1' : 'select ?', '42601', MASKED_ERROR]],
        );
        for (const e of evs) assert.ok(!eventJson(e).includes(SECRET), `${e.kind} event holds the password: ${eventJson(e)}`);
      } finally {
        await stack.close();
      }
    });
  }
});

describe('MySQL: a password in a later statement of a multi-statement query', { skip: skipUnless('mariadb') }, () => {
  test('SELECT 1; CREATE USER … IDENTIFIED BY \'<unterminated> (audit.redact none): the error goes to the second statement, masked', async () => {
    const m = await sharedMariadb();
    const stack = await startStack(`${m.host}:${m.port}`, { 'collector.protocol': 'mysql', 'audit.redact': 'none' });
    try {
      const db = await m.createDatabase('secret_split');
      const c = await mysql.createConnection({ host: '127.0.0.1', port: stack.proxyPort, user: m.tcpUser.name, password: m.tcpUser.password, database: db, multipleStatements: true });
      await assert.rejects(c.query(`SELECT 1; CREATE USER x IDENTIFIED BY '${SECRET}`), (err: Error) => err.message.includes(SECRET));
      await c.end();
      const evs = await stack.waitForEvents((e) => e.some((x) => x.kind === 'session_end'), { database: db });
      assert.deepEqual(
        evs.filter((e) => e.kind === 'statement').map((e) => [e.statement, e.errorCode, e.errorMessage]),
        [
          ['SELECT 1', '', ''],
          ['<masked: unparseable statement>', '1064', MASKED_ERROR],
        ],
      );
      for (const e of evs) assert.ok(!eventJson(e).includes(SECRET), `${e.kind} event holds the password: ${eventJson(e)}`);
    } finally {
      await stack.close();
    }
  });
});

describe('bound values stay out of the event without log_parameters, also where the server quotes them in its error', () => {
  test('PostgreSQL: select $1::int with a bad value: the error keeps its words, the value becomes ?', { skip: skipUnless('postgres') }, async () => {
    const server = await sharedPostgres({ pgaudit: true, passwordAuth: true });
    const stack = await startStack(`${server.host}:${server.port}`, { 'audit.redact': 'none' });
    try {
      const db = await server.createDatabase('secret-param');
      const c = new pg.Client({ host: stack.proxyHost, port: stack.proxyPort, user: 'postgres', database: db });
      await c.connect();
      await assert.rejects(c.query('select $1::int', [SECRET]), (err: Error) => err.message.includes(SECRET));
      await c.end();
      const evs = await stack.waitForEvents((e) => e.some((x) => x.kind === 'session_end'), { database: db });
      assert.deepEqual(
        evs.filter((e) => e.kind === 'statement').map((e) => [e.statement, e.sqlstate, e.errorMessage, e.parameters]),
        [['select $1::int', '22P02', 'invalid input syntax for type integer: ?', []]],
      );
      for (const e of evs) assert.ok(!eventJson(e).includes(SECRET), `${e.kind} event holds the value: ${eventJson(e)}`);
    } finally {
      await stack.close();
    }
  });

  test('MySQL: a prepared INSERT of a duplicate key: "Duplicate entry ? for key ?"', { skip: skipUnless('mariadb') }, async () => {
    const m = await sharedMariadb();
    const stack = await startStack(`${m.host}:${m.port}`, { 'collector.protocol': 'mysql', 'audit.redact': 'none' });
    try {
      const db = await m.createDatabase('secret_param');
      const c = await mysql.createConnection({ host: '127.0.0.1', port: stack.proxyPort, user: m.tcpUser.name, password: m.tcpUser.password, database: db });
      await c.query('CREATE TABLE t (id varchar(40) PRIMARY KEY)');
      await c.execute('INSERT INTO t VALUES (?)', [SECRET]);
      await assert.rejects(c.execute('INSERT INTO t VALUES (?)', [SECRET]), (err: Error) => err.message.includes(SECRET));
      await c.end();
      const evs = await stack.waitForEvents((e) => e.some((x) => x.kind === 'session_end'), { database: db });
      assert.deepEqual(
        evs.filter((e) => e.kind === 'statement' && e.errorCode !== '').map((e) => [e.statement, e.errorCode, e.errorMessage]),
        [['INSERT INTO t VALUES (?)', '1062', 'Duplicate entry ? for key ?']],
      );
      for (const e of evs) assert.ok(!eventJson(e).includes(SECRET), `${e.kind} event holds the value: ${eventJson(e)}`);
    } finally {
      await stack.close();
    }
  });

  test('with log_parameters on, the values are recorded and the error is left whole', { skip: skipUnless('postgres') }, async () => {
    const server = await sharedPostgres({ pgaudit: true, passwordAuth: true });
    const stack = await startStack(`${server.host}:${server.port}`, { 'audit.redact': 'none', 'audit.log_parameters': true });
    try {
      const db = await server.createDatabase('param-logged');
      const c = new pg.Client({ host: stack.proxyHost, port: stack.proxyPort, user: 'postgres', database: db });
      await c.connect();
      await assert.rejects(c.query('select $1::int', ['x1']));
      await c.end();
      const evs = await stack.waitForEvents((e) => e.some((x) => x.kind === 'session_end'), { database: db });
      assert.deepEqual(
        evs.filter((e) => e.kind === 'statement').map((e) => [e.errorMessage, e.parameters]),
        [['invalid input syntax for type integer: "x1"', ['x1']]],
      );
    } finally {
      await stack.close();
    }
  });
});
