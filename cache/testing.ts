import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../lib/clock.js';
import { Keyring } from './keyring.js';
import { type CacheOptions, EventCache } from './wal.js';
import type { Loss } from './evict.js';

/** Helpers for the cache tests. @internal */

export function tempDir(prefix = 'dbaudit-cache-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function newKey(): Buffer {
  return randomBytes(32);
}

export function payloadOf(seq: bigint, size = 32): Buffer {
  const b = Buffer.alloc(size, 0x2e);
  b.write(`event-${seq}`);
  return b;
}

export interface Harness {
  cache: EventCache;
  clock: ManualClock;
  losses: Loss[];
  opts: CacheOptions;
}

export async function openTest(dir: string, over: Partial<CacheOptions> = {}): Promise<Harness> {
  const clock = (over.clock as ManualClock | undefined) ?? new ManualClock();
  const losses: Loss[] = [];
  const opts: CacheOptions = {
    path: dir,
    maxBytes: 1 << 30,
    maxAgeMs: 24 * 3600_000,
    keyring: new Keyring(newKey()),
    commitIntervalMs: 0,
    clock,
    onLoss: (l) => losses.push(l),
    ...over,
  };
  const cache = await EventCache.open(opts);
  return { cache, clock, losses, opts };
}

/** Appends `n` records with fresh seqs and the given time; resolves once durable. */
export async function appendN(cache: EventCache, n: number, timeMs: number, size = 32): Promise<bigint[]> {
  const seqs: bigint[] = [];
  for (let i = 0; i < n; i++) {
    const seq = cache.reserveSeq();
    cache.append(seq, payloadOf(seq, size), timeMs);
    seqs.push(seq);
  }
  await cache.flush();
  return seqs;
}
