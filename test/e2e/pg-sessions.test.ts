import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { RawPgClient } from '../../scripts/raw-pg-client.js';
import { sharedPostgres, skipUnless, type PgServer } from '../harness/index.js';
import { brief, startStack, type Stack } from './stack.js';
import { Tap } from './tap.js';

describe('PostgreSQL sessions ending every way, and hostile bytes', { skip: skipUnless('pgaudit') }, () => {
  let pgServer: PgServer;
  let stack: Stack;
  let db: string;

  before(async () => {
    pgServer = await sharedPostgres({ pgaudit: true, passwordAuth: true });
    stack = await startStack(`${pgServer.host}:${pgServer.port}`);
    db = await pgServer.createDatabase('sessions');
  });
  after(async () => {
    await stack?.close();
  });

  async function ended(app: string) {
    const evs = await stack.waitForEvents((e) => e.some((x) => x.kind === 'session_end' && x.applicationName === app), { database: db });
    return evs.filter((e) => e.applicationName === app);
  }

  test('client vanishes mid-statement: the server still finishes it, as without a proxy, and the session ends client_disconnect', async () => {
    const c = new pg.Client({ host: stack.proxyHost, port: stack.proxyPort, user: 'postgres', database: db, application_name: 'vanish' });
    await c.connect();
    await c.query('select 1');
    c.on('error', () => undefined);
    const pending = c.query('select pg_sleep(3)').catch(() => undefined);
    await new Promise((r) => setTimeout(r, 200));
    (c as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    await pending;
    const evs = await ended('vanish');
    assert.deepEqual(evs.map(brief).map((e) => [e.kind, e.statement ?? '', e.reason ?? '']), [
      ['session_start', '', ''],
      ['login_success', '', ''],
      ['statement', 'select ?', ''],
      // PostgreSQL only notices the client is gone when it writes the result.
      ['statement', 'select pg_sleep(?)', ''],
      ['session_end', '', 'client_disconnect'],
    ]);
  });

  test('the database connection is cut mid-statement: the statement is recorded as unfinished', async () => {
    const tap = new Tap(pgServer.host, pgServer.port);
    await tap.start();
    const cut = await startStack(`127.0.0.1:${tap.port}`);
    try {
      const c = new pg.Client({ host: cut.proxyHost, port: cut.proxyPort, user: 'postgres', database: db, application_name: 'cut' });
      await c.connect();
      c.on('error', () => undefined);
      const pending = c.query('select pg_sleep(5)').then(() => 'answered', (err: Error) => err.message);
      await new Promise((r) => setTimeout(r, 200));
      tap.cutAll();
      assert.match(await pending, /terminated|ended|closed/i);
      const evs = await cut.waitForEvents((e) => e.some((x) => x.kind === 'session_end'), { database: db });
      assert.deepEqual(evs.map(brief).map((e) => [e.kind, e.statement ?? '', e.reason ?? '']), [
        ['session_start', '', ''],
        ['login_success', '', ''],
        ['statement', 'select pg_sleep(?)', 'connection_closed'],
        ['session_end', '', 'upstream_error'],
      ]);
    } finally {
      await cut.close();
      await tap.close();
    }
  });

  test('the server ends the session (pg_terminate_backend): FATAL recorded, session ends server side', async () => {
    const c = new pg.Client({ host: stack.proxyHost, port: stack.proxyPort, user: 'postgres', database: db, application_name: 'terminated' });
    await c.connect();
    c.on('error', () => undefined);
    const pid = (c as unknown as { processID: number }).processID;
    const clientEnded = new Promise((r) => c.once('end', r)); // before the terminate: 'end' may fire while psql is still running
    await pgServer.psql(`select pg_terminate_backend(${pid})`, { db });
    await clientEnded;
    const evs = await ended('terminated');
    const end = evs[evs.length - 1];
    assert.equal(end.kind, 'session_end');
    assert.equal(end.reason, 'server_disconnect');
    assert.equal(end.detail, '57P01: terminating connection due to administrator command');
  });

  test('malformed client bytes: one anomaly event, decoding stops, bytes still reach the server', async () => {
    const raw = await RawPgClient.open(stack.proxyPort, stack.proxyHost);
    raw.send(serialize.startup({ user: 'postgres', database: db, application_name: 'hostile' }));
    await raw.ready();
    raw.send(serialize.query('select 7'));
    await raw.ready();
    // A Query whose length field says 2 (less than its own 4 bytes): invalid framing.
    raw.send(Buffer.from([0x51, 0, 0, 0, 2]), Buffer.from('garbage'));
    const seen = await raw.until((t) => t === 'E').catch(() => ['closed']);
    assert.ok(seen.includes('E') || seen.includes('closed'));
    await raw.end();
    const evs = await ended('hostile');
    const kinds = evs.map((e) => e.kind);
    assert.deepEqual(kinds.slice(0, 3), ['session_start', 'login_success', 'statement']);
    const anomalies = evs.filter((e) => e.kind === 'anomaly');
    assert.equal(anomalies.length, 1);
    assert.match(anomalies[0].reason, /length/);
    assert.equal(kinds[kinds.length - 1], 'session_end');
    const counter = await stack.collector.metrics.anomalies.get();
    assert.equal(counter.values.find((v) => v.labels.protocol === 'postgres')?.value, 1);
  });

  test('a database that is down gives the client a prompt protocol error and an audited failed session', async () => {
    const down = await startStack('127.0.0.1:1');
    try {
      const r = await pgServer.psqlResult('select 1', { host: '127.0.0.1', port: down.proxyPort, allowError: true });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /dbaudit: the database is not reachable through the audit proxy/);
      const evs = await down.waitForEvents((e) => e.some((x) => x.kind === 'session_end'));
      const end = evs.find((e) => e.kind === 'session_end')!;
      assert.equal(end.reason, 'upstream_error');
      assert.equal(end.user, 'postgres');
      const errors = await down.collector.metrics.dbConnectionErrors.get();
      assert.equal(errors.values.find((v) => v.labels.reason === 'connect')?.value, 1);
    } finally {
      await down.close();
    }
  });
});
