/**
 * sysbench oltp_read_only and oltp_read_write on MariaDB: direct, bare Node
 * pipe, dbaudit (fsync and write durability), interleaved rounds, medians.
 */
import { join } from 'node:path';
import { binary, makeTempDir, run, startMariadb, type MariaServer } from '../../test/harness/index.js';
import { cpuSeconds, startDbaudit, startGatewayProc, startPipe, type Proc } from '../lib/procs.js';
import type { BenchOptions, Benchmark, Cell, Table } from '../lib/report.js';
import { envList, envNumber, median, ratio } from '../lib/stats.js';

interface Sample {
  tps: number;
  qps: number;
  avg: number;
  p99: number;
  cpuPerK: number;
  sidePerK: number;
}

function sysbenchArgs(m: MariaServer, port: number, db: string, threads: number, tables: number, size: number, psMode: string): string[] {
  return [
    '--db-driver=mysql', '--mysql-host=127.0.0.1', `--mysql-port=${port}`, `--mysql-user=${m.tcpUser.name}`, `--mysql-password=${m.tcpUser.password}`,
    `--mysql-db=${db}`, '--mysql-ssl=off', `--tables=${tables}`, `--table-size=${size}`, `--threads=${threads}`, `--db-ps-mode=${psMode}`,
  ];
}

export const sysbenchBench: Benchmark = {
  name: 'sysbench',
  description: 'sysbench oltp_read_only / oltp_read_write on MariaDB: direct, bare Node pipe, dbaudit full auditing (fsync and write)',
  async run(o: BenchOptions): Promise<Table[]> {
    const seconds = o.smoke ? 1 : envNumber('BENCH_SYSBENCH_SECONDS', 5);
    const rounds = o.smoke ? 1 : envNumber('BENCH_ROUNDS', 2);
    const threads = o.smoke ? 2 : envNumber('BENCH_SYSBENCH_THREADS', 8);
    const tables = o.smoke ? 1 : 4;
    const size = o.smoke ? 100 : envNumber('BENCH_SYSBENCH_TABLE_SIZE', 10_000);
    const dir = makeTempDir('dbaudit-bench-sysbench-');
    const procs: Proc[] = [];
    let m: MariaServer | undefined;
    try {
      o.log('starting MariaDB, pipe, gateway, dbaudit ×2');
      m = await startMariadb();
      const db = await m.createDatabase('sbtest');
      await run(binary('sysbench'), ['oltp_read_write', ...sysbenchArgs(m, m.port, db, 1, tables, size, 'auto'), 'prepare'], { timeoutMs: 300_000 });
      const pipe = await startPipe('127.0.0.1', m.port);
      procs.push(pipe);
      const gw = await startGatewayProc(join(dir.dir, 'gateway'));
      procs.push(gw);
      const common = { protocol: 'mysql' as const, upstream: `127.0.0.1:${m.port}`, gateway: `127.0.0.1:${gw.port}` };
      const fsyncP = await startDbaudit({ ...common, cacheDir: join(dir.dir, 'cache-fsync'), durability: 'fsync' });
      procs.push(fsyncP);
      const writeP = await startDbaudit({ ...common, cacheDir: join(dir.dir, 'cache-write'), durability: 'write' });
      procs.push(writeP);
      const targets = [
        { name: 'direct', port: m.port, pids: [] as number[], side: [] as number[] },
        { name: 'node pipe', port: pipe.port, pids: [pipe.pid], side: [] },
        { name: 'dbaudit fsync', port: fsyncP.port, pids: [fsyncP.pid], side: [gw.pid] },
        { name: 'dbaudit write', port: writeP.port, pids: [writeP.pid], side: [gw.pid] },
      ];
      const workloads = o.smoke ? ['oltp_read_only'] : envList('BENCH_SYSBENCH_TESTS', ['oltp_read_only', 'oltp_read_write']);
      const samples = new Map<string, Sample[]>();
      for (let round = 0; round < rounds; round++) {
        for (const w of workloads) {
          for (const t of targets) {
            o.log(`round ${round + 1}/${rounds} ${w} via ${t.name}`);
            const sum = (pids: number[]): number => pids.reduce((a, p) => a + cpuSeconds(p), 0);
            const c0 = sum(t.pids);
            const s0 = sum(t.side);
            const res = await run(binary('sysbench'), [w, ...sysbenchArgs(m, t.port, db, threads, tables, size, 'auto'), `--time=${seconds}`, '--percentile=99', '--report-interval=0', 'run'], { timeoutMs: (seconds + 120) * 1000, allowFail: true });
            if (t.side.length) await new Promise((r) => setTimeout(r, 500));
            const tx = /transactions:\s+(\d+)\s+\(([\d.]+) per sec/.exec(res.stdout);
            const q = /queries:\s+\d+\s+\(([\d.]+) per sec/.exec(res.stdout);
            const avg = /avg:\s+([\d.]+)/.exec(res.stdout);
            const p99 = /99th percentile:\s+([\d.]+)/.exec(res.stdout);
            if (res.code !== 0 || !tx) throw new Error(`sysbench ${w} via ${t.name} failed (${res.code}):\n${res.stderr.slice(-1500)}${res.stdout.slice(-1500)}`);
            const txns = Number(tx[1]);
            const list = samples.get(`${w}|${t.name}`) ?? [];
            list.push({ tps: Number(tx[2]), qps: Number(q?.[1] ?? NaN), avg: Number(avg?.[1] ?? NaN), p99: Number(p99?.[1] ?? NaN), cpuPerK: ((sum(t.pids) - c0) / txns) * 1000, sidePerK: ((sum(t.side) - s0) / txns) * 1000 });
            samples.set(`${w}|${t.name}`, list);
          }
        }
      }
      const rows: Cell[][] = [];
      for (const w of workloads) {
        const med = (t: string, f: (s: Sample) => number): number => median((samples.get(`${w}|${t}`) ?? []).map(f));
        const direct = med('direct', (s) => s.tps);
        for (const t of targets) {
          rows.push([
            `${w} --threads=${threads}`,
            t.name,
            med(t.name, (s) => s.tps),
            med(t.name, (s) => s.qps),
            ratio(med(t.name, (s) => s.tps), direct).toFixed(2),
            med(t.name, (s) => s.avg).toFixed(2),
            med(t.name, (s) => s.p99).toFixed(2),
            t.pids.length ? med(t.name, (s) => s.cpuPerK).toFixed(3) : '',
            t.side.length ? med(t.name, (s) => s.sidePerK).toFixed(3) : '',
          ]);
        }
      }
      return [
        {
          title: 'sysbench on MariaDB through each proxy',
          columns: ['run', 'target', 'TPS', 'QPS', '× direct', 'avg ms', 'p99 ms', 'proxy CPU s / 1k tx', 'gateway CPU s / 1k tx'],
          rows,
          notes: [
            `${tables} tables × ${size} rows, --db-ps-mode=auto (server-side prepared statements), ${seconds} s per run (BENCH_SYSBENCH_SECONDS), ${rounds} interleaved rounds (BENCH_ROUNDS); medians. A transaction is 14 (read-only) or 18 (read-write) statements, each an audit event.`,
            'latency: sysbench avg and 99th percentile; proxy CPU from /proc/<pid>/stat.',
          ],
        },
      ];
    } finally {
      for (const p of procs.reverse()) await p.stop().catch(() => undefined);
      await m?.dispose().catch(() => undefined);
      dir.remove();
    }
  },
};
