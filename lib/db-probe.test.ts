import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { CachedProbe, probeDatabase, type ProbeResult } from './db-probe.js';

/** A TCP server on loopback answering each connection with `onConn`; resolves with its port and what each client sent. */
async function fakeServer(onConn: (s: net.Socket, received: Buffer[]) => void): Promise<{ port: number; received: Buffer[][]; close(): Promise<void> }> {
  const received: Buffer[][] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    const got: Buffer[] = [];
    received.push(got);
    s.on('data', (d) => got.push(d));
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
    onConn(s, got);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    received,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

test('postgres probe: sends exactly an SSLRequest; N is reachable and the probe closes', async () => {
  const srv = await fakeServer((s) => s.once('data', () => s.write('N')));
  try {
    const r = await probeDatabase('postgres', '127.0.0.1', srv.port, 1000);
    assert.equal(r.ok, true, r.error);
    await new Promise((res) => setTimeout(res, 50));
    assert.deepEqual(Buffer.concat(srv.received[0]), SSL_REQUEST);
  } finally {
    await srv.close();
  }
});

test('postgres probe: an answer that is not N/S/E is not PostgreSQL; a refused port and a silent server fail with reasons', async () => {
  const http = await fakeServer((s) => s.once('data', () => s.end('HTTP/1.1 400 Bad Request\r\n\r\n')));
  const silent = await fakeServer(() => {});
  try {
    const r = await probeDatabase('postgres', '127.0.0.1', http.port, 1000);
    assert.equal(r.ok, false);
    assert.match(r.error!, /not a PostgreSQL server \(answer 0x48/);
    const t = await probeDatabase('postgres', '127.0.0.1', silent.port, 200);
    assert.equal(t.ok, false);
    assert.match(t.error!, /no answer .* within 200ms/);
  } finally {
    await http.close();
    await silent.close();
  }
  const closedPort = http.port;
  const refused = await probeDatabase('postgres', '127.0.0.1', closedPort, 1000);
  assert.equal(refused.ok, false);
  assert.match(refused.error!, /ECONNREFUSED/);
});

test('mysql probe: a protocol-10 greeting is reachable, sends nothing; an error packet is not', async () => {
  const greeting = Buffer.concat([Buffer.from([10, 0, 0, 0]), Buffer.from([0x0a]), Buffer.from('10.11.0-MariaDB\0'), Buffer.alloc(4, 1)]);
  greeting.writeUIntLE(greeting.length - 4, 0, 3);
  // Split across two writes: the probe must reassemble.
  const ok = await fakeServer((s) => {
    s.write(greeting.subarray(0, 3));
    setTimeout(() => s.write(greeting.subarray(3)), 20);
  });
  const msg = Buffer.from('#HY000Too many connections');
  const errPacket = Buffer.concat([Buffer.from([0, 0, 0, 0, 0xff, 0x10, 0x04]), msg]);
  errPacket.writeUIntLE(errPacket.length - 4, 0, 3);
  const full = await fakeServer((s) => s.end(errPacket));
  try {
    const r = await probeDatabase('mysql', '127.0.0.1', ok.port, 1000);
    assert.equal(r.ok, true, r.error);
    await new Promise((res) => setTimeout(res, 50));
    assert.equal(Buffer.concat(ok.received[0]).length, 0);
    const e = await probeDatabase('mysql', '127.0.0.1', full.port, 1000);
    assert.equal(e.ok, false);
    assert.match(e.error!, /refused connections: 1040 Too many connections/);
  } finally {
    await ok.close();
    await full.close();
  }
});

test('CachedProbe: one probe per ttl however many callers, concurrent callers share one in flight', async () => {
  let now = 0;
  let runs = 0;
  let release: ((r: ProbeResult) => void) | undefined;
  const p = new CachedProbe(
    () => {
      runs++;
      return new Promise<ProbeResult>((r) => (release = r));
    },
    5_000,
    () => now,
  );
  const a = p.check();
  const b = p.check();
  assert.equal(runs, 1);
  release!({ ok: true, latencyMs: 1 });
  assert.deepEqual(await a, await b);
  now = 4_999;
  await p.check();
  assert.equal(runs, 1);
  now = 5_000;
  const c = p.check();
  assert.equal(runs, 2);
  release!({ ok: false, error: 'down', latencyMs: 1 });
  assert.equal((await c).ok, false);
  assert.equal(p.last?.error, 'down');
  p.invalidate();
  void p.check();
  assert.equal(runs, 3);
  release!({ ok: true, latencyMs: 1 });
});

test('CachedProbe: a probe that throws is a failed result, not a rejection', async () => {
  const p = new CachedProbe(() => Promise.reject(new Error('boom')), 1000);
  const r = await p.check();
  assert.deepEqual(r, { ok: false, error: 'boom', latencyMs: 0 });
});
