import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { serialize } from 'pg-protocol';
import { Parser } from 'pg-protocol/dist/parser.js';
import { DEFAULT_LIMITS, DecodeResult, PgDecoder, maxBuffered, type PgFrameSink, type PgLimits } from './decoder.js';
import { StartupCode } from './messages.js';
import * as B from './test-builders.js';

/** Records every callback as a string, copying nothing but what it prints. */
class Recorder implements PgFrameSink {
  readonly out: string[] = [];
  onStartup(code: number, buf: Buffer, start: number, end: number): boolean {
    this.out.push(`startup ${code} ${end - start}`);
    return true;
  }
  onMessage(type: number, buf: Buffer, bodyStart: number, end: number): boolean {
    this.out.push(`${String.fromCharCode(type)} ${buf.toString('hex', bodyStart, end)}`);
    return true;
  }
  onSkipped(type: number, bodyBytes: number): boolean {
    this.out.push(`skip ${String.fromCharCode(type)} ${bodyBytes}`);
    return true;
  }
  onAnswer(byte: number): boolean {
    this.out.push(`answer ${String.fromCharCode(byte)}`);
    return true;
  }
  onDecodeError(reason: string, detail: string): void {
    this.out.push(`error ${reason} ${detail}`);
  }
}

function decode(side: 'client' | 'server', chunks: Buffer[], limits?: PgLimits, prepare?: (d: PgDecoder) => void): { out: string[]; results: DecodeResult[]; decoder: PgDecoder } {
  const rec = new Recorder();
  const d = new PgDecoder(side, rec, limits);
  prepare?.(d);
  const results = chunks.map((c) => d.push(c));
  return { out: rec.out, results, decoder: d };
}

/** Every way to cut `stream` in two, plus one byte at a time. */
function chunkings(stream: Buffer): Buffer[][] {
  const all: Buffer[][] = [[stream]];
  for (let k = 1; k < stream.length; k++) all.push([stream.subarray(0, k), stream.subarray(k)]);
  all.push(Array.from(stream, (_, i) => stream.subarray(i, i + 1)));
  return all;
}

const clientStream = Buffer.concat([
  serialize.startup({ user: 'alice', database: 'db' }),
  serialize.query('select 1'),
  serialize.parse({ name: 's1', text: 'select $1', types: [23] }),
  serialize.bind({ statement: 's1', values: ['1', null] }),
  serialize.describe({ type: 'P' }),
  serialize.execute({ rows: 10 }),
  serialize.flush(),
  serialize.sync(),
  serialize.close({ type: 'S', name: 's1' }),
  serialize.copyData(Buffer.from('1\t2\n')),
  serialize.copyDone(),
  serialize.copyFail('nope'),
  serialize.password('secret'),
  serialize.end(),
]);

describe('postgres decoder', () => {
  it('builders match pg-protocol serialize byte for byte', () => {
    assert.deepEqual(B.query('select 1'), serialize.query('select 1'));
    assert.deepEqual(B.parse('s1', 'select $1', [23]), serialize.parse({ name: 's1', text: 'select $1', types: [23] }));
    assert.deepEqual(B.bind('p', 's1', ['1', null], [0]), serialize.bind({ portal: 'p', statement: 's1', values: ['1', null] }));
    assert.deepEqual(B.execute('p', 5), serialize.execute({ portal: 'p', rows: 5 }));
    assert.deepEqual(B.describe('S', 'x'), serialize.describe({ type: 'S', name: 'x' }));
    assert.deepEqual(B.close('P', 'x'), serialize.close({ type: 'P', name: 'x' }));
    assert.deepEqual(B.sync(), serialize.sync());
    assert.deepEqual(B.flush(), serialize.flush());
    assert.deepEqual(B.terminate(), serialize.end());
    assert.deepEqual(B.copyDone(), serialize.copyDone());
    assert.deepEqual(B.copyFail('x'), serialize.copyFail('x'));
    assert.deepEqual(B.sslRequest(), serialize.requestSsl());
    assert.deepEqual(B.cancelRequest(7, 9), serialize.cancel(7, 9));
    assert.deepEqual(B.startup({ user: 'u', database: 'd', client_encoding: 'UTF8' }), serialize.startup({ user: 'u', database: 'd' }));
  });

  it('client stream from pg-protocol: the same frames at every split', () => {
    const expected = decode('client', [clientStream]).out;
    assert.equal(expected.length, 14);
    assert.match(expected[0], /^startup 196608 /);
    assert.deepEqual(expected.slice(1).map((l) => l.split(' ')[0]), ['Q', 'P', 'B', 'D', 'E', 'H', 'S', 'C', 'skip', 'c', 'f', 'p', 'X']);
    for (const chunks of chunkings(clientStream)) {
      const r = decode('client', chunks);
      assert.deepEqual(r.out, expected);
      assert.equal(r.results.at(-1), DecodeResult.Ready);
    }
  });

  it('server stream: the same messages and lengths as pg-protocol Parser, at every split', () => {
    const stream = Buffer.concat([
      B.authSasl(), B.authSaslContinue('r=1'), B.authSaslFinal('v=1'), B.authOk(), B.parameterStatus('a', 'b'), B.backendKeyData(1, 2), B.readyForQuery(),
      B.rowDescription(['a', 'b']), B.dataRow(['1', null]), B.dataRow(['x', 'y']), B.commandComplete('SELECT 2'),
      B.parseComplete(), B.bindComplete(), B.parameterDescription([23]), B.noData(), B.portalSuspended(), B.closeComplete(), B.emptyQuery(),
      B.copyInResponse(2), B.copyOutResponse(1), B.copyData('z'), B.copyDone(), B.noticeResponse('n'), B.notification(1, 'c', 'p'),
      B.errorResponse('42P01', 'missing'), B.functionCallResponse('v'), B.readyForQuery('T'),
    ]);
    const oracle: string[] = [];
    new Parser().parse(Buffer.from(stream), (m) => oracle.push(`${m.length}`));
    for (const chunks of chunkings(stream)) {
      const r = decode('server', chunks);
      const lengths = r.out.map((l) => {
        const [kind, a, b] = l.split(' ');
        return kind === 'skip' ? String(Number(b) + 4) : String(b === undefined ? a.length / 2 + 4 : 0);
      });
      assert.deepEqual(lengths, oracle);
    }
  });

  it('skips DataRow, CopyData, RowDescription and notices by length; parses the rest', () => {
    const r = decode('server', [Buffer.concat([B.rowDescription(['a']), B.dataRow(['1']), B.copyData('zz'), B.noticeResponse('n'), B.commandComplete('SELECT 1')])]);
    assert.deepEqual(r.out.map((l) => l.split(' ').slice(0, 2).join(' ')), ['skip T', 'skip D', 'skip d', 'skip N', `C ${Buffer.from('SELECT 1\0').toString('hex')}`]);
  });

  it('startup phase: SSLRequest, GSSENCRequest, then the StartupMessage switches to typed messages', () => {
    const r = decode('client', [Buffer.concat([B.sslRequest(), B.gssEncRequest(), B.startup({ user: 'u' }), B.sync()])]);
    assert.deepEqual(r.out.map((l) => l.split(' ').slice(0, 2).join(' ')), [`startup ${StartupCode.SSLRequest}`, `startup ${StartupCode.GSSENCRequest}`, `startup ${StartupCode.Protocol3}`, 'S ']);
  });

  it('server answer byte to an encryption request, then typed messages', () => {
    const r = decode('server', [Buffer.concat([Buffer.from('N'), B.authOk()])], undefined, (d) => d.expectAnswer());
    assert.deepEqual(r.out, ['answer N', 'R 00000000']);
  });

  it('CancelRequest closes the stream: nothing may follow', () => {
    const r = decode('client', [B.cancelRequest(5, 6), Buffer.from([1])]);
    assert.deepEqual(r.out, [`startup ${StartupCode.CancelRequest} 16`, 'error out_of_sync data after CancelRequest']);
    assert.deepEqual(r.results, [DecodeResult.Ready, DecodeResult.OutOfSync]);
  });

  it('NeedMore while a frame is incomplete, Ready at a boundary, OutOfSync after an error', () => {
    const q = B.query('select 1');
    const r = decode('client', [B.startup({ user: 'u' }), q.subarray(0, 3), q.subarray(3), Buffer.from('?')]);
    assert.deepEqual(r.results, [DecodeResult.Ready, DecodeResult.NeedMore, DecodeResult.Ready, DecodeResult.NeedMore]);
    assert.deepEqual(decode('client', [Buffer.from([0, 0, 0, 1])]).results, [DecodeResult.OutOfSync]);
  });

  it('caps: a frame of exactly the cap passes; a longer statement message is delivered as its head, the rest skipped, at every split', () => {
    const limits: PgLimits = { ...DEFAULT_LIMITS, statement: 100 };
    const ok = B.query('x'.repeat(100 - 6));
    assert.equal(ok.length, 100);
    assert.deepEqual(decode('client', [B.startup({ user: 'u' }), ok], limits).results, [DecodeResult.Ready, DecodeResult.Ready]);
    const over = B.query('y'.repeat(300));
    const stream = Buffer.concat([over, B.query('z')]);
    for (const chunks of chunkings(stream)) {
      const r = decode('client', [B.startup({ user: 'u' }), ...chunks], limits);
      assert.equal(r.results.at(-1), DecodeResult.Ready);
      assert.deepEqual(r.out.slice(1), [`Q ${Buffer.from('y'.repeat(95)).toString('hex')}`, `Q ${Buffer.from('z\0').toString('hex')}`]);
      assert.ok(r.decoder.bufferedBytes <= 128);
    }
    // A non-statement message over its cap is still refused.
    const limits2: PgLimits = { ...DEFAULT_LIMITS, clientControl: 50 };
    const r2 = decode('client', [B.startup({ user: 'u' }), B.raw('D', Buffer.alloc(60, 0x50))], limits2);
    assert.match(r2.out.at(-1)!, /^error oversized_message /);
  });

  it('the head of a statement message carries the body length it declares (PgDecoder.declared); a whole one -1', () => {
    const seen: number[] = [];
    const sink: PgFrameSink = { onStartup: () => true, onMessage: (): boolean => (seen.push(d.declared), true), onSkipped: () => true, onAnswer: () => true, onDecodeError: () => undefined };
    const d: PgDecoder = new PgDecoder('client', sink, { ...DEFAULT_LIMITS, statement: 100 });
    d.push(Buffer.concat([B.startup({ user: 'u' }), B.query('y'.repeat(300)), B.query('z')]));
    assert.deepEqual(seen, [301, -1]);
  });

  it('the startup cap is PostgreSQL’s 10 000 bytes', () => {
    const big = B.startup({ user: 'u', options: 'x'.repeat(10_000) });
    assert.match(decode('client', [big]).out[0], /^error oversized_message/);
  });

  it('buffered bytes never exceed the largest cap', () => {
    assert.equal(maxBuffered(DEFAULT_LIMITS), DEFAULT_LIMITS.statement);
    assert.equal(maxBuffered({ ...DEFAULT_LIMITS, statement: 5000, error: 100, serverControl: 100, clientControl: 100, startup: 100 }), 8192);
    const r = decode('client', [B.startup({ user: 'u' }), B.header('Q', 1 << 30), Buffer.alloc(70_000)]);
    assert.ok(r.decoder.bufferedBytes <= DEFAULT_LIMITS.statement, 'a 1 GB Query holds at most its head');
  });
});
