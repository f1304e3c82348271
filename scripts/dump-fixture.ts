// Prints the frames of a captured fixture, one line each, in arrival order.
//
//   node --import tsx scripts/dump-fixture.ts test/fixtures/postgres/psql-session [--max 200]
//
// PostgreSQL: type char + length (the untyped startup-phase messages of the
// client: SSLRequest, StartupMessage, CancelRequest, GSSENCRequest; the
// server's one-byte SSL answer). MySQL: 3-byte length + sequence id, and the
// first payload byte. Only framing: this is a look at the bytes, not a decoder.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { ChunksFile } from './capture.js';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { max: { type: 'string', default: '400' } } });
const prefix = positionals[0];
if (prefix === undefined) {
  process.stderr.write('usage: dump-fixture.ts PREFIX [--max N]\n');
  process.exit(2);
}
const isMysql = prefix.includes('/mysql/');
const client = readFileSync(`${prefix}.client.bin`);
const server = readFileSync(`${prefix}.server.bin`);
const chunks = (JSON.parse(readFileSync(`${prefix}.chunks.json`, 'utf8')) as ChunksFile).chunks;
const max = Number(values.max);

function printable(b: Buffer): string {
  return b.toString('latin1').replace(/[^\x20-\x7e]/g, '.').slice(0, 80);
}

// Walk frames per direction, printing a frame once all of its bytes arrived.
const pos = { c: 0, s: 0 };
const avail = { c: 0, s: 0 };
let clientStarted = false;
let sslAnswerPending = false;
let lines = 0;

function nextFrame(dir: 'c' | 's'): { label: string; len: number } | undefined {
  const buf = dir === 'c' ? client : server;
  const at = pos[dir];
  const left = avail[dir] - at;
  if (isMysql) {
    if (left < 4) return undefined;
    const len = buf.readUIntLE(at, 3);
    if (left < 4 + len) return undefined;
    const first = len > 0 ? buf[at + 4]!.toString(16).padStart(2, '0') : '--';
    return { label: `seq=${buf[at + 3]} len=${len} first=0x${first} ${printable(buf.subarray(at + 4, at + 4 + Math.min(len, 60)))}`, len: 4 + len };
  }
  if (dir === 's' && sslAnswerPending) {
    if (left < 1) return undefined;
    sslAnswerPending = false;
    return { label: `SSL answer '${String.fromCharCode(buf[at]!)}'`, len: 1 };
  }
  if (dir === 'c' && !clientStarted) {
    if (left < 8) return undefined;
    const len = buf.readInt32BE(at);
    if (left < len) return undefined;
    const code = buf.readInt32BE(at + 4);
    const name =
      code === 80877103 ? 'SSLRequest' : code === 80877104 ? 'GSSENCRequest' : code === 80877102 ? 'CancelRequest' : `StartupMessage v${code >> 16}.${code & 0xffff}`;
    if (code === 80877103 || code === 80877104) sslAnswerPending = true;
    else clientStarted = true;
    return { label: `${name} len=${len} ${printable(buf.subarray(at + 8, at + len))}`, len };
  }
  if (left < 5) return undefined;
  const len = buf.readInt32BE(at + 1);
  if (left < 1 + len) return undefined;
  return { label: `'${String.fromCharCode(buf[at]!)}' len=${len} ${printable(buf.subarray(at + 5, at + 1 + Math.min(len, 64)))}`, len: 1 + len };
}

for (const ch of chunks) {
  avail[ch.dir] = ch.offset + ch.length;
  for (let f = nextFrame(ch.dir); f !== undefined; f = nextFrame(ch.dir)) {
    pos[ch.dir] += f.len;
    if (lines++ < max) process.stdout.write(`${ch.dir === 'c' ? 'C→S' : 'S→C'} ${f.label}\n`);
  }
}
if (lines > max) process.stdout.write(`… ${lines - max} more frames\n`);
for (const d of ['c', 's'] as const) {
  const total = d === 'c' ? client.length : server.length;
  if (pos[d] !== total) process.stdout.write(`${d}: ${total - pos[d]} trailing bytes not framed\n`);
}
