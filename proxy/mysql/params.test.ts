import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { WireReader } from '../wire/reader.js';
import { Type } from './packets.js';
import { ExecuteHead, parseExecute, readValue, renderBytes } from './params.js';
import * as B from './test-builders.js';

const require = createRequire(import.meta.url);
/** mysql2's own COM_STMT_EXECUTE serializer: the oracle for what a real client sends. */
const Execute = require(join(dirname(require.resolve('mysql2')), 'lib/packets/execute.js')) as new (id: number, params: unknown[], charset: number, tz: string) => { toPacket(): { buffer: Buffer } };

function values(payload: Buffer, nParams: number, types: Buffer | null = null, longData: Map<number, number> | null = null): { params: string[] | null | undefined; head: ExecuteHead } {
  const head = new ExecuteHead();
  const r = new WireReader().reset(payload, 1, payload.length);
  return { params: parseExecute(r, nParams, types, longData, true, 64, head), head };
}

const one = (type: number, value: Buffer, unsigned = false): string | undefined => readValue(new WireReader().reset(value, 0, value.length), type, unsigned, 64);

describe('COM_STMT_EXECUTE parameters', () => {
  it('what mysql2 sends: numbers, strings, NULL, booleans, dates, buffers, JSON', () => {
    const pkt = new Execute(7, [1, 'x', null, 1.5, true, new Date(Date.UTC(2026, 0, 2, 3, 4, 5)), Buffer.from([1, 2]), { a: 1 }], 45, 'Z').toPacket().buffer.subarray(4);
    const { params, head } = values(pkt, 8);
    assert.equal(head.statementId, 7);
    assert.deepEqual(params, ['1', 'x', 'NULL', '1.5', '1', '2026-01-02 03:04:05.000000', '\\x0102', '{"a":1}']);
    assert.equal(head.types!.length, 16, 'types kept for executes that do not rebind');
  });

  it('every column type of the binary protocol, signed and unsigned', () => {
    const cases: [number, Buffer, boolean, string][] = [
      [Type.Tiny, B.V.tiny(-1), false, '-1'],
      [Type.Tiny, B.V.tiny(255), true, '255'],
      [Type.Short, B.V.short(-2), false, '-2'],
      [Type.Year, B.V.short(2026), false, '2026'],
      [Type.Short, B.V.short(65535), true, '65535'],
      [Type.Long, B.V.long(-3), false, '-3'],
      [Type.Int24, B.V.long(70000), false, '70000'],
      [Type.Long, B.V.long(0xffffffff), true, '4294967295'],
      [Type.LongLong, B.V.longlong(-9007199254740993n), false, '-9007199254740993'],
      [Type.LongLong, B.V.longlong(-1n), true, '18446744073709551615'],
      [Type.Float, B.V.float(0.5), false, '0.5'],
      [Type.Double, B.V.double(-1.25), false, '-1.25'],
      [Type.Null, Buffer.alloc(0), false, 'NULL'],
      [Type.Date, B.V.datetime(2026, 3, 4), false, '2026-03-04'],
      [Type.DateTime, B.V.datetime(2026, 3, 4), false, '2026-03-04 00:00:00'],
      [Type.DateTime, B.V.datetime(2026, 3, 4, 5, 6, 7), false, '2026-03-04 05:06:07'],
      [Type.Timestamp, B.V.datetime(2026, 3, 4, 5, 6, 7, 89), false, '2026-03-04 05:06:07.000089'],
      [Type.DateTime, B.V.zeroDate(), false, '0000-00-00 00:00:00'],
      [Type.Time, B.V.time(false, 1, 2, 3, 4), false, '26:03:04'],
      [Type.Time, B.V.time(true, 0, 2, 3, 4, 500000), false, '-02:03:04.500000'],
      [Type.Time, B.V.zeroDate(), false, '00:00:00'],
      [Type.NewDecimal, B.V.str('12.50'), false, '12.50'],
      [Type.Decimal, B.V.str('-1'), false, '-1'],
      [Type.VarChar, B.V.str('é'), false, 'é'],
      [Type.VarString, B.V.str('abc'), false, 'abc'],
      [Type.String, B.V.str(''), false, ''],
      [Type.Enum, B.V.str('red'), false, 'red'],
      [Type.Set, B.V.str('a,b'), false, 'a,b'],
      [Type.Json, B.V.str('[1]'), false, '[1]'],
      [Type.Bit, B.V.str(Buffer.from([5])), false, '\\x05'],
      [Type.TinyBlob, B.V.str('t'), false, 't'],
      [Type.MediumBlob, B.V.str(Buffer.from([0xff])), false, '\\xff'],
      [Type.LongBlob, B.V.str('l'), false, 'l'],
      [Type.Blob, B.V.str(Buffer.from([0, 1])), false, '\\x0001'],
      [Type.Geometry, B.V.str(Buffer.from([0, 0, 0, 0, 1])), false, '\\x0000000001'],
    ];
    for (const [type, value, unsigned, want] of cases) assert.equal(one(type, value, unsigned), want, `type 0x${type.toString(16)}`);
    assert.equal(one(0x42, Buffer.from([1])), undefined, 'unknown type');
    assert.equal(one(Type.Date, Buffer.from([5, 1, 2, 3, 4, 5])), undefined, 'bad date length');
    assert.equal(one(Type.Long, Buffer.from([1, 2])), undefined, 'past the end');
  });

  it('the NULL bitmap over more than 8 parameters, and types reused when new_params_bound is 0', () => {
    const params = Array.from({ length: 10 }, (_, i): B.Param => ({ type: Type.Long, value: i % 3 === 0 ? null : B.V.long(i) }));
    const first = values(B.execute(1, params).subarray(4), 10);
    assert.deepEqual(first.params, ['NULL', '1', '2', 'NULL', '4', '5', 'NULL', '7', '8', 'NULL']);
    const again = values(B.execute(1, params, false).subarray(4), 10, first.head.types);
    assert.deepEqual(again.params, first.params);
    assert.equal(values(B.execute(1, params, false).subarray(4), 10, null).params, undefined, 'values without types cannot be read');
  });

  it('long data parameters carry no value in the packet', () => {
    const pkt = B.execute(1, [{ type: Type.Blob, value: Buffer.alloc(0) }, { type: Type.Long, value: B.V.long(9) }]).subarray(4); // the blob's value is absent
    assert.deepEqual(values(pkt, 2, null, new Map([[0, 3000]])).params, ['<long data: 3000 bytes>', '9']);
  });

  it('values are cut at a UTF-8 boundary; binary shown as hex, cut too', () => {
    const s = Buffer.from('ééééé');
    assert.equal(renderBytes(s, 0, s.length, 5), 'éé');
    assert.equal(renderBytes(Buffer.alloc(100, 0xff), 0, 100, 10), '\\xffffffff');
  });
});
