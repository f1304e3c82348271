import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { CollectorMetrics } from '../lib/metrics.js';
import { inspectCache } from './inspect.js';
import { Keyring } from './keyring.js';
import { recordKey } from './record.js';
import { Rocks } from './rocks.js';
import { openRecord, readHeader, sealRecord } from './seal.js';
import { appendN, newKey, openTest, payloadOf, tempDir } from './testing.js';

const cleanups: (() => void)[] = [];
after(() => cleanups.forEach((c) => c()));
function dir(): string {
  const t = tempDir();
  cleanups.push(t.cleanup);
  return t.dir;
}

const epoch = Buffer.alloc(16, 7);

describe('sealRecord / openRecord', () => {
  test('round trip; header names the key id and time; every nonce differs', () => {
    const ring = new Keyring(newKey());
    const a = sealRecord(ring, epoch, recordKey(1n), 1234, Buffer.from('hello'));
    const b = sealRecord(ring, epoch, recordKey(1n), 1234, Buffer.from('hello'));
    assert.notDeepEqual(a.subarray(13, 25), b.subarray(13, 25));
    assert.notDeepEqual(a, b);
    assert.deepEqual(readHeader(a), { version: 1, keyId: ring.writeKeyId, timeMs: 1234 });
    assert.equal(openRecord(ring, epoch, recordKey(1n), a).payload.toString(), 'hello');
    assert.equal(a.includes(Buffer.from('hello')), false);
  });

  test('the key, the epoch and the header are bound: any change fails', () => {
    const ring = new Keyring(newKey());
    const v = sealRecord(ring, epoch, recordKey(5n), 99, Buffer.from('payload'));
    const fails = (fn: () => unknown) => assert.throws(fn, (e: { code?: string }) => e.code === 'DBA_CACHE_CORRUPT');
    fails(() => openRecord(ring, epoch, recordKey(6n), v));
    fails(() => openRecord(ring, Buffer.alloc(16, 8), recordKey(5n), v));
    for (const at of [0, 1, 6, 12, 13, 24, 25, v.length - 17, v.length - 1]) {
      const t = Buffer.from(v);
      t[at] ^= 0x01;
      fails(() => openRecord(ring, epoch, recordKey(5n), t));
    }
    fails(() => openRecord(ring, epoch, recordKey(5n), v.subarray(0, 40)));
    fails(() => openRecord(new Keyring(newKey()), epoch, recordKey(5n), v));
  });

  test('errors and inspection never show key bytes', () => {
    const key = newKey();
    const ring = new Keyring(key);
    const shown = JSON.stringify(ring) + String((ring as unknown as Record<symbol, () => string>)[Symbol.for('nodejs.util.inspect.custom')]());
    assert.equal(shown.includes(key.toString('hex')), false);
    assert.equal(shown.includes(key.toString('base64')), false);
    assert.match(shown, new RegExp(ring.writeKeyId!));
  });
});

describe('cache encryption end to end', () => {
  test('key rotation: old records still read with the old key as a read key; new records use the new key', async () => {
    const d = dir();
    const k1 = newKey();
    const k2 = newKey();
    const a = await openTest(d, { keyring: new Keyring(k1) });
    await appendN(a.cache, 3, a.clock.now());
    await a.cache.close();
    const b = await openTest(d, { keyring: new Keyring(k2, [k1]), clock: a.clock });
    await appendN(b.cache, 2, b.clock.now());
    const all = await b.cache.scan({ order: 'oldest_first', limit: 10 });
    assert.deepEqual(all.map((r) => Number(r.seq)), [1, 2, 3, 4, 5]);
    assert.deepEqual(Buffer.from(all[4].payload), payloadOf(5n));
    await b.cache.close();
    // the raw headers name the key each record was sealed with
    const db = await Rocks.open(d, { readOnly: true });
    const ids: string[] = [];
    for (let s = 1n; s <= 5n; s++) ids.push(readHeader((await db.get(recordKey(s)))!)!.keyId);
    await db.close();
    const id1 = new Keyring(k1).writeKeyId!;
    const id2 = new Keyring(k2).writeKeyId!;
    assert.deepEqual(ids, [id1, id1, id1, id2, id2]);
    // without the old key while its events still wait (the oldest record is under it), the cache refuses to open: nothing is set aside
    await assert.rejects(openTest(d, { keyring: new Keyring(k2), clock: a.clock }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'DBA_CONFIG');
      assert.match(err.message, new RegExp(`its oldest events are sealed with cache key id ${id1}, which is not configured`));
      return true;
    });
    const again = await openTest(d, { keyring: new Keyring(k2, [k1]), clock: a.clock });
    assert.deepEqual((await again.cache.scan({ order: 'oldest_first', limit: 10 })).map((r) => Number(r.seq)), [1, 2, 3, 4, 5]);
    await again.cache.close();
  });

  test('records under a forgotten key between readable ones are skipped, counted, reported and quarantined (readable with the key)', async () => {
    const d = dir();
    const k1 = newKey();
    const k2 = newKey();
    const a = await openTest(d, { keyring: new Keyring(k2) });
    await appendN(a.cache, 1, a.clock.now());
    await a.cache.close();
    const b = await openTest(d, { keyring: new Keyring(k1, [k2]), clock: a.clock });
    await appendN(b.cache, 3, b.clock.now());
    await b.cache.close();
    const b2 = await openTest(d, { keyring: new Keyring(k2, [k1]), clock: a.clock });
    await appendN(b2.cache, 1, b2.clock.now());
    await b2.cache.close();
    // oldest (1) and newest (5) are under k2: it opens without k1; 2-4 are undecryptable
    const metrics = new CollectorMetrics({ defaultMetrics: false });
    const c = await openTest(d, { keyring: new Keyring(k2), clock: a.clock, metrics });
    assert.deepEqual((await c.cache.scan({ order: 'oldest_first', limit: 10 })).map((r) => Number(r.seq)), [1, 5]);
    assert.deepEqual(c.losses, [{ fromSeq: 2n, toSeq: 4n, count: 3, reason: 'corrupt' }]);
    assert.equal(c.cache.stats().events, 2);
    assert.deepEqual((await c.cache.scan({ order: 'oldest_first', limit: 10 })).map((r) => Number(r.seq)), [1, 5]);
    assert.equal(c.losses.length, 1);
    await c.cache.close();
    const seen = await inspectCache({ dir: d, keyring: new Keyring(k2, [k1]), events: true });
    assert.equal(seen.quarantined, 3);
    assert.equal(seen.events, 2);
    assert.deepEqual(
      seen.records!.map((r) => [Number(r.seq), r.quarantined ?? false, Buffer.from(r.payload!).equals(payloadOf(r.seq))]),
      [[2, true, true], [3, true, true], [4, true, true], [1, false, true], [5, false, true]], // quarantined records are listed first
    );
  });

  test('tampered records (flipped byte, swapped values, moved record) are counted corrupt, skipped and deleted; the rest read', async () => {
    const d = dir();
    const a = await openTest(d);
    await appendN(a.cache, 10, a.clock.now());
    await a.cache.close();
    const db = await Rocks.open(d);
    const v2 = (await db.get(recordKey(2n)))!;
    v2[30] ^= 0xff; // flip a ciphertext byte of 2
    const v4 = (await db.get(recordKey(4n)))!;
    const v5 = (await db.get(recordKey(5n)))!;
    const v8 = (await db.get(recordKey(8n)))!;
    await db.write(
      [
        { type: 'put', key: recordKey(2n), value: v2 },
        { type: 'put', key: recordKey(4n), value: v5 }, // swap 4 and 5
        { type: 'put', key: recordKey(5n), value: v4 },
        { type: 'del', key: recordKey(8n) }, // move 8 to 9 (overwriting 9)
        { type: 'put', key: recordKey(9n), value: v8 },
      ],
      true,
    );
    await db.close();
    const metrics = new CollectorMetrics({ defaultMetrics: false });
    const b = await openTest(d, { keyring: a.opts.keyring, clock: a.clock, metrics });
    const events = b.cache.stats().events; // the meta record still counts 10: the tampering bypassed the cache
    assert.equal(events, 10);
    const got = await b.cache.scan({ order: 'oldest_first', limit: 100 });
    assert.deepEqual(got.map((r) => Number(r.seq)), [1, 3, 6, 7, 10]);
    for (const r of got) assert.deepEqual(Buffer.from(r.payload), payloadOf(r.seq));
    assert.deepEqual(b.losses, [
      { fromSeq: 2n, toSeq: 2n, count: 1, reason: 'corrupt' },
      { fromSeq: 4n, toSeq: 5n, count: 2, reason: 'corrupt' },
      { fromSeq: 9n, toSeq: 9n, count: 1, reason: 'corrupt' },
    ]);
    const all = await metrics.registry.getMetricsAsJSON();
    assert.equal(all.find((m) => m.name === 'dbaudit_cache_corrupt_records_total')!.values[0].value, 4);
    // deleted: a second scan finds no more corrupt records
    assert.deepEqual((await b.cache.scan({ order: 'newest_first', limit: 100 })).map((r) => Number(r.seq)), [10, 7, 6, 3, 1]);
    assert.equal(b.losses.length, 3);
    await b.cache.close();
  });
});

describe('the wrong cache key', () => {
  test('a cache whose newest events are under a key not configured refuses to open, naming both key ids and what to do; nothing is dropped', async () => {
    const d = dir();
    const k1 = newKey();
    const a = await openTest(d, { keyring: new Keyring(k1) });
    await appendN(a.cache, 4, a.clock.now());
    await a.cache.close();
    const id1 = new Keyring(k1).writeKeyId!;
    const wrong = new Keyring(newKey());
    await assert.rejects(openTest(d, { keyring: wrong, clock: a.clock }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'DBA_CONFIG');
      assert.equal(
        err.message,
        `cache ${d}: its newest events are sealed with cache key id ${id1}, which is not configured (the configured key's id is ${wrong.writeKeyId}); ` +
          'give that key in collector.cache.encryption.read_key_files (or as the key), or move the cache directory away to start empty. Refusing to start rather than drop the events',
      );
      return true;
    });
    // with the old key as a read key it opens, and every event is there to ship
    const b = await openTest(d, { keyring: new Keyring(newKey(), [k1]), clock: a.clock });
    assert.deepEqual((await b.cache.scan({ order: 'oldest_first', limit: 10 })).map((r) => Number(r.seq)), [1, 2, 3, 4]);
    assert.deepEqual(b.losses, []);
    await b.cache.close();
  });
});
