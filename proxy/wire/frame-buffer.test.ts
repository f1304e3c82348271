import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FRAME_STOP, FrameBuffer, FrameStatus, RETAIN_BYTES, frameSkip, type FrameHandler } from './frame-buffer.js';

/** Frames: 1 type byte + int32 total-minus-1 length (PostgreSQL style). 'D' is skipped, 'X' stops, others delivered. */
class TestHandler implements FrameHandler {
  headerSize = 5;
  tail = 0;
  readonly frames: { type: string; body: string; view: boolean }[] = [];
  readonly skipped: number[] = [];
  chunk: Buffer | null = null;
  cap = 1 << 20;
  onHeader(buf: Buffer, at: number): number {
    const type = String.fromCharCode(buf[at]);
    const body = buf.readInt32BE(at + 1) - 4;
    if (type === 'X' || body < 0 || body + 5 > this.cap) return FRAME_STOP;
    if (type === 'D') {
      this.skipped.push(body);
      return frameSkip(body);
    }
    return body;
  }
  onFrame(buf: Buffer, start: number, end: number): boolean {
    this.frames.push({ type: String.fromCharCode(buf[start]), body: buf.toString('latin1', start + 5, end), view: buf === this.chunk });
    return buf[start] !== 0x21; // '!' stops after delivery
  }
}

function frame(type: string, body: string): Buffer {
  const b = Buffer.alloc(5 + body.length);
  b.write(type, 0, 'latin1');
  b.writeInt32BE(4 + body.length, 1);
  b.write(body, 5, 'latin1');
  return b;
}

function feed(h: TestHandler, fb: FrameBuffer, chunks: Buffer[]): FrameStatus[] {
  return chunks.map((c) => {
    h.chunk = c;
    return fb.push(c);
  });
}

describe('frame buffer', () => {
  const stream = Buffer.concat([frame('Q', 'hello'), frame('D', 'row-data-skipped'), frame('C', ''), frame('D', ''), frame('P', 'x'.repeat(300))]);

  it('whole frames are views of the chunk, not copies', () => {
    const h = new TestHandler();
    const fb = new FrameBuffer(h);
    assert.deepEqual(feed(h, fb, [stream]), [FrameStatus.Ready]);
    assert.deepEqual(h.frames.map((f) => [f.type, f.body.length, f.view]), [['Q', 5, true], ['C', 0, true], ['P', 300, true]]);
    assert.deepEqual(h.skipped, [16, 0]);
    assert.equal(fb.bufferedBytes, 0);
  });

  it('the same frames at every split and one byte at a time', () => {
    const ref = new TestHandler();
    feed(ref, new FrameBuffer(ref), [stream]);
    const splits: Buffer[][] = [];
    for (let k = 1; k < stream.length; k++) splits.push([stream.subarray(0, k), stream.subarray(k)]);
    splits.push(Array.from(stream, (_, i) => stream.subarray(i, i + 1)));
    for (const chunks of splits) {
      const h = new TestHandler();
      const fb = new FrameBuffer(h);
      const st = feed(h, fb, chunks);
      assert.deepEqual(h.frames.map((f) => [f.type, f.body]), ref.frames.map((f) => [f.type, f.body]));
      assert.deepEqual(h.skipped, ref.skipped);
      assert.equal(st.at(-1), FrameStatus.Ready);
      assert.equal(fb.partial, false);
    }
  });

  it('a split frame is copied once into a buffer of its exact size (large) and released when drained', () => {
    const big = frame('Q', 'y'.repeat(RETAIN_BYTES * 2));
    const h = new TestHandler();
    const fb = new FrameBuffer(h);
    assert.equal(feed(h, fb, [big.subarray(0, 1000)])[0], FrameStatus.NeedMore);
    assert.equal(fb.bufferedBytes, big.length);
    assert.equal(fb.partial, true);
    feed(h, fb, [big.subarray(1000)]);
    assert.equal(h.frames[0].body.length, RETAIN_BYTES * 2);
    assert.equal(h.frames[0].view, false);
    assert.equal(fb.bufferedBytes, 0, 'dropped to empty');
  });

  it('small split frames reuse a buffer that grows x2 and stays bounded', () => {
    const h = new TestHandler();
    const fb = new FrameBuffer(h);
    for (const n of [10, 100, 1000, 5000]) {
      const f = frame('Q', 'z'.repeat(n));
      feed(h, fb, [f.subarray(0, 3), f.subarray(3)]);
    }
    assert.equal(h.frames.length, 4);
    assert.ok(fb.bufferedBytes >= 5005 && fb.bufferedBytes <= RETAIN_BYTES);
    const sizes = fb.bufferedBytes;
    assert.equal(sizes & (sizes - 1), 0, 'a power of two');
  });

  it('skips a body across many chunks without buffering it', () => {
    const h = new TestHandler();
    const fb = new FrameBuffer(h);
    const head = Buffer.alloc(5);
    head.write('D', 0, 'latin1');
    head.writeInt32BE(4 + 1_000_000, 1);
    feed(h, fb, [head]);
    for (let i = 0; i < 100; i++) assert.equal(feed(h, fb, [Buffer.alloc(10_000)])[0], i < 99 ? FrameStatus.NeedMore : FrameStatus.Ready);
    assert.ok(fb.bufferedBytes <= 64);
    feed(h, fb, [frame('C', 'ok')]);
    assert.deepEqual(h.frames.map((f) => f.body), ['ok']);
  });

  it('a header split in the middle is held in a small buffer', () => {
    const h = new TestHandler();
    const fb = new FrameBuffer(h);
    const f = frame('C', 'abc');
    assert.deepEqual(feed(h, fb, [f.subarray(0, 2), f.subarray(2, 4), f.subarray(4)]), [FrameStatus.NeedMore, FrameStatus.NeedMore, FrameStatus.Ready]);
    assert.equal(h.frames[0].body, 'abc');
    assert.ok(fb.bufferedBytes <= 64);
  });

  it('stop from onHeader or onFrame: later pushes are ignored and the buffer is released', () => {
    const h = new TestHandler();
    const fb = new FrameBuffer(h);
    assert.deepEqual(feed(h, fb, [Buffer.concat([frame('!', ''), frame('Q', 'never')])]), [FrameStatus.Stopped]);
    assert.deepEqual(feed(h, fb, [frame('Q', 'never')]), [FrameStatus.Stopped]);
    assert.equal(h.frames.length, 1);
    const h2 = new TestHandler();
    const fb2 = new FrameBuffer(h2);
    const x = frame('X', '');
    feed(h2, fb2, [x.subarray(0, 2)]);
    assert.deepEqual(feed(h2, fb2, [x.subarray(2)]), [FrameStatus.Stopped]);
    assert.equal(fb2.bufferedBytes, 0);
  });

  it('a declared length over the cap stops before anything is buffered', () => {
    const h = new TestHandler();
    h.cap = 1000;
    const fb = new FrameBuffer(h);
    const head = Buffer.alloc(5);
    head.write('Q', 0, 'latin1');
    head.writeInt32BE(1 << 30, 1);
    assert.deepEqual(feed(h, fb, [Buffer.concat([head, Buffer.alloc(100)])]), [FrameStatus.Stopped]);
    assert.equal(fb.bufferedBytes, 0);
  });

  it('the header size may change between frames (startup → typed)', () => {
    const h = new TestHandler();
    const fb = new FrameBuffer({
      get headerSize() {
        return h.frames.length === 0 ? 1 : 5;
      },
      onHeader: (buf, at) => (h.frames.length === 0 ? 0 : h.onHeader(buf, at)),
      onFrame: (buf, start, end) => {
        if (h.frames.length === 0) {
          h.frames.push({ type: 'answer', body: String.fromCharCode(buf[start]), view: false });
          return true;
        }
        return h.onFrame(buf, start, end);
      },
    });
    fb.push(Buffer.concat([Buffer.from('N'), frame('R', 'ok')]));
    assert.deepEqual(h.frames.map((f) => f.body), ['N', 'ok']);
  });
});
