import assert from 'node:assert/strict';
import net from 'node:net';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import copyStreams from 'pg-copy-streams';
import { serialize } from 'pg-protocol';
import { RawPgClient } from '../../scripts/raw-pg-client.js';
import { sharedPostgres, skipUnless, type PgServer } from '../harness/index.js';
import { brief, eventJson, startStack, type Stack } from './stack.js';
import { Tap } from './tap.js';

describe('PostgreSQL through the proxy: node-postgres and raw protocol', { skip: skipUnless('pgaudit') }, () => {
  let pgServer: PgServer;
  let stack: Stack;
  let db: string;

  before(async () => {
    pgServer = await sharedPostgres({ pgaudit: true, passwordAuth: true });
    // Parameters on and redaction off, so values can be asserted exactly.
    stack = await startStack(`${pgServer.host}:${pgServer.port}`, { 'audit.redact': 'none', 'audit.log_parameters': true });
    db = await pgServer.createDatabase('node');
    await pgServer.psql('create table kv(k int primary key, v text); create table big(n int, pad text)', { db });
  });
  after(async () => {
    await stack?.close();
  });

  function client(opts: Partial<pg.ClientConfig> = {}): pg.Client {
    return new pg.Client({ host: stack.proxyHost, port: stack.proxyPort, user: 'postgres', database: db, ...opts });
  }

  async function sessionEvents(appName: string): Promise<ReturnType<typeof brief>[]> {
    const evs = await stack.waitForEvents((e) => e.some((x) => x.kind === 'session_end' && x.applicationName === appName), { database: db });
    return evs.filter((e) => e.applicationName === appName && e.kind === 'statement').map(brief);
  }

  test('simple and extended queries, with parameters and errors in each mode', async () => {
    const c = client({ application_name: 'node-modes' });
    await c.connect();
    await c.query("insert into kv values (1, 'a'), (2, 'b')");
    const r = await c.query('select v from kv where k = $1', [2]);
    assert.deepEqual(r.rows, [{ v: 'b' }]);
    await assert.rejects(c.query('select * from no_such_table'), /does not exist/);
    await assert.rejects(c.query('insert into kv values ($1, $2)', [1, 'dup']), /duplicate key/);
    await c.query({ name: 'get-kv', text: 'select k, v from kv where k >= $1 order by k', values: [1] });
    await c.query({ name: 'get-kv', text: 'select k, v from kv where k >= $1 order by k', values: [2] });
    await c.query('update kv set v = $1 where k = $2', [null, 1]);
    await c.end();
    const stmts = await sessionEvents('node-modes');
    const base = { kind: 'statement', user: 'postgres', database: db };
    assert.deepEqual(stmts, [
      { ...base, statement: "insert into kv values (1, 'a'), (2, 'b')", tag: 'INSERT', rows: 2 },
      { ...base, statement: 'select v from kv where k = $1', tag: 'SELECT', rows: 1, params: ['2'] },
      { ...base, statement: 'select * from no_such_table', rows: 0, error: '42P01' },
      { ...base, statement: 'insert into kv values ($1, $2)', rows: 0, error: '23505', params: ['1', 'dup'] },
      { ...base, statement: 'select k, v from kv where k >= $1 order by k', tag: 'SELECT', rows: 2, params: ['1'] },
      { ...base, statement: 'select k, v from kv where k >= $1 order by k', tag: 'SELECT', rows: 1, params: ['2'] },
      { ...base, statement: 'update kv set v = $1 where k = $2', tag: 'UPDATE', rows: 1, params: ['NULL', '1'] },
    ]);
  });

  test('pipelined Executes before one Sync, a row limit with PortalSuspended, and an error that discards until Sync', async () => {
    const raw = await RawPgClient.open(stack.proxyPort, stack.proxyHost);
    raw.send(serialize.startup({ user: 'postgres', database: db, application_name: 'raw-pipeline' }));
    await raw.ready();
    raw.send(
      serialize.parse({ name: 'ins', text: 'insert into kv values ($1, $2)', types: [] }),
      serialize.bind({ statement: 'ins', values: ['10', 'x'] }),
      serialize.execute({}),
      serialize.bind({ statement: 'ins', values: ['11', 'y'] }),
      serialize.execute({}),
      serialize.parse({ text: 'select k from kv order by k', types: [] }),
      serialize.bind({ portal: 'p1' }),
      serialize.execute({ portal: 'p1', rows: 2 }),
      serialize.execute({ portal: 'p1', rows: 0 }),
      serialize.sync(),
    );
    const seen = await raw.ready();
    assert.ok(seen.includes('s'), `PortalSuspended expected in ${seen.join('')}`);
    // Second pipeline: the middle insert fails, so the third Execute is discarded by the server.
    raw.send(
      serialize.bind({ statement: 'ins', values: ['12', 'z'] }),
      serialize.execute({}),
      serialize.bind({ statement: 'ins', values: ['12', 'again'] }),
      serialize.execute({}),
      serialize.bind({ statement: 'ins', values: ['13', 'never'] }),
      serialize.execute({}),
      serialize.sync(),
    );
    await raw.ready();
    raw.send(serialize.end());
    await raw.end();
    const stmts = await sessionEvents('raw-pipeline');
    const base = { kind: 'statement', user: 'postgres', database: db };
    assert.deepEqual(stmts, [
      { ...base, statement: 'insert into kv values ($1, $2)', tag: 'INSERT', rows: 1, params: ['10', 'x'] },
      { ...base, statement: 'insert into kv values ($1, $2)', tag: 'INSERT', rows: 1, params: ['11', 'y'] },
      // One event per portal run: both Executes of p1 (2 rows, suspended; then the other 2).
      { ...base, statement: 'select k from kv order by k', rows: 4, tag: 'SELECT' },
      { ...base, statement: 'insert into kv values ($1, $2)', tag: 'INSERT', rows: 1, params: ['12', 'z'] },
      { ...base, statement: 'insert into kv values ($1, $2)', rows: 0, error: '23505', params: ['12', 'again'] },
    ]);
  });

  test('COPY FROM STDIN and TO STDOUT count rows; CopyFail is an error', async () => {
    const c = client({ application_name: 'node-copy' });
    await c.connect();
    const lines = Array.from({ length: 1000 }, (_, i) => `${i}\t${'p'.repeat(i % 50)}\n`).join('');
    await pipeline(Readable.from([lines]), c.query(copyStreams.from('copy big from stdin')));
    let outBytes = 0;
    await pipeline(
      c.query(copyStreams.to('copy (select * from big where n < 500) to stdout')),
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          outBytes += chunk.length;
          cb();
        },
      }),
    );
    assert.ok(outBytes > 0);
    await c.end().catch(() => undefined);
    const stmts = await sessionEvents('node-copy');
    const base = { kind: 'statement', user: 'postgres', database: db };
    assert.deepEqual(stmts.slice(0, 2), [
      { ...base, statement: 'copy big from stdin', tag: 'COPY', rows: 1000 },
      { ...base, statement: 'copy (select * from big where n < 500) to stdout', tag: 'COPY', rows: 500 },
    ]);
    assert.equal(stmts.length, 2);

    // CopyFail from the client: the server answers with an error, and so does the event.
    const raw = await RawPgClient.open(stack.proxyPort, stack.proxyHost);
    raw.send(serialize.startup({ user: 'postgres', database: db, application_name: 'raw-copyfail' }));
    await raw.ready();
    raw.send(serialize.query('copy big from stdin'));
    await raw.until((t) => t === 'G');
    raw.send(serialize.copyData(Buffer.from('1\tx\n')), serialize.copyFail('client gave up'));
    await raw.ready();
    raw.send(serialize.end());
    await raw.end();
    const failed = await sessionEvents('raw-copyfail');
    assert.deepEqual(failed, [{ kind: 'statement', user: 'postgres', database: db, statement: 'copy big from stdin', rows: 0, error: '57014' }]);
  });

  test('cancel through the proxy stops the query and is audited', async () => {
    const c = client({ application_name: 'node-cancel' });
    await c.connect();
    const pid = (c as unknown as { processID: number }).processID;
    const secret = (c as unknown as { secretKey: number }).secretKey;
    const running = c.query('select pg_sleep(30)');
    const settled = running.then(
      () => 'finished',
      (err: Error) => err.message,
    );
    // Cancel only once the server is really running it (a cancel that arrives earlier does nothing).
    for (let i = 0; i < 200; i++) {
      const state = await pgServer.psql(`select state from pg_stat_activity where pid = ${pid}`, { db });
      if (state.trim() === 'active') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await sendCancel(stack.proxyHost, stack.proxyPort, pid, secret);
    assert.match(await settled, /canceling statement due to user request/);
    await c.end();
    const stmts = await sessionEvents('node-cancel');
    assert.deepEqual(stmts, [{ kind: 'statement', user: 'postgres', database: db, statement: 'select pg_sleep(30)', rows: 0, error: '57014' }]);
    const cancels = await stack.waitForEvents((e) => e.some((x) => x.kind === 'cancel' && x.detail.includes(String(pid))));
    assert.equal(cancels.filter((x) => x.kind === 'cancel' && x.detail.includes(String(pid))).length, 1);
    for (const e of cancels) assert.ok(!eventJson(e).includes(String(secret)) || String(secret).length < 3);
  });

  test('LISTEN/NOTIFY: notifications arrive through the proxy and both sides are audited', async () => {
    const listener = client({ application_name: 'node-listen' });
    const notifier = client({ application_name: 'node-notify' });
    await listener.connect();
    await notifier.connect();
    await listener.query('listen audit_channel');
    const got = new Promise<pg.Notification>((resolve) => listener.once('notification', resolve));
    await notifier.query("notify audit_channel, 'hello'");
    const n = await got;
    assert.equal(n.payload, 'hello');
    await listener.query('select 1 as after_notify');
    await listener.end();
    await notifier.end();
    const l = await sessionEvents('node-listen');
    const nn = await sessionEvents('node-notify');
    assert.deepEqual(l.map((e) => [e.statement, e.tag]), [['listen audit_channel', 'LISTEN'], ['select 1 as after_notify', 'SELECT']]);
    assert.deepEqual(nn.map((e) => [e.statement, e.tag]), [["notify audit_channel, 'hello'", 'NOTIFY']]);
  });

  test('with redaction off, role passwords are still removed, in simple and extended queries', async () => {
    const c = client({ application_name: 'node-passwords' });
    await c.connect();
    await c.query("create role pw_none_role login password 'Plain-Secret-Marker-1'");
    await c.query("alter role pw_none_role with encrypted password 'Plain-Secret-Marker-2' valid until 'infinity'");
    await c.query({ text: "alter role pw_none_role password 'Plain-Secret-Marker-3'", values: [] });
    await c.query('drop role pw_none_role');
    await c.end();
    const stmts = await sessionEvents('node-passwords');
    assert.equal(stmts.length, 4);
    const all = (await stack.events({ database: db })).map(eventJson).join('\n');
    assert.ok(!all.includes('Plain-Secret-Marker'), 'a password reached an event');
    assert.match(String(stmts[1].statement), /^alter role pw_none_role with encrypted password \S+ valid until 'infinity'$/);
  });

  test('every byte is forwarded unchanged in both directions', async () => {
    // client → tapA → proxy → tapB → PostgreSQL: what the client sent is what the server got, and back.
    const tapB = new Tap(pgServer.host, pgServer.port);
    await tapB.start();
    const inner = await startStack(`127.0.0.1:${tapB.port}`, { 'audit.log_parameters': true });
    const tapA = new Tap(inner.proxyHost, inner.proxyPort);
    await tapA.start();
    try {
      const c = new pg.Client({ host: '127.0.0.1', port: tapA.port, user: 'postgres', database: db, application_name: 'bytes' });
      await c.connect();
      await c.query('select k, v from kv order by k');
      await c.query('select $1::text as t, $2::int as i', ['ü€', 7]);
      await assert.rejects(c.query('select 1/0'));
      await c.query('begin');
      await c.query("insert into kv values (100, repeat('x', 100000))");
      await c.query('select * from kv where k = 100');
      await c.query('rollback');
      await pipeline(Readable.from(['1\ta\n2\tb\n']), c.query(copyStreams.from('copy big from stdin')));
      await c.end();
      await inner.waitForEvents((e) => e.some((x) => x.kind === 'session_end' && x.applicationName === 'bytes'));
      assert.ok(tapA.sent().length > 0 && tapA.received().length > 100_000);
      assert.ok(tapA.sent().equals(tapB.sent()), 'client→server bytes differ');
      assert.ok(tapB.received().equals(tapA.received()), 'server→client bytes differ');
    } finally {
      await inner.close();
      await tapA.close();
      await tapB.close();
    }
  });
});

function sendCancel(host: string, port: number, pid: number, secret: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port }, () => {
      const b = Buffer.alloc(16);
      b.writeInt32BE(16, 0);
      b.writeInt32BE(80877102, 4);
      b.writeInt32BE(pid, 8);
      b.writeInt32BE(secret, 12);
      s.end(b);
    });
    s.on('close', () => resolve());
    s.on('error', reject);
  });
}
