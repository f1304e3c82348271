import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, isAuditError } from '../lib/errors.js';
import * as grpc from '@grpc/grpc-js';
import { freePort, sharedPostgres, skipUnless } from '../test/harness/index.js';
import type { AuditEvent } from '../proto/gen/audit/v1/event_pb.js';
import type { CallGuard, GuardedCall } from './auth.js';
import { REPLICATION_HEADER, arrivedByReplication, replicationGuard } from './replicate.js';
import { RecordingStore, replicationFlags, waitFor, writeKeyFile } from './replicate-testing.js';
import { startGateway, type GatewayHandle } from './server.js';
import { T0, TestStream, batchOf, encode, gatewayConfig, makeTestEvent, tempDir } from './testing.js';

function events(n: number, from = 0): AuditEvent[] {
  return Array.from({ length: n }, (_, i) => makeTestEvent({ timeMs: T0 + from + i, seq: BigInt(from + i + 1), statement: `select ${from + i}` }));
}

async function sendAll(gw: GatewayHandle, evs: AuditEvent[], batch = 100, collectorId = 'col-a'): Promise<void> {
  const s = new TestStream(gw.address);
  let n = 0;
  for (let i = 0; i < evs.length; i += batch) s.send(batchOf(++n, evs.slice(i, i + batch), collectorId));
  await s.waitAcks(n);
  assert.ok(s.acks.every((a) => a.rejected === 0));
  await s.finish();
}

async function counter(gw: GatewayHandle, name: 'eventsDuplicate' | 'eventsStored'): Promise<number> {
  return (await gw.metrics[name].get()).values.reduce((n, v) => n + v.value, 0);
}

test('active-passive: events stored by A reach B once, with the same ids and bytes, marked as replicated', async () => {
  const tmp = tempDir();
  const b = await startGateway({ config: gatewayConfig(join(tmp.dir, 'b'), ['--gateway.id', 'gw-b']) });
  const a = await startGateway({ config: gatewayConfig(join(tmp.dir, 'a'), replicationFlags('gw-a', [b.address], writeKeyFile(tmp.dir))) });
  try {
    assert.ok(a.replication);
    assert.equal(b.replication, undefined);
    const evs = events(300);
    await sendAll(a, evs);
    await sendAll(a, evs.slice(0, 50)); // a collector's replay: duplicates at A, not replicated again
    await waitFor('B to hold every event', async () => (await b.store.count()) === 300);
    assert.equal(await a.replication.waitIdle(10_000), true);
    assert.equal(a.replication.pending(), 0);
    for (const ev of evs) {
      const got = await b.store.get(ev.eventId);
      assert.ok(got, ev.eventId);
      assert.deepEqual(Buffer.from(got.raw), Buffer.from(encode(ev)));
      assert.equal(got.event.deliveredBy, 'replication:gw-a');
      assert.equal(got.event.collectorId, 'col-a', 'the original provenance travels inside the bytes');
    }
    assert.equal(await counter(b, 'eventsStored'), 300, 'each event stored at B once');
    // The replayed 50 were copied before A's store called them duplicates, but held back until then and dropped: never sent.
    assert.equal(await counter(b, 'eventsDuplicate'), 0, 'nothing sent to B twice');
    assert.deepEqual(a.replication.peers(), [{ endpoint: b.address, connected: true, pending: 0 }]);
    assert.equal(a.replication.lagSeconds(), 0);
    assert.match(await a.metrics.registry.metrics(), /^dbaudit_replication_lag_seconds \S+$/m);
  } finally {
    await a.close();
    await b.close();
    tmp.remove();
  }
});

test('active-active: events sent to A and to B are stored once in each and none bounce back', async () => {
  const tmp = tempDir();
  const key = writeKeyFile(tmp.dir);
  const [portA, portB] = [await freePort(), await freePort()];
  const storeA = new RecordingStore(join(tmp.dir, 'a-store'));
  const storeB = new RecordingStore(join(tmp.dir, 'b-store'));
  const a = await startGateway({
    config: gatewayConfig(join(tmp.dir, 'a'), ['--gateway.listen', `127.0.0.1:${portA}`, ...replicationFlags('gw-a', [`127.0.0.1:${portB}`], key)]),
    store: storeA,
  });
  const b = await startGateway({
    config: gatewayConfig(join(tmp.dir, 'b'), ['--gateway.listen', `127.0.0.1:${portB}`, ...replicationFlags('gw-b', [`127.0.0.1:${portA}`], key)]),
    store: storeB,
  });
  try {
    const toA = events(200, 0);
    const toB = events(200, 1000);
    const both = events(100, 2000);
    await Promise.all([sendAll(a, [...toA, ...both], 100, 'col-1'), sendAll(b, [...toB, ...both], 100, 'col-2')]);
    await waitFor('both regions to hold every event', async () => (await a.store.count()) === 500 && (await b.store.count()) === 500);
    assert.ok(a.replication && b.replication);
    assert.equal(await a.replication.waitIdle(10_000), true);
    assert.equal(await b.replication.waitIdle(10_000), true);

    const idsOf = (evs: AuditEvent[]): Set<string> => new Set(evs.map((e) => e.eventId));
    for (const [name, store, own, other] of [['A', storeA, idsOf(toA), idsOf(toB)], ['B', storeB, idsOf(toB), idsOf(toA)]] as const) {
      const replicated = store.replicated();
      for (const id of own) assert.ok(!replicated.has(id), `${name} got one of its own events back by replication`);
      for (const id of other) assert.equal(replicated.get(id), 1, `${name} received the peer's event once`);
      for (const [id, times] of replicated) {
        assert.equal(times, 1, `${name} received ${id} by replication ${times} times`);
        assert.ok(other.has(id) || idsOf(both).has(id));
      }
      const fromCollector = store.received.filter((r) => !r.deliveredBy.startsWith('replication:')).length;
      assert.equal(fromCollector, 300);
      // Everything that reached this side: its collector's 300 plus at most the peer's 300, never more.
      assert.ok(store.received.length <= 600, `${name} received ${store.received.length} events`);
    }
    const stored = (await a.store.search({ limit: 10_000 })).map((e) => e.eventId).sort();
    assert.deepEqual(stored, (await b.store.search({ limit: 10_000 })).map((e) => e.eventId).sort());
    assert.equal(new Set(stored).size, 500);
  } finally {
    await a.close();
    await b.close();
    tmp.remove();
  }
});

test('peer down for a while: the replication cache holds, then replays everything once', async () => {
  const tmp = tempDir();
  const portB = await freePort();
  const a = await startGateway({ config: gatewayConfig(join(tmp.dir, 'a'), replicationFlags('gw-a', [`127.0.0.1:${portB}`], writeKeyFile(tmp.dir))) });
  let b: GatewayHandle | undefined;
  try {
    assert.ok(a.replication);
    const evs = events(400);
    await sendAll(a, evs.slice(0, 200));
    assert.equal(a.replication.pending(), 200, 'acknowledged to the collector, queued for the peer');
    assert.equal(a.replication.peers()[0].connected, false);
    await sendAll(a, evs.slice(200));
    assert.equal(a.replication.pending(), 400);
    assert.match(await a.metrics.registry.metrics(), /^dbaudit_replication_pending 400$/m);

    b = await startGateway({ config: gatewayConfig(join(tmp.dir, 'b'), ['--gateway.listen', `127.0.0.1:${portB}`, '--gateway.id', 'gw-b']) });
    const peer = b;
    await waitFor('B to hold every event', async () => (await peer.store.count()) === 400);
    assert.equal(await a.replication.waitIdle(10_000), true);
    assert.equal(await counter(b, 'eventsStored'), 400);
    assert.equal(await counter(b, 'eventsDuplicate'), 0);
    assert.deepEqual((await b.store.search({ limit: 1000 })).map((e) => e.eventId).sort(), evs.map((e) => e.eventId).sort());
  } finally {
    await a.close();
    await b?.close();
    tmp.remove();
  }
});

test('the replication cache survives a restart of A: what was not acknowledged is sent after it', async () => {
  const tmp = tempDir();
  const key = writeKeyFile(tmp.dir);
  const portB = await freePort();
  const flags = replicationFlags('gw-a', [`127.0.0.1:${portB}`], key);
  let a = await startGateway({ config: gatewayConfig(join(tmp.dir, 'a'), flags) });
  const evs = events(150);
  await sendAll(a, evs);
  await a.close();
  a = await startGateway({ config: gatewayConfig(join(tmp.dir, 'a'), flags) });
  const b = await startGateway({ config: gatewayConfig(join(tmp.dir, 'b'), ['--gateway.listen', `127.0.0.1:${portB}`]) });
  try {
    await waitFor('B to hold every event', async () => (await b.store.count()) === 150);
    assert.equal(await a.replication?.waitIdle(10_000), true);
  } finally {
    await a.close();
    await b.close();
    tmp.remove();
  }
});

test('replicate_to without a replication key fails at start naming the keys', async () => {
  const tmp = tempDir();
  await assert.rejects(
    startGateway({ config: gatewayConfig(tmp.dir, ['--gateway.replicate_to', '127.0.0.1:1']) }),
    (e) => isAuditError(e, ErrorCode.Config) && /gateway\.replication\.key_file/.test(e.message) && /DBAUDIT_REPLICATION_KEY/.test(e.message),
  );
  tmp.remove();
});

test('replicationGuard: only admitted callers are marked, by their certificate name when they have one', () => {
  const call = (headers: Record<string, string>, cn?: string): GuardedCall => {
    const metadata = new grpc.Metadata();
    for (const [k, v] of Object.entries(headers)) metadata.set(k, v);
    return { metadata, getPeer: () => 'ipv4:127.0.0.1:1', getAuthContext: () => (cn ? { sslPeerCertificate: { subject: { CN: cn } } as never } : {}) };
  };
  const refuse: CallGuard = () => ({ ok: false, status: { code: grpc.status.UNAUTHENTICATED, details: 'no', metadata: new grpc.Metadata() } });
  const named: CallGuard = (c) => ({ ok: true, identity: c.getAuthContext().sslPeerCertificate?.subject?.CN as string | undefined });
  assert.equal(replicationGuard(refuse)(call({ [REPLICATION_HEADER]: 'gw-a' })).ok, false);
  assert.deepEqual(replicationGuard(named)(call({ [REPLICATION_HEADER]: 'gw-a' })), { ok: true, identity: 'replication:gw-a' });
  assert.deepEqual(replicationGuard(named)(call({ [REPLICATION_HEADER]: 'gw-a' }, 'gw-eu.example')), { ok: true, identity: 'replication:gw-eu.example' });
  assert.deepEqual(replicationGuard(named)(call({}, 'collector-1')), { ok: true, identity: 'collector-1' });
  assert.equal(arrivedByReplication('replication:gw-a'), true);
  assert.equal(arrivedByReplication('col-a'), false);
});

test('two replicas of region A on one PostgreSQL store, both replicating to B: the same events sent to both reach B and are stored once', { skip: skipUnless('postgres') }, async () => {
  const server = await sharedPostgres({});
  const url = server.url(await server.createDatabase('repl'));
  const tmp = tempDir();
  const key = writeKeyFile(tmp.dir);
  const b = await startGateway({ config: gatewayConfig(join(tmp.dir, 'b'), ['--gateway.id', 'gw-b']) });
  const [a1, a2] = await Promise.all(
    ['a1', 'a2'].map((id) => startGateway({ config: gatewayConfig(join(tmp.dir, id), ['--gateway.store', url, ...replicationFlags(id, [b.address], key)]) })),
  );
  try {
    const evs = events(600);
    await Promise.all([sendAll(a1, evs, 100, 'col-1'), sendAll(a2, [...evs].reverse(), 100, 'col-2')]);
    assert.equal(await a1.store.count(), 600);
    await waitFor('B to hold every event', async () => (await b.store.count()) === 600);
    assert.equal(await a1.replication?.waitIdle(10_000), true);
    assert.equal(await a2.replication?.waitIdle(10_000), true);
    assert.equal(await counter(b, 'eventsStored'), 600);
    assert.equal(await counter(b, 'eventsDuplicate'), 0, 'the replica whose store write lost the race drops its copy unsent');
    const byA = (await b.store.search({ limit: 1000 })).map((e) => e.deliveredBy);
    assert.ok(byA.every((d) => d === 'replication:a1' || d === 'replication:a2'));
  } finally {
    await a1.close();
    await a2.close();
    await b.close();
    tmp.remove();
  }
});

test('a peer that requires a bearer token: refused without it (events stay queued), accepted with gateway.replication.token_file', async () => {
  const tmp = tempDir();
  const tokenFile = join(tmp.dir, 'peer.token');
  writeFileSync(tokenFile, 'replication-token-0123456789\n');
  const key = writeKeyFile(tmp.dir);
  const b = await startGateway({ config: gatewayConfig(join(tmp.dir, 'b'), ['--gateway.token_file', tokenFile]) });
  let a = await startGateway({ config: gatewayConfig(join(tmp.dir, 'a'), replicationFlags('gw-a', [b.address], key)) });
  try {
    await sendAll(a, events(20));
    await waitFor('B to refuse A', async () => (await b.metrics.authFailures.get()).values[0]?.value > 0);
    assert.equal(await b.store.count(), 0);
    assert.equal(a.replication?.pending(), 20);
    await a.close();
    a = await startGateway({ config: gatewayConfig(join(tmp.dir, 'a'), [...replicationFlags('gw-a', [b.address], key), '--gateway.replication.token_file', tokenFile]) });
    await waitFor('B to hold the events', async () => (await b.store.count()) === 20);
    assert.equal(await a.replication?.waitIdle(10_000), true);
  } finally {
    await a.close();
    await b.close();
    tmp.remove();
  }
});
