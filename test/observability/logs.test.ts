import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { sharedPostgres, skipUnless, type PgServer } from '../harness/index.js';
import { duplicateKeys } from './json-keys.js';
import { startObsStack, TEST_CACHE_KEY, until, type ObsStack } from './obs-stack.js';

const tag = (what: string): string => `${what}-${randomBytes(6).toString('hex')}`;

describe('logs: pino JSON at debug, never a password, key or parameter', { skip: skipUnless('pgaudit') }, () => {
  let pgServer: PgServer;
  let stack: ObsStack;
  let db: string;
  const secrets = {
    createPassword: tag('CreatePw'),
    alterPassword: tag('AlterPw'),
    wrongPassword: tag('WrongPw'),
    param: tag('param'),
    badIntParam: tag('notint'),
    copyValue: tag('copyval'),
  };

  before(async () => {
    pgServer = await sharedPostgres({ pgaudit: true, passwordAuth: true });
    stack = await startObsStack(`${pgServer.host}:${pgServer.port}`, { overrides: { 'audit.log_parameters': true, 'audit.redact': 'none' }, logLevel: 'debug' });
    db = await pgServer.createDatabase('obslog');
  });
  after(async () => {
    await stack?.close();
  });

  test('a run with CREATE ROLE … PASSWORD, a SCRAM login, a failed login and bound parameters logs none of them', async () => {
    const user = `obs_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client({ host: stack.proxyHost, port: stack.proxyPort, user: 'postgres', database: db });
    await admin.connect();
    await admin.query(`create role ${user} login password '${secrets.createPassword}'`);
    await admin.query(`alter role ${user} password '${secrets.alterPassword}'`);
    await admin.query(`grant all on database ${db} to ${user}`);
    await admin.query('create table kv(k text, v text)');
    await admin.query(`grant all on kv to ${user}`);
    await admin.end();

    // SCRAM login with the password, through the proxy; parameters in the extended protocol.
    const c = new pg.Client({ host: stack.proxyHost, port: stack.proxyPort, user, password: secrets.alterPassword, database: db });
    await c.connect();
    await c.query('insert into kv values ($1, $2)', ['k1', secrets.param]);
    await c.query('select v from kv where v = $1', [secrets.param]);
    await assert.rejects(c.query('select $1::int', [secrets.badIntParam]), /invalid input syntax/);
    await c.end();

    const bad = new pg.Client({ host: stack.proxyHost, port: stack.proxyPort, user, password: secrets.wrongPassword, database: db });
    await assert.rejects(bad.connect(), /password authentication failed/);

    // All of it audited (so it did pass through), then flushed to the gateway.
    const evs = await stack.waitForEvents((e) => e.filter((x) => x.kind === 'session_end').length >= 3 && e.some((x) => x.kind === 'login_failure'), { database: db });
    assert.ok(evs.some((e) => e.parameters.includes(secrets.param)), 'the parameter is in the audit event');
    await until(async () => stack.collector.cache.stats().events, (n) => n === 0);
    await stack.stopGateway();
    await stack.startGateway();

    const lines = stack.logs.lines;
    assert.ok(lines.length > 10, `${lines.length} log lines`);
    const parsed = stack.logs.json();
    // Debug level reached: session start and end are logged.
    assert.ok(parsed.some((l) => l.msg === 'session started' && l.level === 20), 'session started at debug');
    assert.ok(parsed.some((l) => l.msg === 'session ended' && l.level === 20), 'session ended at debug');
    // Each key once per line: the collector and gateway run under a `component` child here (as in the demo), and theirs must replace it.
    for (const line of lines) assert.deepEqual(duplicateKeys(line), [], line);
    assert.ok(parsed.some((l) => l.component === 'cache'), 'a cache line under the proxy component');
    const text = stack.logs.text;
    for (const [name, value] of Object.entries({ ...secrets, cacheKey: TEST_CACHE_KEY })) {
      assert.ok(!text.includes(value), `${name} appears in the log: ${lines.find((l) => l.includes(value))}`);
    }
    // No statement text either.
    for (const sql of ['create role', 'alter role', 'insert into kv', 'select v from kv']) {
      assert.ok(!text.toLowerCase().includes(sql), `statement text "${sql}" in the log: ${lines.find((l) => l.toLowerCase().includes(sql))}`);
    }
  });
});
