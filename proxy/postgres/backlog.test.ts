import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Backlog } from '../protocol.js';
import * as B from './test-builders.js';
import { TestSession, type Step } from './test-session.js';
import { DEFAULT_TRACKER_LIMITS, type TrackerLimits } from './tracker.js';

const login: Step[] = [
  ['c', B.startup({ user: 'alice', database: 'shop' })],
  ['s', B.loginOk()],
];
const cat = Buffer.concat;
const MARKS: TrackerLimits = { ...DEFAULT_TRACKER_LIMITS, pendingOpsHigh: 4, pendingOpsLow: 2, pendingBytesHigh: 1000, pendingBytesLow: 500 };
const times = (n: number, b: () => Buffer): Buffer => cat(Array.from({ length: n }, b));

describe('postgres tracker: backlog (the connection pauses the client above the high-water mark)', () => {
  it('pending_overflow_on_large_pipeline: operations above the high mark ask for a pause, down to the low mark for a resume, and nothing overflows', () => {
    const s = new TestSession({}, MARKS).run(login);
    assert.equal(s.tracker.backlog(), Backlog.Under);
    s.run([['c', cat([B.parse('s1', 'select $1'), times(2, () => cat([B.bind('', 's1', ['1']), B.execute()]))])]]); // 5 operations
    assert.equal(s.tracker.backlog(), Backlog.Over);
    s.run([['s', cat([B.parseComplete(), B.bindComplete()])]]); // 3 wait
    assert.equal(s.tracker.backlog(), Backlog.Between);
    s.run([['s', cat([B.dataRow(['1']), B.commandComplete('SELECT 1')])]]); // 2 wait
    assert.equal(s.tracker.backlog(), Backlog.Under);
    s.run([['s', cat([B.bindComplete(), B.dataRow(['1']), B.commandComplete('SELECT 1')])], ['c', B.sync()], ['s', B.readyForQuery()]]).end();
    assert.deepEqual(s.anomalies, []);
    assert.equal(s.events.filter((e) => e.kind === 'statement').length, 2);
    assert.equal(s.tracker.peakPendingOps, 5);
  });

  it('SQL bytes count only up to the last Sync, Flush or Query: the server may keep the answers after it until one comes', () => {
    const big = `select '${'x'.repeat(1200)}'`;
    const s = new TestSession({}, MARKS).run([...login, ['c', B.parse('a', big)]]);
    assert.equal(s.tracker.backlog(), Backlog.Under, 'a pause here could wait forever: ParseComplete may sit in the server until a Flush');
    s.run([['c', B.flush()]]);
    assert.equal(s.tracker.backlog(), Backlog.Over);
    s.run([['s', B.parseComplete()]]);
    assert.equal(s.tracker.backlog(), Backlog.Under);
    s.run([['c', cat([B.parse('b', big), B.sync()])]]);
    assert.equal(s.tracker.backlog(), Backlog.Over);
    s.run([['s', cat([B.parseComplete(), B.readyForQuery()])]]);
    assert.equal(s.tracker.backlog(), Backlog.Under);
    // answers that came before the flush point (the server's buffer filled) leave the unflushed count right
    s.run([['c', cat([B.parse('c', big), B.parse('d', big)])], ['s', B.parseComplete()]]);
    assert.equal(s.tracker.backlog(), Backlog.Under);
    s.run([['c', B.query('select 2')]]);
    assert.equal(s.tracker.backlog(), Backlog.Over, 'd and the Query are sure to be answered now');
    s.run([['s', cat([B.parseComplete(), B.rowDescription(['?column?']), B.dataRow(['2']), B.commandComplete('SELECT 1'), B.readyForQuery()])]]);
    assert.equal(s.tracker.backlog(), Backlog.Under);
    assert.equal(s.tracker.pendingOps, 0);
    s.end();
    assert.deepEqual(s.anomalies, []);
  });

  it('never pauses a client the server waits for: COPY FROM STDIN', () => {
    const s = new TestSession({}, MARKS).run([...login, ['c', cat([B.query('copy t from stdin'), times(4, B.sync)])]]);
    assert.equal(s.tracker.backlog(), Backlog.Over);
    s.run([['s', B.copyInResponse(1)]]);
    assert.equal(s.tracker.backlog(), Backlog.Under);
    s.run([['c', cat([B.copyData('1\n'), B.copyDone()])], ['s', B.commandComplete('COPY 1')]]);
    assert.equal(s.tracker.backlog(), Backlog.Over, 'COPY done: the queued operations count again');
  });

  it('decoding stopped (an overflow past the marks, as with a single read of more than the gap): the client is read', () => {
    const s = new TestSession({}, { ...MARKS, pendingOps: 6 }).run([...login, ['c', times(7, B.sync)]]);
    assert.deepEqual(s.anomalies, ['pending_overflow']);
    assert.equal(s.tracker.backlog(), Backlog.Under);
  });
});
