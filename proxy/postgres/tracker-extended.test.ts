import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as B from './test-builders.js';
import { TestSession, runAllSplits, type Step } from './test-session.js';

const login: Step[] = [
  ['c', B.startup({ user: 'alice', database: 'shop' })],
  ['s', B.loginOk()],
];
const START = { kind: 'session_start' };
const OK = { kind: 'login_success' };
const END = { kind: 'session_end', reason: 'client_disconnect' };
const cat = Buffer.concat;

function expectEvents(steps: Step[], expected: Record<string, unknown>[], opts = {}): void {
  for (const got of runAllSplits(steps, opts)) assert.deepEqual(got, expected);
}

describe('postgres tracker: extended protocol', () => {
  it('unnamed statement and portal: Parse/Bind/Describe/Execute/Sync', () => {
    expectEvents(
      [...login, ['c', cat([B.parse('', 'select * from t where id = $1', [23]), B.bind('', '', ['7']), B.describe('P', ''), B.execute(), B.sync()])], ['s', cat([B.parseComplete(), B.bindComplete(), B.rowDescription(['id']), B.dataRow(['7']), B.commandComplete('SELECT 1'), B.readyForQuery()])]],
      [START, OK, { kind: 'statement', statement: 'select * from t where id = $1', class: 'READ', tag: 'SELECT', rows: 1 }, END],
    );
  });

  it('a named statement executed three times, with parameters when log_parameters is on', () => {
    const steps: Step[] = [
      ...login,
      ['c', cat([B.parse('ins', 'insert into t values ($1, $2)'), B.describe('S', 'ins'), B.sync()])],
      ['s', cat([B.parseComplete(), B.parameterDescription([23, 25]), B.noData(), B.readyForQuery()])],
      ['c', cat([B.bind('', 'ins', ['1', 'a']), B.execute(), B.bind('', 'ins', [Buffer.from([0xde, 0xad]), null]), B.execute(), B.bind('p2', 'ins', ['3', "it's"]), B.execute('p2'), B.sync()])],
      ['s', cat([B.bindComplete(), B.commandComplete('INSERT 0 1'), B.bindComplete(), B.commandComplete('INSERT 0 1'), B.bindComplete(), B.commandComplete('INSERT 0 1'), B.readyForQuery()])],
    ];
    const ins = { kind: 'statement', statement: 'insert into t values ($1, $2)', class: 'WRITE', tag: 'INSERT', rows: 1, prepared: 'ins' };
    expectEvents(steps, [START, OK, { ...ins, params: ['1', 'a'] }, { ...ins, params: ['\\xdead', 'NULL'] }, { ...ins, params: ['3', "it's"] }, END], { logParameters: true });
    expectEvents(steps, [START, OK, ins, ins, ins, END], { logParameters: false });
  });

  it('many Executes pipelined before one Sync, each with its own statement', () => {
    expectEvents(
      [
        ...login,
        ['c', cat([B.parse('', 'select 1'), B.bind('', ''), B.execute(), B.parse('', 'update t set a = 2'), B.bind('', ''), B.execute(), B.parse('s3', 'delete from t'), B.bind('', 's3'), B.execute(), B.sync()])],
        ['t', 3],
        ['s', cat([B.parseComplete(), B.bindComplete(), B.dataRow(['1']), B.commandComplete('SELECT 1'), B.parseComplete(), B.bindComplete(), B.commandComplete('UPDATE 5'), B.parseComplete(), B.bindComplete(), B.commandComplete('DELETE 2'), B.readyForQuery()])],
      ],
      [
        START,
        OK,
        { kind: 'statement', statement: 'select 1', class: 'READ', tag: 'SELECT', rows: 1 },
        { kind: 'statement', statement: 'update t set a = 2', class: 'WRITE', tag: 'UPDATE', rows: 5 },
        { kind: 'statement', statement: 'delete from t', class: 'WRITE', tag: 'DELETE', rows: 2, prepared: 's3' },
        END,
      ],
    );
  });

  it('Execute with a row limit: one event per portal run, rows summed over PortalSuspended', () => {
    const s = new TestSession();
    s.run([
      ...login,
      ['c', cat([B.parse('', 'select n from big'), B.bind('c1', ''), B.execute('c1', 2), B.flush()])],
      ['t', 1],
      ['s', cat([B.parseComplete(), B.bindComplete(), B.dataRow(['1']), B.dataRow(['2']), B.portalSuspended()])],
      ['c', cat([B.execute('c1', 2), B.flush()])],
      ['t', 1],
      ['s', cat([B.dataRow(['3']), B.dataRow(['4']), B.portalSuspended()])],
      ['c', cat([B.execute('c1', 2), B.sync()])],
      ['t', 1],
      ['s', cat([B.dataRow(['5']), B.commandComplete('SELECT 1'), B.readyForQuery()])],
    ]);
    assert.deepEqual(s.summary(), [START, OK, { kind: 'statement', statement: 'select n from big', class: 'READ', tag: 'SELECT', rows: 5 }]);
    assert.equal(s.events[2].durationUs, 3000n, 'from the first Execute to completion');
  });

  it('a suspended portal closed before completion is recorded with reason portal_closed', () => {
    expectEvents(
      [
        ...login,
        ['c', cat([B.parse('', 'select n from big'), B.bind('c1', ''), B.execute('c1', 2), B.close('P', 'c1'), B.sync()])],
        ['s', cat([B.parseComplete(), B.bindComplete(), B.dataRow(['1']), B.dataRow(['2']), B.portalSuspended(), B.closeComplete(), B.readyForQuery()])],
        ['c', cat([B.bind('c2', ''), B.execute('c2', 1), B.sync()])],
        ['s', cat([B.bindComplete(), B.dataRow(['1']), B.portalSuspended(), B.readyForQuery('I')])],
      ],
      [
        START,
        OK,
        { kind: 'statement', statement: 'select n from big', class: 'READ', rows: 2, reason: 'portal_closed' },
        { kind: 'statement', statement: 'select n from big', class: 'READ', rows: 1, reason: 'portal_closed' },
        END,
      ],
    );
  });

  it('an error makes the server discard until Sync: discarded Executes are not recorded', () => {
    expectEvents(
      [
        ...login,
        ['c', cat([B.parse('', 'insert into t values (1)'), B.bind('', ''), B.execute(), B.parse('', 'insert into t values (1)'), B.bind('', ''), B.execute(), B.parse('', 'select 3'), B.bind('', ''), B.execute(), B.sync()])],
        ['s', cat([B.parseComplete(), B.bindComplete(), B.commandComplete('INSERT 0 1'), B.parseComplete(), B.bindComplete(), B.errorResponse('23505', 'duplicate key'), B.readyForQuery('I')])],
        ['c', cat([B.parse('', 'select 4'), B.bind('', ''), B.execute(), B.sync()])],
        ['s', cat([B.parseComplete(), B.bindComplete(), B.dataRow(['4']), B.commandComplete('SELECT 1'), B.readyForQuery('I')])],
      ],
      [
        START,
        OK,
        { kind: 'statement', statement: 'insert into t values (1)', class: 'WRITE', tag: 'INSERT', rows: 1 },
        { kind: 'statement', statement: 'insert into t values (1)', class: 'WRITE', error: '23505' },
        { kind: 'statement', statement: 'select 4', class: 'READ', tag: 'SELECT', rows: 1 },
        END,
      ],
    );
  });

  it('a Parse error is recorded once; its Bind and Execute were discarded', () => {
    expectEvents(
      [...login, ['c', cat([B.parse('bad', 'selec 1'), B.bind('', 'bad'), B.execute(), B.sync()])], ['s', cat([B.errorResponse('42601', 'syntax error at or near "selec"'), B.readyForQuery()])]],
      [START, OK, { kind: 'statement', statement: 'selec 1', class: 'MISC', error: '42601', prepared: 'bad' }, END],
    );
  });

  it('a Bind error is recorded with the statement and its parameters', () => {
    expectEvents(
      [...login, ['c', cat([B.parse('', 'select $1::int'), B.bind('', '', ['x']), B.execute(), B.sync()])], ['s', cat([B.parseComplete(), B.errorResponse('22P02', 'invalid input syntax for type integer: "x"'), B.readyForQuery()])]],
      [START, OK, { kind: 'statement', statement: 'select $1::int', class: 'READ', error: '22P02', params: ['x'] }, END],
      { logParameters: true },
    );
  });

  it('an error with no Sync queued yet (after Flush): messages sent before the Sync are discarded too', () => {
    const s = new TestSession().run([
      ...login,
      ['c', cat([B.parse('', 'select 1/0'), B.bind('', ''), B.execute(), B.flush()])],
      ['s', cat([B.parseComplete(), B.bindComplete(), B.errorResponse('22012', 'division by zero')])],
      ['c', cat([B.bind('', ''), B.execute(), B.sync()])],
      ['s', B.readyForQuery()],
      ['c', B.query('select 2')],
      ['s', cat([B.dataRow(['2']), B.commandComplete('SELECT 1'), B.readyForQuery()])],
    ]);
    assert.deepEqual(s.summary(), [START, OK, { kind: 'statement', statement: 'select 1/0', class: 'READ', error: '22012' }, { kind: 'statement', statement: 'select 2', class: 'READ', tag: 'SELECT', rows: 1 }]);
    assert.deepEqual(s.anomalies, []);
  });

  it('Close of a statement forgets it; Describe of a statement is answered', () => {
    const s = new TestSession().run([
      ...login,
      ['c', cat([B.parse('s1', 'select 1'), B.describe('S', 's1'), B.close('S', 's1'), B.sync()])],
      ['s', cat([B.parseComplete(), B.parameterDescription([]), B.rowDescription(['x']), B.closeComplete(), B.readyForQuery()])],
      ['c', cat([B.bind('', 's1'), B.execute(), B.sync()])],
      ['s', cat([B.errorResponse('26000', 'prepared statement "s1" does not exist'), B.readyForQuery()])],
    ]);
    assert.deepEqual(s.summary().slice(2), [{ kind: 'statement', class: 'MISC', error: '26000', prepared: 's1' }]);
    assert.deepEqual(s.anomalies, []);
    assert.equal(s.tracker.pendingOps, 0);
  });

  it('an error at Sync (deferred constraint at implicit commit) keeps the queue in step', () => {
    const s = new TestSession().run([
      ...login,
      ['c', cat([B.parse('', 'insert into t values (1)'), B.bind('', ''), B.execute(), B.sync()])],
      ['s', cat([B.parseComplete(), B.bindComplete(), B.commandComplete('INSERT 0 1'), B.errorResponse('23503', 'fk violation'), B.readyForQuery()])],
    ]);
    assert.equal(s.summary().length, 3);
    assert.deepEqual(s.anomalies, []);
    assert.equal(s.tracker.pendingOps, 0);
  });
});

describe('postgres tracker: COPY', () => {
  it('COPY FROM STDIN counts CopyData and takes rows from the tag', () => {
    const steps: Step[] = [
      ...login,
      ['c', B.query('copy t from stdin')],
      ['s', B.copyInResponse(2)],
      ['c', cat([B.copyData('1\ta\n'), B.copyData('2\tb\n'), B.copyData('3\tc\n'), B.copyDone()])],
      ['s', cat([B.commandComplete('COPY 3'), B.readyForQuery()])],
    ];
    expectEvents(steps, [START, OK, { kind: 'statement', statement: 'copy t from stdin', class: 'WRITE', tag: 'COPY', rows: 3 }, END]);
    assert.equal(new TestSession().run(steps).events[2].detail, 'copy_bytes=12 copy_messages=3');
  });

  it('CopyFail: the statement carries the server error', () => {
    expectEvents(
      [...login, ['c', B.query('copy t from stdin')], ['s', B.copyInResponse(1)], ['c', cat([B.copyData('1\n'), B.copyFail('client gave up')])], ['s', cat([B.errorResponse('57014', 'COPY from stdin failed: client gave up'), B.readyForQuery()])]],
      [START, OK, { kind: 'statement', statement: 'copy t from stdin', class: 'WRITE', error: '57014' }, END],
    );
  });

  it('COPY TO STDOUT counts rows and bytes without decoding them', () => {
    const steps: Step[] = [...login, ['c', B.query('copy t to stdout')], ['s', cat([B.copyOutResponse(1), B.copyData('a\n'), B.copyData('b\n'), B.copyDone(), B.commandComplete('COPY 2'), B.readyForQuery()])]];
    expectEvents(steps, [START, OK, { kind: 'statement', statement: 'copy t to stdout', class: 'READ', tag: 'COPY', rows: 2 }, END]);
    assert.equal(new TestSession().run(steps).events[2].detail, 'copy_bytes=4 copy_messages=2');
  });

  // PostgreSQL reads the Sync sent with the command as part of the COPY and ignores it; libpq sends another after CopyDone (PQputCopyEnd).
  const extendedCopy = cat([B.parse('', 'copy t from stdin'), B.bind('', ''), B.execute(), B.sync()]);
  const after: Step[] = [['c', B.query('select 1')], ['s', cat([B.rowDescription(['?column?']), B.dataRow(['1']), B.commandComplete('SELECT 1'), B.readyForQuery()])]];
  const copied = [START, OK, { kind: 'statement', statement: 'copy t from stdin', class: 'WRITE', tag: 'COPY', rows: 1 }, { kind: 'statement', statement: 'select 1', class: 'READ', tag: 'SELECT', rows: 1 }, END];

  it('extended_copy_sync_out_of_sync: COPY through the extended protocol as libpq sends it, a Sync with the command and one after CopyDone', () => {
    expectEvents(
      [...login, ['c', extendedCopy], ['s', cat([B.parseComplete(), B.bindComplete(), B.copyInResponse(1)])], ['c', cat([B.copyData('x\n'), B.copyDone(), B.sync()])], ['s', cat([B.commandComplete('COPY 1'), B.readyForQuery()])], ...after],
      copied,
    );
  });

  it('extended COPY written all at once, before the CopyInResponse: the Syncs before CopyDone are ignored, the one after it answered', () => {
    expectEvents(
      [...login, ['c', cat([extendedCopy, B.copyData('x\n'), B.flush(), B.sync(), B.copyDone(), B.sync()])], ['s', cat([B.parseComplete(), B.bindComplete(), B.copyInResponse(1), B.commandComplete('COPY 1'), B.readyForQuery()])], ...after],
      copied,
    );
  });

  it('extended COPY that the client fails: the error, then the Sync after CopyFail', () => {
    expectEvents(
      [...login, ['c', extendedCopy], ['s', cat([B.parseComplete(), B.bindComplete(), B.copyInResponse(1)])], ['c', cat([B.copyFail('gave up'), B.sync()])], ['s', cat([B.errorResponse('57014', 'COPY from stdin failed: gave up'), B.readyForQuery()])], ...after],
      [START, OK, { kind: 'statement', statement: 'copy t from stdin', class: 'WRITE', error: '57014' }, copied[3], END],
    );
  });
});

describe('postgres tracker: statements left pending', () => {
  it('end() records what was sent but never completed, with reason connection_closed', () => {
    const s = new TestSession().run([...login, ['c', B.query('select pg_sleep(100); select 2')], ['c', cat([B.parse('', 'update t set a = 1'), B.bind('', ''), B.execute(), B.sync()])]]).end();
    assert.deepEqual(s.summary().slice(2), [
      { kind: 'statement', statement: 'select pg_sleep(100)', class: 'READ', reason: 'connection_closed' },
      { kind: 'statement', statement: 'select 2', class: 'READ', reason: 'connection_closed' },
      { kind: 'statement', statement: 'update t set a = 1', class: 'WRITE', reason: 'connection_closed' },
      END,
    ]);
    assert.equal(s.events[2].errorMessage, 'connection closed before completion');
  });
});

describe('postgres tracker: pending portal runs at the end', () => {
  it('a suspended run continued by an unanswered Execute is one unfinished statement', () => {
    const s = new TestSession().run([
      ...login,
      ['c', cat([B.parse('', 'select n from big'), B.bind('c1', ''), B.execute('c1', 2), B.flush()])],
      ['s', cat([B.parseComplete(), B.bindComplete(), B.dataRow(['1']), B.dataRow(['2']), B.portalSuspended()])],
      ['c', cat([B.execute('c1', 2), B.flush()])],
      ['s', B.dataRow(['3'])],
    ]).end();
    assert.deepEqual(s.summary().slice(2), [{ kind: 'statement', statement: 'select n from big', class: 'READ', rows: 3, reason: 'connection_closed' }, END]);
  });
});
