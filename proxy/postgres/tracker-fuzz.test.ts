import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EVENT_KINDS } from '../events.js';
import { maxBuffered } from './decoder.js';
import * as B from './test-builders.js';
import { TestSession, summarize, type Step } from './test-session.js';
import { DEFAULT_TRACKER_LIMITS, type TrackerLimits } from './tracker.js';

const cat = Buffer.concat;
/** Small caps so that the bound is reachable by the generated inputs. */
const SMALL: TrackerLimits = { ...DEFAULT_TRACKER_LIMITS, statement: 4096, clientControl: 512, error: 1024, serverControl: 512, startup: 2048, pendingOps: 64, pendingBytes: 16384 };
/** Both directions. */
const BOUND = 2 * maxBuffered(SMALL);

/** Realistic sessions: the fuzz seeds. */
const login: Step[] = [['c', B.startup({ user: 'u', database: 'd', application_name: 'fuzz' })], ['s', cat([B.authSasl(), B.authSaslFinal('v=x'), B.authOk(), B.parameterStatus('TimeZone', 'UTC'), B.backendKeyData(7, 8), B.readyForQuery()])]];
const seeds: Step[][] = [
  [...login, ['c', B.query("select 1; insert into t values ('a'); select 1/0; select 2")], ['s', cat([B.rowDescription(['x']), B.dataRow(['1']), B.commandComplete('SELECT 1'), B.commandComplete('INSERT 0 1'), B.noticeResponse('n'), B.errorResponse('22012', 'div'), B.readyForQuery()])], ['c', B.terminate()]],
  [...login, ['c', cat([B.parse('s', 'select $1'), B.bind('p', 's', ['1', null]), B.describe('P', 'p'), B.execute('p', 1), B.execute('p', 1), B.sync()])], ['s', cat([B.parseComplete(), B.bindComplete(), B.rowDescription(['a']), B.dataRow(['1']), B.portalSuspended(), B.dataRow(['2']), B.commandComplete('SELECT 1'), B.readyForQuery('T')])], ['c', B.query('commit')], ['s', cat([B.commandComplete('COMMIT'), B.readyForQuery()])]],
  [...login, ['c', B.query('copy t from stdin')], ['s', B.copyInResponse(2)], ['c', cat([B.copyData('1\t2\n'), B.copyData('3\t4\n'), B.copyDone()])], ['s', cat([B.commandComplete('COPY 2'), B.notification(1, 'c', 'x'), B.readyForQuery()])], ['c', B.query('copy t to stdout')], ['s', cat([B.copyOutResponse(2), B.copyData('1\t2\n'), B.copyDone(), B.commandComplete('COPY 1'), B.readyForQuery()])]],
  [...login, ['c', cat([B.parse('', 'insert into t values ($1)'), B.bind('', '', ['x']), B.execute(), B.parse('', 'select 2'), B.bind('', ''), B.execute(), B.sync()])], ['s', cat([B.parseComplete(), B.errorResponse('22P02', 'bad'), B.readyForQuery()])], ['c', B.functionCall(42, ['a'])], ['s', cat([B.functionCallResponse('r'), B.readyForQuery()])]],
  [['c', B.sslRequest()], ['s', Buffer.from('N')], login[0], ['s', cat([B.authMd5(), B.errorResponse('28P01', 'bad password', 'FATAL')])]],
  [['c', B.cancelRequest(1234, 5678)]],
];

/** Cuts `buf` at the given fractions (0..1) into pieces. */
function cutAt(buf: Buffer, fractions: number[]): Buffer[] {
  const points = [...new Set(fractions.map((f) => Math.floor(f * buf.length)))].filter((p) => p > 0 && p < buf.length).sort((a, b) => a - b);
  const out: Buffer[] = [];
  let at = 0;
  for (const p of points) {
    out.push(buf.subarray(at, p));
    at = p;
  }
  out.push(buf.subarray(at));
  return out;
}

function rechunk(steps: Step[], fractions: number[][]): Step[] {
  const out: Step[] = [];
  steps.forEach((st, i) => {
    if (st[0] === 't') out.push(st);
    else for (const piece of cutAt(st[1], fractions[i % fractions.length] ?? [])) out.push([st[0], piece]);
  });
  return out;
}

/** Invariants that hold for every input, valid or not. */
function checkInvariants(s: TestSession): void {
  assert.ok(s.maxBuffered <= BOUND, `buffered ${s.maxBuffered} > ${BOUND}`);
  const kinds = s.events.map((e) => e.kind);
  for (const k of kinds) assert.ok(EVENT_KINDS.includes(k), k);
  assert.ok(kinds.filter((k) => k === 'anomaly').length <= 1, 'at most one anomaly');
  assert.ok(!s.anomalies.includes('internal_error'), 'no exception escaped a parser');
  assert.equal(s.anomalies.length, kinds.filter((k) => k === 'anomaly').length);
  const ends = kinds.filter((k) => k === 'session_end').length;
  if (kinds[0] === 'cancel') assert.equal(ends, 0);
  else {
    assert.equal(ends, 1, 'exactly one session_end');
    assert.equal(kinds.at(-1), 'session_end');
    assert.equal(kinds[0], 'session_start');
  }
}

const fractions = fc.array(fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 6 }), { minLength: 1, maxLength: 8 });

describe('postgres tracker: property tests', () => {
  it('any chunking of a realistic session gives the same events as whole delivery', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: seeds.length - 1 }), fractions, (i, fr) => {
        const whole = new TestSession({}, SMALL).run(seeds[i]).end().summary();
        const s = new TestSession({}, SMALL).run(rechunk(seeds[i], fr)).end();
        assert.deepEqual(s.summary(), whole);
        assert.deepEqual(s.anomalies, []);
        checkInvariants(s);
      }),
      { numRuns: 300 },
    );
  });

  it('random bytes from the client never throw, stay bounded and end in one anomaly', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 3000 }), fractions, (bytes, fr) => {
        const s = new TestSession({}, SMALL).run(rechunk([['c', Buffer.from(bytes)]], fr)).end();
        checkInvariants(s);
        assert.equal(s.anomalies.length, 1);
      }),
      { numRuns: 500 },
    );
  });

  it('random bytes from the server after a login never throw and stay bounded', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 3000 }), fractions, (bytes, fr) => {
        const s = new TestSession({}, SMALL).run(rechunk([...login, ['c', B.query('select 1')], ['s', Buffer.from(bytes)]], fr)).end();
        checkInvariants(s);
      }),
      { numRuns: 500 },
    );
  });

  it('random typed frames (valid headers, random bodies) in both directions never throw', () => {
    const frame = fc.tuple(fc.constantFrom(...'QPBDECSHXFdcfp12356ntsIZRKGWVAN'.split('')), fc.uint8Array({ maxLength: 64 })).map(([t, body]) => B.raw(t, Buffer.from(body)));
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), frame), { maxLength: 40 }), fractions, (frames, fr) => {
        const steps: Step[] = [...login, ...frames.map(([client, f]): Step => [client ? 'c' : 's', f])];
        const s = new TestSession({ logParameters: true }, SMALL).run(rechunk(steps, fr)).end();
        checkInvariants(s);
      }),
      { numRuns: 500 },
    );
  });

  it('mutated realistic sessions (flipped, cut, inserted, dropped bytes) never throw and stay bounded', () => {
    const mutation = fc.record({ step: fc.nat(), at: fc.double({ min: 0, max: 1, noNaN: true }), op: fc.constantFrom('flip', 'cut', 'insert', 'drop', 'dup'), byte: fc.integer({ min: 0, max: 255 }), junk: fc.uint8Array({ maxLength: 16 }) });
    fc.assert(
      fc.property(fc.integer({ min: 0, max: seeds.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 5 }), fractions, (i, muts, fr) => {
        const steps = seeds[i].map((st): Step => (st[0] === 't' ? st : [st[0], Buffer.from(st[1])]));
        for (const m of muts) {
          const k = m.step % steps.length;
          const st = steps[k];
          if (st[0] === 't') continue;
          const buf = st[1];
          const at = Math.floor(m.at * buf.length);
          if (m.op === 'flip' && buf.length > 0) buf[Math.min(at, buf.length - 1)] ^= m.byte || 1;
          else if (m.op === 'cut') steps[k] = [st[0], buf.subarray(0, at)];
          else if (m.op === 'insert') steps[k] = [st[0], cat([buf.subarray(0, at), Buffer.from(m.junk), buf.subarray(at)])];
          else if (m.op === 'drop') steps.splice(k, 1);
          else steps.splice(k, 0, st);
          if (steps.length === 0) return;
        }
        for (const opts of [{ redact: 'literals' as const, logParameters: true }, { redact: 'none' as const }]) {
          const s = new TestSession(opts, SMALL).run(rechunk(steps, fr)).end();
          checkInvariants(s);
          for (const e of s.events) assert.doesNotThrow(() => summarize(e));
        }
      }),
      { numRuns: 500 },
    );
  });

  it('a broken stream (unknown message at a frame boundary, or cut inside a frame) ends in exactly one anomaly', () => {
    const bad = fc.constantFrom(...'!#$%&*+/:;<=>?@[]^_`{|}~0789aeghijklmoqruwxyz'.split(''));
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 3 }), bad, fc.boolean(), fc.boolean(), fc.double({ min: 0.01, max: 0.99, noNaN: true }), fractions, (i, type, client, cut, at, fr) => {
        const steps = [...seeds[i]].filter((st) => !(st[0] === 'c' && st[1].equals(B.terminate())));
        if (cut) {
          const last = steps.at(-1)!;
          if (last[0] === 't') return;
          steps[steps.length - 1] = [last[0], last[1].subarray(0, Math.max(1, Math.floor(at * last[1].length)))];
          // A cut exactly on a frame boundary leaves a valid (shorter) stream: broken only when a frame is left incomplete.
          const probe = new TestSession({}, SMALL).run(steps);
          const s = new TestSession({}, SMALL).run(rechunk(steps, fr)).end();
          checkInvariants(s);
          assert.deepEqual(s.anomalies, probe.tracker.midFrame ? ['truncated_message'] : []);
          return;
        }
        steps.push([client ? 'c' : 's', B.raw(type, Buffer.from('xyz'))]);
        const s = new TestSession({}, SMALL).run(rechunk(steps, fr)).end();
        checkInvariants(s);
        assert.deepEqual(s.anomalies, ['unknown_message']);
      }),
      { numRuns: 300 },
    );
  });
});
