// The chaos run (`npm run chaos`): real processes on loopback — PostgreSQL
// (pgaudit on), two proxies in front of it (active-active), two region-A
// gateways sharing a PostgreSQL store, one region-B gateway, replication
// both ways — under a steady pgbench load, through five failure scenarios,
// and a sixth: the region-A outage again, through a third proxy whose cache
// is small enough to evict (verify must report exactly the evicted ranges,
// each covered by a loss event).
// After each, what PostgreSQL executed (pgaudit) is reconciled with what each
// region stored, and `dbaudit verify` checks the trail of both regions
// (every seq held or explained, every chain link and seal intact).
// Env: CHAOS_OUTAGE_S (60), CHAOS_CLIENTS (per proxy, 8),
// CHAOS_SCENARIOS (e.g. "1,3"; default 1-6), CHAOS_EVICT_CACHE (scenario 6's
// collector.cache.max_size, 64KB). Prints one table; exits 1 if a target fails.
import { create } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TrailRequestSchema } from '../proto/gen/audit/v1/query_pb.js';
import { verifyTrail } from '../gateway/verify-command.js';
import { ChainMaker, TrailKeys, attestHead, reportPasses, trailKey, type EpochReport } from '../lib/trail.js';
import { encodeAuditEvent } from '../proxy/event-codec.js';
import { IngestClient } from '../lib/grpc.js';
import { EventBatchSchema, type BatchAck } from '../proto/gen/audit/v1/ingest_pb.js';
import { EventKind, makeEvent, newSessionMeta } from '../proxy/events.js';
import { freePort, makeTempDir, run, binary, startPostgres, type PgServer } from '../test/harness/index.js';
import { firstReceivedAfter, KEYS, Load, percentile, Proc, sleep, storedSince } from './chaos-lib.js';

export interface ScenarioResult {
  name: string;
  logged: number;
  storedA: number;
  storedB: number;
  /** Statements executed (pgaudit) with no event in region A, beyond those a killed proxy had in flight. */
  lost: number;
  /** Missing events explained by statements in flight at a proxy kill (results no client received). */
  inFlight: number;
  /** Scenario 6: events the small cache evicted (its dbaudit_cache_dropped_events_total). */
  evicted?: number;
  twice: number;
  rtoMs?: number;
  rpoP50Ms: number;
  rpoP99Ms: number;
  eventsPerSecond: number;
  /** `dbaudit verify` of each region's whole trail after the scenario. */
  trailA: TrailVerdict;
  trailB: TrailVerdict;
}

export interface TrailVerdict {
  ok: boolean;
  epochs: number;
  events: number;
  gaps: number;
  breaks: number;
  /** Seqs explained by loss events (evicted or corrupt at a collector), and by retention. */
  byLoss: number;
  byRetention: number;
  /** The first few findings, for the log. */
  findings: string[];
}

/** `dbaudit verify` of one gateway's whole trail with the run's keys. */
async function verdictOf(port: number, keys: TrailKeys): Promise<TrailVerdict> {
  const reports = await verifyTrail(`127.0.0.1:${port}`, {}, create(TrailRequestSchema, {}), keys);
  const findings = reports.flatMap((r) => [
    ...r.missing.map((m) => `${r.collectorId}/${r.epoch} missing ${m.from}-${m.to}`),
    ...r.breaks.map((b) => `${r.collectorId}/${r.epoch} seq ${b.seq}: ${b.problem}`),
  ]);
  return {
    ok: reports.every(reportPasses),
    epochs: reports.length,
    events: reports.reduce((n, r) => n + r.held, 0),
    gaps: reports.reduce((n, r) => n + r.missing.length, 0),
    breaks: reports.reduce((n, r) => n + r.breaks.length, 0),
    byLoss: explainedBy(reports, 'loss event'),
    byRetention: explainedBy(reports, 'retention'),
    findings: findings.slice(0, 5),
  };
}

function explainedBy(reports: readonly EpochReport[], by: string): number {
  let n = 0n;
  for (const r of reports) for (const e of r.explained) if (e.by === by) n += e.to - e.from + 1n;
  return Number(n);
}

/** The sum of one counter's samples in a Prometheus text exposition. */
async function counterOf(httpPort: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  let n = 0;
  for (const line of text.split('\n')) if (line.startsWith(name + '{') || line.startsWith(name + ' ')) n += Number(line.slice(line.lastIndexOf(' ') + 1));
  return n;
}

export interface ChaosOptions {
  outageMs: number;
  clients: number;
  scenarios: number[];
  /** Scenario 6's cache bound (collector.cache.max_size). Default 64KB. */
  evictCache?: string;
  log?: (line: string) => void;
}

export async function runChaos(opts: ChaosOptions): Promise<ScenarioResult[]> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const dir = makeTempDir('chaos');
  const pgs: PgServer = await startPostgres({ pgaudit: true, settings: { max_connections: '200' } });
  const procs: Proc[] = [];
  try {
    const bench = await pgs.createDatabase('bench');
    const auditA = await pgs.createDatabase('audit_a');
    const auditB = await pgs.createDatabase('audit_b');
    await run(binary('pgbench'), ['-i', '-q', '-s', '10', '-h', '127.0.0.1', '-p', String(pgs.port), '-U', 'postgres', bench], { env: { ...process.env, PGSSLMODE: 'disable' } });
    const urlA = pgs.url(auditA);
    const urlB = pgs.url(auditB);
    // The gateways check the collectors' chain with the fleet's trail key; the auditor holds it and the seal key.
    const gatewayKeys = join(dir.dir, 'trail-keys');
    mkdirSync(gatewayKeys);
    writeFileSync(join(gatewayKeys, 'fleet.key'), KEYS.DBAUDIT_TRAIL_KEY);
    const auditorKeys = new TrailKeys([trailKey(Buffer.from(KEYS.DBAUDIT_TRAIL_KEY, 'base64'))]);
    auditorKeys.add(trailKey(Buffer.from(KEYS.DBAUDIT_SEAL_KEY, 'base64')), { kind: 'seal' });
    const [pA1, pA2, pB, pP1, pP2, pP3, hP3] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort(), freePort(), freePort()]);
    const gwArgs = (id: string, port: number, store: string, peers: number[]): string[] => [
      'gateway', '--listen', `127.0.0.1:${port}`, '--http', '127.0.0.1:0', '--store', store, '--data-dir', join(dir.dir, id),
      '--gateway.id', id, '--gateway.replicate_to', peers.map((p) => `127.0.0.1:${p}`).join(','),
      '--gateway.replication.retry.initial_delay', '200ms', '--gateway.replication.retry.max_delay', '1s', '--gateway.replication.retry.max_attempts', '2',
      '--gateway.trail.keys_dir', gatewayKeys,
    ];
    const proxyArgs = (id: string, port: number, gateways: number[], http = '127.0.0.1:0'): string[] => [
      'proxy', '--listen', `127.0.0.1:${port}`, '--upstream', `127.0.0.1:${pgs.port}`, '--http', http,
      '--gateway', gateways.map((p) => `127.0.0.1:${p}`).join(','), '--cache-dir', join(dir.dir, id), '--collector.id', id,
      '--collector.cache.durability', 'write', '--collector.retry.initial_delay', '100ms', '--collector.retry.max_delay', '1s',
      '--collector.retry.max_attempts', '2', '--collector.gateway.failback_interval', '2s', '--collector.gateway.ack_timeout', '5s',
    ];
    const gwA1 = new Proc('gw-a1', gwArgs('gw-a1', pA1, urlA, [pB]), pA1);
    const gwA2 = new Proc('gw-a2', gwArgs('gw-a2', pA2, urlA, [pB]), pA2);
    const gwB = new Proc('gw-b', gwArgs('gw-b', pB, urlB, [pA1, pA2]), pB);
    const p1 = new Proc('P1', proxyArgs('P1', pP1, [pA1, pA2]), pP1);
    const p2 = new Proc('P2', proxyArgs('P2', pP2, [pA2, pA1]), pP2);
    // Scenario 6's proxy: a cache small enough that a region-A outage evicts.
    const p3 = new Proc('P3', [...proxyArgs('P3', pP3, [pA1, pA2], `127.0.0.1:${hP3}`), '--collector.cache.max_size', opts.evictCache ?? '64KB'], pP3);
    procs.push(gwA1, gwA2, gwB, p1, p2);
    for (const p of procs) await p.start();
    procs.push(p3);
    log(`chaos: PostgreSQL :${pgs.port}, gateways A :${pA1} :${pA2} (store ${auditA}), B :${pB} (store ${auditB}), proxies :${pP1} :${pP2}`);

    const scenarios: Record<number, { name: string; fault: () => Promise<number | undefined>; proxyKill?: boolean; evicting?: boolean }> = {
      1: {
        name: 'kill -9 of the primary gateway (A1), restart later',
        fault: async () => {
          const t = Date.now();
          await gwA1.kill9();
          await sleep(opts.outageMs / 4);
          await gwA1.start();
          return t;
        },
      },
      2: {
        name: 'kill -9 of one proxy (P1), restart',
        proxyKill: true,
        fault: async () => {
          await p1.kill9();
          await sleep(2_000);
          await p1.start();
          return undefined;
        },
      },
      3: {
        name: `region A's gateways stopped ${opts.outageMs / 1000}s, then started`,
        fault: async () => {
          await gwA1.stop();
          await gwA2.stop();
          await sleep(opts.outageMs);
          await gwA1.start();
          await gwA2.start();
          // Measured from the moment the gateways accept connections again.
          return Date.now();
        },
      },
      4: {
        name: 'the same event ids sent at once by two collectors to both A replicas',
        fault: async () => {
          await sameIdsToBoth(pA1, pA2, bench);
          return undefined;
        },
      },
      5: {
        name: `region B unreachable ${opts.outageMs / 1000}s while A accepts`,
        fault: async () => {
          gwB.pause();
          await sleep(opts.outageMs);
          gwB.resume();
          return undefined;
        },
      },
      6: {
        name: `region A's gateways stopped ${opts.outageMs / 1000}s, load through P3 whose cache (${opts.evictCache ?? '64KB'}) evicts`,
        evicting: true,
        fault: async () => {
          await gwA1.stop();
          await gwA2.stop();
          await sleep(opts.outageMs);
          await gwA1.start();
          await gwA2.start();
          return undefined;
        },
      },
    };

    const results: ScenarioResult[] = [];
    for (const n of opts.scenarios) {
      const sc = scenarios[n];
      const auditFrom = pgs.logOffset();
      const since = Date.now();
      if (sc.evicting) await p3.start();
      const loads = sc.evicting ? [new Load(pP3, bench, opts.clients)] : [new Load(pP1, bench, opts.clients), new Load(pP2, bench, opts.clients)];
      for (const l of loads) l.start();
      await sleep(3_000);
      log(`scenario ${n}: ${sc.name}`);
      const faultAt = await sc.fault();
      await sleep(3_000);
      for (const l of loads) await l.stop();
      const loadEnd = Date.now();
      const logged = pgs.auditLog(auditFrom).filter((a) => a.database === bench && a.substatementId === 1 && a.command === 'SELECT').length;
      // Settle: both regions stop growing.
      let a = new Map<string, number>();
      let b = new Map<string, number>();
      for (let i = 0, last = -1; i < 240; i++) {
        a = await storedSince(urlA, bench, since);
        b = await storedSince(urlB, bench, since);
        // Scenario 6: what the cache evicted never arrives.
        const expected = logged - (sc.evicting ? await counterOf(hP3, 'dbaudit_cache_dropped_events_total') : 0);
        if (a.size === b.size && a.size === last && a.size >= expected) break;
        last = a.size === b.size ? a.size : -1;
        await sleep(1_000);
      }
      const extraIds = n === 4 ? 1000 : 0;
      const inFlight = sc.proxyKill ? opts.clients : 0;
      const storedA = a.size - extraIds;
      // Scenario 6: statements whose events the cache evicted are accounted for by its loss events, not lost.
      const evicted = sc.evicting ? await counterOf(hP3, 'dbaudit_cache_dropped_events_total') : undefined;
      const missing = Math.max(0, logged - storedA - (evicted ?? 0));
      const lags: number[] = [];
      for (const [id, ra] of a) {
        const rb = b.get(id);
        if (rb !== undefined) lags.push(Math.max(0, rb - ra));
      }
      lags.sort((x, y) => x - y);
      const rto = faultAt === undefined ? undefined : ((await firstReceivedAfter(urlA, 'P1', faultAt)) ?? NaN) - faultAt;
      const r: ScenarioResult = {
        name: `${n}. ${sc.name}`,
        logged,
        storedA,
        storedB: b.size - extraIds,
        lost: Math.max(0, missing - inFlight) + Math.max(0, a.size - b.size),
        inFlight: Math.min(missing, inFlight),
        evicted,
        twice: Math.max(0, storedA - logged),
        rtoMs: rto,
        rpoP50Ms: percentile(lags, 50),
        rpoP99Ms: percentile(lags, 99),
        eventsPerSecond: Math.round(storedA / ((loadEnd - since) / 1000)),
        trailA: await verdictOf(pA2, auditorKeys),
        trailB: await verdictOf(pB, auditorKeys),
      };
      if (sc.evicting) await p3.stop();
      log(JSON.stringify(r));
      results.push(r);
    }
    return results;
  } finally {
    for (const p of procs.reverse()) await p.stop().catch(() => undefined);
    await pgs.stop().catch(() => undefined);
    dir.remove();
  }
}

/** Scenario 4: 1,000 events sent as the same batch, at the same moment, to both region-A replicas by two "collectors". */
async function sameIdsToBoth(portA1: number, portA2: number, db: string): Promise<void> {
  const meta = newSessionMeta('postgres', '127.0.0.1:1', '127.0.0.1:2', Date.now());
  meta.user = 'postgres';
  meta.database = db;
  meta.sessionId = `chaos-dup-${Date.now()}`;
  // A collector of its own ("dup"), chained with the fleet's trail key like the proxies' events.
  const chain = new ChainMaker(trailKey(Buffer.from(KEYS.DBAUDIT_TRAIL_KEY, 'base64')), undefined);
  const events = Array.from({ length: 1000 }, (_, i) => {
    const ev = makeEvent(EventKind.Statement, meta, Date.now());
    ev.statement = `select ${i}`;
    ev.collectorId = 'dup';
    ev.epoch = meta.sessionId;
    ev.seq = BigInt(i + 1);
    return chain.link(ev, encodeAuditEvent);
  });
  const head = attestHead(trailKey(Buffer.from(KEYS.DBAUDIT_TRAIL_KEY, 'base64')), 'dup', meta.sessionId, 1000n);
  const batch = create(EventBatchSchema, { batchId: 1n, collectorId: 'dup', epoch: meta.sessionId, events, highestSeq: 1000n, headMac: head.mac, headKeyId: head.keyId });
  const send = (port: number): Promise<BatchAck> =>
    new Promise((resolve, reject) => {
      const client = new IngestClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
      const call = (client as unknown as { stream(): grpc.ClientDuplexStream<unknown, BatchAck> }).stream();
      call.on('data', (ack: BatchAck) => {
        resolve(ack);
        call.end();
        client.close();
      });
      call.on('error', reject);
      call.write(batch);
    });
  const acks = await Promise.all([send(portA1), send(portA2)]);
  const stored = acks.reduce((s, a) => s + a.stored, 0);
  const dups = acks.reduce((s, a) => s + a.duplicates, 0);
  if (stored !== 1000 || dups !== 1000) throw new Error(`same ids to both replicas: stored ${stored}, duplicates ${dups} (expected 1000 and 1000)`);
}

export function formatResults(results: readonly ScenarioResult[]): string {
  const head = '| scenario | executed (pgaudit) | stored A | stored B | lost | in flight at a proxy kill | evicted by the cache | stored twice | RTO | RPO p50 | RPO p99 | events/s | verify A | verify B |';
  const sep = '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|';
  const v = (t: TrailVerdict): string =>
    (t.ok ? `pass (${t.epochs} epochs, ${t.events} events` : `FAIL (${t.gaps} gaps, ${t.breaks} breaks`) + (t.byLoss > 0 ? `, ${t.byLoss} explained by loss events)` : ')');
  const ms = (v: number | undefined): string => (v === undefined ? '—' : Number.isNaN(v) ? 'n/a' : `${(v / 1000).toFixed(2)} s`);
  const rows = results.map((r) => `| ${r.name} | ${r.logged} | ${r.storedA} | ${r.storedB} | ${r.lost} | ${r.inFlight} | ${r.evicted ?? '—'} | ${r.twice} | ${ms(r.rtoMs)} | ${ms(r.rpoP50Ms)} | ${ms(r.rpoP99Ms)} | ${r.eventsPerSecond} | ${v(r.trailA)} | ${v(r.trailB)} |`);
  return [head, sep, ...rows].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const outageMs = Number(process.env.CHAOS_OUTAGE_S ?? 60) * 1000;
  const clients = Number(process.env.CHAOS_CLIENTS ?? 8);
  const scenarios = (process.env.CHAOS_SCENARIOS ?? '1,2,3,4,5,6').split(',').map(Number);
  const results = await runChaos({ outageMs, clients, scenarios, evictCache: process.env.CHAOS_EVICT_CACHE });
  console.log(`\nnpm run chaos (CHAOS_OUTAGE_S=${outageMs / 1000} CHAOS_CLIENTS=${clients})\n`);
  console.log(formatResults(results));
  const bad = results.filter(
    (r) => r.lost > 0 || r.twice > 0 || !r.trailA.ok || !r.trailB.ok || (r.rtoMs !== undefined && !(r.rtoMs < 5_000)) || (r.evicted !== undefined && !(r.trailA.byLoss > 0 && r.trailA.byLoss <= r.evicted)),
  );
  process.exit(bad.length === 0 ? 0 : 1);
}
