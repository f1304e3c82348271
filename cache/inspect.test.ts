import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { create, toBinary } from '@bufbuild/protobuf';
import { AuditEventSchema } from '../proto/gen/audit/v1/event_pb.js';
import { formatInspect, inspectCache, runCacheCommand } from './inspect.js';
import { Keyring } from './keyring.js';
import { recordKey } from './record.js';
import { Rocks } from './rocks.js';
import { appendN, newKey, openTest, payloadOf, tempDir } from './testing.js';

const cleanups: (() => void)[] = [];
after(() => cleanups.forEach((c) => c()));
function dir(): string {
  const t = tempDir();
  cleanups.push(t.cleanup);
  return t.dir;
}

function sink(): { out: Writable; text: () => string } {
  let s = '';
  const out = new Writable({
    write(chunk: Buffer, _enc, cb) {
      s += chunk.toString();
      cb();
    },
  });
  return { out, text: () => s };
}

describe('cache inspect', () => {
  test('counts, bytes, seq and age range without a key; payloads with it; beside an open cache', async () => {
    const d = dir();
    const { cache, clock, opts } = await openTest(d);
    const t0 = clock.now();
    await appendN(cache, 3, t0);
    clock.advance(60_000);
    await appendN(cache, 2, clock.now());
    await cache.ack([1n]);
    const plain = await inspectCache({ dir: d, nowMs: clock.now() });
    assert.equal(plain.epoch, cache.epoch);
    assert.equal(plain.events, 4);
    assert.equal(plain.bytes, cache.stats().bytes);
    assert.deepEqual(plain.meta, { events: 4, bytes: cache.stats().bytes, lastSeq: 5n, commit: plain.meta!.commit });
    assert.equal(plain.firstSeq, 2n);
    assert.equal(plain.lastSeq, 5n);
    assert.equal(plain.oldestTimeMs, t0);
    assert.equal(plain.newestTimeMs, t0 + 60_000);
    assert.deepEqual(plain.keyIds, { [opts.keyring.writeKeyId!]: 4 });
    assert.equal(plain.records, undefined);
    const text = formatInspect(plain);
    assert.match(text, /^events {5}4$/m);
    assert.match(text, /oldest 60s old, newest 0s old/);

    const full = await inspectCache({ dir: d, keyring: opts.keyring, events: true, decode: (p) => Buffer.from(p).toString().slice(0, 7) });
    assert.deepEqual(full.records!.map((r) => [r.seq, r.decoded]), [[2n, 'event-2'], [3n, 'event-3'], [4n, 'event-4'], [5n, 'event-5']]);
    assert.deepEqual(Buffer.from(full.records![0].payload!), payloadOf(2n));
    await cache.close();
  });

  test('a wrong key and a damaged record are reported, not fatal', async () => {
    const d = dir();
    const { cache, clock, opts } = await openTest(d);
    await appendN(cache, 3, clock.now());
    await cache.close();
    const db = await Rocks.open(d);
    const v = (await db.get(recordKey(2n)))!;
    v[v.length - 1] ^= 1;
    await db.write([{ type: 'put', key: recordKey(2n), value: v }], true);
    await db.close();
    const r = await inspectCache({ dir: d, keyring: opts.keyring, events: true });
    assert.deepEqual(r.records!.map((x) => x.error), [undefined, 'corrupt', undefined]);
    assert.equal(r.corrupt, 1);
    const other = await inspectCache({ dir: d, keyring: new Keyring(newKey()), events: true });
    assert.equal(other.noKey, 3);
    assert.match(formatInspect(other), /sealed with a key not given/);
  });

  test('runCacheCommand: --cache-dir, the key from the environment, AuditEvent payloads decoded', async () => {
    const d = dir();
    const key = newKey();
    const { cache, clock } = await openTest(d, { keyring: new Keyring(key) });
    const seq = cache.reserveSeq();
    const ev = create(AuditEventSchema, { kind: 'session_start', user: 'alice', database: 'shop', sessionId: 'abcdef0123456789' });
    cache.append(seq, toBinary(AuditEventSchema, ev), clock.now());
    await cache.close();
    const env = { DBAUDIT_CACHE_KEY: key.toString('base64') };
    const s1 = sink();
    assert.equal(await runCacheCommand(['inspect', '--cache-dir', d], {}, { out: s1.out }), 0);
    assert.match(s1.text(), /^events {5}1$/m);
    assert.doesNotMatch(s1.text(), /alice/);
    const s2 = sink();
    assert.equal(await runCacheCommand(['inspect', '--cache-dir', d, '--events'], env, { out: s2.out }), 0);
    assert.match(s2.text(), /^1 \S+ key=\w{8} \d+B .*session_start alice@shop/m);
    await assert.rejects(runCacheCommand(['inspect', '--cache-dir', d, '--events'], {}, { out: sink().out }), /--events needs the cache key/);
    await assert.rejects(runCacheCommand(['inspect', '--cache-dir', d + '-missing'], {}, { out: sink().out }), /holds no cache/);
    await assert.rejects(runCacheCommand(['nope'], {}, { out: sink().out }), /unknown subcommand/);
    const s3 = sink();
    assert.equal(await runCacheCommand(['inspect', '--cache-dir', d, '--json'], {}, { out: s3.out }), 0);
    assert.equal(JSON.parse(s3.text()).events, 1);
  });
});
