import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, test } from 'node:test';
import mysql from 'mysql2/promise';
import { handshakeResponse } from '../../proxy/mysql/test-builders.js';
import { sharedMariadb, skipUnless } from '../harness/index.js';
import { startStack, type Stack } from '../e2e/stack.js';

describe('MySQL: startup timeout', { skip: skipUnless('mariadb') }, () => {
  test('a client that takes the greeting and never logs in gets ERR 1159 at startup_timeout and is closed', async () => {
    const maria = await sharedMariadb();
    const stack = await startStack(`${maria.host}:${maria.port}`, { 'collector.protocol': 'mysql', 'collector.limits.startup_timeout': '700ms' });
    try {
      const sock = net.connect({ host: stack.proxyHost, port: stack.proxyPort });
      const parts: Buffer[] = [];
      await new Promise<void>((resolve) => {
        sock.on('data', (b: Buffer) => parts.push(b));
        sock.on('error', () => undefined);
        sock.on('close', () => resolve());
      });
      const all = Buffer.concat(parts);
      // The greeting (packet 0, protocol 10), then the proxy's ERR packet.
      assert.equal(all[4], 10);
      const greetingLen = all.readUIntLE(0, 3);
      const err = all.subarray(4 + greetingLen);
      assert.equal(err[4], 0xff, 'an ERR packet follows the greeting');
      assert.equal(err.readUInt16LE(5), 1159);
      const m = await stack.collector.metrics.limitRejections.get();
      assert.equal(m.values.find((v) => v.labels.limit === 'startup_timeout')?.value, 1);
    } finally {
      await stack.close();
    }
  });

  test('a client that stalls in the auth stage (answers the greeting, then never answers the AuthSwitchRequest) gets ERR 1159 at startup_timeout and is closed', async () => {
    const maria = await sharedMariadb();
    const stack = await startStack(`${maria.host}:${maria.port}`, { 'collector.protocol': 'mysql', 'collector.limits.startup_timeout': '700ms' });
    try {
      const sock = net.connect({ host: stack.proxyHost, port: stack.proxyPort });
      const parts: Buffer[] = [];
      let answered = false;
      await new Promise<void>((resolve) => {
        sock.on('data', (b: Buffer) => {
          parts.push(b);
          // The greeting in: a handshake response naming a plugin the server switches away from; then silence.
          if (!answered) sock.write(handshakeResponse({ user: maria.tcpUser.name, plugin: 'caching_sha2_password' }));
          answered = true;
        });
        sock.on('error', () => undefined);
        sock.on('close', () => resolve());
      });
      const all = Buffer.concat(parts);
      const packetsIn: Buffer[] = [];
      for (let at = 0; at + 4 <= all.length; ) {
        const len = all.readUIntLE(at, 3);
        packetsIn.push(all.subarray(at, at + 4 + len));
        at += 4 + len;
      }
      assert.equal(packetsIn[0][4], 10, 'the greeting');
      assert.equal(packetsIn[1][4], 0xfe, 'an AuthSwitchRequest');
      assert.equal(packetsIn[1][3], 2);
      const err = packetsIn[2];
      assert.equal(err?.[4], 0xff, 'an ERR packet follows');
      assert.equal(err.readUInt16LE(5), 1159);
      assert.equal(err[3], 4, 'in sequence: the packet the client reads after sending its answer (3)');
      const m = await stack.collector.metrics.limitRejections.get();
      assert.equal(m.values.find((v) => v.labels.limit === 'startup_timeout')?.value, 1);
      const evs = await stack.waitForEvents((e) => e.some((x) => x.kind === 'session_end'));
      assert.deepEqual(evs.map((e) => [e.kind, e.reason]), [['session_start', ''], ['session_end', 'startup_timeout']]);
      assert.equal(evs[1].user, maria.tcpUser.name);
    } finally {
      await stack.close();
    }
  });
});

/** Every byte the proxy sends until it closes, cut into MySQL packets. */
function packetsUntilClose(sock: net.Socket): Promise<Buffer[]> {
  const parts: Buffer[] = [];
  return new Promise((resolve) => {
    sock.on('data', (b: Buffer) => parts.push(b));
    sock.on('error', () => undefined);
    sock.on('close', () => {
      const all = Buffer.concat(parts);
      const out: Buffer[] = [];
      for (let at = 0; at + 4 <= all.length; ) {
        const len = all.readUIntLE(at, 3);
        out.push(all.subarray(at, at + 4 + len));
        at += 4 + len;
      }
      resolve(out);
    });
  });
}

async function limitCount(stack: Stack, limit: string): Promise<number> {
  const m = await stack.collector.metrics.limitRejections.get();
  return m.values.find((v) => v.labels.limit === limit)?.value ?? 0;
}

describe('MySQL: idle timeout, connection cap, a database that never greets', { skip: skipUnless('mariadb') }, () => {
  test('idle_timeout closes an idle session with ERR 1159, counted, and session_end idle_timeout', async () => {
    const maria = await sharedMariadb();
    const db = await maria.createDatabase('idle');
    const stack = await startStack(`${maria.host}:${maria.port}`, { 'collector.protocol': 'mysql', 'collector.limits.idle_timeout': '800ms' });
    try {
      const c = await mysql.createConnection({ host: '127.0.0.1', port: stack.proxyPort, user: maria.tcpUser.name, password: maria.tcpUser.password, database: db });
      const lost = new Promise<Error & { code?: unknown; fatal?: boolean }>((resolve) => c.on('error', resolve));
      await c.query('SELECT 1');
      const err = await lost;
      // mysql2 hands an ERR that arrives with no command pending to 'error' as a fatal error whose code is the error number.
      assert.equal(err.fatal, true);
      assert.equal(err.code, 1159);
      assert.match(err.message, /session idle for too long/);
      assert.equal(await limitCount(stack, 'idle_timeout'), 1);
      const evs = await stack.waitForEvents((e) => e.some((x) => x.kind === 'session_end'), { database: db });
      assert.deepEqual(evs.map((e) => [e.kind, e.reason]), [['session_start', ''], ['login_success', ''], ['statement', ''], ['session_end', 'idle_timeout']]);
    } finally {
      await stack.close();
    }
  });

  test('max_connections: the connection over the cap gets ERR 1040 in sequence 0 instead of a greeting, and is counted', async () => {
    const maria = await sharedMariadb();
    const stack = await startStack(`${maria.host}:${maria.port}`, { 'collector.protocol': 'mysql', 'collector.limits.max_connections': 1 });
    try {
      const first = await mysql.createConnection({ host: '127.0.0.1', port: stack.proxyPort, user: maria.tcpUser.name, password: maria.tcpUser.password });
      const packets = await packetsUntilClose(net.connect({ host: '127.0.0.1', port: stack.proxyPort }));
      assert.equal(packets.length, 1);
      assert.equal(packets[0]![3], 0, 'sequence 0');
      assert.equal(packets[0]![4], 0xff);
      assert.equal(packets[0]!.readUInt16LE(5), 1040);
      assert.match(packets[0]!.subarray(7).toString(), /^#08004.*too many connections to the audit proxy/);
      assert.equal(await limitCount(stack, 'max_connections'), 1);
      await first.end();
    } finally {
      await stack.close();
    }
  });

  test('a database that accepts and never sends its greeting: ERR 1159 at startup_timeout, not a hang, and the attempt is audited', async () => {
    const silent = net.createServer((s) => s.on('error', () => undefined));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const stack = await startStack(`127.0.0.1:${(silent.address() as net.AddressInfo).port}`, { 'collector.protocol': 'mysql', 'collector.limits.startup_timeout': '700ms' });
    try {
      const packets = await packetsUntilClose(net.connect({ host: '127.0.0.1', port: stack.proxyPort }));
      assert.equal(packets.length, 1, 'no greeting: the ERR alone');
      assert.equal(packets[0]![3], 0);
      assert.equal(packets[0]!.readUInt16LE(5), 1159);
      assert.equal(await limitCount(stack, 'startup_timeout'), 1);
      const evs = await stack.waitForEvents((e) => e.some((x) => x.kind === 'session_end'));
      assert.deepEqual(evs.map((e) => [e.kind, e.reason]), [['session_start', ''], ['session_end', 'startup_timeout']]);
    } finally {
      await stack.close();
      silent.close();
    }
  });
});
