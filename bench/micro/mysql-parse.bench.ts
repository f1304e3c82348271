/**
 * MySQL parsing on captured MariaDB traffic (test/fixtures/mysql): the bare
 * framing loop, dbaudit's packet decoder, and decoder + tracker producing
 * events. (No third-party MySQL parser is run: mysql2's lives inside its
 * connection and cannot be fed bytes on their own.)
 */
import { systemClock } from '../../lib/clock.js';
import { PacketDecoder, SeqCounter, type PacketSink } from '../../proxy/mysql/decoder.js';
import { createMysqlTracker } from '../../proxy/mysql/tracker.js';
import { newSessionMeta } from '../../proxy/events.js';
import { loadFixture } from '../../test/fixtures/load.js';
import { measure, type Pass, type Throughput } from '../lib/measure.js';
import type { BenchOptions, Benchmark, Cell, Table } from '../lib/report.js';
import { envList, envNumber, ratio } from '../lib/stats.js';
import { FrameLoop } from './frame-loop.js';

const FIXTURES = ['sysbench-rw-text', 'sysbench-rw-ps', 'large-result'];

/** Delivers every message whole (the upper bound of decoder work: the tracker skips rows instead). */
class CountingSink implements PacketSink {
  readonly peekFirst = false;
  messages = 0;
  wants(): number {
    return 1 << 24;
  }
  onPacket(): boolean {
    this.messages++;
    return true;
  }
  onSkipped(): void {}
  onDecodeError(reason: string, detail: string): void {
    throw new Error(`decoder: ${reason} ${detail}`);
  }
}

interface Chunks {
  both: { dir: 'c' | 's'; bytes: Buffer }[];
  bytes: number;
}

function framing(c: Chunks): Pass {
  const cl = new FrameLoop('mysql');
  const sv = new FrameLoop('mysql');
  for (const a of c.both) (a.dir === 'c' ? cl : sv).push(a.bytes);
  return { bytes: c.bytes, messages: cl.messages + sv.messages };
}

function decoder(c: Chunks): Pass {
  const sink = new CountingSink();
  const seq = new SeqCounter();
  const cl = new PacketDecoder(sink, seq);
  const sv = new PacketDecoder(sink, seq);
  for (const a of c.both) (a.dir === 'c' ? cl : sv).push(a.bytes);
  return { bytes: c.bytes, messages: sink.messages };
}

function tracker(c: Chunks, messages: number, events: { n: number }): Pass {
  const meta = newSessionMeta('mysql', '127.0.0.1:50000', '127.0.0.1:3306', Date.now());
  const t = createMysqlTracker({ meta, emit: () => void events.n++, clock: systemClock, redact: 'literals', logParameters: false, maxStatementBytes: 64 * 1024 });
  for (const a of c.both) {
    if (a.dir === 'c') t.clientData(a.bytes);
    else t.serverData(a.bytes);
  }
  t.end('client_terminate');
  if (!t.decoding) throw new Error('tracker stopped decoding');
  return { bytes: c.bytes, messages };
}

export const mysqlParse: Benchmark = {
  name: 'mysql-parse',
  description: 'MySQL framing, packet decoder and decoder+tracker on captured MariaDB traffic',
  async run(o: BenchOptions): Promise<Table[]> {
    const ms = o.smoke ? 5 : envNumber('BENCH_MICRO_MS', 300);
    const samples = o.smoke ? 1 : envNumber('BENCH_MICRO_SAMPLES', 5);
    const rows: Cell[][] = [];
    for (const name of o.smoke ? ['sysbench-rw-text'] : envList('BENCH_MYSQL_FIXTURES', FIXTURES)) {
      o.log(`mysql-parse ${name}`);
      const f = loadFixture('mysql', name);
      const c: Chunks = { both: [...f.arrivals()], bytes: f.client.length + f.server.length };
      const msgs = decoder(c).messages;
      const events = { n: 0 };
      tracker(c, msgs, events);
      const perPass = events.n;
      const fb = await measure(() => framing(c), ms, samples);
      const db = await measure(() => decoder(c), ms, samples);
      const tb = await measure(() => tracker(c, msgs, { n: 0 }), ms, samples);
      const row = (variant: string, t: Throughput, extra = ''): Cell[] => [
        `${name} ${variant}`,
        t.mbPerSec,
        t.msgsPerSec / 1e6,
        ratio(t.mbPerSec, fb.mbPerSec).toFixed(2),
        Number.isNaN(t.allocPerMillion) ? 'gc in window' : Math.round(t.allocPerMillion / 1e5) / 10,
        extra,
      ];
      rows.push(row('(a) framing loop', fb));
      rows.push(row('(b) decoder', db));
      rows.push(row('(c) decoder+tracker', tb, `${perPass} events/pass, ${Math.round((tb.msgsPerSec / msgs) * perPass).toLocaleString('en-US')} events/s`));
    }
    return [
      {
        title: 'MySQL parsing on captured MariaDB traffic (one core, in-process, client + server bytes)',
        columns: ['fixture / variant', 'MB/s', 'M msgs/s', '× framing', 'MB alloc / 1M msgs', 'notes'],
        rows,
        notes: [
          `median of ${samples} samples of ${ms} ms after a warm-up; a pass replays the fixture in its captured arrival chunks.`,
          '(b) delivers every message whole (the tracker itself skips row packets by length, so (c) does less framing work than (b)); messages = logical messages (multi-packet joined).',
          'allocation as in pg-parse (heapUsed growth without a GC in the window).',
        ],
      },
    ];
  },
};
