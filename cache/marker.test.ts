import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Keyring } from './keyring.js';
import { recordKey } from './record.js';
import { Rocks } from './rocks.js';
import { newKey, openTest, tempDir } from './testing.js';

const cleanups: (() => void)[] = [];
after(() => cleanups.forEach((c) => c()));

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

function filesContaining(dir: string, needles: Buffer[]): string[] {
  return filesUnder(dir).filter((f) => {
    const bytes = readFileSync(f);
    return needles.some((n) => bytes.includes(n));
  });
}

/** Event-like payloads: the marker inside some statement text, then random bytes so nothing compresses it away. */
function payload(marker: string, i: number): Buffer {
  return Buffer.concat([Buffer.from(`SELECT * FROM accounts WHERE note = '${marker}' /* ${i} */ `), randomBytes(200)]);
}

test('control: the same search finds the marker when records are stored unencrypted', async () => {
  const t = tempDir('dbaudit-marker-control-');
  cleanups.push(t.cleanup);
  const marker = `MARKER-${randomBytes(8).toString('hex')}`;
  const db = await Rocks.open(t.dir, { writeBufferSize: 64 << 10 });
  for (let i = 1; i <= 2000; i++) await db.write([{ type: 'put', key: recordKey(BigInt(i)), value: payload(marker, i) }], false);
  await db.close();
  assert.ok(filesContaining(t.dir, [Buffer.from(marker)]).length > 0);
});

test('no marker bytes, and no key bytes, in any file under the cache directory (SST, WAL, MANIFEST, LOG, OPTIONS)', async () => {
  const t = tempDir('dbaudit-marker-');
  cleanups.push(t.cleanup);
  const marker = `MARKER-${randomBytes(8).toString('hex')}`;
  const oldKey = newKey();
  const key = newKey();
  const a = await openTest(t.dir, { keyring: new Keyring(oldKey), writeBufferSize: 64 << 10 });
  for (let i = 0; i < 1000; i++) {
    const seq = a.cache.reserveSeq();
    a.cache.append(seq, payload(marker, i), a.clock.now());
    if (i % 100 === 99) await a.cache.flush();
  }
  await a.cache.close();
  // rotate, keep writing, acknowledge some, restart: exercises flushes, compactions, WAL replay
  const b = await openTest(t.dir, { keyring: new Keyring(key, [oldKey]), clock: a.clock, writeBufferSize: 64 << 10 });
  for (let i = 0; i < 1000; i++) {
    const seq = b.cache.reserveSeq();
    b.cache.append(seq, payload(marker, i), b.clock.now());
    if (i % 100 === 99) await b.cache.flush();
  }
  await b.cache.ack(Array.from({ length: 500 }, (_, i) => BigInt(i + 1)));
  assert.equal((await b.cache.scan({ order: 'oldest_first', limit: 5000 })).length, 1500);
  const one = (await b.cache.scan({ order: 'newest_first', limit: 1 }))[0];
  assert.ok(Buffer.from(one.payload).includes(Buffer.from(marker)));
  await b.cache.close();

  const files = filesUnder(t.dir).map((f) => f.slice(t.dir.length + 1));
  assert.ok(files.some((f) => f.endsWith('.sst')), `expected SST files, got ${files.join(' ')}`);
  assert.ok(files.some((f) => f.endsWith('.log')), 'expected a WAL file');
  assert.ok(files.some((f) => f.startsWith('MANIFEST-')), 'expected a MANIFEST');
  const needles: Buffer[] = [Buffer.from(marker), Buffer.from(marker, 'utf16le'), Buffer.from('SELECT * FROM accounts')];
  for (const k of [oldKey, key]) needles.push(k, Buffer.from(k.toString('hex')), Buffer.from(k.toString('base64')));
  assert.deepEqual(filesContaining(t.dir, needles), []);
});
