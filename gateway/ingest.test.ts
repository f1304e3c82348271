import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { create, toBinary } from '@bufbuild/protobuf';
import { AuditEventSchema, type AuditEvent } from '../proto/gen/audit/v1/event_pb.js';
import { GatewayMetrics } from '../lib/metrics.js';
import { startGateway } from './server.js';
import { EmbeddedStore } from './store-embedded.js';
import type { PutResult, Store, StoredEvent } from './store.js';
import { StoreWrapper } from './store-wrapper.js';
import { MAX_BATCH_EVENTS } from './ingest.js';
import { T0, TestStream, ackView, batchOf, gatewayConfig, makeTestEvent, tempDir } from './testing.js';

async function metricValue(metrics: GatewayMetrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = (await metrics.registry.getMetricsAsJSON()).find((x) => x.name === name);
  const v = m?.values.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return v?.value ?? 0;
}

function events(n: number, base = T0): AuditEvent[] {
  return Array.from({ length: n }, (_, i) => makeTestEvent({ timeMs: base + i, seq: BigInt(i + 1), statement: `select ${i}` }));
}

test('acks report exactly what was stored, duplicated and rejected, in batch order', async () => {
  const tmp = tempDir();
  const stored: AuditEvent[] = [];
  const gw = await startGateway({ config: gatewayConfig(tmp.dir), onStored: (evs) => stored.push(...evs) });
  try {
    const evs = events(5);
    const s = new TestStream(gw.address);
    s.send(batchOf(1, evs.slice(0, 3)));
    s.send(batchOf(2, [evs[3], evs[0], evs[4]]));
    s.send(batchOf(3, []));
    await s.waitAcks(3);
    assert.deepEqual(s.acks.map(ackView), [
      { batchId: 1, stored: 3, duplicates: 0, rejected: 0, error: '' },
      { batchId: 2, stored: 2, duplicates: 1, rejected: 0, error: '' },
      { batchId: 3, stored: 0, duplicates: 0, rejected: 0, error: '' },
    ]);
    assert.equal((await s.finish()).code, grpc.status.OK);
    assert.equal(await gw.store.count(), 5);
    assert.deepEqual(stored.map((e) => e.eventId), [evs[0], evs[1], evs[2], evs[3], evs[4]].map((e) => e.eventId));
    assert.equal(stored[0].deliveredBy, 'col-a');
    assert.ok(stored[0].receivedAt);
    assert.equal(await metricValue(gw.metrics, 'dbaudit_gateway_events_stored_total'), 5);
    assert.equal(await metricValue(gw.metrics, 'dbaudit_gateway_events_duplicate_total'), 1);
    assert.equal(await metricValue(gw.metrics, 'dbaudit_api_requests_total', { endpoint: 'events', status: '200' }), 3);
  } finally {
    await gw.close();
    tmp.remove();
  }
});

test('the same events sent twice, and concurrently on two streams, are stored once', async () => {
  const tmp = tempDir();
  const gw = await startGateway({ config: gatewayConfig(tmp.dir) });
  try {
    const evs = events(400);
    const a = new TestStream(gw.address);
    const b = new TestStream(gw.address);
    for (let i = 0; i < 20; i++) {
      a.send(batchOf(i + 1, evs.slice(i * 20, i * 20 + 20)));
      b.send(batchOf(i + 1, evs.slice(i * 20, i * 20 + 20), 'col-b'));
    }
    await Promise.all([a.waitAcks(20), b.waitAcks(20)]);
    const all = [...a.acks, ...b.acks];
    assert.equal(all.reduce((n, x) => n + x.stored, 0), 400);
    assert.equal(all.reduce((n, x) => n + x.duplicates, 0), 400);
    assert.deepEqual(a.acks.map((x) => Number(x.batchId)), Array.from({ length: 20 }, (_, i) => i + 1));
    for (const ack of all) assert.equal(ack.stored + ack.duplicates, 20);
    // and once more, afterwards: every one a duplicate
    a.send(batchOf(21, evs.slice(0, 50)));
    await a.waitAcks(21);
    assert.deepEqual(ackView(a.acks[20]), { batchId: 21, stored: 0, duplicates: 50, rejected: 0, error: '' });
    await Promise.all([a.finish(), b.finish()]);
    assert.equal(await gw.store.count(), 400);
    const found = await gw.store.search({ limit: 10_000 });
    assert.equal(new Set(found.map((e) => e.eventId)).size, 400);
    assert.equal(found.length, 400);
  } finally {
    await gw.close();
    tmp.remove();
  }
});

test('malformed events are rejected and counted while the good events of the batch are stored', async () => {
  const tmp = tempDir();
  const gw = await startGateway({ config: gatewayConfig(tmp.dir) });
  try {
    const good = events(3);
    const noTime = makeTestEvent();
    noTime.time = undefined;
    const batch = batchOf(7, [
      good[0],
      new Uint8Array([0xff, 0xff, 0xff]),
      makeTestEvent({ eventId: 'not-a-uuid' }),
      makeTestEvent({ kind: 'telepathy' }),
      makeTestEvent({ collectorId: '' }),
      good[1],
      makeTestEvent({ epoch: '' }),
      noTime,
      makeTestEvent({ user: 'u'.repeat(2000) }),
    ]);
    const s = new TestStream(gw.address);
    s.send(batch);
    s.send(batchOf(8, [good[2]]));
    await s.waitAcks(2);
    const first = ackView(s.acks[0]);
    assert.deepEqual({ ...first, error: '' }, { batchId: 7, stored: 2, duplicates: 0, rejected: 7, error: '' });
    assert.match(first.error, /^7 events rejected: event 1: not a valid AuditEvent/);
    assert.match(first.error, /event 2: event_id "not-a-uuid" is not a lower-case UUID/);
    assert.match(first.error, /event 3: kind "telepathy" is not one of/);
    assert.match(first.error, /event 4: collector_id is empty/);
    assert.match(first.error, /event 6: epoch is empty/);
    assert.match(first.error, /and 2 more$/);
    assert.deepEqual(ackView(s.acks[1]), { batchId: 8, stored: 1, duplicates: 0, rejected: 0, error: '' });
    assert.equal((await s.finish()).code, grpc.status.OK);
    assert.equal(await gw.store.count(), 3);
    for (const reason of ['decode', 'event_id', 'kind', 'collector_id', 'epoch', 'time', 'field_too_long']) {
      assert.equal(await metricValue(gw.metrics, 'dbaudit_gateway_events_rejected_total', { reason }), 1, reason);
    }
    assert.equal(await metricValue(gw.metrics, 'dbaudit_api_requests_total', { endpoint: 'events', status: '400' }), 1);
    assert.equal(await metricValue(gw.metrics, 'dbaudit_api_requests_total', { endpoint: 'events', status: '200' }), 1);
  } finally {
    await gw.close();
    tmp.remove();
  }
});

/** A store whose writes wait for the test to let them finish, logging when they really complete. */
class GatedStore extends StoreWrapper {
  readonly log: string[] = [];
  #release: (() => void) | undefined;
  putCalled: Promise<void>;
  #putCalled!: () => void;
  failNext = false;

  constructor(inner: Store) {
    super(inner);
    this.putCalled = new Promise((r) => (this.#putCalled = r));
  }
  override async put(evs: readonly StoredEvent[]): Promise<PutResult> {
    const gate = new Promise<void>((r) => (this.#release = r));
    this.#putCalled();
    await gate;
    if (this.failNext) throw new Error('disk on fire');
    const r = await this.inner.put(evs);
    this.log.push('durable');
    return r;
  }
  release(): void {
    this.#release?.();
  }
}

test('an ack is written only after the store write is durable; a failed write gives UNAVAILABLE and no ack', async () => {
  const tmp = tempDir();
  const store = new GatedStore(new EmbeddedStore(tmp.dir));
  const gw = await startGateway({ config: gatewayConfig(tmp.dir), store });
  try {
    const s = new TestStream(gw.address);
    s.call.on('data', () => store.log.push('ack'));
    s.send(batchOf(1, events(2)));
    await store.putCalled;
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(s.acks.length, 0, 'no ack while the write is pending');
    store.release();
    await s.waitAcks(1);
    assert.deepEqual(store.log, ['durable', 'ack']);

    store.failNext = true;
    store.putCalled = new Promise((r) => setImmediate(r));
    s.send(batchOf(2, events(2, T0 + 1000)));
    await new Promise((r) => setTimeout(r, 50));
    store.release();
    const status = await s.done;
    assert.equal(status.code, grpc.status.UNAVAILABLE);
    assert.match(status.details, /store write failed/);
    assert.equal(s.acks.length, 1);
    assert.equal(await metricValue(gw.metrics, 'dbaudit_api_requests_total', { endpoint: 'events', status: '503' }), 1);
    s.client.close();
  } finally {
    await gw.close();
    tmp.remove();
  }
});

test('a batch with too many events ends the stream with RESOURCE_EXHAUSTED, stores nothing, other streams go on', async () => {
  const tmp = tempDir();
  const gw = await startGateway({ config: gatewayConfig(tmp.dir) });
  try {
    const tiny = toBinary(AuditEventSchema, create(AuditEventSchema, {}));
    const s = new TestStream(gw.address);
    s.send(batchOf(1, Array.from({ length: MAX_BATCH_EVENTS + 1 }, () => tiny)));
    const other = new TestStream(gw.address);
    other.send(batchOf(1, events(1)));
    const status = await s.done;
    assert.equal(status.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(status.details, `batch 1 has ${MAX_BATCH_EVENTS + 1} events; at most ${MAX_BATCH_EVENTS} are accepted per batch`);
    s.client.close();
    await other.waitAcks(1);
    assert.equal(other.acks[0].stored, 1);
    await other.finish();
    assert.equal(await gw.store.count(), 1);
    assert.equal(await metricValue(gw.metrics, 'dbaudit_gateway_events_rejected_total', { reason: 'batch_too_large' }), 1);
    assert.equal(await metricValue(gw.metrics, 'dbaudit_api_requests_total', { endpoint: 'events', status: '429' }), 1);

    // Over the 16 MiB message limit: grpc-js refuses it before the handler; still counted, and the gateway goes on.
    const big = new TestStream(gw.address);
    big.send(batchOf(2, [makeTestEvent({ statement: 'x'.repeat(17 * 1024 * 1024) })]));
    const bigStatus = await big.done;
    assert.equal(bigStatus.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.match(bigStatus.details, /^Received message larger than max \(\d+ vs 16777216\)$/);
    big.client.close();
    assert.equal(await metricValue(gw.metrics, 'dbaudit_gateway_events_rejected_total', { reason: 'message_too_large' }), 1);
    assert.equal(await metricValue(gw.metrics, 'dbaudit_api_requests_total', { endpoint: 'events', status: '429' }), 2);
    const after = new TestStream(gw.address);
    after.send(batchOf(3, events(2)));
    await after.waitAcks(1);
    assert.equal(after.acks[0].stored, 2);
    await after.finish();
  } finally {
    await gw.close();
    tmp.remove();
  }
});

test('a restarted gateway keeps its events and still recognises them as duplicates', async () => {
  const tmp = tempDir();
  const evs = events(10);
  let gw = await startGateway({ config: gatewayConfig(tmp.dir) });
  const s = new TestStream(gw.address);
  s.send(batchOf(1, evs));
  await s.waitAcks(1);
  await s.finish();
  await gw.close();
  gw = await startGateway({ config: gatewayConfig(tmp.dir) });
  try {
    assert.equal(await gw.store.count(), 10);
    const again = new TestStream(gw.address);
    again.send(batchOf(1, evs));
    await again.waitAcks(1);
    assert.deepEqual(ackView(again.acks[0]), { batchId: 1, stored: 0, duplicates: 10, rejected: 0, error: '' });
    await again.finish();
    const found = await gw.store.search({ limit: 100 });
    assert.deepEqual(found.map((e) => e.eventId), evs.map((e) => e.eventId).reverse());
  } finally {
    await gw.close();
    tmp.remove();
  }
});

test('bytes that are not an EventBatch end that stream with INVALID_ARGUMENT, counted; other streams go on', async () => {
  const tmp = tempDir();
  const gw = await startGateway({ config: gatewayConfig(tmp.dir) });
  try {
    const raw = new grpc.Client(gw.address, grpc.credentials.createInsecure());
    const call = raw.makeBidiStreamRequest('/dbaudit.audit.v1.IngestService/Stream', (b: Buffer) => b, (b: Buffer) => b);
    const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    call.on('error', () => undefined);
    call.write(Buffer.from([0xff, 0xff, 0xff]));
    const other = new TestStream(gw.address);
    other.send(batchOf(1, events(2)));
    const s = await status;
    assert.equal(s.code, grpc.status.INVALID_ARGUMENT);
    assert.match(s.details, /^the message is not a valid EventBatch \(/);
    raw.close();
    await other.waitAcks(1);
    assert.equal(other.acks[0].stored, 2);
    await other.finish();
    assert.equal(await metricValue(gw.metrics, 'dbaudit_gateway_events_rejected_total', { reason: 'batch_decode' }), 1);
    assert.equal(await metricValue(gw.metrics, 'dbaudit_api_requests_total', { endpoint: 'events', status: '400' }), 1);
  } finally {
    await gw.close();
    tmp.remove();
  }
});
