import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Cap, Com, MariaCap, Status, Type } from './packets.js';
import * as B from './test-builders.js';
import { TestSession, type Step } from './test-session.js';

const cat = Buffer.concat;
const [G, HR, OK] = B.login();
const LOGIN: Step[] = [['s', G], ['c', HR], ['s', OK]];
const who = { user: 'alice', database: 'd' };
const stmt = (o: Record<string, unknown>): Record<string, unknown> => ({ kind: 'statement', ...who, ...o });

/** Runs the steps whole, then every step split at every byte offset, and one byte at a time: the events must not change. */
function events(steps: Step[], opts: ConstructorParameters<typeof TestSession>[0] = {}): Record<string, unknown>[] {
  const whole = new TestSession(opts).run(steps).end().brief;
  for (let i = 0; i < steps.length; i++) {
    const st = steps[i]!;
    if (st[0] === 't') continue;
    for (let k = 1; k < st[1].length; k++) {
      const s: TestSession = new TestSession(opts);
      s.run(steps.slice(0, i)).run([st], 0, k).run(steps.slice(i + 1)).end();
      assert.deepEqual(s.brief, whole, `step ${i} split at ${k}`);
    }
  }
  assert.deepEqual(new TestSession(opts).run(steps, 1).end().brief, whole, 'one byte at a time');
  return whole;
}

describe('MySQL tracker: connection phase', () => {
  it('greeting, handshake response, OK: session_start with user, database, program_name; login_success with connection id', () => {
    const s = new TestSession().run(LOGIN);
    assert.deepEqual(s.brief, [
      { kind: 'session_start', ...who },
      { kind: 'login_success', ...who, detail: 'connection_id=42 server_version=5.5.5-10.11.19-MariaDB' },
    ]);
    assert.equal(s.events[0]!.applicationName, 'builder');
    assert.equal(s.events[1]!.authMethod, 'mysql_native_password');
    assert.deepEqual(events(LOGIN).slice(0, 2), s.brief);
  });

  it('wrong password: login_failure with the error number as text and SQLSTATE apart; session_end names it', () => {
    const evs = events([['s', G], ['c', HR], ['s', B.err(2, 1045, '28000', "Access denied for user 'alice'")]]);
    assert.deepEqual(evs, [
      { kind: 'session_start', ...who },
      { kind: 'login_failure', ...who, error: '1045', sqlstate: '28000', detail: 'connection_id=42' },
      { kind: 'session_end', ...who, reason: 'client_disconnect', detail: "1045: Access denied for user 'alice'" },
    ]);
  });

  it('an ERR instead of the greeting (too many connections) is a login failure', () => {
    const evs = events([['s', B.err(0, 1040, '08004', 'Too many connections')]]);
    assert.deepEqual(evs.map((e) => [e.kind, e.error]), [['session_start', undefined], ['login_failure', '1040'], ['session_end', undefined]]);
  });

  it('AuthSwitchRequest and auth-more-data rounds: auth_method is the plugin that authenticated; caching_sha2 fast and full auth named', () => {
    const fast = new TestSession().run([['s', B.greeting({ plugin: 'caching_sha2_password' })], ['c', B.handshakeResponse({ user: 'alice', db: 'd', plugin: 'caching_sha2_password' })], ['s', B.authMoreData(2, Buffer.from([3]))], ['s', B.ok(3)]]);
    assert.equal(fast.events[1]!.authMethod, 'caching_sha2_password');
    assert.match(fast.events[1]!.detail, / fast_auth$/);
    const full = new TestSession().run([
      ['s', B.greeting({ plugin: 'caching_sha2_password' })],
      ['c', B.handshakeResponse({ user: 'alice', db: 'd', plugin: 'caching_sha2_password' })],
      ['s', B.authMoreData(2, Buffer.from([4]))],
      ['c', B.authData(3, Buffer.from([2]))], // request the public key
      ['s', B.authMoreData(4, Buffer.from('-----BEGIN PUBLIC KEY-----'))],
      ['c', B.authData(5, Buffer.alloc(256, 9))],
      ['s', B.ok(6)],
    ]);
    assert.match(full.events[1]!.detail, / full_auth$/);
    assert.deepEqual(full.anomalies, []);
    const sw = events([['s', G], ['c', HR], ['s', B.authSwitch(2, 'client_ed25519')], ['c', B.authData(3, Buffer.alloc(0))], ['s', B.ok(4)], ['c', B.quit()]]);
    assert.deepEqual(sw.map((e) => e.kind), ['session_start', 'login_success', 'session_end']);
    const s = new TestSession().run([['s', G], ['c', HR], ['s', B.authSwitch(2, 'client_ed25519')], ['c', B.authData(3, Buffer.alloc(0))], ['s', B.ok(4)]]);
    assert.equal(s.events[1]!.authMethod, 'client_ed25519');
  });

  it('an SSLRequest that reaches the tracker means TLS bytes follow: one anomaly, decoding stops', () => {
    const s = new TestSession().run([['s', G], ['c', B.sslRequest()], ['c', Buffer.from([0x16, 3, 1, 0, 5, 1, 2, 3, 4, 5])]]).end();
    assert.deepEqual(s.anomalies, ['unobservable_tls']);
  });

  it('compression agreed despite the proxy: anomaly (the rest would be unreadable)', () => {
    const s = new TestSession().run([['s', G], ['c', B.handshakeResponse({ caps: B.CLIENT_CAPS | Cap.Compress, db: 'd' })]]);
    assert.deepEqual(s.anomalies, ['unobservable_compression']);
  });
});

describe('MySQL tracker: commands', () => {
  it('COM_QUERY with OK (affected rows, last insert id, warnings), a result set, an ERR; COM_QUIT is client_terminate', () => {
    const evs = events([
      ...LOGIN,
      ['t', 5],
      ['c', B.query("INSERT INTO t VALUES (1, 'a')")],
      ['t', 2],
      ['s', B.ok(1, { affected: 1, insertId: 7, warnings: 1 })],
      ['c', B.query('SELECT a, b FROM t')],
      ['s', B.resultSet(1, ['a', 'b'], [['1', 'x'], [null, 'y'], ['3', null]])],
      ['c', B.query('SELECT * FROM nope')],
      ['s', B.err(1, 1146, '42S02', "Table 'd.nope' doesn't exist")],
      ['c', B.quit()],
    ]);
    assert.deepEqual(evs.slice(2), [
      stmt({ statement: "INSERT INTO t VALUES (1, 'a')", cls: 'WRITE', tag: 'INSERT', rows: 1, detail: 'last_insert_id=7 warnings=1' }),
      stmt({ statement: 'SELECT a, b FROM t', cls: 'READ', tag: 'SELECT', rows: 3 }),
      stmt({ statement: 'SELECT * FROM nope', cls: 'READ', rows: 0, error: '1146', sqlstate: '42S02' }),
      { kind: 'session_end', ...who, reason: 'client_terminate' },
    ]);
  });

  it('CLIENT_DEPRECATE_EOF on and off, MariaDB metadata-follows byte: the same events', () => {
    for (const deprecateEof of [false, true]) {
      for (const maria of [undefined, MariaCap.CacheMetadata]) {
        const [g, hr, ok] = B.login({ deprecateEof, ...(maria !== undefined ? { maria } : {}) });
        const evs = events([['s', g], ['c', hr], ['s', ok], ['c', B.query('SELECT 1')], ['s', B.resultSet(1, ['1'], [['1'], ['2']], { deprecateEof, cacheMetadata: maria !== undefined })], ['c', B.ping()], ['s', B.ok(1)]]);
        assert.deepEqual(evs.slice(2, 3), [stmt({ statement: 'SELECT 1', cls: 'READ', tag: 'SELECT', rows: 2 })], `deprecateEof=${deprecateEof} maria=${maria}`);
        assert.equal(evs.length, 4);
      }
    }
  });

  it('multi-statements: one event per statement, several result sets; an error part way ends it (the rest did not run)', () => {
    const more = Status.MoreResultsExist | 0x2;
    const evs = events([
      ...LOGIN,
      ['c', B.query('INSERT INTO t VALUES (1); SELECT 1;\nSELECT 2')],
      ['s', cat([B.ok(1, { affected: 1, status: more }), B.resultSet(2, ['1'], [['1']], { status: more }), B.resultSet(7, ['2'], [['2']])])],
      ['c', B.query('SELECT 1; SELECT * FROM nope; SELECT 3')],
      ['s', cat([B.resultSet(1, ['1'], [['1']], { status: more }), B.err(6, 1146, '42S02', 'nope')])],
      ['c', B.query('SELECT 9')],
      ['s', B.resultSet(1, ['9'], [['9']])],
    ]);
    assert.deepEqual(evs.filter((e) => e.kind === 'statement').map((e) => [e.statement, e.rows, e.error ?? '']), [
      ['INSERT INTO t VALUES (1)', 1, ''],
      ['SELECT 1', 1, ''],
      ['SELECT 2', 1, ''],
      ['SELECT 1', 1, ''],
      ['SELECT * FROM nope', 0, '1146'],
      ['SELECT 9', 1, ''],
    ]);
  });

  it('a CALL returning two result sets and its final OK is one statement; without CLIENT_MULTI_STATEMENTS the text is never split', () => {
    const more = Status.MoreResultsExist | 0x2;
    const evs = events([
      ...LOGIN,
      ['c', B.query('CALL p(); SELECT 5')],
      ['s', cat([B.resultSet(1, ['a'], [['1'], ['2']], { status: more }), B.resultSet(7, ['b'], [['3']], { status: more }), B.ok(12, { status: more }), B.resultSet(13, ['5'], [['5']])])],
    ]);
    assert.deepEqual(evs.filter((e) => e.kind === 'statement').map((e) => [e.statement, e.cls, e.rows]), [['CALL p()', 'FUNCTION', 3], ['SELECT 5', 'READ', 1]]);
    const single = events([['s', G], ['c', B.handshakeResponse({ db: 'd', caps: B.CLIENT_CAPS & ~Cap.MultiStatements })], ['s', OK], ['c', B.query('SELECT 1; SELECT 2')], ['s', B.err(1, 1064, '42000', 'syntax')]]);
    assert.deepEqual(single.filter((e) => e.kind === 'statement').map((e) => [e.statement, e.error]), [['SELECT 1; SELECT 2', '1064']]);
  });

  it('COM_INIT_DB and USE change the database and are recorded; session tracking wins when the server sends it', () => {
    const evs = events([...LOGIN, ['c', B.initDb('other')], ['s', B.ok(1)], ['c', B.query('SELECT 1')], ['s', B.resultSet(1, ['1'], [['1']])], ['c', B.query('USE `third`')], ['s', B.ok(1)], ['c', B.query('USE x')], ['s', B.ok(1, { status: Status.SessionStateChanged | 2, schema: 'tracked' })], ['c', B.initDb('nope')], ['s', B.err(1, 1049, '42000', 'Unknown database')]]);
    assert.deepEqual(evs.filter((e) => e.kind === 'statement').map((e) => [e.statement, e.database, e.tag ?? e.error]), [
      ['USE `other`', 'other', 'INIT_DB'],
      ['SELECT 1', 'other', 'SELECT'],
      ['USE `third`', 'third', 'USE'],
      ['USE x', 'tracked', 'USE'],
      ['USE `nope`', 'tracked', '1049'],
    ]);
  });

  it('prepare / execute: text by statement id, parameters with NULL bitmap and new-params-bound, types reused; close forgets it', () => {
    const steps: Step[] = [
      ...LOGIN,
      ['c', B.prepare('SELECT * FROM t WHERE a = ? AND b = ? AND c = ?')],
      ['s', B.prepareOk(1, 9, 3, 2)],
      ['c', B.execute(9, [{ type: Type.Long, value: B.V.long(5) }, { type: Type.VarString, value: B.V.str('x') }, { type: Type.Null, value: null }])],
      ['s', B.resultSet(1, ['a', 'b'], [['5', 'x']], { binary: true })],
      ['c', B.execute(9, [{ type: Type.Long, value: B.V.long(6) }, { type: Type.VarString, value: null }, { type: Type.Null, value: null }], false)],
      ['s', B.resultSet(1, ['a', 'b'], [], { binary: true })],
      ['c', B.stmtClose(9)],
      ['c', B.execute(9, [])],
      ['s', B.err(1, 1243, 'HY000', 'Unknown prepared statement handler')],
      ['c', B.prepare('SELEC 1')],
      ['s', B.err(1, 1064, '42000', 'syntax')],
    ];
    const evs = events(steps, { logParameters: true });
    assert.deepEqual(evs.filter((e) => e.kind === 'statement'), [
      stmt({ statement: 'SELECT * FROM t WHERE a = ? AND b = ? AND c = ?', cls: 'READ', tag: 'SELECT', rows: 1, params: ['5', 'x', 'NULL'] }),
      stmt({ statement: 'SELECT * FROM t WHERE a = ? AND b = ? AND c = ?', cls: 'READ', tag: 'SELECT', rows: 0, params: ['6', 'NULL', 'NULL'] }),
      stmt({ cls: 'MISC', rows: 0, error: '1243', sqlstate: 'HY000' }), // a statement id never prepared here: no text
      stmt({ statement: 'SELEC 1', cls: 'MISC', rows: 0, error: '1064', sqlstate: '42000' }),
    ]);
    const off = events(steps);
    assert.equal(off.filter((e) => e.params !== undefined).length, 0, 'no parameters unless log_parameters');
  });

  it('an execute that opens a cursor completes at the column EOF; COM_STMT_FETCH rows are not a new statement', () => {
    const evs = events([
      ...LOGIN,
      ['c', B.prepare('SELECT a FROM t')],
      ['s', B.prepareOk(1, 4, 0, 1)],
      ['c', B.execute(4, [], true, 0x01)],
      ['s', cat([B.packets(1, Buffer.from([1])), B.columnDef(2, 'a'), B.eof(3, Status.CursorExists | 2)])],
      ['c', B.command(Com.StmtFetch, Buffer.from([4, 0, 0, 0, 10, 0, 0, 0]))],
      ['s', cat([B.binaryRow(1, ['1']), B.binaryRow(2, ['2']), B.eof(3, Status.LastRowSent | 2)])],
      ['c', B.query('SELECT 1')],
      ['s', B.resultSet(1, ['1'], [['1']])],
    ]);
    assert.deepEqual(evs.filter((e) => e.kind === 'statement').map((e) => [e.statement, e.rows, e.detail ?? '']), [['SELECT a FROM t', 0, 'cursor opened'], ['SELECT 1', 1, '']]);
  });

  it('MariaDB COM_STMT_BULK_EXECUTE: one statement with the prepared text and the affected rows', () => {
    const evs = events([...LOGIN, ['c', B.prepare('INSERT INTO t VALUES (?)')], ['s', B.prepareOk(1, 5, 1, 0)], ['c', B.command(Com.StmtBulkExecute, Buffer.from([5, 0, 0, 0, 0x80, 0, 3, 0, 0, 1, 0, 0, 0, 0, 2, 0, 0, 0]))], ['s', B.ok(1, { affected: 2 })]]);
    assert.deepEqual(evs.filter((e) => e.kind === 'statement').map((e) => [e.statement, e.tag, e.rows]), [['INSERT INTO t VALUES (?)', 'INSERT', 2]]);
  });

  it('SEND_LONG_DATA is counted into the next execute, then forgotten; STMT_RESET drops it', () => {
    const evs = events(
      [
        ...LOGIN,
        ['c', B.prepare('INSERT INTO t VALUES (?, ?)')],
        ['s', B.prepareOk(1, 3, 2, 0)],
        ['c', B.sendLongData(3, 1, Buffer.alloc(1000, 1))],
        ['c', B.sendLongData(3, 1, Buffer.alloc(24, 1))],
        ['c', B.execute(3, [{ type: Type.Long, value: B.V.long(1) }, { type: Type.Blob, value: Buffer.alloc(0) }])],
        ['s', B.ok(1, { affected: 1 })],
        ['c', B.sendLongData(3, 0, Buffer.alloc(10))],
        ['c', B.stmtReset(3)],
        ['s', B.ok(1)],
        ['c', B.execute(3, [{ type: Type.Long, value: B.V.long(2) }, { type: Type.Blob, value: B.V.str('b') }])],
        ['s', B.ok(1, { affected: 1 })],
      ],
      { logParameters: true },
    );
    assert.deepEqual(evs.filter((e) => e.kind === 'statement').map((e) => e.params), [['1', '<long data: 1024 bytes>'], ['2', 'b']]);
  });

  it('COM_CHANGE_USER: auth switch round, then the user and database change; a failure is a login_failure', () => {
    const evs = events([
      ...LOGIN,
      ['c', B.changeUser('bob', 'd2')],
      ['s', B.authSwitch(1, 'mysql_native_password')],
      ['c', B.authData(2, Buffer.alloc(20, 3))],
      ['s', B.ok(3)],
      ['c', B.query('SELECT 1')],
      ['s', B.resultSet(1, ['1'], [['1']])],
      ['c', B.changeUser('eve', 'd3')],
      ['s', B.err(1, 1045, '28000', 'Access denied')],
    ]);
    assert.deepEqual(evs.slice(2), [
      { kind: 'login_success', user: 'bob', database: 'd2', detail: 'change_user' },
      { kind: 'statement', user: 'bob', database: 'd2', statement: 'SELECT 1', cls: 'READ', tag: 'SELECT', rows: 1 },
      { kind: 'login_failure', user: 'eve', database: 'd3', error: '1045', sqlstate: '28000', detail: 'change_user' },
      { kind: 'session_end', user: 'bob', database: 'd2', reason: 'client_disconnect' },
    ]);
  });

  it('LOAD DATA LOCAL INFILE: content skipped by length and counted, never buffered', () => {
    const load = (content: Buffer, cut: number): Step[] => [
      ...LOGIN,
      ['c', B.query("LOAD DATA LOCAL INFILE 'f.csv' INTO TABLE t")],
      ['s', B.localInfile(1, 'f.csv')],
      ['c', cat([B.packets(2, content.subarray(0, cut)), B.packets(3, content.subarray(cut)), B.packets(4, Buffer.alloc(0))])],
      ['s', B.ok(5, { affected: 1000 })],
      ['c', B.query('SELECT 1')],
      ['s', B.resultSet(1, ['1'], [['1']])],
    ];
    const s = new TestSession().run(load(Buffer.alloc(1_000_000, 0x61), 600_000), 4096).end();
    assert.ok(s.maxBuffered <= 4096, `buffered ${s.maxBuffered}`);
    assert.equal(s.brief.filter((e) => e.kind === 'statement')[0]!.detail, 'load_data_bytes=1000000 load_data_packets=2');
    assert.deepEqual(events(load(Buffer.from('1,a\n2,b\n3,c\n'), 4)).filter((e) => e.kind === 'statement'), [
      stmt({ statement: "LOAD DATA LOCAL INFILE 'f.csv' INTO TABLE t", cls: 'WRITE', tag: 'LOAD', rows: 1000, detail: 'load_data_bytes=12 load_data_packets=2' }),
      stmt({ statement: 'SELECT 1', cls: 'READ', tag: 'SELECT', rows: 1 }),
    ]);
  });

  it('ping, statistics, field list, reset connection, set option, process kill: no statement except KILL; prepared statements forgotten on reset', () => {
    const s = new TestSession();
    s.run([
      ...LOGIN,
      ['c', B.prepare('SELECT 1')],
      ['s', B.prepareOk(1, 1, 0, 1)],
      ['c', B.ping()],
      ['s', B.ok(1)],
      ['c', B.statistics()],
      ['s', B.packets(1, Buffer.from('Uptime: 5  Threads: 1'))],
      ['c', B.fieldList('t')],
      ['s', cat([B.columnDef(1, 'a'), B.columnDef(2, 'b'), B.eof(3)])],
      ['c', B.setOption(true)],
      ['s', B.eof(1)],
      ['c', B.command(Com.ProcessKill, Buffer.from([7, 0, 0, 0]))],
      ['s', B.ok(1)],
    ]);
    assert.equal(s.tracker.preparedStatements, 1);
    s.run([['c', B.resetConnection()], ['s', B.ok(1)]]).end();
    assert.equal(s.tracker.preparedStatements, 0);
    assert.deepEqual(s.anomalies, []);
    assert.deepEqual(s.brief.filter((e) => e.kind === 'statement').map((e) => e.statement), ['KILL 7']);
  });

  it('a command sent but never answered is recorded as unfinished when the connection closes', () => {
    const s = new TestSession().run([...LOGIN, ['c', B.query('SELECT SLEEP(100)')]]).end('server_disconnect');
    assert.deepEqual(s.brief.slice(2), [stmt({ statement: 'SELECT SLEEP(100)', cls: 'READ', rows: 0, reason: 'connection_closed' }), { kind: 'session_end', ...who, reason: 'server_disconnect' }]);
  });

  it('the server status NO_BACKSLASH_ESCAPES (greeting, then every OK) switches the lexical rules of redaction and splitting', () => {
    const sql = "SELECT 'C:\\'; SELECT 'x'";
    const more = Status.MoreResultsExist | Status.NoBackslashEscapes | 2;
    const run = (status: number): unknown[] =>
      new TestSession({ redact: 'literals' })
        .run([['s', B.greeting({ status })], ['c', HR], ['s', B.ok(2, { status })], ['c', B.query(sql)], ['s', cat([B.resultSet(1, ['a'], [['C:\\']], { status: more }), B.resultSet(6, ['b'], [['x']], { status: status })])]])
        .end()
        .brief.filter((e) => e.kind === 'statement')
        .map((e) => e.statement);
    assert.deepEqual(run(Status.NoBackslashEscapes | 2), ['SELECT ?', 'SELECT ?']);
  });

  it('redaction in literals mode: MySQL lexical rules, passwords never kept', () => {
    const s = new TestSession({ redact: 'literals' }).run([...LOGIN, ['c', B.query("CREATE USER 'u'@'%' IDENTIFIED BY 'hunter2'")], ['s', B.ok(1)], ['c', B.query("SELECT 'it\\'s', \"dq\", `id` FROM t WHERE x = 0x1F # c")], ['s', B.ok(1)]]);
    assert.deepEqual(s.brief.filter((e) => e.kind === 'statement').map((e) => String(e.statement).trimEnd()), ['CREATE USER ?@? IDENTIFIED BY ?', 'SELECT ?, ?, `id` FROM t WHERE x = ?']);
    assert.ok(!JSON.stringify(s.events.map((e) => e.statement)).includes('hunter2'));
  });
});
