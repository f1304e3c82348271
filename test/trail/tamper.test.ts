import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { fromBinary } from '@bufbuild/protobuf';
import pg from 'pg';
import { AuditEventSchema } from '../../proto/gen/audit/v1/event_pb.js';
import { batchOf, TestStream } from '../../gateway/testing.js';
import { runVerifyCommand } from '../../gateway/verify-command.js';
import { ChainMaker, appendChainHash, trailKey } from '../../lib/trail.js';
import { uuidv7 } from '../../lib/uuid.js';
import { encodeAuditEvent } from '../../proxy/event-codec.js';
import type { AuditEvent } from '../../proxy/events.js';
import { makeTempDir, sharedPostgres, skipUnless, type PgServer } from '../harness/index.js';
import { startStack, type Stack } from '../e2e/stack.js';

/**
 * Tamper evidence end to end: real statements through the proxy into a
 * PostgreSQL store, then the store is edited behind the gateway's back (or
 * fed forged and replayed events through the ingest API), and `dbaudit
 * verify` must name the collector, epoch and sequence of each change.
 */

interface EpochJson {
  collector_id: string;
  epoch: string;
  ok: boolean;
  held: number;
  highest_reported: string;
  missing: { from: string; to: string }[];
  chain_breaks: { seq: string; event_id: string; problem: string }[];
}

describe('tamper evidence: dbaudit verify against a PostgreSQL store', { skip: skipUnless('pgaudit') }, () => {
  const dir = makeTempDir('dbaudit-trail-');
  const trailKeyBytes = randomBytes(32);
  const sealKeyBytes = randomBytes(32);
  const otherKeyBytes = randomBytes(32);
  const gatewayKeys = join(dir.dir, 'gateway-keys');
  const auditorKeys = join(dir.dir, 'auditor-keys');
  let pgServer: PgServer;
  let stack: Stack;
  let storeUrl: string;
  let epoch = '';
  let last = 0n;

  async function sql<T extends pg.QueryResultRow>(text: string, params: unknown[] = []): Promise<T[]> {
    const c = new pg.Client({ connectionString: storeUrl });
    await c.connect();
    try {
      return (await c.query<T>(text, params)).rows;
    } finally {
      await c.end();
    }
  }

  async function verify(extra: string[] = []): Promise<{ code: number; epochs: EpochJson[]; text: string }> {
    let text = '';
    const out = new Writable({ write: (chunk, _enc, cb) => ((text += String(chunk)), cb()) });
    const code = await runVerifyCommand(['--gateway', stack.gateway.address, '--keys-dir', auditorKeys, '--json', ...extra], {}, out, out);
    const lines = text.trim().split('\n').map((l) => JSON.parse(l) as EpochJson & { summary?: boolean });
    return { code, epochs: lines.filter((l) => !l.summary), text };
  }

  async function rowAt(seq: bigint): Promise<{ event_id: string; raw: Buffer }> {
    const [row] = await sql<{ event_id: string; raw: Buffer }>('SELECT event_id::text AS event_id, raw FROM events WHERE collector_id = $1 AND epoch = $2 AND seq = $3', ['e2e', epoch, String(seq)]);
    return row;
  }

  async function ingest(raws: Uint8Array[]): Promise<void> {
    const s = new TestStream(stack.gateway.address);
    s.send(batchOf(1, raws, 'e2e'));
    await s.waitAcks(1);
    await s.finish();
  }

  before(async () => {
    for (const d of [gatewayKeys, auditorKeys]) mkdirSync(d);
    // each collector's own key (trail.<collector id>): col "other"'s key must not pass for e2e's events
    writeFileSync(join(gatewayKeys, 'trail.e2e'), trailKeyBytes.toString('base64'));
    writeFileSync(join(auditorKeys, 'trail.e2e'), trailKeyBytes.toString('hex'));
    writeFileSync(join(gatewayKeys, 'trail.other'), otherKeyBytes.toString('base64'));
    writeFileSync(join(auditorKeys, 'trail.other'), otherKeyBytes.toString('base64'));
    writeFileSync(join(auditorKeys, 'gw-trail.seal'), sealKeyBytes.toString('base64'));
    writeFileSync(join(dir.dir, 'trail.key'), trailKeyBytes.toString('base64'));
    writeFileSync(join(dir.dir, 'seal.key'), sealKeyBytes.toString('base64'));
    pgServer = await sharedPostgres({ pgaudit: true, passwordAuth: true });
    storeUrl = pgServer.url(await pgServer.createDatabase('trailstore'));
    stack = await startStack(
      `${pgServer.host}:${pgServer.port}`,
      { 'collector.trail.key_file': join(dir.dir, 'trail.key') },
      {
        'gateway.id': 'gw-trail',
        'gateway.store': storeUrl,
        'gateway.trail.keys_dir': gatewayKeys,
        'gateway.trail.seal_key_file': join(dir.dir, 'seal.key'),
        'gateway.trail.check_interval': '0s',
      },
    );
    const db = await pgServer.createDatabase('trailapp');
    const c = new pg.Client({ host: stack.proxyHost, port: stack.proxyPort, user: 'postgres', database: db, application_name: 'trail' });
    await c.connect();
    await c.query('CREATE TABLE t (n int)');
    for (let i = 1; i <= 12; i++) await c.query(`INSERT INTO t VALUES (${i})`);
    await c.query('SELECT sum(n) FROM t');
    await c.end();
    const evs = await stack.waitForEvents((e) => e.some((x) => x.kind === 'session_end' && x.applicationName === 'trail'));
    epoch = evs[0].epoch;
    last = evs.reduce((m, e) => (e.seq > m ? e.seq : m), 0n);
    await stack.gateway.trail.flushHeads();
    await sql('CREATE TABLE events_backup AS SELECT * FROM events');
  });
  after(async () => {
    await stack?.close();
    dir.remove();
  });

  /** Puts the store back as the gateway wrote it. */
  async function restore(): Promise<void> {
    await sql('BEGIN; DELETE FROM events; INSERT INTO events SELECT * FROM events_backup; COMMIT');
  }

  test('an untouched trail verifies: every seq from 1 to the reported head, linked, keyed and sealed', async () => {
    const r = await verify();
    assert.equal(r.code, 0, r.text);
    assert.equal(r.epochs.length, 1);
    const e = r.epochs[0];
    assert.deepEqual({ collector: e.collector_id, epoch: e.epoch, ok: e.ok, held: e.held, head: e.highest_reported, missing: e.missing, breaks: e.chain_breaks }, {
      collector: 'e2e', epoch, ok: true, held: Number(last), head: String(last), missing: [], breaks: [],
    });
    // 1 session_start + 1 login + 14 statements + 1 session_end
    assert.equal(last, 17n);
    const human = await runText([]);
    assert.match(human, new RegExp(`^collector e2e epoch ${epoch}: OK$`, 'm'));
    assert.match(human, /^PASS: 1 collector epoch\(s\), 17 events, 0 unexplained gap\(s\), 0 chain break\(s\)/m);
  });

  async function runText(extra: string[]): Promise<string> {
    let text = '';
    const out = new Writable({ write: (chunk, _enc, cb) => ((text += String(chunk)), cb()) });
    await runVerifyCommand(['--gateway', stack.gateway.address, '--keys-dir', auditorKeys, ...extra], {}, out, out);
    return text;
  }

  test('a stored event deleted in the store is a missing seq, and the gateway counts the gap', async () => {
    await sql('DELETE FROM events WHERE collector_id = $1 AND epoch = $2 AND seq = 9', ['e2e', epoch]);
    try {
      const r = await verify();
      assert.equal(r.code, 1);
      assert.deepEqual(r.epochs.map((e) => [e.collector_id, e.epoch, e.missing, e.chain_breaks]), [['e2e', epoch, [{ from: '9', to: '9' }], []]]);
      const reports = await stack.gateway.trail.pass();
      assert.deepEqual(reports.map((x) => x.missing), [[{ from: 9n, to: 9n }]]);
      assert.equal((await stack.gateway.metrics.trailGaps.get()).values[0].value, 1);
      const human = await runText([]);
      assert.match(human, /^  ranges missing: 9$/m);
      assert.match(human, /^FAIL: /m);
    } finally {
      await restore();
    }
    assert.equal((await verify()).code, 0);
  });

  test('a statement text edited in the store breaks its chain hash and its storage seal', async () => {
    const target = await rowAt(6n);
    const ev = fromBinary(AuditEventSchema, target.raw) as AuditEvent;
    assert.equal(ev.statement, 'INSERT INTO t VALUES (?)');
    const hash = ev.chainHash;
    ev.statement = 'SELECT ?';
    ev.chainHash = new Uint8Array(0);
    const raw = appendChainHash(encodeAuditEvent(ev), hash);
    await sql('UPDATE events SET raw = $1, statement = $2 WHERE event_id = $3', [raw, ev.statement, target.event_id]);
    try {
      const r = await verify();
      assert.equal(r.code, 1);
      const [e] = r.epochs;
      assert.equal(e.epoch, epoch);
      assert.deepEqual(e.chain_breaks.map((b) => [b.seq, b.event_id, b.problem.replace(/seal \S+/, 'seal S')]), [
        ['6', target.event_id, 'chain hash does not match its content (modified or forged without the key)'],
        ['6', target.event_id, 'stored row differs from what seal S recorded (row edited)'],
      ]);
      assert.deepEqual(e.missing, []);
    } finally {
      await restore();
    }
  });

  test('a row edited behind the gateway walk\'s checkpoint is found by the next full walk and counted once', async () => {
    const storeBreaks = async (): Promise<number> => (await stack.gateway.metrics.trailChainBreaks.get()).values.find((v) => v.labels.check === 'store')?.value ?? 0;
    await stack.gateway.trail.pass({ full: true });
    await stack.gateway.trail.pass(); // the checkpoint is now at the last row
    const before = await storeBreaks();
    const target = await rowAt(5n);
    await sql('UPDATE events SET delivered_by = $1 WHERE event_id = $2', ['someone-else', target.event_id]);
    try {
      const [quick] = await stack.gateway.trail.pass();
      assert.deepEqual({ breaks: quick.breaks.length, counted: await storeBreaks() }, { breaks: 0, counted: before }, 'an incremental walk starts past the edit');
      const [full] = await stack.gateway.trail.pass({ full: true });
      assert.deepEqual(full.breaks.map((b) => [b.seq, b.eventId, b.problem.replace(/seal \S+/, 'seal S')]), [[5n, target.event_id, 'stored row differs from what seal S recorded (row edited)']]);
      assert.equal(await storeBreaks(), before + 1);
      await stack.gateway.trail.pass({ full: true });
      assert.equal(await storeBreaks(), before + 1, 'the same break is not counted again');
    } finally {
      await restore();
    }
  });

  test('two events reordered in the store are named by both positions and the links around them', async () => {
    await sql(`UPDATE events SET seq = CASE seq WHEN 7 THEN 8 ELSE 7 END WHERE collector_id = $1 AND epoch = $2 AND seq IN (7, 8)`, ['e2e', epoch]);
    try {
      const r = await verify();
      assert.equal(r.code, 1);
      const [e] = r.epochs;
      assert.deepEqual(e.chain_breaks.map((b) => [b.seq, b.problem.split(':')[0].replace(/ but says .*/, '')]), [
        ['7', `is stored as collector e2e epoch ${epoch} seq 7`],
        ['7', 'does not link to seq 6'],
        ['8', `is stored as collector e2e epoch ${epoch} seq 8`],
        ['8', 'does not link to seq 7'],
        ['9', 'does not link to seq 8'],
      ]);
    } finally {
      await restore();
    }
  });

  test('an old epoch\'s batch replayed into this epoch is caught on ingest and by verify, seq by seq', async () => {
    const maker = new ChainMaker(trailKey(trailKeyBytes), undefined);
    const old = '01900000-0000-7000-8000-0000000000aa';
    const replayed: Uint8Array[] = [];
    for (let s = 1; s <= 3; s++) {
      const ev = fromBinary(AuditEventSchema, (await rowAt(BigInt(s))).raw) as AuditEvent;
      ev.epoch = old;
      ev.eventId = uuidv7();
      const raw = maker.link(ev, encodeAuditEvent); // authentic in the old epoch
      const moved = fromBinary(AuditEventSchema, raw) as AuditEvent;
      const hash = moved.chainHash;
      moved.epoch = epoch; // …relabelled into the live one
      moved.chainHash = new Uint8Array(0);
      replayed.push(appendChainHash(encodeAuditEvent(moved), hash));
    }
    const before = (await stack.gateway.metrics.trailChainBreaks.get()).values.find((v) => v.labels.check === 'ingest')?.value ?? 0;
    await ingest(replayed);
    try {
      const after = (await stack.gateway.metrics.trailChainBreaks.get()).values.find((v) => v.labels.check === 'ingest')?.value ?? 0;
      assert.equal(after - before, 3);
      const r = await verify();
      assert.equal(r.code, 1);
      const [e] = r.epochs;
      const named = e.chain_breaks.map((b) => [b.seq, b.problem.replace(/ \(events .*\)$/, '')]);
      for (const s of ['1', '2', '3']) {
        assert.ok(named.some(([seq, p]) => seq === s && p === 'chain hash does not match its content (modified or forged without the key)'), `seq ${s} hash: ${JSON.stringify(named)}`);
        assert.ok(named.some(([seq, p]) => seq === s && p === `seq ${s} is held twice`), `seq ${s} twice: ${JSON.stringify(named)}`);
      }
    } finally {
      await restore();
    }
  });

  test('an event forged without the key, and one with a bare hash, are named by seq', async () => {
    const tail = fromBinary(AuditEventSchema, (await rowAt(last)).raw);
    const ev = fromBinary(AuditEventSchema, (await rowAt(4n)).raw) as AuditEvent;
    const forge = (key: Buffer | undefined, seq: bigint, prev: Uint8Array): Uint8Array => {
      ev.eventId = uuidv7();
      ev.seq = seq;
      ev.statement = 'GRANT ALL ON t TO mallory';
      return new ChainMaker(key ? trailKey(key) : undefined, Buffer.from(prev)).link(ev, encodeAuditEvent);
    };
    const strangerKey = randomBytes(32);
    const first = forge(strangerKey, last + 1n, tail.chainHash);
    const second = forge(undefined, last + 2n, fromBinary(AuditEventSchema, first).chainHash);
    await ingest([first, second]);
    try {
      const r = await verify();
      assert.equal(r.code, 1);
      assert.deepEqual(r.epochs[0].chain_breaks.map((b) => [b.seq, b.problem]), [
        [String(last + 1n), `is hashed with trail key ${trailKey(strangerKey).id}, which is not among the known keys (forged, or a key missing here)`],
        [String(last + 2n), 'is not keyed (bare SHA-256) where a trail key is required'],
      ]);
    } finally {
      await restore();
    }
  });

  test("events forged with another collector's key, or with the gateway's seal key, are breaks on ingest and in verify", async () => {
    const tail = fromBinary(AuditEventSchema, (await rowAt(last)).raw);
    const ev = fromBinary(AuditEventSchema, (await rowAt(4n)).raw) as AuditEvent;
    const forge = (key: Buffer, seq: bigint, prev: Uint8Array): Uint8Array => {
      ev.eventId = uuidv7();
      ev.seq = seq;
      ev.statement = 'DROP TABLE salaries';
      return new ChainMaker(trailKey(key), Buffer.from(prev)).link(ev, encodeAuditEvent);
    };
    const first = forge(otherKeyBytes, last + 1n, tail.chainHash);
    const second = forge(sealKeyBytes, last + 2n, fromBinary(AuditEventSchema, first).chainHash);
    const ingestBreaks = async (): Promise<number> => (await stack.gateway.metrics.trailChainBreaks.get()).values.find((v) => v.labels.check === 'ingest')?.value ?? 0;
    const before = await ingestBreaks();
    await ingest([first, second]);
    try {
      assert.equal((await ingestBreaks()) - before, 2, 'both refused keys counted on ingest');
      const r = await verify();
      assert.equal(r.code, 1);
      assert.deepEqual(r.epochs[0].chain_breaks.map((b) => [b.seq, b.problem]), [
        [String(last + 1n), `is hashed with trail key ${trailKey(otherKeyBytes).id}, which belongs to collector other, not e2e (forged with another collector's key)`],
        [String(last + 2n), `is hashed with key ${trailKey(sealKeyBytes).id}, which is a seal key, not a trail key (forged with the wrong key)`],
      ]);
    } finally {
      await restore();
    }
  });

  test('a deleted tail hidden by lowering the recorded head is a break at the head: the collector attested the real one', async () => {
    const [head] = await sql<{ highest_seq: string; head_key_id: string }>('SELECT highest_seq::text AS highest_seq, head_key_id FROM trail_heads WHERE collector_id = $1 AND epoch = $2', ['e2e', epoch]);
    assert.deepEqual(head, { highest_seq: String(last), head_key_id: trailKey(trailKeyBytes).id });
    await sql('DELETE FROM events WHERE collector_id = $1 AND epoch = $2 AND seq >= $3', ['e2e', epoch, String(last - 1n)]);
    await sql('UPDATE trail_heads SET highest_seq = $3 WHERE collector_id = $1 AND epoch = $2', ['e2e', epoch, String(last - 2n)]);
    try {
      const r = await verify();
      assert.equal(r.code, 1);
      assert.deepEqual(r.epochs.map((e) => [e.epoch, e.highest_reported, e.missing, e.chain_breaks.map((b) => [b.seq, b.problem])]), [
        [epoch, String(last - 2n), [], [[String(last - 2n), `the reported head (highest seq ${last - 2n}) attestation does not match (altered): the collector did not report it so`]]],
      ]);
      // The gateway's own walk reads the same rows and finds the same break.
      const [report] = await stack.gateway.trail.pass();
      assert.deepEqual(report.breaks.map((b) => b.seq), [last - 2n]);
    } finally {
      await sql('UPDATE trail_heads SET highest_seq = $3 WHERE collector_id = $1 AND epoch = $2', ['e2e', epoch, String(last)]);
      await restore();
    }
    assert.equal((await verify()).code, 0);
  });

  test('a retention record forged in the store to explain a deleted event explains nothing and is a break', async () => {
    await sql('DELETE FROM events WHERE collector_id = $1 AND epoch = $2 AND seq = 5', ['e2e', epoch]);
    const sequences = JSON.stringify([{ collector_id: 'e2e', epoch, first_seq: '5', last_seq: '5', events: 1 }]);
    await sql(`INSERT INTO dropped_partitions (partition_name, cutoff_us, events, sequences, dropped_by) VALUES ('events_20000101', 0, 1, $1, 'gw-trail')`, [sequences]);
    try {
      const r = await verify();
      assert.equal(r.code, 1);
      assert.deepEqual(r.epochs.map((e) => [e.missing, e.chain_breaks.map((b) => [b.seq, b.problem])]), [
        [[{ from: '5', to: '5' }], [['5', 'the retention record for seqs 5 carries no attestation: it explains nothing']]],
      ]);
    } finally {
      await sql(`DELETE FROM dropped_partitions WHERE partition_name = 'events_20000101'`);
      await restore();
    }
    assert.equal((await verify()).code, 0);
  });

  test('malformed retention records in the store explain nothing and do not stop the check (a finding, not an unreadable trail)', async () => {
    await sql('DELETE FROM events WHERE collector_id = $1 AND epoch = $2 AND seq = 7', ['e2e', epoch]);
    await sql(`INSERT INTO dropped_partitions (partition_name, cutoff_us, events, sequences, dropped_by) VALUES ('x1', 0, 0, '{}', 'me'), ('x2', 0, 0, '[{"collector_id": "e2e", "first_seq": "seven"}]', 'me')`);
    try {
      const r = await verify();
      assert.equal(r.code, 1, r.text);
      assert.deepEqual(r.epochs.map((e) => [e.missing, e.chain_breaks.length]), [[[{ from: '7', to: '7' }], 0]]);
      const [report] = await stack.gateway.trail.pass({ full: true });
      assert.deepEqual(report.missing, [{ from: 7n, to: 7n }]);
    } finally {
      await sql(`DELETE FROM dropped_partitions WHERE partition_name IN ('x1', 'x2')`);
      await restore();
    }
    assert.equal((await verify()).code, 0);
  });

  test('--collector narrows the trail; a collector with no trail at all fails (a typo or a trail deleted whole)', async () => {
    const r = await verify(['--collector', 'nobody']);
    assert.deepEqual({ code: r.code, epochs: r.epochs.length }, { code: 1, epochs: 0 });
    assert.match(r.text, /"ok":false,"problem":"no trail for this collector"/);
    assert.match(await runText(['--collector', 'nobody']), /^collector nobody: no trail at this gateway \(no epoch, no event\)\nFAIL: 0 collector epoch\(s\)/m);
    assert.equal((await verify(['--collector', 'e2e'])).epochs.length, 1);
  });
});
