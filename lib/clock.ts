/** Injectable time source so trackers and caches can be tested without sleeping. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Monotonic microseconds, for durations. */
  monoMicros(): number;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  monoMicros: () => Number(process.hrtime.bigint() / 1000n),
};

/** A clock that only moves when told to. */
export class ManualClock implements Clock {
  #ms: number;
  #micros = 0;
  constructor(startMs = Date.UTC(2026, 0, 1)) {
    this.#ms = startMs;
  }
  now(): number {
    return this.#ms;
  }
  monoMicros(): number {
    return this.#micros;
  }
  advance(ms: number): void {
    this.#ms += ms;
    this.#micros += ms * 1000;
  }
}
