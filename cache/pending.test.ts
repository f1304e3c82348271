import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { silentLogger } from '../lib/log.js';
import { type Pending, PendingQueue } from './pending.js';
import { Tickets } from './tickets.js';

const rec = (seq: number, size = 100): Pending => ({ seq: BigInt(seq), key: Buffer.alloc(9), value: Buffer.alloc(size - 9), timeMs: 0, ticket: seq });

describe('PendingQueue', () => {
  test('take, put back in front after a failure, shift what landed', () => {
    const q = new PendingQueue();
    for (let i = 1; i <= 3; i++) q.push(rec(i));
    const batch = q.take();
    assert.deepEqual([q.length, q.unsynced, q.bytes], [0, 3, 0]);
    q.push(rec(4));
    q.settle(batch, true);
    assert.deepEqual([q.length, q.unsynced, q.bytes, q.first?.seq], [4, 4, 400, 1n]);
    assert.deepEqual(q.shift(3).map((p) => p.seq), [1n, 2n, 3n]);
    assert.deepEqual([q.length, q.bytes], [1, 100]);
  });

  test('bound drops the oldest after the protected front, keeps at least one record', () => {
    const q = new PendingQueue();
    for (let i = 1; i <= 10; i++) q.push(rec(i));
    assert.deepEqual(q.bound(450, 2).map((p) => Number(p.seq)), [3, 4, 5, 6, 7, 8]);
    assert.deepEqual([q.length, q.bytes], [4, 400]);
    const one = new PendingQueue();
    one.push(rec(1, 1000));
    assert.deepEqual(one.bound(10, 0), []);
  });
});

describe('Tickets', () => {
  test('waiters fire in ticket order once durable; already durable is refused (caller calls back)', () => {
    const t = new Tickets(silentLogger);
    const fired: string[] = [];
    for (let i = 0; i < 5; i++) t.issue();
    t.wait(3, () => fired.push('3'));
    t.wait(1, () => fired.push('1'));
    t.wait(5, () => fired.push('5'));
    t.wait(2, () => fired.push('2'));
    t.markDurable(3);
    assert.deepEqual(fired, ['1', '2', '3']);
    assert.equal(t.wait(2, () => fired.push('late')), false);
    t.settle(Infinity, new Error('x'));
    assert.deepEqual(fired, ['1', '2', '3', '5']);
  });
});
