/**
 * PostgreSQL parsing on captured traffic (test/fixtures/postgres): the bare
 * framing loop, dbaudit's decoder, decoder + tracker producing events, and
 * pg-protocol's Parser (server bytes only: it parses backend messages).
 */
import { Parser } from 'pg-protocol/dist/parser.js';
import { systemClock } from '../../lib/clock.js';
import { PgDecoder, type PgFrameSink } from '../../proxy/postgres/decoder.js';
import { PostgresTracker, DEFAULT_TRACKER_LIMITS } from '../../proxy/postgres/tracker.js';
import { newSessionMeta } from '../../proxy/events.js';
import { loadFixture } from '../../test/fixtures/load.js';
import { measure, type Pass, type Throughput } from '../lib/measure.js';
import type { BenchOptions, Benchmark, Cell, Table } from '../lib/report.js';
import { envList, envNumber, ratio } from '../lib/stats.js';
import { FrameLoop } from './frame-loop.js';

const FIXTURES = ['pgbench-select-simple', 'pgbench-select-extended', 'pgbench-select-prepared', 'pgbench-tpcb', 'wide-rows', 'copy-out-large'];

class CountingSink implements PgFrameSink {
  messages = 0;
  onStartup(): boolean {
    this.messages++;
    return true;
  }
  onMessage(): boolean {
    this.messages++;
    return true;
  }
  onSkipped(): boolean {
    this.messages++;
    return true;
  }
  onAnswer(): boolean {
    return true;
  }
  onDecodeError(reason: string, detail: string): void {
    throw new Error(`decoder: ${reason} ${detail}`);
  }
}

interface Chunks {
  both: { dir: 'c' | 's'; bytes: Buffer }[];
  server: Buffer[];
  bothBytes: number;
  serverBytes: number;
}

function chunksOf(name: string): Chunks {
  const f = loadFixture('postgres', name);
  const both = [...f.arrivals()];
  const server = both.filter((a) => a.dir === 's').map((a) => a.bytes);
  return { both, server, bothBytes: f.client.length + f.server.length, serverBytes: f.server.length };
}

function framingBoth(c: Chunks): Pass {
  const cl = new FrameLoop('pg-client');
  const sv = new FrameLoop('pg-server');
  for (const a of c.both) (a.dir === 'c' ? cl : sv).push(a.bytes);
  return { bytes: c.bothBytes, messages: cl.messages + sv.messages };
}

function framingServer(c: Chunks): Pass {
  const sv = new FrameLoop('pg-server');
  for (const b of c.server) sv.push(b);
  return { bytes: c.serverBytes, messages: sv.messages };
}

function decoderBoth(c: Chunks): Pass {
  const sink = new CountingSink();
  const cl = new PgDecoder('client', sink);
  const sv = new PgDecoder('server', sink);
  for (const a of c.both) (a.dir === 'c' ? cl : sv).push(a.bytes);
  return { bytes: c.bothBytes, messages: sink.messages };
}

function decoderServer(c: Chunks): Pass {
  const sink = new CountingSink();
  const sv = new PgDecoder('server', sink);
  for (const b of c.server) sv.push(b);
  return { bytes: c.serverBytes, messages: sink.messages };
}

function trackerBoth(c: Chunks, messages: number, events: { n: number }): Pass {
  const meta = newSessionMeta('postgres', '127.0.0.1:50000', '127.0.0.1:5432', Date.now());
  const t = new PostgresTracker(
    { meta, emit: () => void events.n++, clock: systemClock, redact: 'literals', logParameters: false, maxStatementBytes: 64 * 1024 },
    DEFAULT_TRACKER_LIMITS,
  );
  for (const a of c.both) {
    if (a.dir === 'c') t.clientData(a.bytes);
    else t.serverData(a.bytes);
  }
  t.end('client_terminate');
  if (!t.decoding) throw new Error('tracker stopped decoding');
  return { bytes: c.bothBytes, messages };
}

function pgProtocol(c: Chunks): Pass {
  const p = new Parser();
  let messages = 0;
  const cb = (): void => void messages++;
  // pg-protocol writes into a retained chunk when a message is split: hand it copies
  for (const b of c.server) p.parse(Buffer.from(b), cb);
  return { bytes: c.serverBytes, messages };
}

export const pgParse: Benchmark = {
  name: 'pg-parse',
  description: 'PostgreSQL framing, decoder, decoder+tracker and pg-protocol Parser on captured traffic',
  async run(o: BenchOptions): Promise<Table[]> {
    const ms = o.smoke ? 5 : envNumber('BENCH_MICRO_MS', 300);
    const samples = o.smoke ? 1 : envNumber('BENCH_MICRO_SAMPLES', 5);
    const names = o.smoke ? ['pgbench-select-simple', 'wide-rows'] : envList('BENCH_PG_FIXTURES', FIXTURES);
    const rows: Cell[][] = [];
    for (const name of names) {
      o.log(`pg-parse ${name}`);
      const c = chunksOf(name);
      const fb = await measure(() => framingBoth(c), ms, samples);
      const db = await measure(() => decoderBoth(c), ms, samples);
      const msgs = decoderBoth(c).messages;
      const fm = framingBoth(c).messages;
      if (fm !== msgs) throw new Error(`${name}: framing loop saw ${fm} messages, decoder ${msgs}`);
      const events = { n: 0 };
      const tb = await measure(() => trackerBoth(c, msgs, events), ms, samples);
      const perPass = (() => {
        const e = { n: 0 };
        trackerBoth(c, msgs, e);
        return e.n;
      })();
      const fs = await measure(() => framingServer(c), ms, samples);
      const ds = await measure(() => decoderServer(c), ms, samples);
      const pp = await measure(() => pgProtocol(c), ms, samples);
      const row = (variant: string, scope: string, t: Throughput, vsFraming: number, vsPgp: number, extra = ''): Cell[] => [
        `${name} ${variant}`,
        scope,
        t.mbPerSec,
        t.msgsPerSec / 1e6,
        Number.isNaN(vsFraming) ? '' : vsFraming.toFixed(2),
        Number.isNaN(vsPgp) ? '' : vsPgp.toFixed(2),
        Number.isNaN(t.allocPerMillion) ? 'gc in window' : Math.round(t.allocPerMillion / 1e6 * 10) / 10,
        extra,
      ];
      rows.push(row('(a) framing loop', 'both', fb, 1, NaN));
      rows.push(row('(b) decoder', 'both', db, ratio(db.mbPerSec, fb.mbPerSec), NaN));
      rows.push(row('(c) decoder+tracker', 'both', tb, ratio(tb.mbPerSec, fb.mbPerSec), NaN, `${perPass} events/pass, ${Math.round((tb.msgsPerSec / msgs) * perPass).toLocaleString('en-US')} events/s`));
      rows.push(row('(a) framing loop', 'server', fs, 1, ratio(fs.mbPerSec, pp.mbPerSec)));
      rows.push(row('(b) decoder', 'server', ds, ratio(ds.mbPerSec, fs.mbPerSec), ratio(ds.mbPerSec, pp.mbPerSec)));
      rows.push(row('(d) pg-protocol Parser', 'server', pp, ratio(pp.mbPerSec, fs.mbPerSec), 1));
    }
    return [
      {
        title: 'PostgreSQL parsing on captured traffic (one core, in-process)',
        columns: ['fixture / variant', 'bytes', 'MB/s', 'M msgs/s', '× framing', '× pg-protocol', 'MB alloc / 1M msgs', 'notes'],
        rows,
        notes: [
          `median of ${samples} samples of ${ms} ms after a warm-up; a pass replays the fixture in its captured arrival chunks (new decoder/tracker per pass).`,
          "'both' = client and server bytes; 'server' = server→client bytes only (pg-protocol's Parser parses backend messages only; it gets a copy of each chunk, as it mutates retained chunks).",
          'allocation: heapUsed growth over up to 200k messages after a forced GC, valid only when no GC ran in the window (run with --expose-gc --max-semi-space-size=128, as npm run bench does).',
          '(c) uses the real clock, redact=literals (the default), and makes full AuditEvent objects (events are counted, not encoded or cached).',
        ],
      },
    ];
  },
};
