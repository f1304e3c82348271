import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, test } from 'node:test';
import { handshakeResponse } from '../../proxy/mysql/test-builders.js';
import { sharedMariadb, skipUnless } from '../harness/index.js';
import { startStack } from '../e2e/stack.js';

describe('MySQL: startup timeout', { skip: skipUnless('mariadb') }, () => {
  test('a client that takes the greeting and never logs in gets ERR 1159 at startup_timeout and is closed', async () => {
    const maria = await sharedMariadb();
    const stack = await startStack(`${maria.host}:${maria.port}`, { 'collector.protocol': 'mysql', 'collector.limits.startup_timeout': '700ms' });
    try {
      const sock = net.connect({ host: stack.proxyHost, port: stack.proxyPort });
      const parts: Buffer[] = [];
      const t0 = Date.now();
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
      assert.ok(Date.now() - t0 >= 600);
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
      const t0 = Date.now();
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
      assert.ok(Date.now() - t0 >= 600);
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
