/**
 * dbaudit's resident memory: with 1 000 idle PostgreSQL sessions, and with
 * 100 sessions streaming large results to clients that read slowly (the
 * backpressure check: RSS must stay flat while gigabytes wait upstream).
 */
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { makeTempDir, startPostgres, type PgServer } from '../../test/harness/index.js';
import { rssBytes, startDbaudit, startGatewayProc, type Proc } from '../lib/procs.js';
import { openSession, query } from '../lib/raw-pg.js';
import type { BenchOptions, Benchmark, Cell, Table } from '../lib/report.js';
import { envNumber } from '../lib/stats.js';

const MB = 2 ** 20;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export const memoryBench: Benchmark = {
  name: 'memory',
  description: "dbaudit's RSS with idle sessions and with slow readers of large results",
  async run(o: BenchOptions): Promise<Table[]> {
    const idle = o.smoke ? 20 : envNumber('BENCH_IDLE_CONNECTIONS', 1000);
    const slow = o.smoke ? 4 : envNumber('BENCH_SLOW_READERS', 100);
    const slowSeconds = o.smoke ? 2 : envNumber('BENCH_SLOW_SECONDS', 15);
    const dir = makeTempDir('dbaudit-bench-memory-');
    const procs: Proc[] = [];
    const sockets: Socket[] = [];
    let pg: PgServer | undefined;
    const rows: Cell[][] = [];
    try {
      pg = await startPostgres({ settings: { max_connections: String(idle + slow + 50) } });
      const gw = await startGatewayProc(join(dir.dir, 'gateway'));
      procs.push(gw);
      const p = await startDbaudit({ protocol: 'postgres', upstream: `${pg.host}:${pg.port}`, gateway: `127.0.0.1:${gw.port}`, cacheDir: join(dir.dir, 'cache'), durability: 'fsync' });
      procs.push(p);
      await sleep(500);
      const base = rssBytes(p.pid);
      rows.push(['started, no sessions', 0, base / MB, '', '']);
      o.log(`opening ${idle} idle sessions`);
      for (let i = 0; i < idle; i += 50) {
        const batch = await Promise.all(Array.from({ length: Math.min(50, idle - i) }, () => openSession(p.port, 'postgres', 'postgres')));
        sockets.push(...batch);
      }
      await sleep(1000);
      const idleRss = rssBytes(p.pid);
      rows.push([`${idle} idle sessions`, idle, idleRss / MB, (idleRss - base) / MB, ((idleRss - base) / idle / 1024).toFixed(1)]);
      for (const s of sockets.splice(0)) s.destroy();
      await sleep(1500);
      const after = rssBytes(p.pid);
      rows.push(['idle sessions closed', 0, after / MB, (after - base) / MB, '']);

      // Slow readers: each asks for ~perClient MB and reads about 1 MB/s.
      const rowsPerQuery = o.smoke ? 2_000 : 100_000; // ~1 kB a row
      o.log(`${slow} slow readers, ${slowSeconds} s`);
      let received = 0;
      const readers = await Promise.all(Array.from({ length: slow }, () => openSession(p.port, 'postgres', 'postgres')));
      for (const s of readers) {
        sockets.push(s);
        s.on('data', (b: Buffer) => {
          received += b.length;
          s.pause();
          setTimeout(() => s.resume(), 60);
        });
        s.on('error', () => undefined);
        s.write(query(`SELECT g, repeat('x', 1000) FROM generate_series(1, ${rowsPerQuery}) g`));
      }
      const samples: number[] = [];
      const start = rssBytes(p.pid);
      const t0 = performance.now();
      while (performance.now() - t0 < slowSeconds * 1000) {
        await sleep(500);
        samples.push(rssBytes(p.pid));
      }
      const secs = (performance.now() - t0) / 1000;
      const max = Math.max(...samples);
      const half = samples.slice(samples.length >> 1);
      const firstHalfMax = Math.max(...samples.slice(0, Math.max(1, samples.length >> 1)));
      rows.push([`${slow} slow readers: start`, slow, start / MB, (start - base) / MB, '']);
      rows.push([`${slow} slow readers: max over ${secs.toFixed(0)} s`, slow, max / MB, (max - base) / MB, ((max - base) / slow / 1024).toFixed(1)]);
      rows.push([`${slow} slow readers: 2nd half max − 1st half max`, slow, (Math.max(...half) - firstHalfMax) / MB, '', '']);
      rows.push([`${slow} slow readers: read by clients (MB/s)`, slow, received / MB / secs, '', '']);
      const upstreamTotal = (slow * rowsPerQuery * 1000) / MB;
      return [
        {
          title: "dbaudit RSS (separate process, full auditing, fsync durability)",
          columns: ['state', 'sessions', 'RSS MB', 'Δ from start MB', 'kB / session'],
          rows,
          notes: [
            `idle: ${idle} real PostgreSQL sessions (trust auth, raw client) through the proxy (BENCH_IDLE_CONNECTIONS).`,
            `slow readers: ${slow} sessions (BENCH_SLOW_READERS) each SELECTing ${rowsPerQuery.toLocaleString('en-US')} rows of ~1 kB (${upstreamTotal.toFixed(0)} MB in all) while reading one chunk per 60 ms; RSS sampled every 500 ms for ${slowSeconds} s (BENCH_SLOW_SECONDS). Flat = the last row near 0.`,
          ],
        },
      ];
    } finally {
      for (const s of sockets) s.destroy();
      for (const p of procs.reverse()) await p.stop().catch(() => undefined);
      await pg?.dispose().catch(() => undefined);
      dir.remove();
    }
  },
};
