import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EventKind } from '../events.js';
import * as B from './test-builders.js';
import { TestSession, runAllSplits, type Step } from './test-session.js';

const login: Step[] = [
  ['c', B.startup({ user: 'alice', database: 'shop', application_name: 'psql' })],
  ['s', B.loginOk()],
];

/** Asserts the event summary of `steps`, in every chunking. */
function expectEvents(steps: Step[], expected: Record<string, unknown>[], opts = {}, endReason?: string): void {
  for (const got of runAllSplits(steps, opts, endReason)) assert.deepEqual(got, expected);
}

const START = { kind: 'session_start' };
const OK = { kind: 'login_success' };
const END = { kind: 'session_end', reason: 'client_disconnect' };

describe('postgres tracker: startup and authentication', () => {
  it('trust login: session fields from StartupMessage, auth_method trust', () => {
    const s = new TestSession().run(login).end();
    assert.deepEqual(s.summary(), [START, OK, END]);
    const [start, ok, end] = s.events;
    assert.equal(start.user, 'alice');
    assert.equal(ok.database, 'shop');
    assert.equal(ok.applicationName, 'app', 'ParameterStatus application_name is the server-side value');
    assert.equal(ok.authMethod, 'trust');
    assert.equal(ok.detail, 'backend_pid=4242');
    assert.equal(end.bytesFromClient, BigInt((login[0][1] as Buffer).length));
    assert.equal(s.tracker.transactionStatus, '');
  });

  it('database defaults to the user name', () => {
    const s = new TestSession().run([['c', B.startup({ user: 'bob' })], ['s', B.loginOk()]]);
    assert.equal(s.events[1].database, 'bob');
  });

  for (const [name, steps, method] of [
    ['cleartext', [['s', B.authCleartext()], ['c', B.password('pw')]], 'cleartext'],
    ['md5', [['s', B.authMd5()], ['c', B.password('md5abc')]], 'md5'],
    ['scram-sha-256', [['s', B.authSasl()], ['c', B.saslInitial('SCRAM-SHA-256', 'n,,n=,r=abc')], ['s', B.authSaslContinue('r=abc,s=x,i=4096')], ['c', B.password('c=biws,r=abc,p=x')], ['s', B.authSaslFinal('v=x')]], 'scram-sha-256'],
    ['gss', [['s', B.authCode(7)], ['c', B.password('token')], ['s', B.authCode(8)]], 'gss'],
    ['sspi', [['s', B.authCode(9)]], 'sspi'],
  ] as [string, Step[], string][]) {
    it(`records auth_method ${name}`, () => {
      const s = new TestSession().run([login[0], ...steps, ['s', B.loginOk()]]).end();
      assert.deepEqual(s.summary(), [START, OK, END]);
      assert.equal(s.events[1].authMethod, method);
      assert.equal(s.events[2].authMethod, method);
    });
  }

  it('login failure carries SQLSTATE, severity and message', () => {
    const steps: Step[] = [login[0], ['s', B.authMd5()], ['c', B.password('md5bad')], ['s', B.errorResponse('28P01', 'password authentication failed for user "alice"', 'FATAL')]];
    expectEvents(steps, [START, { kind: 'login_failure', error: '28P01' }, { kind: 'session_end', reason: 'server_disconnect' }], {}, 'server_disconnect');
    const s = new TestSession().run(steps);
    const f = s.events[1];
    assert.equal(f.errorSeverity, 'FATAL');
    assert.equal(f.sqlstate, '28P01');
    assert.equal(f.errorMessage, 'password authentication failed for user "alice"');
    assert.equal(f.user, 'alice');
    assert.equal(f.authMethod, 'md5');
  });

  it('an error after AuthenticationOk but before ReadyForQuery is a login failure', () => {
    const steps: Step[] = [login[0], ['s', Buffer.concat([B.authOk(), B.errorResponse('3D000', 'database "shop" does not exist', 'FATAL')])]];
    expectEvents(steps, [START, { kind: 'login_failure', error: '3D000' }, END]);
  });

  it('CancelRequest: one cancel event with the backend pid, never the key, and no session events', () => {
    const steps: Step[] = [['c', B.cancelRequest(31337, 0x0badc0de)]];
    expectEvents(steps, [{ kind: 'cancel' }]);
    const s = new TestSession().run(steps).end();
    assert.equal(s.events[0].kind, EventKind.Cancel);
    assert.equal(s.events[0].detail, 'backend_pid=31337');
    assert.ok(!JSON.stringify(s.events[0].detail).includes(String(0x0badc0de)));
  });

  it('SSLRequest answered N continues with the StartupMessage', () => {
    expectEvents([['c', B.sslRequest()], ['s', Buffer.from('N')], ...login], [START, OK, END]);
  });

  it('GSSENCRequest answered N continues with the StartupMessage', () => {
    expectEvents([['c', B.gssEncRequest()], ['s', Buffer.from('N')], ...login], [START, OK, END]);
  });

  it('SSLRequest answered S stops decoding with an anomaly (TLS bytes follow)', () => {
    const s = new TestSession().run([['c', B.sslRequest()], ['s', Buffer.from('S')], ['c', Buffer.from([0x16, 3, 1, 0, 200, 1, 2, 3])]]).end();
    assert.deepEqual(s.summary(), [START, { kind: 'anomaly', reason: 'unobservable_tls' }, END]);
    assert.equal(s.tracker.decoding, false);
    assert.deepEqual(s.anomalies, ['unobservable_tls']);
  });

  it('GSSENCRequest answered G stops decoding with an anomaly', () => {
    const s = new TestSession().run([['c', B.gssEncRequest()], ['s', Buffer.from('G')]]).end();
    assert.deepEqual(s.anomalies, ['unobservable_gssenc']);
  });

  it('Terminate ends the session with reason client_terminate, once', () => {
    const s = new TestSession().run([...login, ['t', 1500], ['c', B.terminate()]]);
    s.tracker.end('client_disconnect');
    s.tracker.end('shutdown');
    assert.deepEqual(s.summary(), [START, OK, { kind: 'session_end', reason: 'client_terminate' }]);
    const end = s.events[2];
    assert.equal(end.durationUs, 1_500_000n);
    assert.equal(end.bytesToClient, BigInt(B.loginOk().length));
  });

  it('a FATAL error while idle is kept for the session end, not an anomaly', () => {
    const s = new TestSession().run([...login, ['s', B.errorResponse('57P01', 'terminating connection due to administrator command', 'FATAL')]]).end('server_disconnect');
    assert.deepEqual(s.anomalies, []);
    assert.equal(s.events.at(-1)!.detail, '57P01: terminating connection due to administrator command');
  });

  it('an empty connection still has a start and an end', () => {
    assert.deepEqual(new TestSession().end().summary(), [START, END]);
  });
});

describe('postgres tracker: simple query', () => {
  it('one event per completed statement; after an error nothing is recorded as run', () => {
    const steps: Step[] = [
      ...login,
      ['c', B.query('select 1; insert into t values (1),(2); select 1/0; select 3')],
      ['t', 7],
      ['s', Buffer.concat([B.rowDescription(['a']), B.dataRow(['1']), B.commandComplete('SELECT 1'), B.commandComplete('INSERT 0 2'), B.errorResponse('22012', 'division by zero'), B.readyForQuery('I')])],
    ];
    expectEvents(steps, [
      START,
      OK,
      { kind: 'statement', statement: 'select 1', class: 'READ', tag: 'SELECT', rows: 1 },
      { kind: 'statement', statement: 'insert into t values (1),(2)', class: 'WRITE', tag: 'INSERT', rows: 2 },
      { kind: 'statement', statement: 'select 1/0', class: 'READ', error: '22012' },
      END,
    ]);
    const s = new TestSession().run(steps);
    const e = s.events[4];
    assert.equal(e.errorMessage, 'division by zero');
    assert.equal(e.errorSeverity, 'ERROR');
    assert.equal(e.durationUs, 7000n);
    assert.equal(e.time!.seconds, s.events[2].time!.seconds);
  });

  it('rows come from the tag, or from DataRows when the tag has none', () => {
    const rows = [B.dataRow(['a']), B.dataRow(['b']), B.dataRow([null])];
    expectEvents(
      [...login, ['c', B.query('select x from t; show all; update t set a=1; delete from t; fetch 2 from c; move 3 in c')], ['s', Buffer.concat([B.rowDescription(['x']), ...rows, B.commandComplete('SELECT 3'), B.rowDescription(['name']), ...rows, B.commandComplete('SHOW'), B.commandComplete('UPDATE 4'), B.commandComplete('DELETE 0'), B.commandComplete('FETCH 2'), B.commandComplete('MOVE 3'), B.readyForQuery('T')])]],
      [
        START,
        OK,
        { kind: 'statement', statement: 'select x from t', class: 'READ', tag: 'SELECT', rows: 3 },
        { kind: 'statement', statement: 'show all', class: 'MISC', tag: 'SHOW', rows: 3 },
        { kind: 'statement', statement: 'update t set a=1', class: 'WRITE', tag: 'UPDATE', rows: 4 },
        { kind: 'statement', statement: 'delete from t', class: 'WRITE', tag: 'DELETE' },
        { kind: 'statement', statement: 'fetch 2 from c', class: 'MISC', tag: 'FETCH', rows: 2 },
        { kind: 'statement', statement: 'move 3 in c', class: 'MISC', tag: 'MOVE', rows: 3 },
        END,
      ],
    );
  });

  it('an empty query records nothing and does not desync', () => {
    expectEvents(
      [...login, ['c', B.query(' ; -- nothing\n')], ['s', Buffer.concat([B.emptyQuery(), B.readyForQuery()])], ['c', B.query('begin')], ['s', Buffer.concat([B.commandComplete('BEGIN'), B.readyForQuery('T')])]],
      [START, OK, { kind: 'statement', statement: 'begin', class: 'MISC', tag: 'BEGIN' }, END],
    );
  });

  it('NoticeResponse and NotificationResponse at any time are ignored', () => {
    const n = B.noticeResponse('hello');
    const a = B.notification(99, 'chan', 'payload');
    expectEvents(
      [...login, ['s', Buffer.concat([a, n])], ['c', B.query('listen chan; select 1')], ['s', Buffer.concat([n, B.commandComplete('LISTEN'), a, B.rowDescription(['x']), n, B.dataRow(['1']), a, B.commandComplete('SELECT 1'), n, B.readyForQuery()])], ['s', a]],
      [START, OK, { kind: 'statement', statement: 'listen chan', class: 'MISC', tag: 'LISTEN' }, { kind: 'statement', statement: 'select 1', class: 'READ', tag: 'SELECT', rows: 1 }, END],
    );
  });

  it('tracks the transaction status from ReadyForQuery', () => {
    const s = new TestSession().run([...login, ['c', B.query('begin')], ['s', Buffer.concat([B.commandComplete('BEGIN'), B.readyForQuery('T')])]]);
    assert.equal(s.tracker.transactionStatus, 'T');
    s.run([['c', B.query('select x')], ['s', Buffer.concat([B.errorResponse('42703', 'no x'), B.readyForQuery('E')])]]);
    assert.equal(s.tracker.transactionStatus, 'E');
  });

  it('a function body with BEGIN ATOMIC is one statement', () => {
    const sql = 'create function f() returns int begin atomic select 1; select 2; end; select f()';
    expectEvents(
      [...login, ['c', B.query(sql)], ['s', Buffer.concat([B.commandComplete('CREATE FUNCTION'), B.rowDescription(['f']), B.dataRow(['2']), B.commandComplete('SELECT 1'), B.readyForQuery()])]],
      [START, OK, { kind: 'statement', statement: 'create function f() returns int begin atomic select 1; select 2; end', class: 'DDL', tag: 'CREATE FUNCTION' }, { kind: 'statement', statement: 'select f()', class: 'READ', tag: 'SELECT', rows: 1 }, END],
    );
  });

  it('FunctionCall is a FUNCTION statement; its error is recorded', () => {
    expectEvents(
      [...login, ['c', B.functionCall(1598, ['42', null])], ['s', Buffer.concat([B.functionCallResponse('x'), B.readyForQuery()])], ['c', B.functionCall(1, [])], ['s', Buffer.concat([B.errorResponse('42883', 'function 1 does not exist'), B.readyForQuery()])]],
      [
        START,
        OK,
        { kind: 'statement', statement: 'fastpath function call (oid 1598)', class: 'FUNCTION', tag: 'FUNCTION CALL', params: ['42', 'NULL'] },
        { kind: 'statement', statement: 'fastpath function call (oid 1)', class: 'FUNCTION', error: '42883' },
        END,
      ],
      { logParameters: true },
    );
  });
});

describe('postgres tracker: standard_conforming_strings', () => {
  it('off: backslash escapes in plain strings are honoured when splitting and redacting', () => {
    const off: Step[] = [login[0], ['s', Buffer.concat([B.authOk(), B.parameterStatus('standard_conforming_strings', 'off'), B.readyForQuery()])]];
    const steps: Step[] = [...off, ['c', B.query("select 'a\\';b' as x; alter role r password 'p\\'w'")], ['s', Buffer.concat([B.rowDescription(['x']), B.dataRow(["a';b"]), B.commandComplete('SELECT 1'), B.commandComplete('ALTER ROLE'), B.readyForQuery()])]];
    expectEvents(steps, [START, OK, { kind: 'statement', statement: 'select ? as x', class: 'READ', tag: 'SELECT', rows: 1 }, { kind: 'statement', statement: 'alter role r password ?', class: 'ROLE', tag: 'ALTER ROLE' }, END], { redact: 'literals' });
    expectEvents(steps, [START, OK, { kind: 'statement', statement: "select 'a\\';b' as x", class: 'READ', tag: 'SELECT', rows: 1 }, { kind: 'statement', statement: "alter role r password '***'", class: 'ROLE', tag: 'ALTER ROLE' }, END], { redact: 'none' });
  });
});
