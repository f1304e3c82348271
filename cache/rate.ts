import type { Clock } from '../lib/clock.js';
import { AuditError, ErrorCode } from '../lib/errors.js';

/**
 * Token bucket for backlog replay (collector.cache.sync.rate_limit events
 * per second). Starts full; holds at most `burst` tokens (default one
 * second's worth); refills continuously from the clock's monotonic time.
 */
export class RateLimiter {
  readonly perSecond: number;
  readonly burst: number;
  readonly #clock: Clock;
  #tokens: number;
  #lastMicros: number;

  constructor(perSecond: number, clock: Clock, burst: number = perSecond) {
    if (!(perSecond > 0) || !Number.isFinite(perSecond)) throw new AuditError(ErrorCode.Config, `rate limit must be a positive number, got ${perSecond}`);
    if (!(burst >= 1) || !Number.isFinite(burst)) throw new AuditError(ErrorCode.Config, `rate limit burst must be >= 1, got ${burst}`);
    this.perSecond = perSecond;
    this.burst = burst;
    this.#clock = clock;
    this.#tokens = burst;
    this.#lastMicros = clock.monoMicros();
  }

  #refill(): void {
    const now = this.#clock.monoMicros();
    const dt = now - this.#lastMicros;
    if (dt > 0) {
      this.#tokens = Math.min(this.burst, this.#tokens + (dt * this.perSecond) / 1e6);
      this.#lastMicros = now;
    }
  }

  /** Whole tokens available now. */
  available(): number {
    this.#refill();
    return Math.floor(this.#tokens + 1e-9);
  }

  /** Takes up to `n` tokens; returns how many were granted now (0..n). */
  take(n: number): number {
    this.#refill();
    const granted = Math.max(0, Math.min(Math.floor(n), Math.floor(this.#tokens + 1e-9)));
    this.#tokens -= granted;
    return granted;
  }

  /** Milliseconds until `n` tokens (at most `burst`) are available; 0 if they are now. Rounded up. */
  waitMs(n: number): number {
    this.#refill();
    const want = Math.min(Math.max(0, n), this.burst);
    const missing = want - this.#tokens;
    if (missing <= 1e-9) return 0;
    return Math.ceil((missing * 1000) / this.perSecond - 1e-9);
  }
}
