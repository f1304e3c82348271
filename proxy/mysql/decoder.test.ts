import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DecodeResult, PacketDecoder, SeqCounter, Want, maxBuffered, type PacketSink } from './decoder.js';
import { MAX_PACKET_PAYLOAD } from './packets.js';
import * as B from './test-builders.js';

/** Records every callback as a string; skips rows (first byte 'r'), delivers everything else up to `cap`. */
class Recorder implements PacketSink {
  readonly out: string[] = [];
  peekFirst = true;
  cap = 1 << 20;
  wants(first: number, length: number, seq: number): number {
    this.out.push(`head ${first} ${length} ${seq}`);
    return first === 0x72 ? Want.Skip : this.cap;
  }
  onPacket(seq: number, buf: Buffer, start: number, end: number): boolean {
    this.out.push(`packet ${seq} ${end - start} ${end - start <= 16 ? buf.toString('hex', start, end) : buf.toString('hex', start, start + 8)}`);
    return true;
  }
  onSkipped(first: number, bytes: number, more: boolean): void {
    this.out.push(`skip ${first} ${bytes} ${more}`);
  }
  onDecodeError(reason: string, detail: string): void {
    this.out.push(`error ${reason} ${detail}`);
  }
}

function decode(chunks: Buffer[], prepare?: (r: Recorder) => void): { out: string[]; results: DecodeResult[]; d: PacketDecoder } {
  const rec = new Recorder();
  prepare?.(rec);
  const d = new PacketDecoder(rec, new SeqCounter());
  const results = chunks.map((c) => d.push(c));
  return { out: rec.out, results, d };
}

/** Every way to cut `stream` in two, plus one byte at a time. */
function chunkings(stream: Buffer): Buffer[][] {
  const all: Buffer[][] = [[stream]];
  for (let k = 1; k < stream.length; k++) all.push([stream.subarray(0, k), stream.subarray(k)]);
  all.push(Array.from(stream, (_, i) => stream.subarray(i, i + 1)));
  return all;
}

const stream = Buffer.concat([B.query('SELECT 1'), B.packets(1, Buffer.from('row one')), B.packets(2, Buffer.from('row two, longer')), B.ok(3, { affected: 2 }), B.ping(), B.err(1, 1064, '42000', 'syntax')]);

describe('MySQL packet decoder', () => {
  it('frames whole packets as views, skips by length, the same at every split', () => {
    const whole = decode([stream]).out;
    assert.deepEqual(whole, [
      'head 3 9 0',
      'packet 0 9 0353454c4543542031',
      'head 114 7 1',
      'skip 114 7 false',
      'head 114 15 2',
      'skip 114 15 false',
      'head 0 7 3',
      'packet 3 7 00020002000000',
      'head 14 1 0',
      'packet 0 1 0e',
      'head 255 15 1',
      'packet 1 15 ff280423343230303073796e746178',
    ]);
    for (const chunks of chunkings(stream)) {
      const r = decode(chunks);
      assert.deepEqual(r.out, whole, `chunks ${chunks.map((c) => c.length).join('+')}`);
      assert.equal(r.results[r.results.length - 1], DecodeResult.Ready);
      assert.equal(r.d.bufferedBytes <= 64 * 1024, true);
    }
  });

  it('without peeking the first byte, an empty packet is a packet (LOAD DATA end, empty auth data)', () => {
    const s = Buffer.concat([B.packets(2, Buffer.from('abc')), B.packets(3, Buffer.alloc(0))]);
    for (const chunks of chunkings(s)) {
      assert.deepEqual(decode(chunks, (r) => (r.peekFirst = false)).out, ['head -1 3 2', 'packet 2 3 616263', 'head -1 0 3', 'packet 3 0 ']);
    }
  });

  it('a message of 16 MiB and more is joined from its packets (and an exact multiple ends with an empty packet)', () => {
    for (const size of [MAX_PACKET_PAYLOAD + 10, MAX_PACKET_PAYLOAD, 2 * MAX_PACKET_PAYLOAD + 1]) {
      const payload = Buffer.alloc(size, 0x41);
      payload[0] = 0x03;
      payload[size - 1] = 0x5a;
      const wire = Buffer.concat([B.packets(0, payload), B.ping()]);
      const rec: string[] = [];
      let got: Buffer | null = null;
      const sink: PacketSink = {
        peekFirst: true,
        wants: (first, length, seq) => (rec.push(`head ${first} ${length} ${seq}`), 64 * 1024 * 1024),
        onPacket: (seq, buf, start, end) => {
          if (end - start > 1) got = Buffer.from(buf.subarray(start, end));
          rec.push(`packet ${seq} ${end - start}`);
          return true;
        },
        onSkipped: () => undefined,
        onDecodeError: (reason) => void rec.push(`error ${reason}`),
      };
      const d = new PacketDecoder(sink, new SeqCounter());
      for (let i = 0; i < wire.length; i += 1 << 20) d.push(wire.subarray(i, i + (1 << 20)));
      const packets = Math.floor(size / MAX_PACKET_PAYLOAD) + 1;
      assert.deepEqual(rec, ['head 3 16777215 0', `packet ${packets - 1} ${size}`, 'head 14 1 0', 'packet 0 1'], `size ${size}`);
      assert.ok(got !== null && (got as Buffer).equals(payload));
      assert.equal(d.bufferedBytes <= 64 * 1024, true, 'the joined message is released');
    }
  });

  it('a skipped message of 16 MiB and more is skipped packet by packet, never buffered', () => {
    const row = Buffer.alloc(MAX_PACKET_PAYLOAD + 100, 0x72);
    const wire = Buffer.concat([B.packets(1, row), B.ok(3)]);
    const r = decode(Array.from({ length: Math.ceil(wire.length / 65536) }, (_, i) => wire.subarray(i * 65536, (i + 1) * 65536)));
    assert.deepEqual(r.out, ['head 114 16777215 1', 'skip 114 16777215 false', 'skip 114 100 true', 'head 0 7 3', 'packet 3 7 00000002000000']);
    assert.ok(r.d.bufferedBytes <= 64 * 1024);
  });

  it('caps: a message over the cap is refused at its header, before anything is buffered', () => {
    const r = decode([B.query('x'.repeat(1000)).subarray(0, 10)], (rec) => (rec.cap = 100));
    assert.deepEqual(r.out.slice(-1), ['error oversized_message message of 1001+ bytes over the 100-byte cap']);
    assert.equal(r.results[0], DecodeResult.OutOfSync);
    assert.equal(r.d.bufferedBytes, 0);
  });

  it('a joined message over the cap stops at the continuation that crosses it', () => {
    const payload = Buffer.alloc(MAX_PACKET_PAYLOAD + 50, 0x41);
    const r = decode([B.packets(0, payload)], (rec) => (rec.cap = MAX_PACKET_PAYLOAD + 10));
    assert.match(r.out[r.out.length - 1]!, /^error oversized_message/);
  });

  it('an empty packet where a message is expected, and a continuation with the wrong sequence id, stop decoding', () => {
    assert.deepEqual(decode([Buffer.from([0, 0, 0, 0, 0x0e])]).out, ['error bad_length empty packet where a message was expected']);
    const head = B.packets(0, Buffer.alloc(MAX_PACKET_PAYLOAD + 1, 0x41)).subarray(0, 4 + MAX_PACKET_PAYLOAD);
    const bad = Buffer.concat([head, Buffer.from([1, 0, 0, 7, 0x41])]);
    assert.match(decode([bad], (rec) => (rec.cap = 64 << 20)).out.slice(-1)[0]!, /^error out_of_sync continuation packet with sequence 7 after 0/);
  });

  it('the shared sequence counter follows both directions', () => {
    const seq = new SeqCounter();
    const sink = new Recorder();
    const c = new PacketDecoder(sink, seq);
    const s = new PacketDecoder(sink, seq);
    c.push(B.query('SELECT 1'));
    assert.equal(seq.next, 1);
    s.push(B.resultSet(1, ['a'], [['1']]));
    assert.equal(seq.next, 6);
  });

  it('maxBuffered: one packet plus a joined message up to the cap', () => {
    assert.equal(maxBuffered(64 * 1024), 64 * 1024 + 5);
    assert.equal(maxBuffered(64 * 1024 * 1024), MAX_PACKET_PAYLOAD + 5 + 64 * 1024 * 1024);
  });
});
