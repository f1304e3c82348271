/**
 * Durable, encrypted cache appends per second: 300-byte payloads sealed
 * with AES-256-GCM, group-committed into synced RocksDB batches, counted
 * once whenDurable fires. Run on one core:
 *
 *   taskset -c 0 node --import tsx bench/cache-append.ts
 *
 * Env: N (records, default 200000), PAYLOAD (bytes, 300), WINDOW (records
 * in flight before the writer waits, 20000), COMMIT_MS (group-commit window, 2),
 * RATE (offered records/s; default 0 = as fast as the cache takes them, for
 * latency under a steady load), DIR (cache directory; default a fresh one
 * under the OS temp dir).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Keyring } from '../cache/keyring.js';
import { sealRecord } from '../cache/seal.js';
import { EventCache } from '../cache/wal.js';

const N = Number(process.env.N ?? 200_000);
const PAYLOAD = Number(process.env.PAYLOAD ?? 300);
const WINDOW = Number(process.env.WINDOW ?? 20_000);
const COMMIT_MS = Number(process.env.COMMIT_MS ?? 2);
const RATE = Number(process.env.RATE ?? 0);
const dir = process.env.DIR ?? mkdtempSync(join(tmpdir(), 'dbaudit-bench-cache-'));

const keyring = new Keyring(randomBytes(32));
const payload = randomBytes(PAYLOAD);

// seal alone, for the share of CPU that encryption takes
{
  const epoch = randomBytes(16);
  const key = Buffer.alloc(9);
  const n = 100_000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) sealRecord(keyring, epoch, key, Date.now(), payload);
  const ns = Number(process.hrtime.bigint() - t0);
  console.log(`seal only: ${(n / (ns / 1e9)).toFixed(0)} records/s (${(ns / n / 1000).toFixed(2)} us/record)`);
}

const cache = await EventCache.open({ path: dir, maxBytes: 64 * 2 ** 30, maxAgeMs: 0, keyring, commitIntervalMs: COMMIT_MS });
const lat: number[] = [];
let durable = 0;
let appended = 0;
let resolveDone: () => void = () => undefined;
const done = new Promise<void>((r) => (resolveDone = r));
let wake: (() => void) | undefined;

const cpu0 = process.cpuUsage();
const t0 = performance.now();
while (appended < N) {
  if (appended - durable >= WINDOW) {
    await new Promise<void>((r) => (wake = r));
    continue;
  }
  const seq = cache.reserveSeq();
  const start = performance.now();
  const ticket = cache.append(seq, payload, Date.now());
  appended++;
  cache.whenDurable(ticket, (err) => {
    if (err) throw err;
    durable++;
    if ((durable & 63) === 0) lat.push(performance.now() - start);
    if (wake && appended - durable < WINDOW / 2) {
      const w = wake;
      wake = undefined;
      w();
    }
    if (durable === N) resolveDone();
  });
  if (RATE > 0) {
    const due = ((performance.now() - t0) * RATE) / 1000;
    if (appended >= due) await new Promise((r) => setTimeout(r, 1));
  } else if ((appended & 1023) === 0) await new Promise((r) => setImmediate(r));
}
await done;
const secs = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
await cache.close();
if (!process.env.DIR) rmSync(dir, { recursive: true, force: true });

lat.sort((a, b) => a - b);
const pct = (p: number) => lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))].toFixed(2);
console.log(
  `durable encrypted appends: ${(N / secs).toFixed(0)} records/s, ${((N * PAYLOAD) / secs / 1e6).toFixed(1)} MB/s payload` +
    ` (${N} x ${PAYLOAD} B, commit window ${COMMIT_MS} ms, window ${WINDOW}${RATE ? `, offered ${RATE}/s` : ''}, ${secs.toFixed(2)} s)`,
);
console.log(`append->durable latency ms: p50 ${pct(50)} p99 ${pct(99)} max ${lat[lat.length - 1].toFixed(2)}`);
console.log(`process CPU: ${((cpu.user + cpu.system) / 1e6 / secs).toFixed(2)} cores (user ${(cpu.user / 1e6).toFixed(2)} s, system ${(cpu.system / 1e6).toFixed(2)} s); ${availableParallelism()} CPUs visible`);
