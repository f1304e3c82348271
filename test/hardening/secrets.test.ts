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
