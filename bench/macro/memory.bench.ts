/**
 * dbaudit's resident memory: with 1 000 idle PostgreSQL sessions, and with
 * 100 sessions streaming large results to clients that read slowly (the
 * backpressure check: RSS must stay flat while gigabytes wait upstream).
 * The idle sessions are also opened, one process after the other, through
 * a bare Node pipe and pgbouncer, with each process's RSS split into
 * anonymous and file-backed pages: what any Node proxy pays before it does
 * anything, measured in the same run.
 */
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { makeTempDir, startPgbouncer, startPostgres, type PgServer } from '../../test/harness/index.js';
import { rssBytes, rssParts, startDbaudit, startGatewayProc, startPipe, type Proc } from '../lib/procs.js';
import { openSession, query } from '../lib/raw-pg.js';
import type { BenchOptions, Benchmark, Cell, Table } from '../lib/report.js';
import { envNumber } from '../lib/stats.js';

const MB = 2 ** 20;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Opens `n` idle sessions through `port`, 50 at a time. */
async function openIdle(port: number, n: number): Promise<Socket[]> {
  const out: Socket[] = [];
  for (let i = 0; i < n; i += 50) out.push(...(await Promise.all(Array.from({ length: Math.min(50, n - i) }, () => openSession(port, 'postgres', 'postgres')))));
  return out;
}

/**
 * RSS of `pid` before, with `n` idle sessions through `port`, and after they
 * closed; `row` is the by-process table's row (split into anonymous and
 * file-backed pages).
 */
async function idleRound(name: string, pid: number, port: number, n: number): Promise<{ before: number; held: number; after: number; row: Cell[] }> {
  const before = rssParts(pid);
  const sockets = await openIdle(port, n);
  await sleep(1000);
  const held = rssParts(pid);
  for (const s of sockets) s.destroy();
  await sleep(1500); // let the process settle and PostgreSQL's backends exit before the next process opens its own
  const row = [name, before.rss / MB, before.anon / MB, before.file / MB, held.rss / MB, held.anon / MB, held.file / MB, ((held.rss - before.rss) / n / 1024).toFixed(1)];
  return { before: before.rss, held: held.rss, after: rssBytes(pid), row };
}

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
      const byProcess: Cell[][] = [];
      const pipe = await startPipe(pg.host, pg.port);
      procs.push(pipe);
      o.log(`${idle} idle sessions through a bare Node pipe`);
      byProcess.push((await idleRound('node pipe', pipe.pid, pipe.port, idle)).row);
      await pipe.stop();
      const bouncer = await startPgbouncer({ host: pg.host, port: pg.port }, { maxClientConn: idle + 50, defaultPoolSize: idle + 10 });
      try {
        o.log(`${idle} idle sessions through pgbouncer`);
        byProcess.push((await idleRound('pgbouncer session', bouncer.pid, bouncer.port, idle)).row);
      } finally {
        await bouncer.dispose();
      }
      const gw = await startGatewayProc(join(dir.dir, 'gateway'));
      procs.push(gw);
      const p = await startDbaudit({ protocol: 'postgres', upstream: `${pg.host}:${pg.port}`, gateway: `127.0.0.1:${gw.port}`, cacheDir: join(dir.dir, 'cache'), durability: 'fsync' });
      procs.push(p);
      await sleep(500);
      o.log(`${idle} idle sessions through dbaudit`);
      const d = await idleRound('dbaudit fsync', p.pid, p.port, idle);
      byProcess.push(d.row);
      const base = d.before;
      rows.push(['started, no sessions', 0, base / MB, '', '']);
      rows.push([`${idle} idle sessions`, idle, d.held / MB, (d.held - base) / MB, ((d.held - base) / idle / 1024).toFixed(1)]);
      rows.push(['idle sessions closed', 0, d.after / MB, (d.after - base) / MB, '']);

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
        {
          title: `RSS with ${idle} idle sessions, by process (anonymous + file-backed pages)`,
          columns: ['process', 'started MB', 'anon MB', 'file MB', `${idle} idle MB`, 'anon MB', 'file MB', 'kB / session'],
          rows: byProcess,
          notes: [
            'One process after the other against the same PostgreSQL; each row opens the sessions, waits 1 s, reads /proc/<pid>/status (VmRSS = RssAnon + RssFile + RssShmem), closes them.',
            'file-backed pages are the mapped executable and shared libraries (node itself, the RocksDB addon): shared with other processes mapping them and reclaimable; anon is what the process allocated.',
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
