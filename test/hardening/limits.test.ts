import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { sharedPostgres, skipUnless, startPostgres, type PgServer } from '../harness/index.js';
import { startStack, type Stack } from '../e2e/stack.js';

/** Reads everything the proxy sends until it closes the connection. */
function collectUntilClose(sock: net.Socket): Promise<{ bytes: Buffer }> {
  const parts: Buffer[] = [];
  return new Promise((resolve) => {
    sock.on('data', (b: Buffer) => parts.push(b));
    sock.on('error', () => undefined);
    sock.on('close', () => resolve({ bytes: Buffer.concat(parts) }));
  });
}

/** The SQLSTATE (C field) of the first ErrorResponse in `bytes`. */
function sqlstateOf(bytes: Buffer): string | undefined {
  if (bytes[0] !== 0x45) return undefined;
  const body = bytes.subarray(5, 1 + bytes.readInt32BE(1)).toString('utf8');
  return body.split('\0').find((f) => f.startsWith('C'))?.slice(1);
}

async function limitCount(stack: Stack, limit: string): Promise<number> {
  const m = await stack.collector.metrics.limitRejections.get();
  return m.values.find((v) => v.labels.limit === limit)?.value ?? 0;
}

describe('limits: timeouts, connection cap, statement size', { skip: skipUnless('postgres') }, () => {
  let pgServer: PgServer;
  let stack: Stack;
  let db: string;

  before(async () => {
    pgServer = await sharedPostgres({ pgaudit: true, passwordAuth: true });
    stack = await startStack(`${pgServer.host}:${pgServer.port}`, {
      'collector.limits.startup_timeout': '700ms',
      'collector.limits.idle_timeout': '1500ms',
      'collector.limits.max_connections': 3,
      'collector.limits.max_statement_bytes': '1KB',
    });
    db = await pgServer.createDatabase('limits');
  });
  after(async () => {
    await stack?.close();
  });

  test('a client that connects and sends nothing is closed at startup_timeout with a protocol error', async () => {
    const sock = net.connect({ host: stack.proxyHost, port: stack.proxyPort });
    const got = await collectUntilClose(sock);
    // 57P05 and the counter say it was the startup timer that closed it (the suite asserts no timings).
    assert.equal(sqlstateOf(got.bytes), '57P05');
    assert.equal(await limitCount(stack, 'startup_timeout'), 1);
  });

  test('a client trickling its startup packet a byte at a time is still closed at startup_timeout', async () => {
    const sock = net.connect({ host: stack.proxyHost, port: stack.proxyPort });
    const startup = serialize.startup({ user: 'postgres', database: db });
    let i = 0;
    const trickle = setInterval(() => {
      if (i < startup.length && !sock.destroyed) sock.write(startup.subarray(i, ++i));
    }, 100);
    const got = await collectUntilClose(sock);
    clearInterval(trickle);
    assert.equal(sqlstateOf(got.bytes), '57P05');
    assert.equal(await limitCount(stack, 'startup_timeout'), 2, 'the trickle did not keep it open');
  });

  test('a client that sends its startup packet and half-closes at once: the session ends, no database connection is left behind', async () => {
    const before = (await stack.collector.metrics.dbConnectionsActive.get()).values[0]?.value ?? 0;
    const sock = net.connect({ host: stack.proxyHost, port: stack.proxyPort }, () => sock.end(serialize.startup({ user: 'postgres', database: db, application_name: 'half-closed' })));
    sock.on('error', () => undefined);
    sock.resume();
    const evs = await stack.waitForEvents((e) => e.some((x) => x.kind === 'session_end' && x.applicationName === 'half-closed'), { database: db });
    const end = evs.find((e) => e.kind === 'session_end' && e.applicationName === 'half-closed')!;
    assert.ok(['client_disconnect', 'server_disconnect'].includes(end.reason), end.reason);
    assert.equal((await stack.collector.metrics.dbConnectionsActive.get()).values[0]?.value ?? 0, before);
  });

  test('idle_timeout closes an idle session with a protocol error and an audited reason', async () => {
    const c = new pg.Client({ host: stack.proxyHost, port: stack.proxyPort, user: 'postgres', database: db, application_name: 'idle' });
    const ended = new Promise<Error>((resolve) => c.on('error', resolve));
    await c.connect();
    await c.query('select 1');
    const err = await ended;
    assert.match(err.message, /session idle for too long/);
    const evs = await stack.waitForEvents((e) => e.some((x) => x.kind === 'session_end' && x.applicationName === 'idle'), { database: db });
    assert.equal(evs.find((e) => e.kind === 'session_end' && e.applicationName === 'idle')?.reason, 'idle_timeout');
  });

  test('max_connections: the connection over the cap gets SQLSTATE 53300 and is counted', async () => {
    const clients = [0, 1, 2].map(() => new pg.Client({ host: stack.proxyHost, port: stack.proxyPort, user: 'postgres', database: db }));
    for (const c of clients) await c.connect();
    try {
      const extra = new pg.Client({ host: stack.proxyHost, port: stack.proxyPort, user: 'postgres', database: db });
      await assert.rejects(extra.connect(), (err: Error & { code?: string }) => err.code === '53300' && /too many connections to the audit proxy/.test(err.message));
      assert.equal(await limitCount(stack, 'max_connections'), 1);
    } finally {
      for (const c of clients) await c.end();
    }
  });

  test('a statement over max_statement_bytes is forwarded whole; its event keeps a bounded prefix, marked truncated', async () => {
    const c = new pg.Client({ host: stack.proxyHost, port: stack.proxyPort, user: 'postgres', database: db, application_name: 'long' });
    await c.connect();
    const columns = Array.from({ length: 400 }, (_, i) => `${i} as c${i}`).join(', ');
    const sql = `select ${columns}`;
    const r = await c.query(sql);
    assert.equal(r.fields.length, 400);
    await c.end();
    const evs = await stack.waitForEvents((e) => e.some((x) => x.kind === 'session_end' && x.applicationName === 'long'), { database: db });
    const st = evs.find((e) => e.kind === 'statement' && e.applicationName === 'long')!;
    assert.equal(st.statementTruncated, true);
    assert.equal(st.statementLength, BigInt(Buffer.byteLength(sql)));
    assert.ok(Buffer.byteLength(st.statement) <= 1024, `kept ${Buffer.byteLength(st.statement)} bytes`);
    assert.ok(st.statement.startsWith('select ? as c0, ? as c1'));
  });
});

describe('upstream trouble', { skip: skipUnless('postgres') }, () => {
  test('the database stopped mid-session: the client gets the server\'s error at once and the session end says why; new clients get a prompt error', async () => {
    const own = await startPostgres();
    const stack = await startStack(`${own.host}:${own.port}`);
    try {
      const c = new pg.Client({ host: stack.proxyHost, port: stack.proxyPort, user: 'postgres', database: 'postgres', application_name: 'stopped' });
      const lost = new Promise<Error>((resolve) => c.on('error', resolve));
      await c.connect();
      await c.query('select 1');
      await own.stop();
      assert.match((await lost).message, /terminating connection due to administrator command|Connection terminated/);
      const evs = await stack.waitForEvents((e) => e.some((x) => x.kind === 'session_end'));
      const end = evs.find((e) => e.kind === 'session_end')!;
      assert.equal(end.reason, 'server_disconnect');
      assert.match(end.detail, /^57P01: terminating connection due to administrator command/);
      const r = new pg.Client({ host: stack.proxyHost, port: stack.proxyPort, user: 'postgres', database: 'postgres' });
      await assert.rejects(r.connect(), /the database is not reachable through the audit proxy/);
    } finally {
      await stack.close();
      await own.dispose();
    }
  });

  test('a database that accepts and never answers: the client gets a protocol error at startup_timeout, not a hang', async () => {
    const silent = net.createServer((s) => s.on('error', () => undefined));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as net.AddressInfo).port;
    const stack = await startStack(`127.0.0.1:${port}`, { 'collector.limits.startup_timeout': '800ms' });
    try {
      const c = new pg.Client({ host: stack.proxyHost, port: stack.proxyPort, user: 'alice', database: 'app' });
      await assert.rejects(c.connect(), /did not finish in time/);
      const evs = await stack.waitForEvents((e) => e.some((x) => x.kind === 'session_end'));
      const end = evs.find((e) => e.kind === 'session_end')!;
      assert.equal(end.reason, 'startup_timeout');
      assert.equal(end.user, 'alice');
    } finally {
      await stack.close();
      silent.close();
    }
  });
});
