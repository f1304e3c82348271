import { test } from 'node:test';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { toBinary } from '@bufbuild/protobuf';
import { AuditEventSchema, type AuditEvent } from '../proto/gen/audit/v1/event_pb.js';
import { ManualClock } from '../lib/clock.js';
import { EmbeddedStore } from './store-embedded.js';
import { RocksDb } from './rocksdb-binding.js';
import { startGateway } from './server.js';
import type { StoredEvent } from './store.js';
import { T0, TestStream, batchOf, gatewayConfig, makeTestEvent, tempDir } from './testing.js';

function stored(ev: AuditEvent, deliveredBy = 'col-a'): StoredEvent {
  const t = ev.time;
  assert.ok(t);
  return { eventId: ev.eventId, timeMicros: Number(t.seconds) * 1e6 + t.nanos / 1000, event: ev, raw: toBinary(AuditEventSchema, ev), deliveredBy, receivedAtMs: T0 };
}

async function keysByTag(dir: string): Promise<Record<string, number>> {
  const db = new RocksDb(dir);
  await db.open();
  const counts: Record<string, number> = {};
  const it = db.iterator({ values: false });
  for (let e = await it.next(); e; e = await it.next()) {
    const tag = String.fromCharCode(e.key[0]);
    counts[tag] = (counts[tag] ?? 0) + 1;
  }
  await it.end();
  await db.close();
  return counts;
}

// The behaviour every backend owes (dedup under concurrency, search, get, retention, close) is
// in store-contract.test.ts, run against this store and PostgreSQL; here: the embedded key layout.

test('concurrent puts with overlapping ids store each id once and account for every event', async () => {
  const tmp = tempDir();
  const store = new EmbeddedStore(tmp.dir);
  await store.open();
  try {
    const evs = Array.from({ length: 300 }, (_, i) => stored(makeTestEvent({ timeMs: T0 + i })));
    // 30 writers, each with an overlapping window of 50 events, plus a repeat inside one call
    const calls = Array.from({ length: 30 }, (_, w) => store.put([...Array.from({ length: 50 }, (_, j) => evs[(w * 10 + j) % 300]), evs[w * 10]]));
    const results = await Promise.all(calls);
    assert.equal(results.reduce((n, r) => n + r.stored, 0), 300);
    assert.equal(results.reduce((n, r) => n + r.stored + r.duplicates, 0), 30 * 51);
    for (const r of results) assert.equal(r.fresh.length, r.stored);
    assert.deepEqual(results[0], { stored: 50, duplicates: 1, fresh: Array.from({ length: 50 }, (_, i) => i) });
    assert.equal(await store.count(), 300);
    assert.deepEqual(await store.put([]), { stored: 0, duplicates: 0, fresh: [] });
  } finally {
    await store.close();
  }
  // every event has its record, its id key, five index keys (user, database, session, kind, collector) and its trail key; one epoch head
  assert.deepEqual(await keysByTag(tmp.dir), { E: 300, I: 300, U: 300, D: 300, S: 300, K: 300, C: 300, M: 1, Q: 300, H: 1 });
  tmp.remove();
});

test('retention deletes records, id keys and index keys, and keeps the count', async () => {
  const tmp = tempDir();
  const store = new EmbeddedStore(tmp.dir);
  await store.open();
  const evs = Array.from({ length: 2500 }, (_, i) => stored(makeTestEvent({ timeMs: T0 + i })));
  await store.put(evs);
  assert.equal(await store.deleteBefore((T0 + 2200) * 1000), 2200);
  assert.equal(await store.count(), 300);
  assert.equal((await store.search({ limit: 10_000 })).length, 300);
  await store.close();
  assert.deepEqual(await keysByTag(tmp.dir), { E: 300, I: 300, U: 300, D: 300, S: 300, K: 300, C: 300, M: 1, Q: 300, H: 1, X: 1 });
  const again = new EmbeddedStore(tmp.dir);
  await again.open();
  assert.equal(await again.count(), 300);
  await again.close();
  tmp.remove();
});

test('closing the gateway with a stream open answers what it received and does not hang', async () => {
  const tmp = tempDir();
  const gw = await startGateway({ config: gatewayConfig(tmp.dir) });
  const s = new TestStream(gw.address);
  s.send(batchOf(1, [makeTestEvent()]));
  await s.waitAcks(1);
  await gw.close();
  const status = await s.done;
  assert.notEqual(status.code, grpc.status.OK);
  s.client.close();
  tmp.remove();
});

test('gateway.retention sweeps events older than the retention when the gateway starts', async () => {
  const tmp = tempDir();
  let gw = await startGateway({ config: gatewayConfig(tmp.dir) });
  const s = new TestStream(gw.address);
  const old = makeTestEvent({ timeMs: T0 });
  const recent = makeTestEvent({ timeMs: T0 + 90 * 60_000 });
  s.send(batchOf(1, [old, recent]));
  await s.waitAcks(1);
  await s.finish();
  await gw.close();
  gw = await startGateway({ config: gatewayConfig(tmp.dir, ['--gateway.retention', '1h']), clock: new ManualClock(T0 + 2 * 3_600_000) });
  try {
    await gw.retentionSwept;
    assert.equal(await gw.store.count(), 1);
    assert.deepEqual((await gw.store.search({ limit: 10 })).map((e) => e.eventId), [recent.eventId]);
  } finally {
    await gw.close();
    tmp.remove();
  }
});

test('gateway.write_buffer_size reaches RocksDB (its OPTIONS file), 16MB by default', async () => {
  const writeBufferSize = async (extra: string[]): Promise<string | undefined> => {
    const tmp = tempDir();
    const gw = await startGateway({ config: gatewayConfig(tmp.dir, extra) });
    try {
      const file = readdirSync(tmp.dir).filter((f) => f.startsWith('OPTIONS-')).sort().pop();
      assert.ok(file, `RocksDB wrote no OPTIONS file in ${tmp.dir}`);
      return /^\s*write_buffer_size=(\d+)$/m.exec(readFileSync(join(tmp.dir, file), 'utf8'))?.[1];
    } finally {
      await gw.close();
      tmp.remove();
    }
  };
  assert.equal(await writeBufferSize([]), String(16 << 20));
  assert.equal(await writeBufferSize(['--gateway.write_buffer_size', '48MB']), String(48 << 20));
  assert.throws(() => gatewayConfig('/nonexistent', ['--gateway.write_buffer_size', '2GB']), /config gateway\.write_buffer_size: invalid value "2GB"; expected a size of at least 1048576 bytes and at most 1073741824 bytes/);
});
