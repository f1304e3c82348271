/**
 * Child process of crash.test.ts: appends records as fast as the cache
 * takes them, acknowledges the oldest now and then, and prints on stdout
 * (synchronous for pipes on Linux) each seq the moment it is durable:
 *   "ready <epoch>" once open, "d <seq>" per durable record,
 *   "a <from> <to>" before an ack is issued, "A <from> <to>" once it is durable,
 *   "l <from> <to> <reason>" for each loss onLoss reports (CRASH_MAX_BYTES makes evictions happen).
 * It never exits by itself: the parent kills it with SIGKILL.
 * @internal
 */
import { writeSync } from 'node:fs';
import { Keyring } from './keyring.js';
import { EventCache } from './wal.js';
import { payloadOf } from './testing.js';

const dir = process.argv[2];
const key = Buffer.from(process.env.CRASH_KEY ?? '', 'hex');
const pause = new Int32Array(new SharedArrayBuffer(4));
/**
 * Synchronous, so a line is out before the record it reports could be lost
 * to a kill. stdout is a non-blocking pipe: when the parent is slow to read
 * it answers EAGAIN (seen in CI), so wait a millisecond and write the rest.
 */
const out = (line: string): void => {
  const b = Buffer.from(line + '\n');
  for (let off = 0; off < b.length; ) {
    try {
      off += writeSync(1, b, off);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      Atomics.wait(pause, 0, 0, 1);
    }
  }
};

const maxBytes = Number(process.env.CRASH_MAX_BYTES ?? 1 << 30);
const cache = await EventCache.open({
  path: dir,
  maxBytes,
  maxAgeMs: 0,
  keyring: new Keyring(key),
  commitIntervalMs: 1,
  writeBufferSize: 256 << 10,
  durability: process.env.CRASH_DURABILITY === 'write' ? 'write' : 'fsync',
  onLoss: (l) => out(`l ${l.fromSeq} ${l.toSeq} ${l.reason}`),
});
out(`ready ${cache.epoch} ${cache.durableSeq}`);
let acked = 0n;
let inflight = 0;
function pump(): void {
  if (inflight < 2000) {
    for (let i = 0; i < 64; i++) {
      const seq = cache.reserveSeq();
      const t = cache.append(seq, payloadOf(seq, 64 + Number(seq % 200n)), Date.now());
      inflight++;
      cache.whenDurable(t, (err) => {
        inflight--;
        if (!err) out(`d ${seq}`);
      });
    }
  }
  const durable = cache.durableSeq;
  if (durable - acked > 1000n && Math.random() < 0.2) {
    const from = acked + 1n;
    const to = acked + 500n;
    acked = to;
    const seqs: bigint[] = [];
    for (let s = from; s <= to; s++) seqs.push(s);
    out(`a ${from} ${to}`);
    cache.ack(seqs).then(() => out(`A ${from} ${to}`), () => undefined);
  }
  setImmediate(pump);
}
// acks continue from what a previous run left: the oldest record still held
const first = await cache.scan({ order: 'oldest_first', limit: 1 });
acked = first.length ? first[0].seq - 1n : cache.durableSeq;
pump();
