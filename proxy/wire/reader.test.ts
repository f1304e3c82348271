import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WireReader } from './reader.js';

describe('wire reader', () => {
  it('reads int16, int32, bytes and C strings in order', () => {
    const b = Buffer.from([0, 7, 0xff, 0xff, 0xff, 0xfe, 0x61, 0x62, 0, 9]);
    const r = new WireReader().reset(b, 0, b.length);
    assert.equal(r.int16(), 7);
    assert.equal(r.int32(), -2);
    assert.equal(r.cstring(), 'ab');
    assert.equal(r.uint8(), 9);
    assert.ok(r.atEnd);
  });

  it('read_null_terminated_string_oob: no NUL before the end fails without throwing', () => {
    const b = Buffer.from('abc\0def\0', 'latin1');
    const r = new WireReader().reset(b, 0, 3); // the NUL at 3 lies outside the frame view
    assert.equal(r.cstring(), '');
    assert.equal(r.ok, false);
  });

  it('int32_past_end fails and later reads keep failing', () => {
    const r = new WireReader().reset(Buffer.from([1, 2, 3]), 0, 3);
    assert.equal(r.int32(), 0);
    assert.equal(r.ok, false);
    assert.equal(r.int16(), 0);
    assert.equal(r.uint8(), 0);
    assert.equal(r.cstringEnd(), -1);
    assert.equal(r.skip(0), -1);
    assert.equal(r.remaining, 0);
  });

  it('int16_past_end_of_view inside a larger buffer', () => {
    const b = Buffer.from([0, 1, 0, 2]);
    const r = new WireReader().reset(b, 0, 3);
    assert.equal(r.int16(), 1);
    assert.equal(r.int16(), 0);
    assert.equal(r.ok, false);
  });

  it('negative_or_oversized_skip fails', () => {
    const r = new WireReader().reset(Buffer.alloc(4), 0, 4);
    assert.equal(r.skip(-1), -1);
    assert.equal(r.ok, false);
    assert.equal(new WireReader().reset(Buffer.alloc(4), 0, 4).skip(5), -1);
  });

  it('view_end_past_buffer is clamped', () => {
    const r = new WireReader().reset(Buffer.from([0, 0, 0, 5]), 0, 100);
    assert.equal(r.int32(), 5);
    assert.equal(r.int32(), 0);
    assert.equal(r.ok, false);
  });

  it('a reader is reusable after a failure', () => {
    const r = new WireReader();
    r.reset(Buffer.alloc(1), 0, 1).int32();
    assert.equal(r.ok, false);
    r.reset(Buffer.from([0, 3]), 0, 2);
    assert.equal(r.int16(), 3);
    assert.ok(r.atEnd);
  });
});
