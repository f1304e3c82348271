import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { ManualClock } from '../lib/clock.js';
import { ErrorCode, isAuditError } from '../lib/errors.js';
import { attestDrop } from '../lib/trail.js';
import { freePort, sharedPostgres, skipUnless } from '../test/harness/index.js';
import { toBinary } from '@bufbuild/protobuf';
import { AuditEventSchema, type AuditEvent } from '../proto/gen/audit/v1/event_pb.js';
import { MIGRATIONS, partitionName, dayOfMs } from './migrations/postgres.js';
import { startGateway } from './server.js';
import { PostgresStore } from './store-postgres.js';
import { createStore } from './store.js';
import { T0, TestStream, batchOf, eventAt, gatewayConfig, makeTestEvent, tempDir } from './testing.js';

/**
 * What only the PostgreSQL store has: replicas sharing it, migrations at
 * start, partitions and retention by dropping them. Each test gets its own
 * database on the harness's server.
 */

const DAY = 86_400_000;

async function freshDatabase(): Promise<string> {
  const server = await sharedPostgres({});
  return server.url(await server.createDatabase('gwstore'));
}

async function sql<T extends pg.QueryResultRow>(url: string, text: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<T>(text, params)).rows;
  } finally {
    await c.end();
  }
}

async function partitions(url: string): Promise<string[]> {
  const rows = await sql<{ name: string }>(url, `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'events'::regclass ORDER BY 1`);
  return rows.map((r) => r.name);
}

describe('PostgreSQL store', { skip: skipUnless('postgres') }, () => {
  test('two gateways on one store: the same event ids sent to both at once are stored once', async () => {
    const url = await freshDatabase();
    const tmp = tempDir();
    const [g1, g2] = await Promise.all(
      ['g1', 'g2'].map((id) => startGateway({ config: gatewayConfig(`${tmp.dir}/${id}`, ['--gateway.store', url, '--gateway.id', id]) })),
    );
    try {
      const evs = Array.from({ length: 2000 }, (_, i) => makeTestEvent({ timeMs: T0 + i, seq: BigInt(i + 1) }));
      const streams = [new TestStream(g1.address), new TestStream(g2.address), new TestStream(g1.address), new TestStream(g2.address)];
      // four streams, two per gateway, each sending every event in batches of 100 in a different order
      streams.forEach((s, k) => {
        const order = k % 2 === 0 ? evs : [...evs].reverse();
        for (let i = 0; i < 20; i++) s.send(batchOf(i + 1, order.slice(i * 100, i * 100 + 100), `col-${k}`));
      });
      await Promise.all(streams.map((s) => s.waitAcks(20)));
      const acks = streams.flatMap((s) => s.acks);
      assert.equal(acks.reduce((n, a) => n + a.stored, 0), 2000, 'each event stored by exactly one of the four deliveries');
      assert.equal(acks.reduce((n, a) => n + a.duplicates, 0), 3 * 2000);
      await Promise.all(streams.map((s) => s.finish()));
      assert.equal(await g1.store.count(), 2000);
      assert.equal(await g2.store.count(), 2000);
      const rows = await sql<{ n: string; d: string }>(url, 'SELECT count(*)::text AS n, count(DISTINCT event_id)::text AS d FROM events');
      assert.deepEqual(rows[0], { n: '2000', d: '2000' });
    } finally {
      await g1.close();
      await g2.close();
      tmp.remove();
    }
  });

  test('migrations: recorded once, a second start applies nothing, two starting at once both succeed', async () => {
    const url = await freshDatabase();
    const [a, b] = [new PostgresStore(url), new PostgresStore(url)];
    await Promise.all([a.open(), b.open()]);
    await Promise.all([a.close(), b.close()]);
    const again = new PostgresStore(url);
    await again.open();
    await again.close();
    const rows = await sql<{ version: number }>(url, 'SELECT version FROM schema_migrations ORDER BY version');
    assert.deepEqual(rows.map((r) => r.version), MIGRATIONS.map((m) => m.version), 'pg_trgm is installed here, so the optional migration is applied too');
    const idx = await sql<{ indexname: string }>(url, `SELECT indexname FROM pg_indexes WHERE tablename = 'events' ORDER BY 1`);
    assert.deepEqual(idx.map((r) => r.indexname), [
      'events_collector_id_idx', 'events_database_name_idx', 'events_kind_idx', 'events_pkey', 'events_sequence_idx',
      'events_session_id_idx', 'events_statement_trgm_idx', 'events_time_idx', 'events_user_name_idx',
    ]);
  });

  test('partitions are made ahead and on demand; retention drops whole partitions and records each drop', async () => {
    const url = await freshDatabase();
    const tmp = tempDir();
    const today = dayOfMs(T0);
    const clock = new ManualClock(T0);
    let gw = await startGateway({ config: gatewayConfig(tmp.dir, ['--gateway.store', url, '--gateway.id', 'gw-r']), clock });
    assert.deepEqual(await partitions(url), [...[-1, 0, 1, 2].map((d) => partitionName(today + d)), 'events_overflow']);
    const old = Array.from({ length: 30 }, (_, i) => eventAt((today - 5) * DAY + i * 1000, { seq: BigInt(i + 1), collectorId: 'col-a', epoch: 'ep-1' }));
    const older = [eventAt((today - 6) * DAY + 5, { seq: 100n, collectorId: 'col-b', epoch: 'ep-9' })];
    const recent = Array.from({ length: 10 }, (_, i) => eventAt(T0 + i, { seq: BigInt(i + 31), collectorId: 'col-a', epoch: 'ep-1' }));
    const foreign = makeTestEvent({ timeMs: (today - 5) * DAY, eventId: '0f0e0d0c-0b0a-4908-8706-050403020100' }); // not a UUIDv7: overflow
    const s = new TestStream(gw.address);
    s.send(batchOf(1, [...old, ...older, ...recent, foreign]));
    await s.waitAcks(1);
    assert.equal(s.acks[0].stored, 42);
    await s.finish();
    assert.ok((await partitions(url)).includes(partitionName(today - 5)), 'made on demand for an old day');
    assert.equal((await sql<{ n: string }>(url, 'SELECT count(*)::text AS n FROM events_overflow'))[0].n, '1');
    await gw.close();

    // three days later, with a retention of four days (cutoff: the middle of day -1): the days -6 and -5 go, as whole partitions
    clock.advance(3 * DAY);
    gw = await startGateway({ config: gatewayConfig(tmp.dir, ['--gateway.store', url, '--gateway.id', 'gw-r', '--gateway.retention', '96h']), clock });
    try {
      await gw.retentionSwept;
      const names = await partitions(url);
      assert.ok(!names.includes(partitionName(today - 5)) && !names.includes(partitionName(today - 6)));
      assert.ok(names.includes(partitionName(today)) && names.includes(partitionName(today + 5)), 'made ahead from the new date');
      assert.equal(await gw.store.count(), 10);
      const dropped = await sql<{ partition_name: string; from_day: number | null; events: string; sequences: unknown; dropped_by: string; cutoff_us: string }>(
        url,
        'SELECT partition_name, from_day, events::text, sequences, dropped_by, cutoff_us::text FROM dropped_partitions ORDER BY id',
      );
      const cutoff = String((T0 + 3 * DAY - 4 * DAY) * 1000);
      // This gateway has no seal key: each recorded range carries a bare SHA-256 attestation.
      const dropMac = (c: string, ep: string, from: bigint, to: bigint) => {
        const a = attestDrop(undefined, c, ep, { from, to });
        return { key_id: a.keyId, mac: Buffer.from(a.mac).toString('hex') };
      };
      assert.deepEqual(dropped, [
        { partition_name: partitionName(today - 6), from_day: today - 6, events: '1', sequences: [{ collector_id: 'col-b', epoch: 'ep-9', first_seq: '100', last_seq: '100', events: 1, ...dropMac('col-b', 'ep-9', 100n, 100n) }], dropped_by: 'gw-r', cutoff_us: cutoff },
        { partition_name: partitionName(today - 5), from_day: today - 5, events: '30', sequences: [{ collector_id: 'col-a', epoch: 'ep-1', first_seq: '1', last_seq: '30', events: 30, ...dropMac('col-a', 'ep-1', 1n, 30n) }], dropped_by: 'gw-r', cutoff_us: cutoff },
        { partition_name: 'events_overflow', from_day: null, events: '1', sequences: [{ collector_id: 'col-a', epoch: 'epoch-1', first_seq: '1', last_seq: '1', events: 1, ...dropMac('col-a', 'epoch-1', 1n, 1n) }], dropped_by: 'gw-r', cutoff_us: cutoff },
      ]);
      assert.deepEqual((await gw.store.search({ limit: 100 })).map((e) => e.eventId).sort(), recent.map((e) => e.eventId).sort());
    } finally {
      await gw.close();
      tmp.remove();
    }
  });

  test('a partition holding an event newer than the cutoff is kept', async () => {
    const url = await freshDatabase();
    const store = new PostgresStore(url, { clock: new ManualClock(T0) });
    await store.open();
    try {
      const day = dayOfMs(T0) - 3;
      // id from day-3, event time today (a collector clock that disagrees with itself)
      const odd = eventAt(day * DAY);
      odd.time = makeTestEvent({ timeMs: T0 }).time;
      await store.put([{ eventId: odd.eventId, timeMicros: T0 * 1000, event: odd, raw: toBinary(AuditEventSchema, odd), deliveredBy: 'c', receivedAtMs: T0 }]);
      assert.equal(await store.deleteBefore((day + 2) * DAY * 1000), 0);
      assert.ok((await partitions(url)).includes(partitionName(day)));
      assert.equal(await store.count(), 1);
    } finally {
      await store.close();
    }
  });

  test('errors are DBA_STORE and never carry the password', async () => {
    const port = await freePort();
    const secret = 'Sup3r-Secret-pw';
    const store = await createStore(`postgres://auditor:${secret}@127.0.0.1:${port}/audit`, '/nonexistent');
    await assert.rejects(store.open(), (e) => {
      assert.ok(isAuditError(e, ErrorCode.Store));
      assert.ok(!e.message.includes(secret), e.message);
      assert.match(e.message, /postgres:\/\/auditor:\*\*\*@127\.0\.0\.1/);
      return true;
    });
    await assert.rejects(createStore(`mysql://auditor:${secret}@h/db`, '/x'), (e) => isAuditError(e, ErrorCode.Config) && !e.message.includes(secret));
  });
});
