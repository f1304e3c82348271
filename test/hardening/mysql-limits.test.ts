import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, test } from 'node:test';
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
});
