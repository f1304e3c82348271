import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, test } from 'node:test';
import { sharedMariadb, sharedPostgres, skipUnless } from '../harness/index.js';
import { startStack, type Stack } from '../e2e/stack.js';

/*
 * Hostile bytes at the very start of a connection (before any message the
 * proxy can decode): the client gets a protocol error, and the audit trail
 * has the session as any other: session_start, the anomaly, session_end.
 * Before, such a connection left a session_end with no session_start and
 * no anomaly event.
 */

/** Sends `bytes` (after the server's first packet when `afterGreeting`), collects all the proxy sends until it closes. */
function hostile(stack: Stack, bytes: Buffer, afterGreeting: boolean): Promise<Buffer> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: stack.proxyHost, port: stack.proxyPort });
    const parts: Buffer[] = [];
    let sent = false;
    const send = (): void => {
      if (!sent) sock.write(bytes);
      sent = true;
    };
    if (!afterGreeting) sock.once('connect', send);
    sock.on('data', (b: Buffer) => {
      parts.push(b);
      if (afterGreeting) send();
    });
    sock.on('error', () => undefined);
    sock.on('close', () => resolve(Buffer.concat(parts)));
  });
}

async function sessionKinds(stack: Stack): Promise<string[][]> {
  const evs = await stack.waitForEvents((e) => e.some((x) => x.kind === 'session_end'));
  return evs.map((e) => [e.kind, e.reason]);
}

const HTTP_GET = Buffer.from('GET / HTTP/1.1\r\nHost: db\r\n\r\n');

describe('PostgreSQL: an anomaly on the first bytes still starts the session', { skip: skipUnless('postgres') }, () => {
  const cases: [string, Buffer][] = [
    ['startup length 2 (below the minimum)', Buffer.from([0, 0, 0, 2, 0xde, 0xad])],
    ['an HTTP request (length 0x47455420, over the 10 000-byte startup cap)', HTTP_GET],
  ];
  for (const [name, bytes] of cases) {
    test(`${name}: ErrorResponse 08P01, events session_start, anomaly, session_end`, async () => {
      const pg = await sharedPostgres();
      const stack = await startStack(`${pg.host}:${pg.port}`);
      try {
        const got = await hostile(stack, bytes, false);
        assert.equal(got[0], 0x45, 'an ErrorResponse');
        assert.match(got.toString('latin1'), /C08P01\0/);
        assert.deepEqual(await sessionKinds(stack), [['session_start', ''], ['anomaly', 'negotiation'], ['session_end', 'protocol_error']]);
        const m = await stack.collector.metrics.anomalies.get();
        assert.equal(m.values.find((v) => v.labels.reason === 'negotiation')?.value, 1);
      } finally {
        await stack.close();
      }
    });
  }
});

describe('MySQL: an anomaly on the client\'s first bytes still starts the session', { skip: skipUnless('mariadb') }, () => {
  const cases: [string, Buffer][] = [
    ['a handshake response header declaring 16 MiB (over the 64 KiB connection-phase cap)', Buffer.from([0xff, 0xff, 0xff, 1])],
    ['a handshake response of one byte (shorter than any)', Buffer.from([1, 0, 0, 1, 0])],
    ['an HTTP request instead of the handshake response', HTTP_GET],
  ];
  for (const [name, bytes] of cases) {
    test(`${name}: ERR 1043, events session_start, anomaly, session_end`, async () => {
      const maria = await sharedMariadb();
      const stack = await startStack(`${maria.host}:${maria.port}`, { 'collector.protocol': 'mysql' });
      try {
        const got = await hostile(stack, bytes, true);
        const greetingLen = got.readUIntLE(0, 3);
        const err = got.subarray(4 + greetingLen);
        assert.equal(err[4], 0xff, 'an ERR packet follows the greeting');
        assert.equal(err.readUInt16LE(5), 1043);
        assert.deepEqual(await sessionKinds(stack), [['session_start', ''], ['anomaly', 'negotiation'], ['session_end', 'protocol_error']]);
      } finally {
        await stack.close();
      }
    });
  }
});
