import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ManualClock } from '../lib/clock.js';
import { RateLimiter } from './rate.js';

describe('RateLimiter', () => {
  test('starts with one second of tokens, then refills at the rate', () => {
    const clock = new ManualClock();
    const r = new RateLimiter(10, clock);
    assert.equal(r.take(4), 4);
    assert.equal(r.take(10), 6);
    assert.equal(r.take(1), 0);
    assert.equal(r.waitMs(1), 100);
    assert.equal(r.waitMs(5), 500);
    clock.advance(99);
    assert.equal(r.take(1), 0);
    assert.equal(r.waitMs(1), 1);
    clock.advance(1);
    assert.equal(r.take(5), 1);
    clock.advance(250);
    assert.equal(r.take(5), 2); // 2.5 tokens: the half stays
    clock.advance(50);
    assert.equal(r.take(5), 1);
  });

  test('never holds more than the burst', () => {
    const clock = new ManualClock();
    const r = new RateLimiter(1000, clock, 50);
    assert.equal(r.take(100), 50);
    clock.advance(3_600_000);
    assert.equal(r.available(), 50);
    assert.equal(r.take(1000), 50);
    assert.equal(r.waitMs(1000), 50); // capped at the burst: 50 tokens at 1/ms
  });

  test('exactly rate_limit events per second over a long replay', () => {
    const clock = new ManualClock();
    const r = new RateLimiter(10_000, clock);
    let sent = r.take(Number.MAX_SAFE_INTEGER); // the initial burst
    assert.equal(sent, 10_000);
    sent = 0;
    for (let ms = 0; ms < 60_000; ms += 7) {
      clock.advance(7);
      sent += r.take(512);
    }
    // 8 572 steps of 7 ms = 60 004 ms at 10 tokens/ms, every token taken as it arrives
    assert.equal(sent, 600_040);
  });

  test('rejects a non-positive rate', () => {
    assert.throws(() => new RateLimiter(0, new ManualClock()), (e: { code?: string }) => e.code === 'DBA_CONFIG');
    assert.throws(() => new RateLimiter(Number.NaN, new ManualClock()), (e: { code?: string }) => e.code === 'DBA_CONFIG');
  });
});
