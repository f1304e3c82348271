import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync as mkdtemp, rmSync as rm, writeFileSync as writeFile } from 'node:fs';
import { tmpdir as osTmpdir } from 'node:os';
import { join as pathJoin } from 'node:path';
import { describe, test } from 'node:test';
import { fromBinary } from '@bufbuild/protobuf';
import { AuditEventSchema } from '../proto/gen/audit/v1/event_pb.js';
import { encodeAuditEvent } from '../proxy/event-codec.js';
import { EventKind, makeEvent, newSessionMeta, type AuditEvent } from '../proxy/events.js';
import {
  CHAIN_TRAILER_BYTES, ChainMaker, EpochVerifier, TrailKeys, appendChainHash, attestDrop, attestHead, checkChainHash, checkHead, checkSeal, makeSeal, reportPasses, roleOfKeyFile, rowDigest,
  splitChainHash, subtractRanges, trailKey, type Attested, type DroppedRange, type EpochReport, type Seal, type TrailKey, type TrailRow,
} from './trail.js';

const KEY = trailKey(randomBytes(32));
const EPOCH = '01900000-0000-7000-8000-000000000001';

function event(seq: number, statement = `SELECT ${seq}`): AuditEvent {
  const ev = makeEvent(EventKind.Statement, newSessionMeta('postgres', '127.0.0.1:1', '127.0.0.1:2', 1_700_000_000_000), 1_700_000_000_000 + seq);
  ev.statement = statement;
  ev.collectorId = 'col-a';
  ev.epoch = EPOCH;
  ev.seq = BigInt(seq);
  return ev;
}

/** seqs 1..n chained with `key`, as rows a store would return. */
function chain(n: number, key: TrailKey | null = KEY): TrailRow[] {
  const maker = new ChainMaker(key ?? undefined, undefined);
  return Array.from({ length: n }, (_, i) => ({ seq: BigInt(i + 1), raw: maker.link(event(i + 1), encodeAuditEvent), deliveredBy: 'col-a', receivedAtMs: 1, sealId: '' }));
}

function verify(rows: TrailRow[], highest = 0n, opts: ConstructorParameters<typeof EpochVerifier>[2] = { keys: new TrailKeys([KEY]) }) {
  const v = new EpochVerifier('col-a', EPOCH, opts);
  for (const r of rows) v.add(r);
  return v.finish(highest);
}

/** Re-encodes a stored event with `change` applied, keeping its old chain hash (an edit without the key). */
function edited(raw: Uint8Array, change: (ev: AuditEvent) => void): Uint8Array {
  const ev = fromBinary(AuditEventSchema, raw) as AuditEvent;
  const hash = ev.chainHash;
  change(ev);
  ev.chainHash = new Uint8Array(0);
  return appendChainHash(encodeAuditEvent(ev), hash);
}

describe('chain hash', () => {
  test('each event ends with its chain hash, links to the one before, and decodes as an AuditEvent', () => {
    const rows = chain(3);
    const evs = rows.map((r) => fromBinary(AuditEventSchema, r.raw));
    assert.deepEqual(evs.map((e) => e.seq), [1n, 2n, 3n]);
    assert.equal(evs[0].prevChainHash.length, 0);
    assert.deepEqual(evs[1].prevChainHash, evs[0].chainHash);
    assert.deepEqual(evs[2].prevChainHash, evs[1].chainHash);
    assert.equal(evs[0].chainKeyId, KEY.id);
    for (const r of rows) assert.deepEqual(splitChainHash(r.raw)?.hash, fromBinary(AuditEventSchema, r.raw).chainHash);
    assert.equal(splitChainHash(rows[0].raw)?.body.length, rows[0].raw.length - CHAIN_TRAILER_BYTES);
  });

  test('checkChainHash: right key passes; an edit, another key, an unknown key id and a missing trailer each fail', () => {
    const [row] = chain(1);
    const keys = new TrailKeys([KEY]);
    assert.deepEqual(checkChainHash(row.raw, KEY.id, 'col-a', keys, true), {});
    assert.match(checkChainHash(edited(row.raw, (e) => (e.statement = 'SELECT 666')), KEY.id, 'col-a', keys, true).problem ?? '', /does not match its content/);
    const other = trailKey(randomBytes(32));
    const [forged] = chain(1, other);
    assert.match(checkChainHash(forged.raw, other.id, 'col-a', keys, true).problem ?? '', new RegExp(`trail key ${other.id}, which is not among the known keys`));
    assert.deepEqual(checkChainHash(forged.raw, other.id, 'col-a', undefined, false), { unchecked: true });
    assert.deepEqual(checkChainHash(row.raw.subarray(0, row.raw.length - 1), KEY.id, 'col-a', keys, true), { problem: 'carries no chain hash' });
  });

  test('without a key the chain is a bare SHA-256: it shows damage, and is a finding where keys are required', () => {
    const [row] = chain(1, null);
    const keyId = fromBinary(AuditEventSchema, row.raw).chainKeyId;
    assert.equal(keyId, '');
    assert.deepEqual(checkChainHash(row.raw, '', 'col-a', undefined, false), {});
    assert.match(checkChainHash(edited(row.raw, (e) => (e.user = 'mallory')), '', 'col-a', undefined, false).problem ?? '', /does not match/);
    assert.match(checkChainHash(row.raw, '', 'col-a', new TrailKeys([KEY]), true).problem ?? '', /not keyed/);
  });

  test('the chain goes on from a tail kept across a restart', () => {
    const rows = chain(2);
    const tail = fromBinary(AuditEventSchema, rows[1].raw).chainHash;
    const next = new ChainMaker(KEY, Buffer.from(tail)).link(event(3), encodeAuditEvent);
    const r = verify([...rows, { seq: 3n, raw: next, deliveredBy: 'x', receivedAtMs: 1, sealId: '' }], 3n);
    assert.equal(reportPasses(r), true, JSON.stringify(r.breaks));
  });
});

describe('EpochVerifier', () => {
  test('rows a collector delivered itself with no head stored is a break (head record removed); DR-replicated rows and a partial walk are not', () => {
    const direct = (by: string): boolean => !by.startsWith('replication:');
    const rows = chain(8);
    const run = (rs: TrailRow[], highest: bigint, partial = false, directBefore?: number): EpochReport => {
      const v = new EpochVerifier('col-a', EPOCH, { keys: new TrailKeys([KEY]), deliveredDirectly: direct, directBefore });
      for (const r of rs) v.add(r);
      return v.finish(highest, [], highest > 0n ? attestHead(KEY, 'col-a', EPOCH, highest) : undefined, partial);
    };
    const gone = run(rows, 0n);
    assert.deepEqual(gone.breaks.map((b) => [b.seq, b.problem.slice(0, 80)]), [[8n, 'no reported head is stored for this epoch, yet 8 of its events were delivered by']]);
    assert.equal(reportPasses(gone), false);
    assert.equal(reportPasses(run(rows, 8n)), true, 'with its attested head it passes');
    assert.equal(reportPasses(run(rows.map((r) => ({ ...r, deliveredBy: 'replication:gw-a' })), 0n)), true, 'a DR copy holds no heads');
    assert.equal(reportPasses(run(rows, 0n, true)), true, 'a walk cut short does not look at the head');
    assert.equal(reportPasses(run([], 0n, false, 3)), false, 'direct rows seen before a checkpoint count');
    assert.equal(reportPasses(verify(rows, 0n)), true, 'without deliveredDirectly heads are not required');
  });

  test('a whole chain passes', () => {
    const r = verify(chain(10), 10n);
    assert.deepEqual({ held: r.held, first: r.firstSeq, last: r.lastSeq, missing: r.missing, breaks: r.breaks }, { held: 10, first: 1n, last: 10n, missing: [], breaks: [] });
  });

  test('a removed event is a missing range; the reported head makes a removed tail missing too', () => {
    const rows = chain(10).filter((r) => r.seq !== 4n && r.seq < 9n);
    const r = verify(rows, 10n);
    assert.deepEqual(r.missing, [{ from: 4n, to: 4n }, { from: 9n, to: 10n }]);
    assert.deepEqual(r.breaks, []);
  });

  test('a loss event explains the range it names; retention explains what it dropped; the rest stays missing', () => {
    const maker = new ChainMaker(KEY, undefined);
    const rows: TrailRow[] = [];
    for (let s = 1; s <= 12; s++) {
      const ev = event(s);
      if (s === 12) {
        ev.kind = EventKind.Loss;
        ev.lossFromSeq = 3n;
        ev.lossToSeq = 5n;
        ev.reason = 'size';
      }
      const raw = maker.link(ev, encodeAuditEvent);
      if ((s >= 3 && s <= 5) || s === 8 || s === 10) continue;
      rows.push({ seq: BigInt(s), raw, deliveredBy: 'x', receivedAtMs: 1, sealId: '' });
    }
    const seal = trailKey(randomBytes(32));
    const keys = new TrailKeys([KEY]);
    keys.add(seal, { kind: 'seal' });
    const v = new EpochVerifier('col-a', EPOCH, { keys });
    for (const r of rows) v.add(r);
    const r = v.finish(12n, [{ from: 8n, to: 8n, ...attestDrop(seal, 'col-a', EPOCH, { from: 8n, to: 8n }) }], attestHead(KEY, 'col-a', EPOCH, 12n));
    assert.deepEqual(r.missing, [{ from: 10n, to: 10n }]);
    assert.deepEqual(r.explained, [{ from: 3n, to: 5n, by: 'loss event' }, { from: 8n, to: 8n, by: 'retention' }]);
    assert.deepEqual(r.losses, [{ seq: 12n, from: 3n, to: 5n, reason: 'size' }]);
    assert.deepEqual(r.breaks, []);
  });

  test('a retention record or a reported head that does not check with a known key is a break and explains nothing', () => {
    const rows = chain(6).filter((r) => r.seq !== 3n);
    const stranger = trailKey(randomBytes(32));
    const seal = trailKey(randomBytes(32));
    const run = (dropped: DroppedRange[], head: Attested): EpochReport => {
      const keys = new TrailKeys([KEY]);
      keys.add(seal, { kind: 'seal' });
      const v = new EpochVerifier('col-a', EPOCH, { keys });
      for (const r of rows) v.add(r);
      return v.finish(9n, dropped, head);
    };
    const good = run([{ from: 3n, to: 3n, ...attestDrop(seal, 'col-a', EPOCH, { from: 3n, to: 3n }) }], attestHead(KEY, 'col-a', EPOCH, 9n));
    assert.deepEqual(good.breaks, []);
    assert.deepEqual(good.missing, [{ from: 7n, to: 9n }]);
    // A drop record signed with a trail key (a collector's key cannot vouch for a gateway's retention), and a head with the seal key.
    const byTrailKey = run([{ from: 3n, to: 3n, ...attestDrop(KEY, 'col-a', EPOCH, { from: 3n, to: 3n }) }], attestHead(seal, 'col-a', EPOCH, 9n));
    assert.deepEqual(byTrailKey.breaks.map((b) => [b.seq, b.problem]), [
      [9n, `the reported head (highest seq 9) is attested with key ${seal.id}, which is a seal key, not a trail key (forged with the wrong key): the collector did not report it so`],
      [3n, `the retention record for seqs 3 is attested with key ${KEY.id}, which is a fleet trail key, not a seal key (forged with the wrong key): it explains nothing`],
    ]);
    // A drop record widened after it was signed, one with no signature, a head lowered or raised by someone without the key.
    const widened = run([{ from: 3n, to: 4n, ...attestDrop(seal, 'col-a', EPOCH, { from: 3n, to: 3n }) }], attestHead(KEY, 'col-a', EPOCH, 9n));
    assert.deepEqual(widened.breaks.map((b) => b.seq), [3n]);
    assert.deepEqual(widened.missing, [{ from: 3n, to: 3n }, { from: 7n, to: 9n }]);
    assert.match(widened.breaks[0].problem, /retention record for seqs 3-4 attestation does not match/);
    const unsigned = run([{ from: 3n, to: 3n }], attestHead(KEY, 'col-a', EPOCH, 9n));
    assert.match(unsigned.breaks[0].problem, /carries no attestation/);
    const forgedHead = run([], attestHead(stranger, 'col-a', EPOCH, 9n));
    assert.deepEqual(forgedHead.breaks.map((b) => b.seq), [9n]);
    assert.match(forgedHead.breaks[0].problem, /reported head \(highest seq 9\) is attested with key [0-9a-f]+, which is not among the known keys/);
    const otherEpoch = run([], attestHead(KEY, 'col-a', '01900000-0000-7000-8000-000000000002', 9n));
    assert.match(otherEpoch.breaks[0].problem, /attestation does not match/);
  });

  test('an edited event, two swapped events, a seq held twice and a stranger are each named by seq', () => {
    const rows = chain(8);
    rows[2] = { ...rows[2], raw: edited(rows[2].raw, (e) => (e.statement = 'SELECT 0')) };
    const [a, b] = [rows[4].raw, rows[5].raw];
    rows[4] = { ...rows[4], raw: b };
    rows[5] = { ...rows[5], raw: a };
    rows.splice(7, 0, { ...rows[6], raw: chain(7)[6].raw }); // seq 7 again, from another run
    const r = verify(rows, 8n);
    const bySeq = r.breaks.map((x) => `${x.seq}: ${x.problem.replace(/ \(events .*\)$/, '')}`);
    assert.deepEqual(bySeq, [
      '3: chain hash does not match its content (modified or forged without the key)',
      `5: is stored as collector col-a epoch ${EPOCH} seq 5 but says collector col-a epoch ${EPOCH} seq 6`,
      '5: does not link to seq 4: its previous-hash is not that event\'s chain hash (removed, reordered or replaced)',
      `6: is stored as collector col-a epoch ${EPOCH} seq 6 but says collector col-a epoch ${EPOCH} seq 5`,
      '6: does not link to seq 5: its previous-hash is not that event\'s chain hash (removed, reordered or replaced)',
      '7: does not link to seq 6: its previous-hash is not that event\'s chain hash (removed, reordered or replaced)',
      '7: seq 7 is held twice',
    ]);
    assert.deepEqual(r.missing, []);
  });

  test('a walk continued from a checkpoint links its first row to the checkpoint', () => {
    const rows = chain(6);
    const tail = { seq: 3n, hash: fromBinary(AuditEventSchema, rows[2].raw).chainHash };
    assert.equal(reportPasses(verify(rows.slice(3), 6n, { keys: new TrailKeys([KEY]), after: tail })), true);
    const wrong = { seq: 3n, hash: randomBytes(32) };
    assert.equal(verify(rows.slice(3), 6n, { keys: new TrailKeys([KEY]), after: wrong }).breaks[0].seq, 4n);
  });

  test('a windowed walk (--since) neither links its first row nor calls what is before it missing', () => {
    const r = verify(chain(6).slice(2), 6n, { keys: new TrailKeys([KEY]), linkFirst: false });
    assert.equal(reportPasses(r), true);
  });
});

describe('storage seals', () => {
  const SEAL_KEY = trailKey(randomBytes(32));
  function sealed(rows: TrailRow[]): { rows: TrailRow[]; seal: Seal } {
    const entries = Buffer.concat(rows.map((r) => Buffer.concat([Buffer.from(fromBinary(AuditEventSchema, r.raw).eventId.replace(/-/g, ''), 'hex'), rowDigest(r.raw, r.deliveredBy, r.receivedAtMs)])));
    const seal = makeSeal(SEAL_KEY, { sealId: '01900000-0000-7000-8000-00000000000a', gatewayId: 'gw-a', sealedAtMs: 5, entries });
    return { rows: rows.map((r) => ({ ...r, sealId: seal.sealId })), seal };
  }

  test('a row edited beside its event bytes (delivered_by) or a seal edited is caught; an intact sealed trail passes', () => {
    const { rows, seal } = sealed(chain(4));
    const keys = new TrailKeys([KEY]);
    keys.add(SEAL_KEY, { kind: 'seal' });
    assert.equal(reportPasses(verify(rows, 4n, { keys, seal: () => seal })), true);
    const moved = rows.map((r) => (r.seq === 2n ? { ...r, deliveredBy: 'someone-else' } : r));
    assert.deepEqual(verify(moved, 4n, { keys, seal: () => seal }).breaks.map((b) => [b.seq, b.problem]), [[2n, `stored row differs from what seal ${seal.sealId} recorded (row edited)`]]);
    const forgedSeal = { ...seal, gatewayId: 'gw-b' };
    assert.equal(verify(rows, 4n, { keys, seal: () => forgedSeal }).breaks.length, 4);
    assert.match(verify(rows, 4n, { keys, seal: () => undefined }).breaks[0].problem, /which is missing/);
  });
});

test('subtractRanges', () => {
  assert.deepEqual(subtractRanges([{ from: 1n, to: 10n }], [{ from: 3n, to: 4n }, { from: 8n, to: 12n }]), {
    left: [{ from: 1n, to: 2n }, { from: 5n, to: 7n }],
    covered: [{ from: 3n, to: 4n }, { from: 8n, to: 10n }],
  });
  assert.deepEqual(subtractRanges([{ from: 5n, to: 5n }], []), { left: [{ from: 5n, to: 5n }], covered: [] });
});

describe('key roles', () => {
  const A = trailKey(randomBytes(32));
  const B = trailKey(randomBytes(32));
  const SEAL = trailKey(randomBytes(32));
  const FLEET = trailKey(randomBytes(32));
  const keys = new TrailKeys();
  keys.add(A, { kind: 'trail', collector: 'col-a' });
  keys.add(B, { kind: 'trail', collector: 'col-b' });
  keys.add(SEAL, { kind: 'seal' });
  keys.add(FLEET);

  test("a collector's own key checks its events; another collector's key, a seal key and a fleet key are told apart", () => {
    const [row] = chain(1, A);
    assert.deepEqual(checkChainHash(row.raw, A.id, 'col-a', keys, true), {});
    const [byB] = chain(1, B); // col-a's event hashed with col-b's key: what a compromised col-b could make
    assert.deepEqual(checkChainHash(byB.raw, B.id, 'col-a', keys, true), {
      problem: `is hashed with trail key ${B.id}, which belongs to collector col-b, not col-a (forged with another collector's key)`,
    });
    const [bySeal] = chain(1, SEAL);
    assert.deepEqual(checkChainHash(bySeal.raw, SEAL.id, 'col-a', keys, true), { problem: `is hashed with key ${SEAL.id}, which is a seal key, not a trail key (forged with the wrong key)` });
    const [byFleet] = chain(1, FLEET);
    assert.deepEqual(checkChainHash(byFleet.raw, FLEET.id, 'col-a', keys, true), {}, 'a fleet key is good for any collector');
    assert.deepEqual(checkHead(attestHead(B, 'col-a', EPOCH, 5n), 'col-a', EPOCH, 5n, keys, true).problem, `is attested with trail key ${B.id}, which belongs to collector col-b, not col-a (forged with another collector's key)`);
  });

  test('a seal made with a trail key is refused, whoever made it', () => {
    const fields = { sealId: '01900000-0000-7000-8000-00000000000b', gatewayId: 'gw-a', sealedAtMs: 1, entries: Buffer.alloc(48) };
    assert.deepEqual(checkSeal(makeSeal(SEAL, fields), keys, true), {});
    for (const k of [A, FLEET]) {
      assert.match(checkSeal(makeSeal(k, fields), keys, true).problem ?? '', new RegExp(`^is made with key ${k.id}, which is (collector col-a's|a fleet) trail key, not a seal key`));
    }
  });

  test('one key in two roles is refused when the keys are loaded', () => {
    const k = new TrailKeys([A]);
    assert.throws(() => k.add(A, { kind: 'seal' }, 'keys/seal.x'), { message: `keys/seal.x holds the same key (id ${A.id}) as a key, once as a fleet trail key and once as a seal key: a key has one role (remove the copy, or rename it for the role it has)` });
    assert.throws(() => k.add(A, { kind: 'trail', collector: 'col-z' }, 'keys/trail.col-z'), /once as a fleet trail key and once as collector col-z's trail key/);
    k.add(A); // the same key in the same role twice is fine (a copy under another name)
  });

  test('a key file name gives its role', () => {
    assert.deepEqual(
      ['seal', 'seal.gw-a', 'seal-key', 'gw-a.seal', 'trail.col-a', 'trail.', 'trail', 'col-a.key', 'fleet'].map((n) => [n, roleOfKeyFile(n)]),
      [
        ['seal', { kind: 'seal' }],
        ['seal.gw-a', { kind: 'seal' }],
        ['seal-key', { kind: 'seal' }],
        ['gw-a.seal', { kind: 'seal' }],
        ['trail.col-a', { kind: 'trail', collector: 'col-a' }],
        ['trail.', { kind: 'trail' }],
        ['trail', { kind: 'trail' }],
        ['col-a.key', { kind: 'trail' }],
        ['fleet', { kind: 'trail' }],
      ],
    );
  });
});

test('key file names that would give a key a role its owner did not mean are refused, naming the file', () => {
  for (const [name, ok] of [
    ['trail.key', false], ['trail.collector-1.key', false], ['trail.pem', false], ['trail.db.seal', false], ['sealed-fleet.key', false],
    ['gw-seal.key', false], ['Seal.key', false], ['SEAL', false],
    ['trail.col-a', true], ['trail.seal-db', true], ['trail.db.prod', true], ['seal', true], ['seal.gw-a', true], ['seal-key', true], ['gw-a.seal', true], ['fleet.key', true], ['c.key', true],
  ] as const) {
    const dir = mkdtemp(pathJoin(osTmpdir(), 'dbaudit-keyname-'));
    try {
      writeFile(pathJoin(dir, name), randomBytes(32).toString('base64'));
      if (ok) assert.equal(TrailKeys.fromDir(dir, '--keys-dir').size, 1, name);
      else assert.throws(() => TrailKeys.fromDir(dir, '--keys-dir'), (err: Error) => err.message.startsWith(`--keys-dir file ${pathJoin(dir, name)}: `) && /fleet\.key/.test(err.message), name);
    } finally {
      rm(dir, { recursive: true, force: true });
    }
  }
});

test('TrailKeys.fromDir: a dangling link among the key files is an error naming the option and the file, never a bare ENOENT', async () => {
  const { mkdtempSync, rmSync, symlinkSync, writeFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(join(tmpdir(), 'dbaudit-keys-'));
  try {
    writeFileSync(join(dir, 'a.key'), randomBytes(32).toString('base64'));
    symlinkSync(join(dir, 'gone'), join(dir, 'b.key'));
    assert.throws(() => TrailKeys.fromDir(dir, '--keys-dir'), { message: `--keys-dir file ${join(dir, 'b.key')}: cannot be read (ENOENT)` });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

describe('attestations', () => {
  test('an id holding a newline cannot pass for another collector and epoch', () => {
    const a = attestHead(KEY, 'col\nx', 'ep', 5n);
    const b = attestHead(KEY, 'col', 'x\nep', 5n);
    assert.notDeepEqual(Buffer.from(a.mac), Buffer.from(b.mac));
    const d1 = attestDrop(KEY, 'c\n1', '2', { from: 1n, to: 2n });
    const d2 = attestDrop(KEY, 'c', '1\n2', { from: 1n, to: 2n });
    assert.notDeepEqual(Buffer.from(d1.mac), Buffer.from(d2.mac));
  });
});
