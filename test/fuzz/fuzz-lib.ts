import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { AuditEventSchema } from '../../proto/gen/audit/v1/event_pb.js';
import { ManualClock } from '../../lib/clock.js';
import { validateBatch } from '../../gateway/validate.js';
import { EventBatchSchema } from '../../proto/gen/audit/v1/ingest_pb.js';
import { EVENT_KINDS, makeEvent, newSessionMeta, type AuditEvent, type EventKind } from '../../proxy/events.js';
import { attestHead } from '../../lib/trail.js';
import { createMysqlTracker, DEFAULT_MYSQL_LIMITS, maxTrackerBuffered } from '../../proxy/mysql/tracker.js';
import { maxBuffered } from '../../proxy/postgres/decoder.js';
import { createPostgresTracker, DEFAULT_TRACKER_LIMITS } from '../../proxy/postgres/tracker.js';
import type { SessionTracker } from '../../proxy/protocol.js';
import { allFixtures } from '../fixtures/load.js';

/**
 * Fuzzing of the three places hostile bytes enter: the PostgreSQL and
 * MySQL session trackers (both directions, random chunking) and the
 * gateway's batch decoding and validation. Inputs are mutations of real
 * captures. A run fails on a throw, on buffered bytes past the decoder's
 * bound, or on one input taking longer than HANG_MS; each failing input is
 * written under test/fuzz/regressions/<target>/ and replayed by the tests.
 */

export const TARGETS = ['postgres', 'mysql', 'ingest'] as const;
export type Target = (typeof TARGETS)[number];

export const REGRESSIONS = join(dirname(fileURLToPath(import.meta.url)), 'regressions');
const HANG_MS = 1_000;

/** A small seeded PRNG (xorshift32), so a run can be repeated from its seed. */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0 || 1;
  }
  next(): number {
    let x = this.#s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#s = x >>> 0;
    return this.#s;
  }
  int(n: number): number {
    return this.next() % n;
  }
}

/**
 * One fuzz input: which direction each piece goes and its bytes. Encoded
 * for the regression files as: u8 direction (0 client, 1 server), u32
 * length, bytes; repeated.
 */
export type Input = { dir: 0 | 1; bytes: Buffer }[];

export function encodeInput(input: Input): Buffer {
  return Buffer.concat(input.flatMap((p) => [Buffer.from([p.dir, ...u32(p.bytes.length)]), p.bytes]));
}

export function decodeInput(b: Buffer): Input {
  const out: Input = [];
  for (let i = 0; i + 5 <= b.length; ) {
    const dir = b[i] === 0 ? 0 : 1;
    const len = b.readUInt32BE(i + 1);
    out.push({ dir, bytes: b.subarray(i + 5, i + 5 + len) });
    i += 5 + len;
  }
  return out;
}

function u32(n: number): number[] {
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
}

/** Seeds: each capture's conversation, as it arrived. */
export function seeds(protocol: 'postgres' | 'mysql'): Input[] {
  return allFixtures(protocol).map((f) => [...f.arrivals()].map((a) => ({ dir: a.dir === 'c' ? (0 as const) : (1 as const), bytes: a.bytes })));
}

/** A mutated, re-chunked copy of a seed, cut to at most `maxBytes`. */
export function mutate(seed: Input, rng: Rng, maxBytes = 16_384): Input {
  // Take a window of the conversation, from its start most of the time (startup matters).
  const start = rng.int(4) === 0 ? rng.int(seed.length) : 0;
  const window: Input = [];
  let total = 0;
  for (let i = start; i < seed.length && total < maxBytes; i++) {
    const b = Buffer.from(seed[i].bytes.subarray(0, maxBytes - total));
    window.push({ dir: seed[i].dir, bytes: b });
    total += b.length;
  }
  const edits = 1 + rng.int(8);
  for (let e = 0; e < edits && window.length > 0; e++) {
    const piece = window[rng.int(window.length)];
    const b = piece.bytes;
    if (b.length === 0) continue;
    const at = rng.int(b.length);
    switch (rng.int(7)) {
      case 0: b[at] ^= 1 << rng.int(8); break; // bit flip
      case 1: b[at] = rng.int(256); break; // random byte
      case 2: b[at] = [0, 0xff, 0x7f, 0x80][rng.int(4)]; break; // boundary byte
      case 3: if (at + 4 <= b.length) b.writeUInt32BE([0, 0xffffffff, 0x7fffffff, 4, 3, 0x40000000][rng.int(6)], at); break; // length fields
      case 4: piece.bytes = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + rng.int(16))]); break; // delete
      case 5: piece.bytes = Buffer.concat([b.subarray(0, at), randomBytes(rng, 1 + rng.int(32)), b.subarray(at)]); break; // insert
      default: piece.bytes = b.subarray(0, at); break; // truncate
    }
  }
  // Re-chunk: split pieces at random points, so frames cross reads.
  const out: Input = [];
  for (const p of window) {
    let b = p.bytes;
    while (b.length > 1 && rng.int(3) === 0) {
      const cut = 1 + rng.int(b.length - 1);
      out.push({ dir: p.dir, bytes: b.subarray(0, cut) });
      b = b.subarray(cut);
    }
    out.push({ dir: p.dir, bytes: b });
  }
  return out;
}

function randomBytes(rng: Rng, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = rng.int(256);
  return b;
}

const PG_BOUND = 2 * maxBuffered(DEFAULT_TRACKER_LIMITS);
const MYSQL_BOUND = maxTrackerBuffered(DEFAULT_MYSQL_LIMITS);

function tracker(target: 'postgres' | 'mysql', emitted: AuditEvent[]): SessionTracker & { bufferedBytes: number } {
  const opts = {
    meta: newSessionMeta(target, '127.0.0.1:1', '127.0.0.1:2', 0),
    emit: (ev: AuditEvent) => void emitted.push(ev),
    clock: new ManualClock(),
    redact: 'literals' as const,
    logParameters: true,
    maxStatementBytes: 4096,
  };
  return (target === 'postgres' ? createPostgresTracker(opts) : createMysqlTracker(opts)) as SessionTracker & { bufferedBytes: number };
}

/** Runs one input; returns a failure description, or undefined when it behaved. */
export function runOne(target: Target, input: Input): string | undefined {
  const t0 = performance.now();
  try {
    if (target === 'ingest') {
      for (const p of input) {
        let batch;
        try {
          batch = fromBinary(EventBatchSchema, p.bytes);
        } catch {
          continue; // undecodable: the server answers INVALID_ARGUMENT
        }
        validateBatch(batch, 'fuzz', 0);
      }
    } else {
      const emitted: AuditEvent[] = [];
      const tr = tracker(target, emitted);
      const bound = target === 'postgres' ? PG_BOUND : MYSQL_BOUND;
      for (const p of input) {
        if (p.dir === 0) tr.clientData(p.bytes);
        else tr.serverData(p.bytes);
        if (tr.bufferedBytes > bound) return `buffered ${tr.bufferedBytes} bytes, over the bound of ${bound}`;
      }
      tr.end('fuzz');
      if (emitted.filter((e) => e.kind === 'anomaly').length > 1) return 'more than one anomaly event in a session';
    }
  } catch (err) {
    return `threw: ${(err as Error).stack ?? String(err)}`;
  }
  const ms = performance.now() - t0;
  return ms > HANG_MS ? `took ${ms.toFixed(0)} ms` : undefined;
}

/** Ingest inputs: an EventBatch of real-looking events of every kind, then mutated as bytes. */
export function ingestSeeds(): Input[] {
  const meta = newSessionMeta('postgres', '127.0.0.1:5000', '127.0.0.1:5432', Date.UTC(2026, 0, 1));
  meta.user = 'alice';
  meta.database = 'app';
  const events = EVENT_KINDS.map((kind, i) => {
    const ev = makeEvent(kind as EventKind, meta, Date.UTC(2026, 0, 1) + i);
    ev.collectorId = 'fuzz';
    ev.epoch = meta.sessionId;
    ev.seq = BigInt(i + 1);
    if (kind === 'statement') {
      ev.statement = 'select ? from t where a = ?';
      ev.commandTag = 'SELECT';
      ev.rows = 3n;
      ev.parameters = ['1', 'x'];
    }
    return toBinary(AuditEventSchema, ev);
  });
  const head = attestHead(undefined, 'fuzz', meta.sessionId, BigInt(events.length));
  const batch = create(EventBatchSchema, { batchId: 1n, collectorId: 'fuzz', epoch: meta.sessionId, events, highestSeq: BigInt(events.length), headMac: head.mac, headKeyId: head.keyId });
  return [[{ dir: 0, bytes: Buffer.from(toBinary(EventBatchSchema, batch)) }]];
}

export function saveRegression(target: Target, input: Input): string {
  const bytes = encodeInput(input);
  const dir = join(REGRESSIONS, target);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${createHash('sha256').update(bytes).digest('hex').slice(0, 16)}.bin`);
  writeFileSync(file, bytes);
  return file;
}

export function regressions(target: Target): { file: string; input: Input }[] {
  const dir = join(REGRESSIONS, target);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.bin'))
    .map((f) => ({ file: join(dir, f), input: decodeInput(readFileSync(join(dir, f))) }));
}
