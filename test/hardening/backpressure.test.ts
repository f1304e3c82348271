import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, test } from 'node:test';
import { serialize } from 'pg-protocol';
import mysqlCallback from 'mysql2';
import { sharedMariadb, sharedPostgres, skipUnless } from '../harness/index.js';
import { startStack, type Stack } from '../e2e/stack.js';

async function forwarded(stack: Stack): Promise<number> {
  const m = await stack.collector.metrics.bytesForwarded.get();
  return m.values.find((v) => v.labels.direction === 'server_to_client')?.value ?? 0;
}

describe('backpressure', { skip: skipUnless('postgres') }, () => {
  test('a client that stops reading makes the proxy stop reading from the database: nothing piles up in the proxy', async (t) => {
    const pgServer = await sharedPostgres({ pgaudit: true, passwordAuth: true });
    const stack = await startStack(`${pgServer.host}:${pgServer.port}`);
    try {
      const sock = net.connect({ host: stack.proxyHost, port: stack.proxyPort });
      await new Promise((r) => sock.once('connect', r));
      sock.write(serialize.startup({ user: 'postgres', database: 'postgres', application_name: 'slow-reader' }));
      // Read the startup answers, then stop reading entirely.
      await new Promise<void>((resolve) => {
        let seen = Buffer.alloc(0);
        const onData = (b: Buffer): void => {
          seen = Buffer.concat([seen, b]);
          if (seen.includes(Buffer.from([0x5a, 0, 0, 0, 5]))) {
            sock.off('data', onData);
            sock.pause();
            resolve();
          }
        };
        sock.on('data', onData);
      });
      const rows = 200_000;
      const resultBytes = rows * 1_011; // DataRow: 1 + 4 + 2 + 4 + 1000 bytes each
      sock.write(serialize.query(`select repeat('x', 1000) from generate_series(1, ${rows})`));
      // Give the database plenty of time to push a 200 MB result.
      let last = -1;
      for (let i = 0; i < 40; i++) {
        await new Promise((r) => setTimeout(r, 100));
        const now = await forwarded(stack);
        if (now === last && i > 10) break;
        last = now;
      }
      const stalled = await forwarded(stack);
      const rss = process.memoryUsage().rss;
      t.diagnostic(`forwarded ${(stalled / 2 ** 20).toFixed(1)} MB of a ${(resultBytes / 2 ** 20).toFixed(0)} MB result to a client that reads nothing`);
      assert.ok(stalled < 64 << 20, `the proxy forwarded ${stalled} bytes to a client that reads nothing`);
      assert.ok(stalled < resultBytes / 3);
      // Now read everything: the whole result arrives and the statement is audited with every row.
      let received = 0;
      const done = new Promise<void>((resolve) => {
        sock.on('data', (b: Buffer) => {
          received += b.length;
          if (b.length >= 6 && b.subarray(-6).equals(Buffer.from([0x5a, 0, 0, 0, 5, 0x49]))) resolve();
        });
      });
      sock.resume();
      await done;
      assert.ok(received >= resultBytes);
      sock.end(serialize.end());
      const evs = await stack.waitForEvents((e) => e.some((x) => x.kind === 'session_end' && x.applicationName === 'slow-reader'));
      const st = evs.find((e) => e.kind === 'statement' && e.applicationName === 'slow-reader')!;
      assert.equal(st.rows, BigInt(rows));
      assert.ok(process.memoryUsage().rss - rss < 128 << 20, 'memory grew while streaming');
    } finally {
      await stack.close();
    }
  });
});

describe('backpressure, MySQL', { skip: skipUnless('mariadb') }, () => {
  test('a mysql2 result stream that is not read makes the proxy stop reading from MariaDB; reading it delivers every row, audited', async (t) => {
    const m = await sharedMariadb();
    const stack = await startStack(`${m.host}:${m.port}`, { 'collector.protocol': 'mysql' });
    try {
      const db = await m.createDatabase('slow_reader');
      const c = mysqlCallback.createConnection({ host: '127.0.0.1', port: stack.proxyPort, user: m.tcpUser.name, password: m.tcpUser.password, database: db });
      const rows = 200_000;
      const resultBytes = rows * 1_005; // a text row: 4-byte header, 3-byte length prefix, 1000 bytes
      // mysql2 pauses its socket when the stream's buffer is full: a client that stops reading.
      const stream = c.query(`SELECT REPEAT('x', 1000) AS v FROM seq_1_to_${rows}`).stream({ highWaterMark: 16 });
      let last = -1;
      for (let i = 0; i < 60; i++) {
        await new Promise((r) => setTimeout(r, 100));
        const now = await forwarded(stack);
        if (now === last && i > 10) break;
        last = now;
      }
      const stalled = await forwarded(stack);
      t.diagnostic(`forwarded ${(stalled / 2 ** 20).toFixed(1)} MB of a ${(resultBytes / 2 ** 20).toFixed(0)} MB result to a client that reads nothing`);
      assert.ok(stalled < resultBytes / 3, `the proxy forwarded ${stalled} bytes to a client that reads nothing`);
      let n = 0;
      for await (const _row of stream) n++;
      assert.equal(n, rows);
      await new Promise<void>((resolve) => c.end(() => resolve()));
      const evs = await stack.waitForEvents((e) => e.some((x) => x.kind === 'session_end'), { database: db });
      const st = evs.find((e) => e.kind === 'statement')!;
      assert.equal(st.rows, BigInt(rows));
    } finally {
      await stack.close();
    }
  });
});
