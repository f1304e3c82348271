import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadFixture } from '../../test/fixtures/load.js';
import { TestSession, type Step } from './test-session.js';

/** Every captured MariaDB connection through the tracker, as its chunks arrived, then whole and one byte at a time. */
function replay(name: string, opts: ConstructorParameters<typeof TestSession>[0] = {}): TestSession {
  const f = loadFixture('mysql', name);
  const steps: Step[] = [...f.arrivals()].map(({ dir, bytes }) => [dir, bytes]);
  const s = new TestSession(opts).run(steps).end();
  assert.deepEqual(s.anomalies, [], name);
  // Chunking does not matter: both directions whole (each in arrival order of the other) give the same events when small.
  if (f.client.length + f.server.length < 20_000) assert.deepEqual(new TestSession(opts).run(steps, 1).end().brief, s.brief, `${name} one byte at a time`);
  assert.ok(s.maxBuffered <= 64 * 1024, `${name} buffered ${s.maxBuffered}`);
  return s;
}

const count = (s: TestSession, kind: string): number => s.events.filter((e) => e.kind === kind).length;

describe('mysql tracker: captured MariaDB traffic', () => {
  it('mariadb-session: the scripted mariadb client session, statement by statement', () => {
    const s = replay('mariadb-session', { redact: 'literals' });
    const stmts = s.brief.filter((e) => e.kind === 'statement');
    assert.equal(stmts.length, 18);
    assert.deepEqual(stmts.map((e) => e.cls), ['DDL', 'WRITE', 'READ', 'WRITE', 'MISC', 'WRITE', 'MISC', 'READ', 'READ', 'ROLE', 'ROLE', 'ROLE', 'ROLE', 'READ', 'MISC', 'READ', 'MISC', 'READ']);
    for (const e of s.events) assert.ok(!e.statement.includes('fixture-pw') && !/IDENTIFIED BY '[^*?]/.test(e.statement), e.statement);
    assert.equal(s.events.at(-1)!.database, 'fixtures_other', 'COM_INIT_DB changed the database');
    assert.equal(s.events.at(-1)!.reason, 'client_terminate');
  });

  it('mysql2-prepared: executes with parameters, multi-statements with an error, change user', () => {
    const s = replay('mysql2-prepared', { logParameters: true });
    const stmts = s.brief.filter((e) => e.kind === 'statement');
    assert.equal(stmts.length, 11);
    assert.deepEqual(stmts[1]!.params, ['1', '1.5', 'a, "b"', 'NULL', '2026-01-02 03:04:05.000000', '\\x000102ff']);
    assert.equal(count(s, 'login_success'), 2);
    assert.deepEqual(stmts.filter((e) => e.error).map((e) => e.error), ['1146']);
  });

  it('load-data-local, login-failure, large-result: counts', () => {
    const load = replay('load-data-local');
    assert.match(String(load.brief.find((e) => String(e.statement).startsWith('LOAD DATA'))!.detail), /^load_data_bytes=\d+ load_data_packets=1$/);
    assert.equal(load.brief.find((e) => String(e.statement).startsWith('LOAD DATA'))!.rows, 100);
    const fail = replay('login-failure');
    assert.deepEqual(fail.brief.map((e) => e.kind), ['session_start', 'login_failure', 'session_end']);
    const large = replay('large-result');
    assert.equal(large.brief.find((e) => e.kind === 'statement')!.rows, 4000);
  });

  it('sysbench-rw-ps and sysbench-rw-text: 20 statements per event, every one complete', () => {
    for (const [name, n] of [['sysbench-rw-ps', 50], ['sysbench-rw-text', 30]] as const) {
      const s = replay(name, { logParameters: true });
      const stmts = s.events.filter((e) => e.kind === 'statement');
      assert.equal(stmts.length, 20 * n, name);
      assert.equal(stmts.filter((e) => e.reason !== '' || e.errorCode !== '').length, 0);
      assert.equal(stmts.filter((e) => e.statementClass === 'READ').length, 14 * n);
    }
  });
});
