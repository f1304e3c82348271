import type { Logger } from '../lib/log.js';

/**
 * Append tickets and the callbacks waiting for them to become durable.
 * Tickets are issued in append order and made durable in that order, so one
 * number (the highest durable ticket) answers every question; waiters are
 * kept sorted by ticket. @internal
 */
interface Waiter {
  ticket: number;
  cb: (err?: Error) => void;
}

export class Tickets {
  readonly #log: Logger;
  #issued = 0;
  #durable = 0;
  #waiters: Waiter[] = [];

  constructor(log: Logger) {
    this.#log = log;
  }

  issue(): number {
    return ++this.#issued;
  }

  get last(): number {
    return this.#issued;
  }

  get durable(): number {
    return this.#durable;
  }

  /** Registers `cb`; returns false (not registered) when the ticket is already durable. */
  wait(ticket: number, cb: (err?: Error) => void): boolean {
    if (ticket <= this.#durable) return false;
    const w = this.#waiters;
    if (w.length === 0 || w[w.length - 1].ticket <= ticket) w.push({ ticket, cb });
    else {
      let lo = 0;
      let hi = w.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (w[mid].ticket <= ticket) lo = mid + 1;
        else hi = mid;
      }
      w.splice(lo, 0, { ticket, cb });
    }
    return true;
  }

  /** Every ticket up to `ticket` is durable: their waiters succeed. */
  markDurable(ticket: number): void {
    if (ticket > this.#durable) this.#durable = ticket;
    this.settle(this.#durable);
  }

  /** Calls the waiters of tickets up to `upTo` with `err` (success when undefined). */
  settle(upTo: number, err?: Error): void {
    const w = this.#waiters;
    let i = 0;
    while (i < w.length && w[i].ticket <= upTo) i++;
    if (i === 0) return;
    for (const x of w.splice(0, i)) this.#call(x.cb, err);
  }

  /** Fails the waiters of exactly these tickets (records dropped before they were written). */
  fail(tickets: ReadonlySet<number>, err: Error): void {
    const keep: Waiter[] = [];
    for (const x of this.#waiters) {
      if (tickets.has(x.ticket)) process.nextTick(() => this.#call(x.cb, err));
      else keep.push(x);
    }
    this.#waiters = keep;
  }

  #call(cb: (err?: Error) => void, err?: Error): void {
    try {
      cb(err);
    } catch (e) {
      this.#log.error({ err: e }, 'cache whenDurable callback threw');
    }
  }
}

/**
 * One unref'd timer for the cache: `publish` every second (event lag moves
 * with the clock), `expire` every `expireEveryMs` (default max_age/10 within
 * 100 ms..60 s) when max_age is set. @internal
 */
export function startTicker(maxAgeMs: number, expireEveryMs: number | undefined, publish: () => void, expire: () => void): NodeJS.Timeout {
  const every = maxAgeMs > 0 ? (expireEveryMs ?? Math.min(60_000, Math.max(100, Math.floor(maxAgeMs / 10)))) : Infinity;
  let next = Date.now() + every;
  const t = setInterval(() => {
    publish();
    if (Date.now() < next) return;
    next = Date.now() + every;
    expire();
  }, Math.min(1000, every));
  t.unref();
  return t;
}
