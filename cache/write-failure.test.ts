import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { CollectorMetrics } from '../lib/metrics.js';
import type { EventCache } from './wal.js';
import { openTest, payloadOf, tempDir } from './testing.js';

/**
 * Write failures: a directory that turns read-only while the cache runs,
 * and a disk that fills up. Either way whenDurable reports the error,
 * `writable` is false, the failure is counted, the records stay queued in
 * memory, and once the disk takes writes again every one becomes durable.
 */

const isRoot = process.getuid?.() === 0;
const cleanups: (() => void)[] = [];
after(() => cleanups.reverse().forEach((c) => c()));

function sh(cmd: string, ...args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await settle(10);
  }
}

interface Outcome {
  ok: number;
  failed: number;
}

/** Appends `n` 300-byte records, yielding now and then; counts whenDurable outcomes. */
async function write(cache: EventCache, n: number, timeMs: number, out: Outcome): Promise<bigint[]> {
  const seqs: bigint[] = [];
  for (let i = 0; i < n; i++) {
    const seq = cache.reserveSeq();
    seqs.push(seq);
    const t = cache.append(seq, payloadOf(seq, 300), timeMs);
    cache.whenDurable(t, (err) => (err ? out.failed++ : out.ok++));
    if (i % 50 === 49) await settle(2);
  }
  return seqs;
}

async function errorsCounted(m: CollectorMetrics): Promise<number> {
  const j = await m.registry.getMetricsAsJSON();
  return Number(j.find((x) => x.name === 'dbaudit_cache_write_errors_total')?.values[0]?.value ?? 0);
}

async function checkAllDurable(cache: EventCache, seqs: bigint[]): Promise<void> {
  await cache.flush();
  const got = await cache.scan({ order: 'oldest_first', limit: seqs.length + 10 });
  assert.deepEqual(got.map((r) => r.seq), seqs);
  for (const r of got) assert.deepEqual(Buffer.from(r.payload), payloadOf(r.seq, 300));
  assert.equal(cache.stats().events, seqs.length);
  assert.equal(cache.stats().pendingAppends, 0);
}

describe('cache write failures', () => {
  test('directory made read-only while running: errors reported, nothing lost, recovers when writable', async (t) => {
    const tmp = tempDir('dbaudit-rodir-');
    cleanups.push(tmp.cleanup);
    const dir = join(tmp.dir, 'cache');
    mkdirSync(dir);
    const metrics = new CollectorMetrics({ defaultMetrics: false });
    // a small memtable: RocksDB must create new files (WAL, SST) soon after the directory turns read-only
    const changes: boolean[] = [];
    const { cache, clock } = await openTest(dir, { metrics, writeBufferSize: 64 << 10, retryMinMs: 20, retryMaxMs: 100, onWritableChange: (w) => changes.push(w) });
    // root ignores permission bits, so as root the directory is made read-only with a read-only bind mount
    // (mounted after the cache opened: files it holds open for writing would make the remount busy)
    let readOnly: () => void;
    let writable: () => void;
    if (isRoot) {
      if (!sh('mount', '--bind', dir, dir)) {
        await cache.close();
        return t.skip('running as root without permission to mount: cannot make a directory read-only');
      }
      cleanups.push(() => sh('umount', dir));
      readOnly = () => assert.ok(sh('mount', '-o', 'remount,ro,bind', dir), 'remount read-only');
      writable = () => assert.ok(sh('mount', '-o', 'remount,rw,bind', dir), 'remount read-write');
    } else {
      readOnly = () => chmodSync(dir, 0o555);
      writable = () => chmodSync(dir, 0o755);
      cleanups.push(() => chmodSync(dir, 0o755));
    }
    const out: Outcome = { ok: 0, failed: 0 };
    const seqs = await write(cache, 200, clock.now(), out);
    await cache.flush();
    assert.deepEqual(out, { ok: 200, failed: 0 });

    readOnly();
    seqs.push(...(await write(cache, 1000, clock.now(), out)));
    await until('a failed write', () => !cache.writable);
    assert.ok(out.failed > 0);
    assert.ok((await errorsCounted(metrics)) >= 1);
    assert.match(cache.stats().lastError ?? '', /read-only|EROFS|EACCES|permission/i);
    assert.ok(cache.stats().pendingAppends > 0);
    // durable records still read while writes fail
    assert.equal((await cache.scan({ order: 'oldest_first', limit: 5 })).length, 5);
    await assert.rejects(cache.flush(), (e: { code?: string }) => e.code === 'DBA_CACHE');

    writable();
    await until('recovery', () => cache.writable && cache.stats().pendingAppends === 0);
    const after: Outcome = { ok: 0, failed: 0 };
    seqs.push(...(await write(cache, 100, clock.now(), after)));
    await checkAllDurable(cache, seqs);
    assert.deepEqual(after, { ok: 100, failed: 0 });
    assert.deepEqual(changes, [false, true]);
    await cache.close();
  });

  test('disk full (size-limited tmpfs): errors reported, nothing lost, recovers when space returns', async (t) => {
    if (!isRoot) return t.skip('needs root to mount a size-limited tmpfs');
    const tmp = tempDir('dbaudit-full-');
    cleanups.push(tmp.cleanup);
    if (!sh('mount', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', tmp.dir)) return t.skip('cannot mount tmpfs here');
    cleanups.push(() => sh('umount', tmp.dir));
    const dir = join(tmp.dir, 'cache');
    const metrics = new CollectorMetrics({ defaultMetrics: false });
    const { cache, clock } = await openTest(dir, { metrics, writeBufferSize: 64 << 10, retryMinMs: 20, retryMaxMs: 100 });
    const out: Outcome = { ok: 0, failed: 0 };
    const seqs: bigint[] = [];
    while (cache.writable && seqs.length < 20_000) seqs.push(...(await write(cache, 200, clock.now(), out)));
    await until('a failed write', () => !cache.writable);
    assert.ok(out.failed > 0, 'the disk never filled');
    assert.ok((await errorsCounted(metrics)) >= 1);
    assert.match(cache.stats().lastError ?? '', /space|ENOSPC/i);
    const durableBefore = out.ok;
    assert.ok(durableBefore > 0);

    assert.ok(sh('mount', '-o', 'remount,size=64m', tmp.dir));
    await until('recovery', () => cache.writable && cache.stats().pendingAppends === 0);
    await checkAllDurable(cache, seqs);
    await cache.close();
  });
});
