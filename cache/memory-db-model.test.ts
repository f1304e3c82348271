import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { type BatchOp, type RangeOptions, Rocks } from './rocks.js';
import { MemoryDb } from './memory-db.js';

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; return (x >>> 0) / 2 ** 32; };
}
async function entries(db: Rocks, range: RangeOptions, stopAfter = Infinity): Promise<string[]> {
  const out: string[] = [];
  await db.forEach(range, (k, v) => { out.push(`${k.toString('hex')}=${v.toString('hex')}`); return out.length < stopAfter; });
  return out;
}

for (const seed of [1, 2]) test(`static reads vs RocksDB, many keys, compaction, odd bytes, empty values, seed ${seed}`, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'memprop-'));
  const disk = await Rocks.open(join(dir, 'r'));
  const mem = Rocks.memory();
  const rand = rng(seed * 7919);
  const alphabet = [0x00, 0x01, 0x7f, 0x80, 0x81, 0xfe, 0xff, 0x72];
  const key = (): Buffer => {
    const r = rand();
    if (r < 0.5) { // short keys over an odd alphabet, prefixes of each other
      const n = 1 + Math.floor(rand() * 4);
      return Buffer.from(Array.from({ length: n }, () => alphabet[Math.floor(rand() * alphabet.length)]));
    }
    const k = Buffer.alloc(9); k[0] = 0x72; k.writeBigUInt64BE(BigInt(Math.floor(rand() * 3000)), 1); return k;
  };
  try {
    for (let round = 0; round < 150; round++) {
      const ops: BatchOp[] = [];
      const n = 1 + Math.floor(rand() * 200);
      const delHeavy = round % 3 === 2;
      for (let i = 0; i < n; i++) {
        if (rand() < (delHeavy ? 0.85 : 0.3)) ops.push({ type: 'del', key: key() });
        else ops.push({ type: 'put', key: key(), value: rand() < 0.2 ? Buffer.alloc(0) : Buffer.from(`v${round}.${i}`) });
      }
      await disk.write(ops, false);
      await mem.write(ops, false);
      for (let q = 0; q < 6; q++) {
        const a = key(); const b = key();
        const [lo, hi] = Buffer.compare(a, b) <= 0 ? [a, b] : [b, a];
        const range: RangeOptions = { reverse: rand() < 0.5 };
        const lower = rand(); if (lower < 0.4) range.gte = lo; else if (lower < 0.8) range.gt = lo;
        const upper = rand(); if (upper < 0.4) range.lt = hi; else if (upper < 0.8) range.lte = hi;
        if (rand() < 0.1) { const t = range.gte ?? range.gt; if (t && (range.lt || range.lte)) { /* inverted range */ if (range.lt) range.lt = lo; else range.lte = lo; if (range.gte) range.gte = hi; else range.gt = hi; } }
        if (rand() < 0.3) range.limit = Math.floor(rand() * 10);
        const stop = rand() < 0.3 ? 1 + Math.floor(rand() * 5) : Infinity;
        assert.deepEqual(await entries(mem, range, stop), await entries(disk, range, stop), `seed ${seed} round ${round} ${JSON.stringify(range)}`);
      }
      const probe = [key(), key(), key()];
      assert.deepEqual(await mem.getMany(probe), await disk.getMany(probe));
      for (const p of probe) assert.deepEqual(await mem.get(p), await disk.get(p));
    }
    assert.deepEqual(await entries(mem, {}), await entries(disk, {}));
    assert.deepEqual(await entries(mem, { reverse: true }), await entries(disk, { reverse: true }));
  } finally { await disk.close(); await mem.close(); rmSync(dir, { recursive: true, force: true }); }
});

/** The documented live-iterator contract against a naive model: next() returns the nearest live key past the last one returned. */
for (const seed of [11, 12, 13]) test(`live iteration with writes (and compactions) between steps, seed ${seed}`, async () => {
  const rand = rng(seed);
  const db = new MemoryDb();
  const model = new Map<string, string>();
  const K = (n: number) => Buffer.from([0x72, n >> 8, n & 0xff]);
  const apply = async (ops: { type: 'put' | 'del'; key: Buffer; value?: Buffer }[]) => {
    await new Promise<void>((res, rej) => db.batch(ops, {}, (e) => (e ? rej(e) : res())));
    for (const o of ops) { const k = o.key.toString('latin1'); if (o.type === 'del') model.delete(k); else model.set(k, o.value!.toString('latin1')); }
  };
  // fill
  await apply(Array.from({ length: 3000 }, (_, i) => ({ type: 'put' as const, key: K(i * 3), value: Buffer.from(`a${i}`) })));
  for (let it = 0; it < 40; it++) {
    const reverse = rand() < 0.5;
    const lo = Math.floor(rand() * 9000), hi = lo + Math.floor(rand() * 3000);
    const opts: RangeOptions = { reverse, gte: K(lo), lt: K(hi) };
    const limit = rand() < 0.3 ? Math.floor(rand() * 50) : undefined;
    if (limit !== undefined) opts.limit = limit;
    const iter = db.iterator(opts);
    let last: string | undefined; let count = 0;
    for (;;) {
      const got = await new Promise<[Buffer | undefined, Buffer | undefined]>((res, rej) => iter.next((e, k, v) => (e ? rej(e) : res([k, v]))));
      // model's expectation
      const lok = K(lo).toString('latin1'), hik = K(hi).toString('latin1');
      const cands = [...model.keys()].filter((k) => k >= lok && k < hik && (last === undefined || (reverse ? k < last : k > last))).sort();
      const exp = limit !== undefined && count >= limit ? undefined : reverse ? cands[cands.length - 1] : cands[0];
      assert.equal(got[0]?.toString('latin1'), exp, `seed ${seed} it ${it} step ${count}`);
      if (exp === undefined) break;
      assert.equal(got[1]!.toString('latin1'), model.get(exp));
      last = exp; count++;
      // random writes between steps: big deletes (compaction), inserts before/after the cursor, re-puts of deleted keys
      const ops: { type: 'put' | 'del'; key: Buffer; value?: Buffer }[] = [];
      const r = rand();
      if (r < 0.05) for (let j = 0; j < 2500; j++) ops.push({ type: 'del', key: K(Math.floor(rand() * 9000)) });
      else if (r < 0.5) for (let j = 0; j < 5; j++) { const n = Math.floor(rand() * 9000); ops.push(rand() < 0.5 ? { type: 'del', key: K(n) } : { type: 'put', key: K(n), value: Buffer.from(`b${it}.${j}`) }); }
      if (ops.length) await apply(ops);
    }
  }
});

test('values: false is honoured like the binding (value empty)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'memprop-'));
  const disk = await Rocks.open(join(dir, 'r'));
  const mem = Rocks.memory();
  const ops: BatchOp[] = [{ type: 'put', key: Buffer.from([1]), value: Buffer.from('abc') }];
  await disk.write(ops, false); await mem.write(ops, false);
  try {
    assert.deepEqual(await entries(mem, { values: false }), await entries(disk, { values: false }));
  } finally { await disk.close(); await mem.close(); rmSync(dir, { recursive: true, force: true }); }
});
