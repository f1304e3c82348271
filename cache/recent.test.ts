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
