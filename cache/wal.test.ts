import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { cpSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { CollectorMetrics } from '../lib/metrics.js';
import { META_KEY } from './record.js';
import { Rocks } from './rocks.js';
import { appendN, openTest, payloadOf, tempDir } from './testing.js';
import { HEADER_BYTES, TAG_BYTES } from './seal.js';
import { RECORD_KEY_BYTES } from './record.js';

const cleanups: (() => void)[] = [];
after(() => cleanups.forEach((c) => c()));
function dir(): string {
  const t = tempDir();
  cleanups.push(t.cleanup);
  return t.dir;
}

/** Bytes one record of `size` payload bytes counts for. */
const rec = (size = 32) => RECORD_KEY_BYTES + HEADER_BYTES + size + TAG_BYTES;

async function gauge(m: CollectorMetrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const all = await m.registry.getMetricsAsJSON();
  const found = all.find((x) => x.name === name);
  const v = found?.values.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return v ? Number(v.value) : 0;
}

// The same rules on disk and in memory (collector.cache.enabled: false); what needs a
// restart or a copy of the files runs on disk only.
for (const memory of [false, true]) {
  const where = memory ? ' (in memory)' : '';
  describe(`EventCache basics${where}`, () => {
    test('sequence starts at 1, epoch is a UUIDv7, append becomes durable and scannable', async () => {
      const { cache, clock } = await openTest(dir(), { memory });
      assert.match(cache.epoch, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      assert.equal(cache.durableSeq, 0n);
      const seq = cache.reserveSeq();
      assert.equal(seq, 1n);
      const ticket = cache.append(seq, payloadOf(seq), clock.now());
      const err = await new Promise<Error | undefined>((resolve) => cache.whenDurable(ticket, resolve));
      assert.equal(err, undefined);
      assert.equal(cache.durableSeq, 1n);
      const [r] = await cache.scan({ order: 'oldest_first', limit: 10 });
      assert.equal(r.seq, 1n);
      assert.equal(r.timeMs, clock.now());
      assert.deepEqual(Buffer.from(r.payload), payloadOf(1n));
      assert.equal(r.bytes, rec());
      assert.deepEqual(cache.stats(), { events: 1, bytes: rec(), maxBytes: 1 << 30, oldestTimeMs: clock.now(), newestTimeMs: clock.now(), pendingAppends: 0, writable: true, lastError: undefined });
      await cache.close();
    });

    test('group commit: many appends, one flush, every ticket durable in order', async () => {
      const { cache, clock } = await openTest(dir(), { memory, commitIntervalMs: 2 });
      const order: number[] = [];
      let last = 0;
      for (let i = 0; i < 500; i++) {
        const s = cache.reserveSeq();
        last = cache.append(s, payloadOf(s), clock.now());
        cache.whenDurable(last, (err) => {
          assert.equal(err, undefined);
          order.push(i);
        });
      }
      assert.equal(cache.stats().pendingAppends, 500);
      await cache.flush();
      await new Promise((r) => setImmediate(r));
      assert.equal(order.length, 500);
      assert.deepEqual(order, [...order].sort((a, b) => a - b));
      assert.equal(cache.durableSeq, 500n);
      assert.equal(cache.stats().events, 500);
      await cache.close();
    });

    test('scan order and cursors in both directions', async () => {
      const { cache, clock } = await openTest(dir(), { memory });
      await appendN(cache, 10, clock.now());
      const seqs = async (o: Parameters<typeof cache.scan>[0]) => (await cache.scan(o)).map((r) => Number(r.seq));
      assert.deepEqual(await seqs({ order: 'oldest_first', limit: 3 }), [1, 2, 3]);
      assert.deepEqual(await seqs({ order: 'oldest_first', afterSeq: 3n, limit: 3 }), [4, 5, 6]);
      assert.deepEqual(await seqs({ order: 'oldest_first', afterSeq: 8n, limit: 5 }), [9, 10]);
      assert.deepEqual(await seqs({ order: 'newest_first', limit: 3 }), [10, 9, 8]);
      assert.deepEqual(await seqs({ order: 'newest_first', beforeSeq: 8n, limit: 3 }), [7, 6, 5]);
      assert.deepEqual(await seqs({ order: 'newest_first', afterSeq: 2n, beforeSeq: 5n, limit: 10 }), [4, 3]);
      assert.deepEqual(await seqs({ order: 'oldest_first', afterSeq: 4n, beforeSeq: 5n, limit: 10 }), []);
      assert.deepEqual(await seqs({ order: 'oldest_first', limit: 0 }), []);
      // walking newest_first with a cursor visits every record exactly once
      const seen: number[] = [];
      let before: bigint | undefined;
      for (;;) {
        const page = await cache.scan({ order: 'newest_first', beforeSeq: before, limit: 4 });
        if (page.length === 0) break;
        seen.push(...page.map((r) => Number(r.seq)));
        before = page[page.length - 1].seq;
      }
      assert.deepEqual(seen, [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]);
      await cache.close();
    });

    test('ack removes exactly the acknowledged records, ignores unknown seqs, keeps counters exact', async () => {
      const metrics = new CollectorMetrics({ defaultMetrics: false });
      const { cache, clock } = await openTest(dir(), { memory, metrics });
      await appendN(cache, 10, clock.now());
      await cache.ack([2n, 3n, 7n, 99n, 3n]);
      assert.deepEqual((await cache.scan({ order: 'oldest_first', limit: 100 })).map((r) => Number(r.seq)), [1, 4, 5, 6, 8, 9, 10]);
      assert.equal(cache.stats().events, 7);
      assert.equal(cache.stats().bytes, 7 * rec());
      assert.equal(await gauge(metrics, 'dbaudit_cache_events_count'), 7);
      assert.equal(await gauge(metrics, 'dbaudit_cache_size_bytes'), 7 * rec());
      assert.equal(await gauge(metrics, 'dbaudit_cache_sync_pending'), 7);
      await cache.ack([1n, 4n, 5n, 6n, 8n, 9n, 10n]);
      assert.equal(cache.stats().events, 0);
      assert.equal(cache.stats().bytes, 0);
      assert.equal(cache.stats().oldestTimeMs, undefined);
      assert.equal(await gauge(metrics, 'dbaudit_event_lag_seconds'), 0);
      await cache.close();
    });

    if (!memory) test('restart: same epoch, sequence continues, un-acked records scannable, counters restored without a scan', async () => {
      const d = dir();
      const a = await openTest(d);
      await appendN(a.cache, 6, a.clock.now());
      await a.cache.ack([1n, 2n]);
      const epoch = a.cache.epoch;
      // a reserved seq that never became durable is reused after restart (no gap)
      a.cache.reserveSeq();
      await a.cache.close();
      const b = await openTest(d, { keyring: a.opts.keyring, clock: a.clock });
      assert.equal(b.cache.epoch, epoch);
      assert.equal(b.cache.durableSeq, 6n);
      assert.equal(b.cache.reserveSeq(), 7n);
      assert.deepEqual(b.cache.stats().events, 4);
      assert.deepEqual(b.cache.stats().bytes, 4 * rec());
      assert.deepEqual((await b.cache.scan({ order: 'oldest_first', limit: 10 })).map((r) => Number(r.seq)), [3, 4, 5, 6]);
      await b.cache.close();
    });

    if (!memory) test('a wiped cache gets a new epoch and starts again at 1', async () => {
      const d = dir();
      const a = await openTest(d);
      await appendN(a.cache, 3, a.clock.now());
      await a.cache.close();
      rmSync(d, { recursive: true, force: true });
      const b = await openTest(d, { keyring: a.opts.keyring });
      assert.notEqual(b.cache.epoch, a.cache.epoch);
      assert.equal(b.cache.reserveSeq(), 1n);
      await b.cache.close();
    });

    test('appends, scans and acks running together keep the counters exact', async () => {
      const { cache, clock } = await openTest(dir(), { memory, commitIntervalMs: 1 });
      let acked = 0;
      let stop = false;
      const shipper = (async () => {
        while (!stop || cache.stats().events > 0) {
          const page = await cache.scan({ order: 'oldest_first', limit: 37 });
          if (page.length) {
            await cache.ack(page.map((r) => r.seq));
            acked += page.length;
          } else await new Promise((r) => setTimeout(r, 1));
        }
      })();
      for (let i = 0; i < 2000; i++) {
        const s = cache.reserveSeq();
        cache.append(s, payloadOf(s), clock.now());
        if (i % 100 === 0) await new Promise((r) => setImmediate(r));
      }
      await cache.flush();
      stop = true;
      await shipper;
      assert.equal(acked, 2000);
      assert.deepEqual([cache.stats().events, cache.stats().bytes, cache.durableSeq], [0, 0, 2000n]);
      await cache.close();
    });

    test('append after close reports Closed through whenDurable, never throws', async () => {
      const { cache, clock } = await openTest(dir(), { memory });
      await cache.close();
      const t = cache.append(1n, payloadOf(1n), clock.now());
      const err = await new Promise<Error | undefined>((resolve) => cache.whenDurable(t, resolve));
      assert.equal((err as { code?: string }).code, 'DBA_CLOSED');
    });
  });

  describe(`EventCache bounds${where}`, () => {
    test('max_size: oldest dropped first, exact counts, one loss per run, metrics', async () => {
      const metrics = new CollectorMetrics({ defaultMetrics: false });
      const { cache, clock, losses } = await openTest(dir(), { memory, maxBytes: 10 * rec(), metrics });
      await appendN(cache, 10, clock.now());
      assert.equal(losses.length, 0);
      await cache.ack([2n]); // a hole: 2 is acknowledged, so not lost
      await appendN(cache, 4, clock.now()); // 11..14: 9 + 4 = 13 records > 10: drop 1, 3, 4
      assert.deepEqual(losses, [
        { fromSeq: 1n, toSeq: 1n, count: 1, reason: 'size' },
        { fromSeq: 3n, toSeq: 4n, count: 2, reason: 'size' },
      ]);
      assert.deepEqual((await cache.scan({ order: 'oldest_first', limit: 100 })).map((r) => Number(r.seq)), [5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
      assert.equal(cache.stats().events, 10);
      assert.equal(cache.stats().bytes, 10 * rec());
      assert.equal(await gauge(metrics, 'dbaudit_cache_dropped_events_total', { reason: 'size' }), 3);
      assert.equal(await gauge(metrics, 'dbaudit_cache_max_bytes'), 10 * rec());
      assert.equal(await gauge(metrics, 'dbaudit_cache_size_bytes'), 10 * rec());
      await cache.close();
    });

    if (!memory) test('a loss is persisted with the eviction: a crash before it is reported delivers it at the next open, a clean close does not', async () => {
      const d = dir();
      const a = await openTest(d, { maxBytes: 4 * rec() });
      await appendN(a.cache, 6, a.clock.now()); // 1, 2 evicted in the batch that wrote 5, 6 (or dropped from it)
      await new Promise((r) => setImmediate(r));
      assert.equal(a.losses.reduce((n, l) => n + l.count, 0), 2);
      // the state on disk right now is what a kill -9 would leave: delivered, but no later batch has said so
      const image = dir();
      cpSync(d, image, { recursive: true });
      rmSync(join(image, 'LOCK'));
      const crashed = await openTest(image, { keyring: a.opts.keyring, clock: a.clock, maxBytes: 4 * rec() });
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(crashed.losses, a.losses);
      await crashed.cache.close();
      // delivered once after that restart: not again
      const again = await openTest(image, { keyring: a.opts.keyring, clock: a.clock, maxBytes: 4 * rec() });
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(again.losses, []);
      await again.cache.close();
      await a.cache.close();
      const b = await openTest(d, { keyring: a.opts.keyring, clock: a.clock, maxBytes: 4 * rec() });
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(b.losses, []);
      await b.cache.close();
    });

    test('max_size: a batch bigger than the whole cache keeps only its newest records', async () => {
      const { cache, clock, losses } = await openTest(dir(), { memory, maxBytes: 3 * rec() });
      await appendN(cache, 2, clock.now());
      await appendN(cache, 5, clock.now()); // 3..7 in one batch: 1, 2 evicted, then 3, 4 dropped
      assert.deepEqual(losses, [{ fromSeq: 1n, toSeq: 4n, count: 4, reason: 'size' }]);
      assert.deepEqual((await cache.scan({ order: 'oldest_first', limit: 100 })).map((r) => Number(r.seq)), [5, 6, 7]);
      assert.equal(cache.stats().events, 3);
      await cache.close();
    });

    test('max_age: records older than max_age expire oldest first, exact counts', async () => {
      const metrics = new CollectorMetrics({ defaultMetrics: false });
      const { cache, clock, losses } = await openTest(dir(), { memory, maxAgeMs: 60_000, metrics, expireIntervalMs: 3600_000 });
      const t0 = clock.now();
      await appendN(cache, 3, t0); // 1..3
      clock.advance(30_000);
      await appendN(cache, 2, clock.now()); // 4..5
      clock.advance(29_999);
      assert.equal(await cache.expire(), 0); // 1..3 are exactly 59 999 ms old
      clock.advance(2);
      assert.equal(await cache.expire(), 3);
      assert.deepEqual(losses, [{ fromSeq: 1n, toSeq: 3n, count: 3, reason: 'age' }]);
      assert.deepEqual((await cache.scan({ order: 'oldest_first', limit: 100 })).map((r) => Number(r.seq)), [4, 5]);
      assert.equal(cache.stats().oldestTimeMs, t0 + 30_000);
      assert.equal(await gauge(metrics, 'dbaudit_event_lag_seconds'), 30.001);
      clock.advance(30_000);
      assert.equal(await cache.expire(), 2);
      assert.equal(cache.stats().events, 0);
      assert.equal(await gauge(metrics, 'dbaudit_cache_dropped_events_total', { reason: 'age' }), 5);
      await cache.close();
    });

    if (!memory) test('max_age is enforced when the cache opens after a long stop', async () => {
      const d = dir();
      const a = await openTest(d, { maxAgeMs: 1000 });
      await appendN(a.cache, 4, a.clock.now());
      await a.cache.close();
      a.clock.advance(5000);
      const b = await openTest(d, { keyring: a.opts.keyring, clock: a.clock, maxAgeMs: 1000 });
      assert.deepEqual(b.losses, []); // held until the caller has had a turn to wire its pipeline
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(b.losses, [{ fromSeq: 1n, toSeq: 4n, count: 4, reason: 'age' }]);
      assert.equal(b.cache.stats().events, 0);
      assert.equal(b.cache.reserveSeq(), 5n);
      await b.cache.close();
    });
  });
}

describe('EventCache logging and recovery of its own state', () => {
  test('an eviction incident is logged once when it starts and once when it ends, not per event or batch', async () => {
    const lines: { level: number; msg: string; count?: number }[] = [];
    const dest = new Writable({
      write(chunk: Buffer, _e, cb) {
        for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as { level: number; msg: string });
        cb();
      },
    });
    const logger = pino({ level: 'info' }, dest);
    const { cache, clock, losses } = await openTest(dir(), { maxBytes: 5 * rec(), logger });
    for (let i = 0; i < 20; i++) await appendN(cache, 2, clock.now()); // 40 records into room for 5: 35 dropped over 17 batches
    assert.equal(losses.length, 18);
    assert.equal(losses.reduce((n, l) => n + l.count, 0), 35);
    clock.advance(5000);
    await appendN(cache, 0, clock.now());
    await cache.ack([36n]); // room for one: the next batch evicts nothing
    await appendN(cache, 1, clock.now());
    await new Promise((r) => setImmediate(r));
    const about = lines.filter((l) => /drop/.test(l.msg));
    assert.deepEqual(about.map((l) => [l.level, l.msg, l.count]), [
      [40, 'cache dropping oldest events (max_size)', 1],
      [30, 'cache drop incident ended', 35],
    ]);
    await cache.close();
  });

  test('a lost meta record is rebuilt from the records, keeping the epoch', async () => {
    const d = dir();
    const a = await openTest(d);
    await appendN(a.cache, 5, a.clock.now());
    await a.cache.ack([1n]);
    await a.cache.close();
    const db = await Rocks.open(d);
    await db.write([{ type: 'del', key: META_KEY }], true);
    await db.close();
    const b = await openTest(d, { keyring: a.opts.keyring, clock: a.clock });
    assert.equal(b.cache.epoch, a.cache.epoch);
    assert.deepEqual([b.cache.stats().events, b.cache.stats().bytes, b.cache.durableSeq], [4, 4 * rec(), 5n]);
    assert.equal((await b.cache.scan({ order: 'oldest_first', limit: 10 })).length, 4);
    await b.cache.close();
  });
});

describe('the collector a cache belongs to', () => {
  test('a cache opened under another collector id is refused while its epoch has numbers to continue; a fresh one changes hands', async () => {
    const d = dir();
    const a = await openTest(d, { owner: 'vm' });
    await appendN(a.cache, 3, a.clock.now());
    await a.cache.ack([1n, 2n, 3n]); // even empty, the epoch goes on at seq 4
    await a.cache.close();
    await assert.rejects(openTest(d, { owner: 'collector-1', keyring: a.opts.keyring, clock: a.clock }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'DBA_CONFIG');
      assert.equal(
        err.message,
        `cache ${d}: belongs to collector "vm" (epoch ${a.cache.epoch}, 0 events waiting, up to seq 3), not "collector-1": ` +
          'its sequence would go on under the new id and the gateway would see seqs 1.. missing. Start with the old collector.id until the cache is empty, or give the new id a cache directory of its own',
      );
      return true;
    });
    const same = await openTest(d, { owner: 'vm', keyring: a.opts.keyring, clock: a.clock });
    assert.equal(same.cache.reserveSeq(), 4n);
    await same.cache.close();
    // nothing committed yet: the new id takes it over
    const e = dir();
    const fresh = await openTest(e, { owner: 'vm' });
    await fresh.cache.close();
    const taken = await openTest(e, { owner: 'collector-1', keyring: fresh.opts.keyring });
    await appendN(taken.cache, 1, taken.clock.now());
    await taken.cache.close();
    await assert.rejects(openTest(e, { owner: 'vm', keyring: fresh.opts.keyring }), /belongs to collector "collector-1" \(epoch \S+, 1 events waiting, up to seq 1\)/);
  });
});
