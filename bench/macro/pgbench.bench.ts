/**
 * pgbench through each proxy, interleaved (direct, pipe, pgbouncer,
 * dbaudit fsync, dbaudit write, dbaudit memory; repeated), medians. Every server is
 * started here on loopback and stopped at the end.
 */
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { binary, makeTempDir, run, startPgbouncer, startPostgres, type PgServer } from '../../test/harness/index.js';
import { cpuSeconds, startDbaudit, startGatewayProc, startPipe, type Proc } from '../lib/procs.js';
import type { BenchOptions, Benchmark, Cell, Table } from '../lib/report.js';
import { envList, envNumber, median, percentile, ratio } from '../lib/stats.js';

interface Target {
  name: string;
  port: number;
  /** Processes whose CPU is the proxy's (empty for direct). */
  pids: number[];
  /** Extra processes whose CPU is reported apart (the gateway). */
  sidePids: number[];
}

interface Sample {
  tps: number;
  txns: number;
  p50: number;
  p99: number;
  cpuPerK: number;
  sidePerK: number;
}

export interface PgbenchRun {
  script: 'select-only' | 'tpcb';
  mode: 'simple' | 'extended' | 'prepared';
  clients: number;
}

function sum(pids: number[]): number {
  let s = 0;
  for (const p of pids) s += cpuSeconds(p);
  return s;
}

async function pgbench(port: number, db: string, r: PgbenchRun, seconds: number, logDir: string): Promise<{ tps: number; lat: number[] }> {
  rmSync(logDir, { recursive: true, force: true });
  const { mkdirSync } = await import('node:fs');
  mkdirSync(logDir, { recursive: true });
  const args = ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-n', '-c', String(r.clients), '-j', '2', '-T', String(seconds), '-M', r.mode, '-l', '--log-prefix', join(logDir, 'tx')];
  if (r.script === 'select-only') args.push('-S');
  // BENCH_PGBENCH_RATE: a fixed offered load (pgbench -R, transactions/s over all clients) instead of as fast as possible
  const rate = envNumber('BENCH_PGBENCH_RATE', 0);
  if (rate > 0) args.push('-R', String(rate));
  const res = await run(binary('pgbench'), [...args, db], { timeoutMs: (seconds + 60) * 1000, allowFail: true });
  const m = /tps = ([\d.]+) \(without initial connection time\)/.exec(res.stdout);
  if (res.code !== 0 || !m) throw new Error(`pgbench ${args.join(' ')} failed (${res.code}):\n${res.stderr.slice(-2000)}${res.stdout.slice(-1000)}`);
  const lat: number[] = [];
  for (const f of readdirSync(logDir)) {
    for (const line of readFileSync(join(logDir, f), 'utf8').split('\n')) {
      if (!line) continue;
      const us = Number(line.split(' ')[2]);
      if (Number.isFinite(us)) lat.push(us);
    }
  }
  return { tps: Number(m[1]), lat };
}

/** The runs of the default matrix, or those named in BENCH_PGBENCH_RUNS ("select-only/simple/8,tpcb/prepared/32"). */
function runs(smoke: boolean): PgbenchRun[] {
  if (smoke) return [{ script: 'select-only', mode: 'simple', clients: 2 }];
  const named = envList('BENCH_PGBENCH_RUNS', []);
  if (named.length > 0) {
    return named.map((s) => {
      const [script, mode, clients] = s.split('/');
      return { script: script as PgbenchRun['script'], mode: mode as PgbenchRun['mode'], clients: Number(clients) };
    });
  }
  const out: PgbenchRun[] = [];
  for (const clients of envList('BENCH_PGBENCH_CLIENTS', ['8', '32']).map(Number)) {
    for (const script of ['select-only', 'tpcb'] as const) for (const mode of ['simple', 'extended', 'prepared'] as const) out.push({ script, mode, clients });
  }
  return out;
}

export const pgbenchBench: Benchmark = {
  name: 'pgbench',
  description: 'pgbench -S and TPC-B through each proxy: direct, bare Node pipe, pgbouncer (session), dbaudit full auditing (fsync and write durability, and the cache in memory)',
  async run(o: BenchOptions): Promise<Table[]> {
    const seconds = o.smoke ? 1 : envNumber('BENCH_PGBENCH_SECONDS', 5);
    const rounds = o.smoke ? 1 : envNumber('BENCH_ROUNDS', 2);
    const scale = o.smoke ? 1 : envNumber('BENCH_PGBENCH_SCALE', 10);
    const dir = makeTempDir('dbaudit-bench-pgbench-');
    const procs: Proc[] = [];
    let pg: PgServer | undefined;
    let bouncer: Awaited<ReturnType<typeof startPgbouncer>> | undefined;
    try {
      o.log('starting PostgreSQL, pgbouncer, pipe, gateway, dbaudit ×3');
      pg = await startPostgres({ settings: { max_connections: '300', shared_buffers: "'256MB'" } });
      await pg.psql('CREATE DATABASE bench');
      await run(binary('pgbench'), ['-h', pg.host, '-p', String(pg.port), '-U', 'postgres', '-i', '-q', '-s', String(scale), 'bench'], { timeoutMs: 300_000 });
      bouncer = await startPgbouncer({ host: pg.host, port: pg.port }, { defaultPoolSize: 100 });
      const pipe = await startPipe(pg.host, pg.port);
      procs.push(pipe);
      const gw = await startGatewayProc(join(dir.dir, 'gateway'));
      procs.push(gw);
      const gwAddr = `127.0.0.1:${gw.port}`;
      const upstream = `${pg.host}:${pg.port}`;
      const fsyncP = await startDbaudit({ protocol: 'postgres', upstream, gateway: gwAddr, cacheDir: join(dir.dir, 'cache-fsync'), durability: 'fsync' });
      procs.push(fsyncP);
      const writeP = await startDbaudit({ protocol: 'postgres', upstream, gateway: gwAddr, cacheDir: join(dir.dir, 'cache-write'), durability: 'write' });
      procs.push(writeP);
      const memP = await startDbaudit({ protocol: 'postgres', upstream, gateway: gwAddr, cacheDir: join(dir.dir, 'cache-memory'), durability: 'memory' });
      procs.push(memP);
      const targets: Target[] = [
        { name: 'direct', port: pg.port, pids: [], sidePids: [] },
        { name: 'node pipe', port: pipe.port, pids: [pipe.pid], sidePids: [] },
        { name: 'pgbouncer session', port: bouncer.port, pids: [bouncer.pid], sidePids: [] },
        { name: 'dbaudit fsync', port: fsyncP.port, pids: [fsyncP.pid], sidePids: [gw.pid] },
        { name: 'dbaudit write', port: writeP.port, pids: [writeP.pid], sidePids: [gw.pid] },
        { name: 'dbaudit memory', port: memP.port, pids: [memP.pid], sidePids: [gw.pid] },
      ].filter((t) => envList('BENCH_TARGETS', []).length === 0 || envList('BENCH_TARGETS', []).includes(t.name));
      const plan = runs(o.smoke);
      const samples = new Map<string, Sample[]>();
      for (let round = 0; round < rounds; round++) {
        for (const r of plan) {
          for (const t of targets) {
            const key = `${r.script} -M ${r.mode} -c ${r.clients}|${t.name}`;
            o.log(`round ${round + 1}/${rounds} ${key.replace('|', ' via ')}`);
            const c0 = sum(t.pids);
            const s0 = sum(t.sidePids);
            const res = await pgbench(t.port, 'bench', r, seconds, join(dir.dir, 'log'));
            // let the gateway finish what this run shipped before reading its CPU
            if (t.sidePids.length > 0) await new Promise((x) => setTimeout(x, 500));
            const txns = res.lat.length;
            const cpu = sum(t.pids) - c0;
            const side = sum(t.sidePids) - s0;
            const list = samples.get(key) ?? [];
            list.push({ tps: res.tps, txns, p50: percentile(res.lat, 50) / 1000, p99: percentile(res.lat, 99) / 1000, cpuPerK: txns > 0 ? (cpu / txns) * 1000 : NaN, sidePerK: txns > 0 ? (side / txns) * 1000 : NaN });
            samples.set(key, list);
          }
        }
      }
      const rows: Cell[][] = [];
      for (const r of plan) {
        const label = `${r.script} -M ${r.mode} -c ${r.clients}`;
        const med = (t: string, f: (s: Sample) => number): number => median((samples.get(`${label}|${t}`) ?? []).map(f));
        const direct = med('direct', (s) => s.tps);
        const bouncerTps = med('pgbouncer session', (s) => s.tps);
        const bouncerCpu = med('pgbouncer session', (s) => s.cpuPerK);
        for (const t of targets) {
          const tps = med(t.name, (s) => s.tps);
          const cpu = med(t.name, (s) => s.cpuPerK);
          rows.push([
            label,
            t.name,
            tps,
            ratio(tps, direct).toFixed(2),
            Number.isNaN(bouncerTps) ? '' : ratio(tps, bouncerTps).toFixed(2),
            med(t.name, (s) => s.p50).toFixed(2),
            med(t.name, (s) => s.p99).toFixed(2),
            t.pids.length ? cpu.toFixed(3) : '',
            t.pids.length && !Number.isNaN(bouncerCpu) ? ratio(cpu, bouncerCpu).toFixed(2) : '',
            t.sidePids.length ? med(t.name, (s) => s.sidePerK).toFixed(3) : '',
          ]);
        }
      }
      return [
        {
          title: 'pgbench through each proxy (PostgreSQL, pgbench and the proxy share the machine)',
          columns: ['run', 'target', 'TPS', '× direct', '× pgbouncer', 'p50 ms', 'p99 ms', 'proxy CPU s / 1k tx', 'CPU × pgbouncer', 'gateway CPU s / 1k tx'],
          rows,
          notes: [
            `scale ${scale}, ${seconds} s per run (BENCH_PGBENCH_SECONDS), ${rounds} interleaved rounds (BENCH_ROUNDS), -j 2; medians over rounds. Order in a round: ${targets.map((t) => t.name).join(', ')}.`,
            'latency from pgbench --log per-transaction times; proxy CPU = utime+stime from /proc/<pid>/stat over the run (10 ms ticks) ÷ transactions.',
            'dbaudit: node bin/dbaudit.js proxy, full auditing (decode, events, AES-256-GCM cache in RocksDB, gRPC to a dbaudit gateway process with the embedded store); fsync = collector.cache.durability fsync (a result is held until its event is fsynced), write = written to RocksDB\'s log without fsync (survives kill -9, not power loss), memory = collector.cache.enabled false (no disk: what it costs to make events survive a crash).',
            'PostgreSQL from the test harness: fsync, synchronous_commit and full_page_writes off.',
          ],
        },
      ];
    } finally {
      for (const p of procs.reverse()) await p.stop().catch(() => undefined);
      await bouncer?.dispose().catch(() => undefined);
      await pg?.dispose().catch(() => undefined);
      dir.remove();
    }
  },
};
