import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { toBinary } from '@bufbuild/protobuf';
import { AuditEventSchema, type AuditEvent } from '../proto/gen/audit/v1/event_pb.js';
import { ErrorCode, isAuditError } from '../lib/errors.js';
import { ManualClock } from '../lib/clock.js';
import { sharedPostgres, skipUnless } from '../test/harness/index.js';
import { EmbeddedStore } from './store-embedded.js';
import { PostgresStore } from './store-postgres.js';
import type { Store, StoredEvent } from './store.js';
import { T0, makeTestEvent, tempDir } from './testing.js';

/**
 * The behaviour every Store backend owes the gateway, run against each:
 * the embedded RocksDB store and PostgreSQL (a fresh database per test on
 * the harness's server).
 */

const DAY = 86_400_000;

/** A UUIDv7 whose embedded time is exactly `ms` (lib/uuid.ts keeps ids of one process increasing, so it would not go back in time). */
function uuidAt(ms: number): string {
  const t = ms.toString(16).padStart(12, '0');
  const r = randomBytes(10).toString('hex');
  return `${t.slice(0, 8)}-${t.slice(8)}-7${r.slice(0, 3)}-${((parseInt(r[3], 16) & 3) | 8).toString(16)}${r.slice(4, 7)}-${r.slice(7, 19)}`;
}

function storedOf(ev: AuditEvent, deliveredBy = 'col-a', receivedAtMs = T0, raw?: Uint8Array): StoredEvent {
  const t = ev.time;
  assert.ok(t);
  return { eventId: ev.eventId, timeMicros: Number(t.seconds) * 1e6 + t.nanos / 1000, event: ev, raw: raw ?? toBinary(AuditEventSchema, ev), deliveredBy, receivedAtMs };
}

interface Backend {
  /** A new empty store (not opened) and how to make another handle on the same data. */
  make(): Promise<{ store: Store; again(): Store; cleanup(): Promise<void> }>;
}

const backends: Array<[string, Backend, string | false]> = [
  [
    'embedded',
    {
      async make() {
        const tmp = tempDir();
        return { store: new EmbeddedStore(tmp.dir), again: () => new EmbeddedStore(tmp.dir), cleanup: async () => tmp.remove() };
      },
    },
    false,
  ],
  [
    'postgres',
    {
      async make() {
        const pg = await sharedPostgres({});
        const url = pg.url(await pg.createDatabase('store'));
        const clock = new ManualClock(T0);
        return { store: new PostgresStore(url, { clock }), again: () => new PostgresStore(url, { clock }), cleanup: async () => undefined };
      },
    },
    skipUnless('postgres'),
  ],
];

for (const [name, backend, skip] of backends) {
  describe(`store contract: ${name}`, { skip }, () => {
    async function withStore(fn: (store: Store, again: () => Store) => Promise<void>): Promise<void> {
      const { store, again, cleanup } = await backend.make();
      await store.open();
      try {
        await fn(store, again);
      } finally {
        await store.close();
        await cleanup();
      }
    }

    test('concurrent puts with overlapping ids store each id once and account for every event', () =>
      withStore(async (store) => {
        const evs = Array.from({ length: 300 }, (_, i) => storedOf(makeTestEvent({ timeMs: T0 + i })));
        const calls = Array.from({ length: 30 }, (_, w) => store.put([...Array.from({ length: 50 }, (_, j) => evs[(w * 10 + j) % 300]), evs[w * 10]]));
        const results = await Promise.all(calls);
        assert.equal(results.reduce((n, r) => n + r.stored, 0), 300);
        assert.equal(results.reduce((n, r) => n + r.stored + r.duplicates, 0), 30 * 51);
        for (const r of results) {
          assert.equal(r.fresh.length, r.stored);
          assert.ok(!r.fresh.includes(50), 'a repeat inside one call is a duplicate');
        }
        assert.equal(await store.count(), 300);
        assert.deepEqual(await store.put([]), { stored: 0, duplicates: 0, fresh: [] });
        assert.deepEqual(await store.put(evs.slice(0, 3)), { stored: 0, duplicates: 3, fresh: [] });
        assert.equal((await store.search({ limit: 10_000 })).length, 300);
      }));

    test('fresh lists the positions of first occurrences newly stored, ascending', () =>
      withStore(async (store) => {
        const [a, b, c] = [0, 1, 2].map((i) => storedOf(makeTestEvent({ timeMs: T0 + i })));
        await store.put([b]);
        assert.deepEqual(await store.put([a, b, a, c, c]), { stored: 2, duplicates: 3, fresh: [0, 3] });
      }));

    test('a put issued as soon as the previous one resolves is not stranded', () =>
      withStore(async (store) => {
        for (let i = 0; i < 30; i++) assert.equal((await store.put([storedOf(makeTestEvent({ timeMs: T0 + i }))])).stored, 1);
        assert.equal(await store.count(), 30);
      }));

    test('get returns the bytes exactly as received, with delivered_by and received_at', () =>
      withStore(async (store) => {
        const ev = makeTestEvent({ statement: 'select 1', seq: 2n ** 63n + 5n });
        // an unknown field (number 999, varint 1) at the end: kept byte for byte
        const raw = Buffer.concat([Buffer.from(toBinary(AuditEventSchema, ev)), Buffer.from([0xb8, 0x3e, 0x01])]);
        await store.put([storedOf(ev, 'gw-x', T0 + 1234, raw)]);
        const got = await store.get(ev.eventId);
        assert.ok(got);
        assert.deepEqual(Buffer.from(got.raw), raw);
        assert.equal(got.event.eventId, ev.eventId);
        assert.equal(got.event.statement, 'select 1');
        assert.equal(got.event.deliveredBy, 'gw-x');
        assert.equal(Number(got.event.receivedAt?.seconds) * 1000 + (got.event.receivedAt?.nanos ?? 0) / 1e6, T0 + 1234);
        assert.equal(await store.get('00000000-0000-7000-8000-000000000000'), undefined);
        assert.equal(await store.get('not-a-uuid'), undefined);
      }));

    test('search: newest first, every filter, time bounds, limit', () =>
      withStore(async (store) => {
        const evs = [
          makeTestEvent({ timeMs: T0, user: 'ann', database: 'shop', sessionId: 's1', kind: 'statement', statement: 'SELECT * FROM Orders', collectorId: 'c1' }),
          makeTestEvent({ timeMs: T0 + 1, user: 'bob', database: 'shop', sessionId: 's2', kind: 'statement', statement: 'update stock set n = 1', collectorId: 'c2' }),
          makeTestEvent({ timeMs: T0 + 2, user: 'ann', database: 'hr', sessionId: 's3', kind: 'login_failure', statement: '', collectorId: 'c1' }),
          makeTestEvent({ timeMs: T0 + 3, user: 'ann', database: 'hr', sessionId: 's3', kind: 'statement', statement: "select '100%_done' from orders", collectorId: 'c2' }),
          makeTestEvent({ timeMs: T0 + 3, user: 'cy', database: 'hr', sessionId: 's4', kind: 'statement', statement: 'select 1', collectorId: 'c2' }),
        ];
        await store.put(evs.map((e) => storedOf(e)));
        const ids = async (f: Omit<Parameters<Store['search']>[0], 'limit'> & { limit?: number }): Promise<string[]> =>
          (await store.search({ limit: 100, ...f })).map((e) => e.eventId);
        const id = (...i: number[]): string[] => i.map((n) => evs[n].eventId);
        const tie = evs[3].eventId > evs[4].eventId ? [3, 4] : [4, 3];
        assert.deepEqual(await ids({}), id(...tie, 2, 1, 0));
        assert.deepEqual(await ids({ user: 'ann' }), id(3, 2, 0));
        assert.deepEqual(await ids({ database: 'hr', user: 'ann' }), id(3, 2));
        assert.deepEqual(await ids({ sessionId: 's3' }), id(3, 2));
        assert.deepEqual(await ids({ kind: 'login_failure' }), id(2));
        assert.deepEqual(await ids({ collectorId: 'c1' }), id(2, 0));
        assert.deepEqual(await ids({ text: 'orders' }), id(3, 0));
        assert.deepEqual(await ids({ text: '%_' }), id(3), 'LIKE wildcards in the text are literal');
        assert.deepEqual(await ids({ text: 'zzz' }), []);
        assert.deepEqual(await ids({ sinceMicros: (T0 + 1) * 1000, untilMicros: (T0 + 3) * 1000 }), id(2, 1));
        assert.deepEqual(await ids({ sinceMicros: (T0 + 3) * 1000, untilMicros: (T0 + 3) * 1000 }), []);
        assert.deepEqual(await ids({ limit: 2 }), id(...tie));
        const [first] = await store.search({ user: 'bob', limit: 1 });
        assert.equal(first.deliveredBy, 'col-a');
        assert.ok(first.receivedAt);
      }));

    test('index values that share a prefix or hold NUL bytes do not mix', () =>
      withStore(async (store) => {
        const users = ['ann', 'ann\u0000x', 'anna', 'an', 'ann\uE000', 'ann\uE0000'];
        const evs = users.map((user, i) => makeTestEvent({ timeMs: T0 + i, user, statement: `s\u0000${i}` }));
        await store.put(evs.map((e) => storedOf(e)));
        for (const [i, user] of users.entries()) {
          assert.deepEqual((await store.search({ user, limit: 10 })).map((e) => e.eventId), [evs[i].eventId], JSON.stringify(user));
        }
        assert.deepEqual((await store.search({ text: 's\u00003', limit: 10 })).map((e) => e.eventId), [evs[3].eventId]);
      }));

    test('retention removes the days wholly before the cutoff and keeps the count', () =>
      withStore(async (store, again) => {
        const day0 = Math.floor(T0 / DAY) * DAY;
        const days = [-2, -1, 0].map((d) => Array.from({ length: 5 }, (_, i) => storedOf(makeTestEvent({ timeMs: day0 + d * DAY + i * 60_000, eventId: uuidAt(day0 + d * DAY + i * 60_000) }))));
        await store.put(days.flat());
        assert.equal(await store.count(), 15);
        assert.ok(store.deleteBefore);
        assert.equal(await store.deleteBefore(day0 * 1000), 10);
        assert.equal(await store.count(), 5);
        assert.deepEqual((await store.search({ limit: 100 })).map((e) => e.eventId).sort(), days[2].map((e) => e.eventId).sort());
        assert.equal(await store.deleteBefore(day0 * 1000), 0, 'nothing more to remove');
        await store.close();
        const reopened = again();
        await reopened.open();
        try {
          assert.equal(await reopened.count(), 5);
        } finally {
          await reopened.close();
        }
      }));

    test('a closed store refuses calls with DBA_CLOSED; a put made before close completes', async () => {
      const { store, cleanup } = await backend.make();
      await store.open();
      const pending = store.put([storedOf(makeTestEvent())]);
      await store.close();
      assert.equal((await pending).stored, 1);
      await assert.rejects(store.put([storedOf(makeTestEvent())]), (e) => isAuditError(e, ErrorCode.Closed));
      await assert.rejects(store.search({ limit: 1 }), (e) => isAuditError(e, ErrorCode.Closed));
      await assert.rejects(store.count(), (e) => isAuditError(e, ErrorCode.Closed));
      await cleanup();
    });
  });
}
