import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { allFixtures, loadFixture, type Fixture } from '../../test/fixtures/load.js';
import { TestSession, type Step } from './test-session.js';
import { maxBuffered } from './decoder.js';
import { DEFAULT_TRACKER_LIMITS } from './tracker.js';

/** Bytes captured from real clients and a real PostgreSQL 15 (test/fixtures), replayed through the tracker. */

function arrivals(f: Fixture): Step[] {
  return [...f.arrivals()].map(({ dir, bytes }): Step => [dir, bytes]);
}

function replay(f: Fixture, opts = {}, chunk = 0): TestSession {
  return new TestSession(opts).run(arrivals(f), chunk).end();
}

function statements(s: TestSession): Record<string, unknown>[] {
  return s.summary().filter((e) => e.kind === 'statement');
}

describe('postgres tracker on captured traffic', () => {
  const fixtures = allFixtures('postgres');

  for (const f of fixtures) {
    it(`${f.name}: decodes to the end with no anomaly, in arrival chunks and in other chunkings`, () => {
      const s = replay(f);
      assert.deepEqual(s.anomalies, []);
      assert.equal(s.tracker.decoding, true);
      const want = s.summary();
      for (const chunk of f.client.length + f.server.length < 4000 ? [1, 3] : [1000, 65536]) {
        assert.deepEqual(replay(f, {}, chunk).summary(), want, `chunk ${chunk}`);
      }
      const end = s.events.at(-1)!;
      if (f.name !== 'cancel.2') {
        assert.equal(end.kind, 'session_end');
        assert.equal(end.bytesFromClient, BigInt(f.client.length));
        assert.equal(end.bytesToClient, BigInt(f.server.length));
      }
    });
  }

  it('psql-multi-statement: the statement after the error is not recorded', () => {
    assert.deepEqual(statements(replay(loadFixture('postgres', 'psql-multi-statement'))), [
      { kind: 'statement', statement: 'SELECT 1 AS a', class: 'READ', tag: 'SELECT', rows: 1 },
      { kind: 'statement', statement: 'SELECT * FROM no_such_table', class: 'READ', error: '42P01' },
    ]);
  });

  it('psql-session: passwords never reach an event, in either redaction mode', () => {
    for (const redact of ['none', 'literals'] as const) {
      const s = replay(loadFixture('postgres', 'psql-session'), { redact });
      const text = JSON.stringify(s.events.map((e) => e.statement));
      assert.ok(text.includes('CREATE ROLE fixture_reader LOGIN PASSWORD'), text);
      assert.ok(!/PASSWORD '[^*]/.test(text), text);
    }
    const st = statements(replay(loadFixture('postgres', 'psql-session'), { redact: 'literals' }));
    assert.equal(st.length, 15);
    assert.deepEqual(st.filter((e) => e.error).map((e) => e.error), ['42P01', '22012']);
  });

  it('node-pg-extended: parameters, named statements, errors in extended mode', () => {
    const st = statements(replay(loadFixture('postgres', 'node-pg-extended'), { logParameters: true }));
    assert.deepEqual(st.map((e) => [e.tag ?? e.error, e.rows ?? 0, e.prepared ?? '']), [
      ['CREATE TABLE', 0, ''],
      ['INSERT', 1, ''],
      ['INSERT', 1, ''],
      ['SELECT', 1, 'by-id'],
      ['SELECT', 1, 'by-id'],
      ['22P02', 0, ''],
      ['SELECT', 5, ''],
      ['UPDATE', 1, ''],
    ]);
    assert.deepEqual(st[1].params, ['1', 'a, "b"', '\\x000102ff', '1970-01-01T00:00:00.000+00:00']);
    assert.deepEqual(st[2].params, ['2', 'NULL', 'NULL', 'NULL']);
  });

  it('raw-extended: row-limited portal summed, pipelined Executes, discard until Sync, CopyFail, FunctionCall', () => {
    const st = statements(replay(loadFixture('postgres', 'raw-extended')));
    assert.deepEqual(st.map((e) => [e.class, e.tag ?? e.error, e.rows ?? 0]), [
      ['READ', 'SELECT', 7],
      ['READ', 'SELECT', 1],
      ['READ', 'SELECT', 1],
      ['READ', 'SELECT', 1],
      ['READ', 'SELECT', 1],
      ['READ', 'SELECT', 1],
      ['MISC', '42601', 0],
      ['READ', 'SELECT', 1],
      ['DDL', 'CREATE TABLE', 0],
      ['WRITE', '57014', 0],
      ['FUNCTION', 'FUNCTION CALL', 0],
    ]);
  });

  it('copy: COPY FROM and TO counted, a bad CSV row fails the COPY', () => {
    const s = replay(loadFixture('postgres', 'copy'));
    assert.deepEqual(statements(s).map((e) => [e.statement, e.tag ?? e.error, e.rows ?? 0]), [
      ['CREATE TABLE items (id int, name text, price numeric)', 'CREATE TABLE', 0],
      ['COPY items FROM STDIN', 'COPY', 200],
      ['COPY items TO STDOUT', 'COPY', 200],
      ['COPY items FROM STDIN WITH (FORMAT csv)', '22P02', 0],
      ['DROP TABLE items', 'DROP TABLE', 0],
    ]);
    assert.match(s.events.find((e) => e.statement === 'COPY items TO STDOUT')!.detail, /^copy_bytes=\d+ copy_messages=200$/);
  });

  it('cancel: the session records the cancelled statement; the cancel connection only a cancel event', () => {
    assert.deepEqual(statements(replay(loadFixture('postgres', 'cancel.1'))).map((e) => e.error), ['57014']);
    const c = replay(loadFixture('postgres', 'cancel.2'));
    assert.deepEqual(c.summary(), [{ kind: 'cancel' }]);
    assert.match(c.events[0].detail, /^backend_pid=\d+$/);
  });

  it('logins: md5, scram-sha-256, failure with SQLSTATE 28P01', () => {
    assert.equal(replay(loadFixture('postgres', 'login-md5')).events[1].authMethod, 'md5');
    assert.equal(replay(loadFixture('postgres', 'login-scram')).events[1].authMethod, 'scram-sha-256');
    const f = replay(loadFixture('postgres', 'login-failure'));
    assert.deepEqual(f.summary().map((e) => [e.kind, e.error ?? '']), [['session_start', ''], ['login_failure', '28P01'], ['session_end', '']]);
    assert.equal(f.events[1].errorSeverity, 'FATAL');
  });

  it('pgbench: one event per transaction statement, none lost', () => {
    for (const [name, n] of [['pgbench-select-simple', 500], ['pgbench-select-extended', 500], ['pgbench-select-prepared', 500], ['pgbench-tpcb', 2100]] as const) {
      const st = statements(replay(loadFixture('postgres', name)));
      assert.equal(st.length, n, name);
      assert.ok(st.every((e) => !e.error && !e.reason), name);
    }
  });

  it('wide rows and large COPY OUT are skipped by length: small buffers', () => {
    for (const name of ['wide-rows', 'copy-out-large']) {
      const s = replay(loadFixture('postgres', name), {}, 65536);
      assert.ok(s.maxBuffered <= 65536, `${name}: ${s.maxBuffered}`);
    }
  });

  it('mutated captures (fuzz seeds) never throw and stay bounded', () => {
    const small = fixtures.filter((f) => f.client.length + f.server.length < 8000).map(arrivals);
    const limits = { ...DEFAULT_TRACKER_LIMITS, statement: 8192, error: 8192, serverControl: 1024, clientControl: 1024, startup: 4096 };
    const bound = 2 * maxBuffered(limits);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: small.length - 1 }), fc.nat(), fc.nat(), fc.integer({ min: 1, max: 255 }), fc.integer({ min: 1, max: 64 }), (i, step, pos, xor, chunk) => {
        const steps = small[i].map((st): Step => (st[0] === 't' ? st : [st[0], Buffer.from(st[1])]));
        const st = steps[step % steps.length];
        if (st[0] !== 't' && st[1].length > 0) st[1][pos % st[1].length] ^= xor;
        const s = new TestSession({ redact: 'literals', logParameters: true }, limits).run(steps, chunk).end();
        assert.ok(s.anomalies.length <= 1);
        assert.ok(!s.anomalies.includes('internal_error'));
        assert.ok(s.maxBuffered <= bound, `${s.maxBuffered} > ${bound}`);
      }),
      { numRuns: 400 },
    );
  });
});
