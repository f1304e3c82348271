import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { listenError } from './listen.js';

/** The error Node gives when listening on host:port fails (null if it succeeds). */
function listenFailure(host: string, port: number): Promise<Error | null> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', resolve);
    s.listen(port, host, () => s.close(() => resolve(null)));
  });
}

test('EADDRINUSE: one line naming the key and the address', async () => {
  const busy = net.createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
  const { port } = busy.address() as net.AddressInfo;
  try {
    const err = await listenFailure('127.0.0.1', port);
    const e = listenError(err, 'collector.listen', `127.0.0.1:${port}`);
    assert.equal(e.code, 'DBA_CONFIG');
    assert.equal(e.message, `config collector.listen: 127.0.0.1:${port} is already in use (another process listens there)`);
    assert.equal(e.cause, err);
  } finally {
    busy.close();
  }
});

test('EADDRNOTAVAIL: an address that is not this host\'s (192.0.2.1, TEST-NET-1)', async () => {
  const err = await listenFailure('192.0.2.1', 0);
  assert.equal((err as Error & { code?: string }).code, 'EADDRNOTAVAIL');
  assert.equal(listenError(err, 'collector.http.listen', '192.0.2.1:9090').message, 'config collector.http.listen: 192.0.2.1:9090 is not an address of this host');
});

test('EACCES, ENOTFOUND, EAI_AGAIN (a privileged port, a host that does not resolve, no DNS)', () => {
  const sys = (code: string): Error => Object.assign(new Error(`listen ${code}`), { code, syscall: 'listen' });
  assert.equal(listenError(sys('EACCES'), 'collector.listen', '0.0.0.0:80').message, 'config collector.listen: 0.0.0.0:80 cannot be opened: permission denied (ports below 1024 need privileges)');
  assert.equal(listenError(sys('ENOTFOUND'), 'collector.listen', 'nosuch.invalid:5432').message, 'config collector.listen: nosuch.invalid:5432 names a host that does not resolve');
  assert.equal(listenError(sys('EAI_AGAIN'), 'collector.listen', 'db.example:5432').message, 'config collector.listen: db.example:5432 names a host that cannot be resolved now (DNS unavailable)');
});

test('grpc-js bind errors (no code; Node\'s code in the text), as grpc-js 1.x words them', () => {
  const inUse = new Error('No address added out of total 1 resolved errors: [listen EADDRINUSE: address already in use 127.0.0.1:50051]');
  assert.equal(listenError(inUse, 'gateway.listen', '127.0.0.1:50051').message, 'config gateway.listen: 127.0.0.1:50051 is already in use (another process listens there)');
  const unresolved = new Error('Name resolution failed for target dns:nosuch.invalid:50051');
  assert.equal(listenError(unresolved, 'gateway.listen', 'nosuch.invalid:50051').message, 'config gateway.listen: nosuch.invalid:50051 names a host that does not resolve');
});

test('anything else keeps Node\'s message, still one line with the key', () => {
  assert.equal(listenError(new Error('boom'), 'gateway.listen', '127.0.0.1:1').message, 'config gateway.listen: cannot listen on 127.0.0.1:1: boom');
});
