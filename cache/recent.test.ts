import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RecentRecords } from './recent.js';

const rec = (seq: number, size = 10) => ({ seq: BigInt(seq), key: Buffer.alloc(9), value: Buffer.alloc(size), timeMs: seq });
const seqs = (r: { seq: bigint }[] | undefined) => r?.map((x) => Number(x.seq));

describe('RecentRecords (the in-memory tail the shipper scans)', () => {
  it('answers only ranges it covers: from the first commit on', () => {
    const r = new RecentRecords();
    assert.equal(r.scan({ order: 'oldest_first', limit: 10 }, 1n), undefined, 'nothing committed yet');
    const batch = [rec(6), rec(7), rec(8)];
    for (const p of batch) r.appended(p.seq, Buffer.from([Number(p.seq)]));
    r.committed(batch, batch, [], 5n);
    assert.deepEqual(seqs(r.scan({ order: 'oldest_first', afterSeq: 5n, limit: 10 }, 1n)), [6, 7, 8]);
    assert.deepEqual(seqs(r.scan({ order: 'oldest_first', afterSeq: 6n, limit: 1 }, 1n)), [7]);
    assert.deepEqual(seqs(r.scan({ order: 'newest_first', afterSeq: 5n, beforeSeq: 8n, limit: 10 }, 1n)), [7, 6]);
    assert.equal(r.scan({ order: 'oldest_first', afterSeq: 4n, limit: 10 }, 1n), undefined, 'seq 5 and below may be on disk');
    assert.deepEqual(seqs(r.scan({ order: 'oldest_first', limit: 10 }, 6n)), [6, 7, 8], 'lowSeq says nothing lies below 6');
    assert.deepEqual([...r.scan({ order: 'oldest_first', afterSeq: 5n, limit: 1 }, 1n)![0].payload], [6]);
  });

  it('forgets acknowledged and evicted records, keeps coverage', () => {
    const r = new RecentRecords();
    const batch = [rec(1), rec(2), rec(3), rec(4)];
    for (const p of batch) r.appended(p.seq, Buffer.alloc(1));
    r.committed(batch, batch.slice(1), [], 0n); // 1 evicted at once by max_size
    r.removed([2n]);
    assert.deepEqual(seqs(r.scan({ order: 'oldest_first', limit: 10 }, 1n)), [3, 4]);
  });

  it('bounded by bytes: the oldest go first and coverage moves past them', () => {
    const r = new RecentRecords(100);
    const batch = [rec(1, 40), rec(2, 40), rec(3, 40)];
    for (const p of batch) r.appended(p.seq, Buffer.alloc(1));
    r.committed(batch, batch, [], 0n);
    assert.equal(r.size, 2);
    assert.equal(r.scan({ order: 'oldest_first', limit: 10 }, 1n), undefined);
    assert.deepEqual(seqs(r.scan({ order: 'oldest_first', afterSeq: 1n, limit: 10 }, 1n)), [2, 3]);
  });

  it('a record committed without its plaintext is never claimed; invalidate drops everything', () => {
    const r = new RecentRecords();
    const batch = [rec(1), rec(2)];
    r.appended(2n, Buffer.alloc(1));
    r.committed(batch, batch, [], 0n);
    assert.equal(r.scan({ order: 'oldest_first', limit: 10 }, 1n), undefined);
    assert.deepEqual(seqs(r.scan({ order: 'oldest_first', afterSeq: 1n, limit: 10 }, 1n)), [2]);
    r.invalidate();
    assert.equal(r.scan({ order: 'oldest_first', afterSeq: 1n, limit: 10 }, 1n), undefined);
  });
});

describe('RecentRecords: acknowledgements answered from memory', () => {
  it('victims only when every seq is held; edges only when memory holds every present record', () => {
    const r = new RecentRecords();
    const batch = [rec(3), rec(4), rec(5)];
    for (const p of batch) r.appended(p.seq, Buffer.alloc(1));
    r.committed(batch, batch, [], 2n);
    assert.deepEqual(r.victims([5n, 3n, 3n])?.map((v) => [Number(v.seq), v.bytes, v.key.length]), [[3, 19, 9], [5, 19, 9]]);
    assert.equal(r.victims([2n, 3n]), undefined);
    assert.equal(r.edge(1n, false), undefined, 'seqs 1..2 may still be on disk');
    assert.deepEqual(r.edge(3n, false), { edge: { seq: 3n, timeMs: 3 } });
    assert.deepEqual(r.edge(3n, true), { edge: { seq: 5n, timeMs: 5 } });
    r.removed([3n, 4n, 5n]);
    assert.deepEqual(r.edge(6n, false), { edge: undefined });
  });
});

describe('RecentRecords: scans and edges agree with a plain model', () => {
  // A seeded random walk of commits (some records evicted at once, some older
  // ones evicted with the commit), acknowledgements in and out of order, and
  // now and then a commit below the highest seq held (which no cache does,
  // but the class must still answer right). Every scan and edge is checked
  // against a sorted filter over the records the model holds.
  it('over 20,000 random operations', () => {
    let state = 0x2f6e2b1;
    const rnd = (n: number): number => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      return state % n;
    };
    const r = new RecentRecords(1 << 30);
    const held = new Map<bigint, number>();
    let next = 1n;
    let from: bigint | undefined;
    let emptied = 0;
    const commit = (list: bigint[]): void => {
      const batch = list.map((s) => rec(Number(s)));
      for (const p of batch) r.appended(p.seq, Buffer.alloc(1));
      const kept = batch.filter(() => rnd(10) > 0);
      const present = [...held.keys()];
      const evicted = rnd(8) === 0 ? present.slice(0, rnd(4)) : [];
      r.committed(batch, kept, evicted, next - 1n);
      from ??= next;
      for (const k of kept) held.set(k.seq, Number(k.seq));
      for (const e of evicted) held.delete(e);
    };
    for (let op = 0; op < 20_000; op++) {
      const roll = rnd(100);
      if (roll < 30) {
        const n = 1 + rnd(20);
        const list: bigint[] = [];
        for (let i = 0; i < n; i++) list.push(next++);
        commit(list);
      } else if (roll < 31 && held.size > 0) {
        const below = [...held.keys()][0] - 1n;
        if (below >= (from ?? 1n) && !held.has(below)) commit([below]);
      } else if (roll < 55 && held.size > 0) {
        const keys = [...held.keys()].sort((a, b) => (a < b ? -1 : 1));
        const pick = rnd(10);
        const gone = pick === 0 ? keys : pick < 6 ? keys.slice(0, 1 + rnd(15)) : keys.filter(() => rnd(4) === 0);
        r.removed(gone);
        for (const g of gone) held.delete(g);
        if (held.size === 0) emptied++;
      } else if (roll < 95) {
        const order = rnd(2) === 0 ? 'oldest_first' : 'newest_first';
        const afterSeq = rnd(3) === 0 ? undefined : BigInt(rnd(Number(next) + 2));
        const beforeSeq = rnd(3) === 0 ? undefined : BigInt(rnd(Number(next) + 5));
        const limit = rnd(30);
        const lowSeq = BigInt(1 + rnd(3));
        const got = r.scan({ order, afterSeq, beforeSeq, limit }, lowSeq);
        let lo = afterSeq !== undefined ? afterSeq + 1n : 1n;
        if (lo < lowSeq) lo = lowSeq;
        if (from === undefined || lo < from) {
          assert.equal(got, undefined, `op ${op}: scan below coverage`);
          continue;
        }
        const want = [...held.keys()].filter((s) => s >= lo && (beforeSeq === undefined || s < beforeSeq)).sort((a, b) => (a < b ? -1 : 1));
        if (order === 'newest_first') want.reverse();
        assert.deepEqual(seqs(got), want.slice(0, limit).map(Number), `op ${op}: ${order} after ${afterSeq} before ${beforeSeq} limit ${limit}`);
      } else if (from !== undefined) {
        const sorted = [...held.keys()].sort((a, b) => (a < b ? -1 : 1));
        for (const newest of [false, true]) {
          const got = r.edge(from, newest);
          if (got === undefined) {
            assert.ok(held.size > 4096, `op ${op}: only a large unordered map may decline an edge`);
            continue;
          }
          const e = newest ? sorted[sorted.length - 1] : sorted[0];
          assert.deepEqual(got, { edge: e === undefined ? undefined : { seq: e, timeMs: Number(e) } }, `op ${op}: edge newest=${newest}`);
        }
      }
      assert.equal(r.size, held.size);
    }
    assert.ok(emptied > 100, `the walk emptied the records ${emptied} times (each starts the ordered path again)`);
  });
});
