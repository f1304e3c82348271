import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Backlog } from '../protocol.js';
import * as B from './test-builders.js';
import { TestSession, type Step } from './test-session.js';
import { DEFAULT_MYSQL_LIMITS, type MysqlLimits } from './tracker.js';

const cat = Buffer.concat;
const [G, HR, OK] = B.login();
const LOGIN: Step[] = [['s', G], ['c', HR], ['s', OK]];
const MARKS: MysqlLimits = { ...DEFAULT_MYSQL_LIMITS, pendingOpsHigh: 4, pendingOpsLow: 2, pendingBytesHigh: 1000, pendingBytesLow: 500 };
const times = (n: number, b: () => Buffer): Buffer => cat(Array.from({ length: n }, b));

describe('mysql tracker: backlog (the connection pauses the client above the high-water mark)', () => {
  it('pending_overflow_on_back_to_back_commands: commands above the high mark ask for a pause, down to the low mark for a resume', () => {
    const s = new TestSession({}, MARKS);
    assert.equal(s.tracker.backlog(), Backlog.Under, 'the connection phase never pauses');
    s.run([...LOGIN, ['c', times(5, () => B.query('DO 1'))]]);
    assert.equal(s.tracker.backlog(), Backlog.Over);
    s.run([['s', B.ok(1)]]);
    assert.equal(s.tracker.backlog(), Backlog.Between);
    s.run([['s', cat([B.ok(1), B.ok(1)])]]);
    assert.equal(s.tracker.backlog(), Backlog.Under);
    s.run([['s', cat([B.ok(1), B.ok(1)])]]).end();
    assert.deepEqual(s.anomalies, []);
    assert.equal(s.events.filter((e) => e.kind === 'statement').length, 5);
    assert.equal(s.tracker.peakPendingOps, 5);
  });

  it('SQL bytes above their high mark ask for a pause', () => {
    const s = new TestSession({}, MARKS).run([...LOGIN, ['c', B.query(`SELECT '${'x'.repeat(1200)}'`)]]);
    assert.equal(s.tracker.backlog(), Backlog.Over);
    s.run([['s', B.resultSet(1, ['x'], [['x']])]]);
    assert.equal(s.tracker.backlog(), Backlog.Under);
  });

  it('never pauses a client the server waits for: LOAD DATA LOCAL content', () => {
    const s = new TestSession({}, MARKS).run([...LOGIN, ['c', cat([B.query("LOAD DATA LOCAL INFILE 'f.csv' INTO TABLE t"), times(4, B.ping)])]]);
    assert.equal(s.tracker.backlog(), Backlog.Over);
    s.run([['s', B.localInfile(1, 'f.csv')]]);
    assert.equal(s.tracker.backlog(), Backlog.Under);
    s.run([['c', cat([B.packets(2, Buffer.from('1\n')), B.packets(3, Buffer.alloc(0))])]]);
    assert.equal(s.tracker.backlog(), Backlog.Over, 'the file is sent: the queued commands count again');
  });
});

describe('mysql tracker: pipelined commands', () => {
  const answers = cat([B.resultSet(1, ['a'], [['1'], ['2']]), B.ok(1), B.resultSet(1, ['b'], [['3']])]);
  const commands = cat([B.query('SELECT a FROM t'), B.query('DO 1'), B.query('SELECT b FROM t')]);

  it('pipelined_commands_out_of_sync: commands written before the answers, split anywhere in either direction, are audited in order', () => {
    const first = B.query('SELECT a FROM t').length;
    const firstAnswer = B.resultSet(1, ['a'], [['1'], ['2']]).length;
    for (let cut = first; cut <= commands.length; cut++) {
      for (let at = 0; at <= firstAnswer; at++) {
        // the rest of the commands arrives anywhere in the answer to the first
        const s = new TestSession().run([...LOGIN, ['c', commands.subarray(0, cut)], ['s', answers.subarray(0, at)], ['c', commands.subarray(cut)], ['s', answers.subarray(at)]]).end();
        assert.deepEqual(s.anomalies, [], `cut ${cut} at ${at}`);
        assert.deepEqual(s.events.filter((e) => e.kind === 'statement').map((e) => [e.statement, Number(e.rows)]), [['SELECT a FROM t', 2], ['DO 1', 0], ['SELECT b FROM t', 1]], `cut ${cut} at ${at}`);
      }
    }
  });
});
