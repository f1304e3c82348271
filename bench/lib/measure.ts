import { median } from './stats.js';

/** One timed pass over some bytes: how many bytes and messages it covered. */
export interface Pass {
  bytes: number;
  messages: number;
}

export interface Throughput {
  mbPerSec: number;
  msgsPerSec: number;
  /** Heap bytes allocated per 1M messages; NaN when a GC ran during the window (then see allocGc). */
  allocPerMillion: number;
  /** True when the allocation window saw a GC (the figure is a lower bound, or unknown). */
  allocGc: boolean;
}

const gcHook = (globalThis as { gc?: () => void }).gc;

/**
 * Runs `pass` repeatedly for about `ms` milliseconds per sample, `samples`
 * times, and returns median throughput. Allocation: one separate window of
 * passes (after a forced GC when --expose-gc is on) measured by heapUsed
 * growth; valid only when no GC ran inside it (run with a large
 * --max-semi-space-size).
 */
export async function measure(pass: () => Pass, ms: number, samples: number): Promise<Throughput> {
  // warm-up: let the JIT settle
  const warmEnd = performance.now() + Math.min(ms, 200);
  while (performance.now() < warmEnd) pass();
  const mb: number[] = [];
  const msgs: number[] = [];
  for (let s = 0; s < samples; s++) {
    let bytes = 0;
    let messages = 0;
    const t0 = performance.now();
    let t = t0;
    do {
      const p = pass();
      bytes += p.bytes;
      messages += p.messages;
      t = performance.now();
    } while (t - t0 < ms);
    const secs = (t - t0) / 1000;
    mb.push(bytes / secs / 1e6);
    msgs.push(messages / secs);
  }
  const alloc = await allocation(pass);
  return { mbPerSec: median(mb), msgsPerSec: median(msgs), allocPerMillion: alloc.perMillion, allocGc: alloc.gc };
}

async function allocation(pass: () => Pass): Promise<{ perMillion: number; gc: boolean }> {
  gcHook?.();
  const h0 = process.memoryUsage().heapUsed;
  let prev = h0;
  let gc = false;
  let messages = 0;
  // up to 200k messages: with --max-semi-space-size=128 the window fits in the young generation
  for (let i = 0; i < 10_000 && messages < 200_000; i++) {
    messages += pass().messages;
    const h = process.memoryUsage().heapUsed;
    if (h < prev) gc = true; // a scavenge ran: the growth no longer counts every allocation
    prev = h;
  }
  const perMillion = messages > 0 ? ((prev - h0) / messages) * 1e6 : NaN;
  return { perMillion: gc ? NaN : Math.max(0, perMillion), gc };
}
