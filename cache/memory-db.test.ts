import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { type BatchOp, type RangeOptions, Rocks } from './rocks.js';
import { appendN, openTest, tempDir } from './testing.js';

const t = tempDir('dbaudit-memdb-');
after(() => t.cleanup());

/** A small deterministic generator, so a failure replays. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

async function entries(db: Rocks, range: RangeOptions, stopAfter = Infinity): Promise<string[]> {
  const out: string[] = [];
  await db.forEach(range, (k, v) => {
    out.push(`${k.toString('hex')}=${v.toString('hex')}`);
    return out.length < stopAfter;
  });
  return out;
}

test('the in-memory database answers every read exactly as RocksDB does after the same writes', async () => {
  const disk = await Rocks.open(join(t.dir, 'rocks'));
  const mem = Rocks.memory();
  const rand = rng(20261204);
  // keys shaped like the cache's (a tag byte, then a big-endian number) plus short odd ones, bytes 0x00 and 0xff included
  const key = (): Buffer => {
    const r = rand();
    if (r < 0.1) return Buffer.from([Math.floor(rand() * 256)]);
    if (r < 0.2) return Buffer.from([0xff, Math.floor(rand() * 3), 0x00]);
    const k = Buffer.alloc(9);
    k[0] = rand() < 0.8 ? 0x72 : 0x71;
    k.writeBigUInt64BE(BigInt(Math.floor(rand() * 400)), 1);
    return k;
  };
  try {
    for (let round = 0; round < 60; round++) {
      const ops: BatchOp[] = [];
      const n = 1 + Math.floor(rand() * 40);
      for (let i = 0; i < n; i++) {
        if (rand() < 0.35) ops.push({ type: 'del', key: key() });
        else ops.push({ type: 'put', key: key(), value: Buffer.from(`v${round}.${i}`) });
      }
      await disk.write(ops, false);
      await mem.write(ops, false);
      for (let q = 0; q < 8; q++) {
        const a = key();
        const b = key();
        const [lo, hi] = Buffer.compare(a, b) <= 0 ? [a, b] : [b, a];
        const range: RangeOptions = { reverse: rand() < 0.5 };
        const lower = rand();
        if (lower < 0.4) range.gte = lo;
        else if (lower < 0.8) range.gt = lo;
        const upper = rand();
        if (upper < 0.4) range.lt = hi;
        else if (upper < 0.8) range.lte = hi;
        if (rand() < 0.3) range.limit = Math.floor(rand() * 10);
        const stop = rand() < 0.3 ? 1 + Math.floor(rand() * 5) : Infinity;
        assert.deepEqual(await entries(mem, range, stop), await entries(disk, range, stop), `round ${round} range ${JSON.stringify(range)}`);
      }
      const probe = [key(), key(), key()];
      assert.deepEqual(await mem.getMany(probe), await disk.getMany(probe));
      assert.deepEqual(await mem.get(probe[0]), await disk.get(probe[0]));
    }
    // everything, both ways
    assert.deepEqual(await entries(mem, {}), await entries(disk, {}));
    assert.deepEqual(await entries(mem, { reverse: true }), await entries(disk, { reverse: true }));
  } finally {
    await disk.close();
    await mem.close();
  }
});

test('an iteration goes on correctly across writes made between its steps', async () => {
  const mem = Rocks.memory();
  const k = (n: number): Buffer => Buffer.from([0x72, n]);
  await mem.write([10, 20, 30, 40, 50].map((n) => ({ type: 'put' as const, key: k(n), value: Buffer.from([n]) })), false);
  const seen: number[] = [];
  let step = 0;
  await mem.forEach({}, (key) => {
    seen.push(key[1]);
    step++;
    // between steps: delete what is next, insert before and after the cursor (splicing the key array)
    if (step === 1) void mem.write([{ type: 'del', key: k(20) }, { type: 'put', key: k(5), value: Buffer.of(5) }, { type: 'put', key: k(35), value: Buffer.of(35) }], false);
  });
  // a write takes effect when it is made: 20 is gone, 35 is seen, 5 is behind the cursor
  assert.deepEqual(seen, [10, 30, 35, 40, 50]);
  await mem.close();
  await assert.rejects(mem.get(k(10)), /not open/);
});

test('a cache in memory writes nothing under its path, and a new one starts a new epoch, empty', async () => {
  const path = join(t.dir, 'never-created');
  const a = await openTest(path, { memory: true });
  await appendN(a.cache, 5, a.clock.now());
  assert.equal(a.cache.stats().events, 5);
  await a.cache.close();
  assert.equal(existsSync(path), false);
  const b = await openTest(path, { memory: true, keyring: a.opts.keyring });
  assert.notEqual(b.cache.epoch, a.cache.epoch);
  assert.equal(b.cache.stats().events, 0);
  assert.equal(b.cache.reserveSeq(), 1n);
  await b.cache.close();
});
