import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { create, toBinary } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { AuditEventSchema, type AuditEvent } from '../proto/gen/audit/v1/event_pb.js';
import { SearchRequestSchema, type SearchRequest, type SearchResponse } from '../proto/gen/audit/v1/query_pb.js';
import { QueryClient } from '../lib/grpc.js';
import { startGateway, type GatewayHandle } from './server.js';
import { normaliseLimit } from './store.js';
import { T0, TestStream, batchOf, gatewayConfig, makeTestEvent, tempDir } from './testing.js';

const MIN = 60_000;

/** Eight events over eight minutes; names are e0..e7 by time. */
function dataset(): AuditEvent[] {
  const at = (i: number): number => T0 + i * MIN;
  return [
    makeTestEvent({ timeMs: at(0), user: 'alice', database: 'shop', sessionId: 's1', kind: 'session_start' }),
    makeTestEvent({ timeMs: at(1), user: 'alice', database: 'shop', sessionId: 's1', kind: 'login_success' }),
    makeTestEvent({ timeMs: at(2), user: 'alice', database: 'shop', sessionId: 's1', statement: 'SELECT * FROM Orders' }),
    makeTestEvent({ timeMs: at(3), user: 'bob', database: 'shop', sessionId: 's2', statement: 'insert into orders values ($1)', collectorId: 'col-b' }),
    makeTestEvent({ timeMs: at(4), user: 'bob', database: 'crm', sessionId: 's3', statement: 'select 1' }),
    makeTestEvent({ timeMs: at(5), user: 'carol', database: 'crm', sessionId: 's4', kind: 'login_failure', sqlstate: '28P01' }),
    makeTestEvent({ timeMs: at(6), user: 'alice', database: 'shop', sessionId: 's1', kind: 'session_end' }),
    makeTestEvent({ timeMs: at(7), user: 'bob', database: 'crm', sessionId: 's3', statement: 'UPDATE ORDERS set x = 1', sqlstate: '42501' }),
  ];
}

let tmp: ReturnType<typeof tempDir>;
let gw: GatewayHandle;
let evs: AuditEvent[];
let client: grpc.Client & { search(r: SearchRequest, cb: (e: grpc.ServiceError | null, r?: SearchResponse) => void): void };

function search(fields: Partial<Omit<SearchRequest, '$typeName'>>): Promise<SearchResponse> {
  return new Promise((resolve, reject) => client.search(create(SearchRequestSchema, fields), (e, r) => (e ? reject(e) : resolve(r as SearchResponse))));
}

/** Names (e0..e7) of the events a search returned, in order. */
async function names(fields: Partial<Omit<SearchRequest, '$typeName'>>): Promise<string[]> {
  const res = await search(fields);
  return res.events.map((e) => `e${evs.findIndex((x) => x.eventId === e.eventId)}`);
}

before(async () => {
  tmp = tempDir();
  gw = await startGateway({ config: gatewayConfig(tmp.dir) });
  evs = dataset();
  const s = new TestStream(gw.address);
  // out of time order, over several batches
  s.send(batchOf(1, [evs[5], evs[1], evs[7]]));
  s.send(batchOf(2, [evs[0], evs[6]]));
  s.send(batchOf(3, [evs[3], evs[2], evs[4]]));
  await s.waitAcks(3);
  await s.finish();
  client = new QueryClient(gw.address, grpc.credentials.createInsecure()) as unknown as typeof client;
});

after(async () => {
  client.close();
  await gw.close();
  tmp.remove();
});

test('no filter: every event, newest first, with delivered_by and received_at', async () => {
  assert.deepEqual(await names({}), ['e7', 'e6', 'e5', 'e4', 'e3', 'e2', 'e1', 'e0']);
  const res = await search({ limit: 1 });
  assert.equal(res.events[0].deliveredBy, 'col-a');
  assert.ok(res.events[0].receivedAt && res.events[0].receivedAt.seconds > 0n);
});

test('time range: since inclusive, until exclusive', async () => {
  assert.deepEqual(await names({ since: timestampFromMs(T0 + 2 * MIN), until: timestampFromMs(T0 + 5 * MIN) }), ['e4', 'e3', 'e2']);
  assert.deepEqual(await names({ since: timestampFromMs(T0 + 6 * MIN) }), ['e7', 'e6']);
  assert.deepEqual(await names({ until: timestampFromMs(T0 + 1 * MIN) }), ['e0']);
  assert.deepEqual(await names({ since: timestampFromMs(T0 + 8 * MIN) }), []);
});

test('user, database, session, kind and collector filters, alone and together', async () => {
  assert.deepEqual(await names({ user: 'bob' }), ['e7', 'e4', 'e3']);
  assert.deepEqual(await names({ database: 'crm' }), ['e7', 'e5', 'e4']);
  assert.deepEqual(await names({ sessionId: 's1' }), ['e6', 'e2', 'e1', 'e0']);
  assert.deepEqual(await names({ kind: 'statement' }), ['e7', 'e4', 'e3', 'e2']);
  assert.deepEqual(await names({ collectorId: 'col-b' }), ['e3']);
  assert.deepEqual(await names({ user: 'bob', database: 'shop' }), ['e3']);
  assert.deepEqual(await names({ kind: 'statement', database: 'shop', since: timestampFromMs(T0 + 3 * MIN) }), ['e3']);
  assert.deepEqual(await names({ user: 'nobody' }), []);
});

test('text: case-insensitive substring of the statement, combined with other filters', async () => {
  assert.deepEqual(await names({ text: 'orders' }), ['e7', 'e3', 'e2']);
  assert.deepEqual(await names({ text: 'ORDERS', user: 'bob' }), ['e7', 'e3']);
  assert.deepEqual(await names({ text: 'select', kind: 'statement', until: timestampFromMs(T0 + 4 * MIN) }), ['e2']);
  assert.deepEqual(await names({ text: 'drop table' }), []);
});

test('limit keeps the newest', async () => {
  assert.deepEqual(await names({ limit: 2 }), ['e7', 'e6']);
  assert.deepEqual(await names({ limit: 2, user: 'alice' }), ['e6', 'e2']);
  assert.deepEqual(await names({ limit: 1, text: 'orders' }), ['e7']);
  assert.equal(normaliseLimit(0), 100);
  assert.equal(normaliseLimit(250), 250);
  assert.equal(normaliseLimit(50_000), 10_000);
});

test('invalid requests: INVALID_ARGUMENT with a clear message, counted as 400', async () => {
  await assert.rejects(search({ kind: 'telepathy' }), (e: grpc.ServiceError) => {
    assert.equal(e.code, grpc.status.INVALID_ARGUMENT);
    assert.match(e.details, /^kind "telepathy" is unknown; expected one of session_start, /);
    return true;
  });
  await assert.rejects(search({ since: timestampFromMs(T0 + MIN), until: timestampFromMs(T0) }), (e: grpc.ServiceError) => {
    assert.equal(e.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(e.details, 'since must be before until');
    return true;
  });
  await assert.rejects(search({ user: 'x'.repeat(5000) }), (e: grpc.ServiceError) => {
    assert.equal(e.details, 'user is longer than 1024 bytes');
    return true;
  });
  const json = await gw.metrics.registry.getMetricsAsJSON();
  const req = json.find((m) => m.name === 'dbaudit_api_requests_total');
  const v = (status: string): number | undefined => req?.values.find((x) => x.labels.endpoint === 'query' && x.labels.status === status)?.value;
  assert.equal(v('400'), 3);
  assert.ok((v('200') ?? 0) >= 1);
});

test('the store keeps the bytes it received exactly, and a default limit of 100', async () => {
  const ev = makeTestEvent({ timeMs: T0 - 10 * MIN, user: 'raw' });
  // An unknown field (number 100, varint 1) after the known ones: kept byte for byte.
  const raw = new Uint8Array([...toBinary(AuditEventSchema, ev), 0xa0, 0x06, 0x01]);
  const s = new TestStream(gw.address);
  s.send(batchOf(9, [raw]));
  const many = Array.from({ length: 120 }, (_, i) => makeTestEvent({ timeMs: T0 - 9 * MIN + i, user: 'many' }));
  s.send(batchOf(10, many));
  await s.waitAcks(2);
  await s.finish();
  const got = await gw.store.get(ev.eventId);
  assert.ok(got);
  assert.deepEqual(Buffer.from(got.raw), Buffer.from(raw));
  assert.equal(got.event.deliveredBy, 'col-a');
  assert.equal(await gw.store.get('00000000-0000-7000-8000-000000000000'), undefined);
  const res = await search({ user: 'many' });
  assert.equal(res.events.length, 100);
  assert.equal(res.events[0].eventId, many[119].eventId);
  assert.equal((await search({ user: 'many', limit: 10_000 })).events.length, 120);
  // events at the same time come back newest id first
  assert.deepEqual((await search({ user: 'raw' })).events.map((e) => e.eventId), [ev.eventId]);
});

test('retention removes old events with their indexes', async () => {
  const before = await gw.store.count();
  const removed = await gw.store.deleteBefore?.((T0 - 5 * MIN) * 1000);
  assert.equal(removed, 121);
  assert.equal(await gw.store.count(), before - 121);
  assert.deepEqual((await search({ user: 'many' })).events, []);
  assert.deepEqual((await search({ user: 'raw' })).events, []);
  assert.deepEqual(await names({}), ['e7', 'e6', 'e5', 'e4', 'e3', 'e2', 'e1', 'e0']);
});

test('events built with create(AuditEventSchema) round-trip through search unchanged apart from gateway fields', async () => {
  const res = await search({ sessionId: 's4' });
  const got = res.events[0];
  const want = create(AuditEventSchema, { ...evs[5], deliveredBy: got.deliveredBy, receivedAt: got.receivedAt });
  assert.deepEqual(toBinary(AuditEventSchema, got), toBinary(AuditEventSchema, want));
});
