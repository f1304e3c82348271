import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { ChainMaker, attestHead, trailKey } from '../lib/trail.js';
import { encodeAuditEvent } from '../proxy/event-codec.js';
import pg from 'pg';
import { sharedPostgres, skipUnless } from '../test/harness/index.js';
import { RocksDb } from './rocksdb-binding.js';
import { TAG, epochPrefix } from './store-keys.js';
import { startGateway, type GatewayHandle } from './server.js';
import { TestStream, batchOf, eventAt, gatewayConfig, tempDir } from './testing.js';
import { createServer } from 'node:net';
import { create } from '@bufbuild/protobuf';
import { TrailRequestSchema } from '../proto/gen/audit/v1/query_pb.js';
import { describeFailure } from './events-command.js';
import { runVerifyCommand, verifyTrail } from './verify-command.js';

/**
 * The gateway's side of the trail on both stores: heads reported in
 * batches, retention that drops old ranges and records it (verification
 * still passes), and the background walk's metrics.
 */

const DAY = 86_400_000;

async function verifyCode(gw: GatewayHandle, keysDir: string, extra: string[] = []): Promise<{ code: number; text: string }> {
  let text = '';
  const out = new Writable({ write: (chunk, _enc, cb) => ((text += String(chunk)), cb()) });
  const code = await runVerifyCommand(['--gateway', gw.address, '--keys-dir', keysDir, ...extra], {}, out, out);
  return { code, text };
}

/**
 * Someone with write access to the store removes an epoch's head record and
 * its last events. Before, the epoch vanished from the check (PostgreSQL
 * listed epochs from trail_heads, the embedded store from its 'H' keys) or,
 * with the head only zeroed, the shorter trail passed.
 */
const headRemovals: Record<string, (dir: string, url: string | undefined) => Promise<void>> = {
  async embedded(dir) {
    const db = new RocksDb(dir);
    await db.open();
    try {
      const b = db.writeBatch();
      b.del(epochPrefix(TAG.Head, 'col-h', 'epoch-h'));
      const prefix = epochPrefix(TAG.Trail, 'col-h', 'epoch-h');
      const it = db.iterator({ gte: prefix, lt: Buffer.concat([prefix, Buffer.alloc(25, 0xff)]), values: false });
      try {
        for (let e = await it.next(); e; e = await it.next()) if (e.key.readBigUInt64BE(prefix.length) >= 9n) b.del(e.key);
      } finally {
        await it.end();
      }
      await b.write(true);
    } finally {
      await db.close();
    }
  },
  async postgres(_dir, url) {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      await c.query(`DELETE FROM events WHERE collector_id = 'col-h' AND seq >= 9`);
      await c.query(`DELETE FROM trail_heads WHERE collector_id = 'col-h'`);
    } finally {
      await c.end();
    }
  },
};

function stores(): Array<[string, () => Promise<string[]>, { skip: string | false }]> {
  return [
    ['embedded', async () => [], { skip: false }],
    ['postgres', async () => {
      const server = await sharedPostgres({});
      return ['--gateway.store', server.url(await server.createDatabase('gwtrail'))];
    }, { skip: skipUnless('postgres') }],
  ];
}

for (const [name, storeArgs, opts] of stores()) {
  describe(`trail on the ${name} store`, opts, () => {
    test('retention drops the oldest days and records the ranges: verify still passes, and a later gap still fails it', async () => {
      const tmp = tempDir();
      const keys = join(tmp.dir, 'keys');
      mkdirSync(keys);
      const key = randomBytes(32);
      writeFileSync(join(keys, 'c.key'), key.toString('base64'));
      writeFileSync(join(tmp.dir, 'seal.key'), randomBytes(32).toString('base64'));
      const gw = await startGateway({
        config: gatewayConfig(join(tmp.dir, 'gw'), [
          ...(await storeArgs()), '--gateway.id', 'gw-ret', '--gateway.trail.keys_dir', keys, '--gateway.trail.check_interval', '0s',
          '--gateway.trail.seal_key_file', join(tmp.dir, 'seal.key'),
        ]),
      });
      try {
        // 30 events over three days: seq 1-10 three days ago, 11-20 two days ago, 21-30 today
        const today = Math.floor(Date.now() / DAY);
        const maker = new ChainMaker(trailKey(key), undefined);
        const raws = Array.from({ length: 30 }, (_, i) => {
          const day = i < 10 ? today - 3 : i < 20 ? today - 2 : today;
          return maker.link(eventAt(day * DAY + 3_600_000 + i * 1000, { seq: BigInt(i + 1), collectorId: 'col-a', epoch: 'epoch-1' }), encodeAuditEvent);
        });
        const s = new TestStream(gw.address);
        const batch = batchOf(1, raws.filter((_, i) => i !== 24)); // seq 25 not delivered (yet)
        batch.highestSeq = 30n;
        Object.assign(batch, { headMac: attestHead(trailKey(key), 'col-a', 'epoch-1', 30n).mac, headKeyId: trailKey(key).id });
        s.send(batch);
        await s.waitAcks(1);
        await gw.trail.flushHeads();
        const [before] = await gw.trail.pass();
        assert.deepEqual(before.missing, [{ from: 25n, to: 25n }]);
        assert.equal((await gw.metrics.trailGaps.get()).values[0].value, 1);
        const late = batchOf(2, [raws[24]]);
        s.send(late);
        await s.waitAcks(2);
        // A head raised by a sender without the collector's key (a gateway token is not the trail key): refused and counted.
        const forged = batchOf(3, []);
        Object.assign(forged, { highestSeq: 40n, ...((a) => ({ headMac: a.mac, headKeyId: a.keyId }))(attestHead(trailKey(randomBytes(32)), 'col-a', 'epoch-1', 40n)) });
        s.send(forged);
        await s.waitAcks(3);
        await s.finish();
        await gw.trail.flushHeads();
        assert.equal((await gw.metrics.trailChainBreaks.get()).values.find((v) => v.labels.check === 'ingest')?.value, 1);
        const [filled] = await gw.trail.pass();
        assert.deepEqual({ missing: filled.missing, breaks: filled.breaks }, { missing: [], breaks: [] }, 'the late event fills the gap and links on both sides');
        assert.equal((await gw.metrics.trailGaps.get()).values[0].value, 0);

        assert.equal(await gw.store.deleteBefore!((today - 1) * DAY * 1000), 20);
        const [after] = await gw.trail.pass();
        assert.deepEqual({ missing: after.missing, breaks: after.breaks }, { missing: [], breaks: [] });
        const epochs = await gw.store.trailEpochs();
        assert.deepEqual(epochs.map((e) => [e.collectorId, e.epoch, e.highestReported, e.dropped.reduce((n, r) => n + Number(r.to - r.from + 1n), 0)]), [['col-a', 'epoch-1', 30n, 20]]);
        const auditor = join(tmp.dir, 'auditor');
        mkdirSync(auditor);
        writeFileSync(join(auditor, 'c.key'), key.toString('base64'));
        writeFileSync(join(auditor, 'seal.key'), (await import('node:fs')).readFileSync(join(tmp.dir, 'seal.key')));
        const ok = await verifyCode(gw, auditor);
        assert.equal(ok.code, 0, ok.text);
        assert.match(ok.text, /^  ranges explained: 1-20 \(retention\)$/m);
        assert.match(ok.text, /^  events held: 10 \(seq 21-30\); highest seq reported by the collector: 30$/m);
      } finally {
        await gw.close();
        tmp.remove();
      }
    });

    test('a collector id holding NUL and U+E000 (which the PostgreSQL store escapes) still has its rows read and checked', async () => {
      const tmp = tempDir();
      const keys = join(tmp.dir, 'keys');
      mkdirSync(keys);
      writeFileSync(join(keys, 'c.key'), randomBytes(32).toString('base64'));
      const gw = await startGateway({ config: gatewayConfig(join(tmp.dir, 'gw'), [...(await storeArgs()), '--gateway.trail.keys_dir', keys, '--gateway.trail.check_interval', '0s']) });
      try {
        const collector = 'nul\u0000id\uE000x';
        const raw = new ChainMaker(undefined, undefined).link(eventAt(Date.now() - 1000, { seq: 1n, collectorId: collector, epoch: 'ep\u0000' }), encodeAuditEvent);
        const s = new TestStream(gw.address);
        s.send(batchOf(1, [raw], collector));
        await s.waitAcks(1);
        await s.finish();
        const eps = (await gw.store.trailEpochs()).filter((e) => e.collectorId === collector);
        assert.deepEqual(eps.map((e) => e.epoch), ['ep\u0000']);
        const r = await verifyCode(gw, keys);
        assert.equal(r.code, 1, r.text);
        assert.match(r.text, /^  events held: 1 \(seq 1-1\)/m);
        assert.match(r.text, /^    seq 1 event \S+: is not keyed \(bare SHA-256\) where a trail key is required$/m);
      } finally {
        await gw.close();
        tmp.remove();
      }
    });

    test('a head record removed from the store with the tail behind it: the epoch is still checked, and the missing head is a break', async () => {
      const tmp = tempDir();
      const keys = join(tmp.dir, 'keys');
      mkdirSync(keys);
      const key = randomBytes(32);
      writeFileSync(join(keys, 'c.key'), key.toString('base64'));
      writeFileSync(join(tmp.dir, 'seal.key'), randomBytes(32).toString('base64'));
      const args = await storeArgs();
      const url = args[1];
      const config = gatewayConfig(join(tmp.dir, 'gw'), [
        ...args, '--gateway.id', 'gw-head', '--gateway.trail.keys_dir', keys, '--gateway.trail.check_interval', '0s', '--gateway.trail.seal_key_file', join(tmp.dir, 'seal.key'),
      ]);
      const auditor = join(tmp.dir, 'auditor');
      mkdirSync(auditor);
      writeFileSync(join(auditor, 'c.key'), key.toString('base64'));
      writeFileSync(join(auditor, 'seal.key'), (await import('node:fs')).readFileSync(join(tmp.dir, 'seal.key')));
      let gw = await startGateway({ config });
      try {
        const maker = new ChainMaker(trailKey(key), undefined);
        const raws = Array.from({ length: 10 }, (_, i) => maker.link(eventAt(Date.now() - 60_000 + i, { seq: BigInt(i + 1), collectorId: 'col-h', epoch: 'epoch-h' }), encodeAuditEvent));
        const s = new TestStream(gw.address);
        const batch = batchOf(1, raws, 'col-h');
        Object.assign(batch, { epoch: 'epoch-h', highestSeq: 10n, headMac: attestHead(trailKey(key), 'col-h', 'epoch-h', 10n).mac, headKeyId: trailKey(key).id });
        s.send(batch);
        await s.waitAcks(1);
        await s.finish();
        const ok = await verifyCode(gw, auditor);
        assert.equal(ok.code, 0, ok.text);
        // A window after the epoch's last event holds none of it: nothing in it is missing (every older epoch failed --since before).
        const later = await verifyCode(gw, auditor, ['--since', '2100-01-01T00:00:00Z']);
        assert.equal(later.code, 0, later.text);
        assert.match(later.text, /^  events held: 0; highest seq reported by the collector: 10\n  ranges missing: none$/m);
        await gw.close();
        await headRemovals[name](config.gateway.data_dir, url);
        gw = await startGateway({ config });
        const r = await verifyCode(gw, auditor);
        assert.equal(r.code, 1, r.text);
        assert.match(r.text, /^collector col-h epoch epoch-h: FAILED$/m);
        assert.match(r.text, /^  events held: 8 \(seq 1-8\); highest seq reported by the collector: none$/m);
        assert.match(r.text, /^    seq 8: no reported head is stored for this epoch, yet 8 of its events were delivered by the collector itself/m);
        const [report] = await gw.trail.pass();
        assert.deepEqual([report.collectorId, report.epoch, report.breaks.map((b) => b.seq)], ['col-h', 'epoch-h', [8n]]);
        assert.equal((await gw.metrics.trailChainBreaks.get()).values.find((v) => v.labels.check === 'store')?.value, 1);
      } finally {
        await gw.close();
        tmp.remove();
      }
    });
  });
}

test('verify gives up on a gateway that accepts the connection and never answers (exit 3), instead of hanging', async () => {
  const held: import('node:net').Socket[] = [];
  const silent = createServer((sock) => void held.push(sock));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const address = `127.0.0.1:${(silent.address() as import('node:net').AddressInfo).port}`;
  try {
    const err = await verifyTrail(address, {}, create(TrailRequestSchema, {}), undefined, { stallMs: 300 }).then(
      () => assert.fail('a silent gateway verified'),
      (e: unknown) => e as import('@grpc/grpc-js').ServiceError,
    );
    assert.equal(describeFailure(address, err), `cannot reach the gateway at ${address}: it sent nothing for 0.3s (stalled)`);
  } finally {
    for (const sock of held) sock.destroy();
    silent.close();
  }
});

test('a collector id or epoch with a line break (anyone with a gateway token can send one) prints as one quoted name, never as a line of its own', async () => {
  const tmp = tempDir();
  const keys = join(tmp.dir, 'keys');
  mkdirSync(keys);
  writeFileSync(join(keys, 'c.key'), randomBytes(32).toString('base64'));
  const gw = await startGateway({ config: gatewayConfig(join(tmp.dir, 'gw'), ['--gateway.trail.keys_dir', keys, '--gateway.trail.check_interval', '0s']) });
  try {
    const collector = 'x epoch y: OK\nPASS: 0 collector epoch(s)';
    const raw = new ChainMaker(undefined, undefined).link(eventAt(Date.now() - 1000, { seq: 1n, collectorId: collector, epoch: 'e\r\n' }), encodeAuditEvent);
    const s = new TestStream(gw.address);
    s.send(batchOf(1, [raw], collector));
    await s.waitAcks(1);
    await s.finish();
    const r = await verifyCode(gw, keys);
    assert.equal(r.code, 1, r.text);
    assert.doesNotMatch(r.text, /^PASS/m);
    assert.match(r.text, /^collector "x epoch y: OK\\nPASS: 0 collector epoch\(s\)" epoch "e\\r\\n": FAILED$/m);
  } finally {
    await gw.close();
    tmp.remove();
  }
});

test('PostgreSQL retention attests the runs of seqs it dropped, not first to last: a seq kept in a later partition cannot be deleted later as "retention"', { skip: skipUnless('postgres') }, async () => {
  const server = await sharedPostgres({});
  const url = server.url(await server.createDatabase('gwtrailruns'));
  const tmp = tempDir();
  const keys = join(tmp.dir, 'keys');
  mkdirSync(keys);
  const key = randomBytes(32);
  writeFileSync(join(keys, 'c.key'), key.toString('base64'));
  const seal = randomBytes(32);
  writeFileSync(join(tmp.dir, 'seal.key'), seal.toString('base64'));
  const auditor = join(tmp.dir, 'auditor');
  mkdirSync(auditor);
  writeFileSync(join(auditor, 'c.key'), key.toString('base64'));
  writeFileSync(join(auditor, 'seal.key'), seal.toString('base64'));
  const gw = await startGateway({
    config: gatewayConfig(join(tmp.dir, 'gw'), [
      '--gateway.store', url, '--gateway.id', 'gw-runs', '--gateway.trail.keys_dir', keys, '--gateway.trail.check_interval', '0s', '--gateway.trail.seal_key_file', join(tmp.dir, 'seal.key'),
    ]),
  });
  try {
    // seqs 1-10 three days ago, except seq 5: a statement that started today (its event time), numbered among the old ones
    const today = Math.floor(Date.now() / DAY);
    const maker = new ChainMaker(trailKey(key), undefined);
    const raws = Array.from({ length: 10 }, (_, i) =>
      maker.link(eventAt((i === 4 ? today : today - 3) * DAY + 3_600_000 + i * 1000, { seq: BigInt(i + 1), collectorId: 'col-r', epoch: 'epoch-r' }), encodeAuditEvent));
    const s = new TestStream(gw.address);
    const batch = batchOf(1, raws, 'col-r');
    Object.assign(batch, { epoch: 'epoch-r', highestSeq: 10n, headMac: attestHead(trailKey(key), 'col-r', 'epoch-r', 10n).mac, headKeyId: trailKey(key).id });
    s.send(batch);
    await s.waitAcks(1);
    await s.finish();
    assert.equal(await gw.store.deleteBefore!((today - 1) * DAY * 1000), 9);
    const [ep] = await gw.store.trailEpochs('col-r');
    assert.deepEqual(ep.dropped.map((r) => [r.from, r.to]), [[1n, 4n], [6n, 10n]]);
    assert.equal((await verifyCode(gw, auditor)).code, 0);
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      await c.query(`DELETE FROM events WHERE collector_id = 'col-r' AND seq = 5`);
    } finally {
      await c.end();
    }
    const r = await verifyCode(gw, auditor);
    assert.equal(r.code, 1, r.text);
    assert.match(r.text, /^collector col-r epoch epoch-r: FAILED\n  events held: 0; highest seq reported by the collector: 10\n  ranges missing: 5$/m);
  } finally {
    await gw.close();
    tmp.remove();
  }
});

test('verify usage: keys are required unless --no-keys says so, an empty --keys-dir and an impossible --since are bad usage (exit 2)', async () => {
  const run = async (argv: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; text: string }> => {
    let text = '';
    const out = new Writable({ write: (chunk, _enc, cb) => ((text += String(chunk)), cb()) });
    return { code: await runVerifyCommand(argv, env, out, out), text };
  };
  const tmp = tempDir();
  try {
    const keys = join(tmp.dir, 'keys');
    mkdirSync(keys);
    writeFileSync(join(keys, 'trail.c'), randomBytes(32).toString('base64'));
    const cases: [string[], NodeJS.ProcessEnv, RegExp][] = [
      [['--gateway', '127.0.0.1:1'], {}, /--keys-dir: required/],
      [['--gateway', '127.0.0.1:1'], { DBAUDIT_TRAIL_KEYS_DIR: '' }, /--keys-dir: required/],
      [['--gateway', '127.0.0.1:1', '--keys-dir', ''], {}, /--keys-dir: empty directory name/],
      [['--gateway', '127.0.0.1:1', '--keys-dir', keys, '--no-keys'], {}, /--no-keys: given with --keys-dir/],
      [['--gateway', '127.0.0.1:1', '--no-keys'], { DBAUDIT_TRAIL_KEYS_DIR: keys }, /--no-keys: given with --keys-dir/],
      [['--gateway', '127.0.0.1:1', '--keys-dir', keys, '--since', '2999-01-01T00:00:00Z'], {}, /--since: "2999-01-01T00:00:00Z" is before 1970 or too far in the future/],
    ];
    for (const [argv, env, message] of cases) {
      const r = await run(argv, env);
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.text}`);
      assert.match(r.text, message);
    }
  } finally {
    tmp.remove();
  }
});

test('an unreadable stored record is a break at its seq (exit 1, the gap metric keeps working), --no-keys says it checked without keys', async () => {
  const tmp = tempDir();
  const keys = join(tmp.dir, 'keys');
  mkdirSync(keys);
  const key = randomBytes(32);
  writeFileSync(join(keys, 'trail.col-u'), key.toString('base64'));
  const seal = randomBytes(32).toString('base64');
  writeFileSync(join(tmp.dir, 'seal.key'), seal);
  const auditor = join(tmp.dir, 'auditor');
  mkdirSync(auditor);
  writeFileSync(join(auditor, 'trail.col-u'), key.toString('base64'));
  writeFileSync(join(auditor, 'seal.gw'), seal);
  const dataDir = join(tmp.dir, 'gw');
  const args = ['--gateway.trail.keys_dir', keys, '--gateway.trail.check_interval', '0s', '--gateway.trail.seal_key_file', join(tmp.dir, 'seal.key')];
  let gw = await startGateway({ config: gatewayConfig(dataDir, args) });
  try {
    const maker = new ChainMaker(trailKey(key), undefined);
    const now = Date.now();
    const raws = [1n, 2n, 3n].map((seq) => maker.link(eventAt(now - 1000 + Number(seq), { seq, collectorId: 'col-u', epoch: 'epoch-u' }), encodeAuditEvent));
    const s = new TestStream(gw.address);
    const batch = batchOf(1, raws, 'col-u');
    batch.epoch = 'epoch-u';
    batch.highestSeq = 3n;
    const a = attestHead(trailKey(key), 'col-u', 'epoch-u', 3n);
    batch.headMac = a.mac;
    batch.headKeyId = a.keyId;
    s.send(batch);
    await s.waitAcks(1);
    await s.finish();
    await gw.trail.flushHeads();
    let text = '';
    const keyless = await runVerifyCommand(['--gateway', gw.address, '--no-keys'], {}, new Writable({ write: (c, _e, cb) => ((text += String(c)), cb()) }));
    assert.equal(keyless, 0, text);
    assert.match(text, /^PASS \(without keys\): 1 collector epoch\(s\), 3 events, .*WITHOUT KEYS \(--no-keys\)/m);
    await gw.close();
    // seq 2's record: its version byte made unknown, behind the gateway's back
    const db = new RocksDb(dataDir);
    await db.open();
    try {
      const it = db.iterator({ gte: Buffer.of(TAG.Event), lt: Buffer.of(TAG.Event + 1) });
      const records: { key: Buffer; value: Buffer }[] = [];
      for (let e = await it.next(); e; e = await it.next()) records.push({ key: e.key, value: e.value });
      await it.end();
      assert.equal(records.length, 3);
      const b = db.writeBatch();
      b.put(records[1].key, Buffer.concat([Buffer.of(0x7f), records[1].value.subarray(1)]));
      await b.write(true);
    } finally {
      await db.close();
    }
    gw = await startGateway({ config: gatewayConfig(dataDir, args) });
    const r = await verifyCode(gw, auditor);
    assert.equal(r.code, 1, r.text);
    assert.match(r.text, /^ {2}chain breaks: 1\n {4}seq 2: stored bytes are not an event\nFAIL: 1 collector epoch\(s\), 2 events, 1 unexplained gap\(s\), 1 chain break\(s\) at .* \(keys: 1 collector, 0 fleet, 1 seal\)$/m);
    const [report] = await gw.trail.pass();
    assert.deepEqual(report.breaks.map((b) => b.seq), [2n]);
  } finally {
    await gw.close();
    tmp.remove();
  }
});
