import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, test } from 'node:test';
import mysql from 'mysql2/promise';
import pg from 'pg';
import * as my from '../../proxy/mysql/test-builders.js';
import * as pgb from '../../proxy/postgres/test-builders.js';
import type { AuditEvent } from '../../proxy/events.js';
import { startStack, type Stack } from '../e2e/stack.js';

/*
 * A database that accepts a connection and then resets it (RST) or closes it
 * (FIN) before login is done: the client must get a protocol-level error
 * (PostgreSQL ErrorResponse 08006, MySQL ERR 2013), the failure is counted
 * in dbaudit_database_connections_errors_total, and the session is audited
 * session_start … session_end with the reason. Fake upstreams: a real
 * server cannot be made to reset at each of these points.
 */

type Step = (sock: net.Socket) => void;

/** A fake database: `script` is called with each accepted socket. */
async function fakeDatabase(script: Step): Promise<{ address: string; close(): void }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
    script(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

/** Calls `then` once `n` bytes have arrived in total (the data seen so far is passed). */
function afterBytes(sock: net.Socket, n: number, then: () => void): void {
  let got = 0;
  const on = (b: Buffer): void => {
    got += b.length;
    if (got >= n) {
      sock.off('data', on);
      then();
    }
  };
  sock.on('data', on);
}

async function connectionErrors(stack: Stack): Promise<number> {
  const m = await stack.collector.metrics.dbConnectionErrors.get();
  return m.values.reduce((a, v) => a + v.value, 0);
}

/** The session's events: session_start first, session_end last with an upstream reason. */
async function assertAuditedFailure(stack: Stack, detail: RegExp): Promise<AuditEvent> {
  const evs = await stack.waitForEvents((e) => e.some((x) => x.kind === 'session_end'));
  assert.equal(evs[0]?.kind, 'session_start', `first event: ${evs.map((e) => e.kind).join(',')}`);
  const end = evs.find((e) => e.kind === 'session_end')!;
  assert.equal(end, evs[evs.length - 1]);
  assert.equal(end.reason, 'upstream_error');
  assert.match(end.detail, detail);
  return end;
}

const PG_STARTUP_BYTES = pgb.startup({ user: 'alice', database: 'app' }).length;

describe('PostgreSQL: the database resets or closes a new connection', () => {
  const cases: [name: string, script: Step, detail: RegExp][] = [
    ['reset at accept', (s) => s.resetAndDestroy(), /reset|closed/i],
    ['reset after the startup packet', (s) => afterBytes(s, PG_STARTUP_BYTES, () => s.resetAndDestroy()), /reset|closed/i],
    ['reset during authentication (after AuthenticationCleartextPassword and the password)', (s) => afterBytes(s, PG_STARTUP_BYTES, () => {
      s.write(pgb.authCleartext());
      afterBytes(s, 1, () => s.resetAndDestroy());
    }), /reset|closed/i],
    ['closed (FIN, no error) after the startup packet', (s) => afterBytes(s, PG_STARTUP_BYTES, () => s.end()), /closed/i],
  ];
  for (const [name, script, detail] of cases) {
    test(`${name}: the client gets ErrorResponse 08006, counted, and session_end says why`, async () => {
      const db = await fakeDatabase(script);
      const stack = await startStack(db.address);
      try {
        const c = new pg.Client({ host: stack.proxyHost, port: stack.proxyPort, user: 'alice', database: 'app', password: 'pw' });
        c.on('error', () => undefined);
        await assert.rejects(c.connect(), (err: Error & { code?: string }) => {
          assert.equal(err.code, '08006', err.message);
          // A reset at accept may reach connect() itself: then the database is "not reachable".
          assert.match(err.message, name === 'reset at accept' ? /^dbaudit: the database (closed the connection|is not reachable)/ : /^dbaudit: the database closed the connection/);
          return true;
        });
        assert.equal(await connectionErrors(stack), 1);
        const end = await assertAuditedFailure(stack, detail);
        assert.equal(end.user, 'alice');
      } finally {
        await stack.close();
        db.close();
      }
    });
  }

  test('reset on the proxy\'s SSLRequest (upstream_tls prefer): ErrorResponse 08006, counted as a connect error', async () => {
    const db = await fakeDatabase((s) => afterBytes(s, 8, () => s.resetAndDestroy()));
    const stack = await startStack(db.address, { 'collector.upstream_tls.mode': 'prefer' });
    try {
      const c = new pg.Client({ host: stack.proxyHost, port: stack.proxyPort, user: 'alice', database: 'app' });
      c.on('error', () => undefined);
      await assert.rejects(c.connect(), (err: Error & { code?: string }) => err.code === '08006');
      assert.equal(await connectionErrors(stack), 1);
      const m = await stack.collector.metrics.anomalies.get();
      assert.equal(m.values.reduce((a, v) => a + v.value, 0), 0, 'a database failure is not a client protocol anomaly');
      await assertAuditedFailure(stack, /reset|closed/i);
    } finally {
      await stack.close();
      db.close();
    }
  });
});

describe('the database resets an established session while a statement waits', () => {
  test('PostgreSQL: the query fails with ErrorResponse 08006 at once, session_end upstream_error, counted as io', async () => {
    const db = await fakeDatabase((s) => afterBytes(s, PG_STARTUP_BYTES, () => {
      s.write(pgb.loginOk());
      afterBytes(s, 1, () => s.resetAndDestroy());
    }));
    const stack = await startStack(db.address);
    try {
      const c = new pg.Client({ host: stack.proxyHost, port: stack.proxyPort, user: 'alice', database: 'app' });
      c.on('error', () => undefined);
      await c.connect();
      await assert.rejects(c.query('select 1'), (err: Error & { code?: string }) => {
        assert.equal(err.code, '08006', err.message);
        assert.equal(err.message, 'dbaudit: the database closed the connection unexpectedly');
        return true;
      });
      const m = await stack.collector.metrics.dbConnectionErrors.get();
      assert.equal(m.values.find((v) => v.labels.reason === 'io')?.value, 1);
      const evs = await stack.waitForEvents((e) => e.some((x) => x.kind === 'session_end'));
      assert.deepEqual(evs.map((e) => e.kind), ['session_start', 'login_success', 'statement', 'session_end']);
      assert.equal(evs[2].reason, 'connection_closed');
      assert.equal(evs[3].reason, 'upstream_error');
      assert.match(evs[3].detail, /^the database closed the connection: .*ECONNRESET/);
    } finally {
      await stack.close();
      db.close();
    }
  });

  test('MySQL: the query fails with ERR 2013 at once, session_end upstream_error', async () => {
    const db = await fakeDatabase((s) => {
      s.write(my.greeting());
      afterBytes(s, 36, () => {
        s.write(my.ok(2));
        afterBytes(s, 5, () => s.resetAndDestroy());
      });
    });
    const stack = await startStack(db.address, { 'collector.protocol': 'mysql' });
    try {
      const c = await mysql.createConnection({ host: stack.proxyHost, port: stack.proxyPort, user: 'alice', password: 'pw' });
      c.on('error', () => undefined);
      await assert.rejects(c.query('select 1'), (err: Error & { errno?: number }) => {
        assert.equal(err.errno, 2013, err.message);
        assert.equal(err.message, 'dbaudit: the database closed the connection unexpectedly');
        return true;
      });
      const evs = await stack.waitForEvents((e) => e.some((x) => x.kind === 'session_end'));
      assert.deepEqual(evs.map((e) => e.kind), ['session_start', 'login_success', 'statement', 'session_end']);
      assert.equal(evs[3].reason, 'upstream_error');
    } finally {
      await stack.close();
      db.close();
    }
  });
});

const MY_RESPONSE_BYTES = my.handshakeResponse({ user: 'alice' }).length;

describe('MySQL: the database resets or closes a new connection', () => {
  const cases: [name: string, script: Step, detail: RegExp][] = [
    ['reset at accept, before the greeting', (s) => s.resetAndDestroy(), /reset|closed/i],
    ['reset after the handshake response', (s) => {
      s.write(my.greeting());
      afterBytes(s, 36, () => s.resetAndDestroy());
    }, /reset|closed/i],
    ['reset during an auth switch (after the client answered it)', (s) => {
      s.write(my.greeting());
      afterBytes(s, 36, () => {
        s.write(my.authSwitch(2, 'mysql_native_password'));
        afterBytes(s, 4, () => s.resetAndDestroy());
      });
    }, /reset|closed/i],
    ['closed (FIN, no ERR) after the handshake response', (s) => {
      s.write(my.greeting());
      afterBytes(s, 36, () => s.end());
    }, /closed/i],
  ];
  for (const [name, script, detail] of cases) {
    test(`${name}: the client gets ERR 2013, counted, and session_end says why`, async () => {
      const db = await fakeDatabase(script);
      const stack = await startStack(db.address, { 'collector.protocol': 'mysql' });
      try {
        await assert.rejects(mysql.createConnection({ host: stack.proxyHost, port: stack.proxyPort, user: 'alice', password: 'pw' }), (err: Error & { errno?: number }) => {
          assert.equal(err.errno, 2013, err.message);
          assert.match(err.message, /^dbaudit: the database/);
          return true;
        });
        assert.equal(await connectionErrors(stack), 1);
        await assertAuditedFailure(stack, detail);
      } finally {
        await stack.close();
        db.close();
      }
    });
  }
  assert.ok(MY_RESPONSE_BYTES > 36);
});
