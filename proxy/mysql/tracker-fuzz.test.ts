import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { allFixtures } from '../../test/fixtures/load.js';
import { EVENT_KINDS } from '../events.js';
import { Status, Type } from './packets.js';
import * as B from './test-builders.js';
import { TestSession, summarize, type Step } from './test-session.js';
import { DEFAULT_MYSQL_LIMITS, maxTrackerBuffered, type MysqlLimits } from './tracker.js';

const cat = Buffer.concat;
/** Small caps so that the bound is reachable by the generated inputs. */
const SMALL: MysqlLimits = { ...DEFAULT_MYSQL_LIMITS, handshake: 2048, statement: 8192, control: 512, server: 2048, pendingOps: 64, pendingBytes: 32768, statements: 16, statementBytes: 65536 };
const BOUND = maxTrackerBuffered(SMALL);

/** The fuzz seeds: every captured MariaDB connection (as its chunks arrived), and builder sessions. */
const captured: Step[][] = allFixtures('mysql')
  .filter((f) => f.client.length + f.server.length < 200_000) // the large captures are replayed whole in fixtures.test.ts
  .map((f) => [...f.arrivals()].map(({ dir, bytes }): Step => [dir, bytes]));
const [G, HR, OK] = B.login();
const login: Step[] = [['s', G], ['c', HR], ['s', OK]];
const more = Status.MoreResultsExist | 2;
const built: Step[][] = [
  [...login, ['c', B.query('SELECT 1; SELECT 2')], ['s', cat([B.resultSet(1, ['1'], [['1']], { status: more }), B.resultSet(6, ['2'], [['2'], [null]])])], ['c', B.quit()]],
  [...login, ['c', B.prepare('SELECT ?, ?')], ['s', B.prepareOk(1, 1, 2, 2)], ['c', B.execute(1, [{ type: Type.LongLong, value: B.V.longlong(-5n) }, { type: Type.DateTime, value: B.V.datetime(2026, 1, 2, 3, 4, 5, 6) }])], ['s', B.resultSet(1, ['a', 'b'], [['1', '2']], { binary: true })]],
  [...login, ['c', B.query("LOAD DATA LOCAL INFILE 'x' INTO TABLE t")], ['s', B.localInfile(1, 'x')], ['c', cat([B.packets(2, Buffer.from('1,2\n')), B.packets(3, Buffer.alloc(0))])], ['s', B.ok(4, { affected: 1 })]],
  [...login, ['c', B.changeUser('bob', 'e')], ['s', B.authSwitch(1, 'mysql_native_password')], ['c', B.authData(2, Buffer.alloc(20, 1))], ['s', B.ok(3)], ['c', B.initDb('f')], ['s', B.ok(1)]],
];
const seeds: Step[][] = [...captured, ...built];

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
  assert.equal(kinds.filter((k) => k === 'session_end').length, 1, 'exactly one session_end');
  assert.equal(kinds.at(-1), 'session_end');
  assert.equal(kinds[0], 'session_start');
}

const fractions = fc.array(fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 6 }), { minLength: 1, maxLength: 8 });

describe('mysql tracker: property tests', () => {
  it('any chunking of a captured or built session gives the same events as whole delivery, with no anomaly', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: seeds.length - 1 }), fractions, (i, fr) => {
        const whole = new TestSession({ logParameters: true }).run(seeds[i]!).end().brief;
        const s = new TestSession({ logParameters: true }).run(rechunk(seeds[i]!, fr)).end();
        assert.deepEqual(s.brief, whole);
        assert.deepEqual(s.anomalies, []);
      }),
      { numRuns: 300 },
    );
  });

  it('random bytes as the server greeting, or from the client first, never throw, stay bounded and end in one anomaly', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 5, maxLength: 3000 }), fc.boolean(), fractions, (bytes, client, fr) => {
        const b = Buffer.from(bytes);
        if (!client && b[4] === 10) b[4] = 11; // a protocol-10 greeting with random fields may parse: not the point here
        const s = new TestSession({}, SMALL).run(rechunk([[client ? 'c' : 's', b]], fr)).end();
        checkInvariants(s);
        assert.equal(s.anomalies.length, 1);
      }),
      { numRuns: 500 },
    );
  });

  it('random bytes from either side after a login never throw and stay bounded', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 3000 }), fc.boolean(), fractions, (bytes, client, fr) => {
        const steps: Step[] = [...login, ['c', B.query('SELECT 1')], [client ? 'c' : 's', Buffer.from(bytes)]];
        const s = new TestSession({ logParameters: true }, SMALL).run(rechunk(steps, fr)).end();
        checkInvariants(s);
      }),
      { numRuns: 500 },
    );
  });

  it('random packets (valid headers and sequence ids, random payloads) in both directions never throw', () => {
    const pkt = fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 64 }));
    fc.assert(
      fc.property(fc.array(pkt, { maxLength: 40 }), fractions, (pkts, fr) => {
        let seq = 0;
        const steps: Step[] = [...login];
        for (const [client, first, body] of pkts) {
          if (client) seq = 0;
          steps.push([client ? 'c' : 's', B.packets(seq++, cat([Buffer.from([first]), Buffer.from(body)]))]);
        }
        const s = new TestSession({ logParameters: true }, SMALL).run(rechunk(steps, fr)).end();
        checkInvariants(s);
      }),
      { numRuns: 500 },
    );
  });

  it('mutated real sessions (flipped, cut, inserted, dropped, duplicated bytes) never throw and stay bounded', () => {
    const mutation = fc.record({ step: fc.nat(), at: fc.double({ min: 0, max: 1, noNaN: true }), op: fc.constantFrom('flip', 'cut', 'insert', 'drop', 'dup'), byte: fc.integer({ min: 0, max: 255 }), junk: fc.uint8Array({ maxLength: 16 }) });
    fc.assert(
      fc.property(fc.integer({ min: 0, max: seeds.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 5 }), fractions, (i, muts, fr) => {
        const steps = seeds[i]!.map((st): Step => (st[0] === 't' ? st : [st[0], Buffer.from(st[1])]));
        for (const m of muts) {
          const k = m.step % steps.length;
          const st = steps[k]!;
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
      { numRuns: 400 },
    );
  });

  it('a stream cut inside a packet ends in one truncated_message anomaly; a cut on a boundary in none', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: seeds.length - 1 }), fc.double({ min: 0.01, max: 0.99, noNaN: true }), fractions, (i, at, fr) => {
        const steps = seeds[i]!.slice();
        const last = steps.at(-1)!;
        if (last[0] === 't') return;
        steps[steps.length - 1] = [last[0], last[1].subarray(0, Math.max(1, Math.floor(at * last[1].length)))];
        const probe = new TestSession().run(steps);
        const s = new TestSession().run(rechunk(steps, fr)).end();
        assert.deepEqual(s.anomalies, probe.tracker.midFrame && probe.tracker.decoding ? ['truncated_message'] : probe.anomalies);
      }),
      { numRuns: 300 },
    );
  });
});
