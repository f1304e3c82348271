import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RETAIN_BYTES } from '../wire/frame-buffer.js';
import * as B from './test-builders.js';
import { TestSession, type Step } from './test-session.js';
import { DEFAULT_TRACKER_LIMITS } from './tracker.js';

const login: Step[] = [
  ['c', B.startup({ user: 'mallory', database: 'shop' })],
  ['s', B.loginOk()],
];
const cat = Buffer.concat;

/** Runs `steps` (whole and byte by byte) and checks: one anomaly with `reason`, decoding off, bounded buffers, a session end. */
function expectAnomaly(steps: Step[], reason: string): TestSession {
  let last: TestSession | undefined;
  for (const chunk of [0, 1, 7]) {
    const s = new TestSession().run(steps, chunk);
    assert.equal(s.tracker.decoding, false, `decoding stopped (chunk ${chunk})`);
    s.end();
    const anomalies = s.events.filter((e) => e.kind === 'anomaly');
    assert.deepEqual(anomalies.map((e) => e.reason), [reason], `one anomaly (chunk ${chunk})`);
    assert.deepEqual(s.anomalies, [reason]);
    assert.equal(s.events.filter((e) => e.kind === 'session_end').length, 1);
    assert.ok(s.maxBuffered <= RETAIN_BYTES, `buffered ${s.maxBuffered}`);
    last = s;
  }
  return last!;
}

describe('postgres tracker: hostile input', () => {
  it('oversized_startup_length_1GB_never_allocates', () => {
    const b = Buffer.alloc(8);
    b.writeInt32BE(1 << 30, 0);
    b.writeInt32BE(196608, 4);
    const s = expectAnomaly([['c', b], ['c', Buffer.alloc(5000, 1)]], 'oversized_message');
    assert.ok(s.tracker.bufferedBytes < 100);
  });

  it('startup_length_below_minimum', () => {
    expectAnomaly([['c', Buffer.from([0, 0, 0, 4, 0, 0, 0, 0])]], 'bad_length');
  });

  it('startup_negative_length', () => {
    expectAnomaly([['c', Buffer.from([0xff, 0xff, 0xff, 0xf0, 0, 3, 0, 0])]], 'bad_length');
  });

  it('startup_unknown_request_code', () => {
    const b = Buffer.from([0, 0, 0, 8, 0x12, 0x34, 0x56, 0x78]);
    expectAnomaly([['c', b]], 'unknown_message');
  });

  it('startup_protocol_2_is_unsupported', () => {
    expectAnomaly([['c', B.startup({ user: 'x' }, 2 << 16)]], 'unsupported_protocol');
  });

  it('startup_parameters_without_terminator', () => {
    const m = B.startup({ user: 'x' });
    const cut = Buffer.from(m.subarray(0, m.length - 1));
    cut.writeInt32BE(cut.length, 0);
    expectAnomaly([['c', cut]], 'bad_message');
  });

  it('ssl_request_with_wrong_length', () => {
    expectAnomaly([['c', Buffer.from([0, 0, 0, 12, 0x04, 0xd2, 0x16, 0x2f, 0, 0, 0, 0])]], 'bad_length');
  });

  it('tls_client_hello_instead_of_startup', () => {
    expectAnomaly([['c', Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc])]], 'oversized_message');
  });

  it('data_after_cancel_request', () => {
    const s = new TestSession().run([['c', cat([B.cancelRequest(1, 2), Buffer.from('junk')])]]).end();
    assert.deepEqual(s.summary(), [{ kind: 'cancel' }, { kind: 'anomaly', reason: 'out_of_sync' }]);
  });

  it('typed_message_length_below_4', () => {
    expectAnomaly([...login, ['c', B.header('Q', 3)]], 'bad_length');
  });

  it('query_length_prefix_1GB_holds_only_its_head: audited from the head with its whole length, the rest streams through unread', () => {
    const cap = DEFAULT_TRACKER_LIMITS.statement;
    for (const redact of ['literals', 'none'] as const) {
      const s = new TestSession({ redact, maxStatementBytes: 100 });
      s.run([...login, ['c', cat([B.header('Q', 1 << 30), Buffer.from("select 1, 'x"), Buffer.alloc(cap + 70_000, 0x41)])]]);
      assert.equal(s.tracker.decoding, true);
      assert.ok(s.maxBuffered <= cap, `buffered ${s.maxBuffered}`);
      s.end();
      assert.deepEqual(s.anomalies, ['truncated_message'], 'the connection ended inside the message');
      const st = s.events.find((e) => e.kind === 'statement')!;
      assert.equal(st.statementLength, BigInt((1 << 30) - 4 - 1));
      assert.equal(st.statementTruncated, true);
      // The head ends inside a string: literals mode keeps it as ?; none mode keeps the text as sent, cut at the limit.
      assert.equal(st.statement, redact === 'literals' ? 'select ?, ?' : `select 1, 'x${'A'.repeat(100 - 12)}`);
    }
  });

  it('a statement over the head cap that mentions a password, cut inside the string, is masked whole in none mode', () => {
    const cap = DEFAULT_TRACKER_LIMITS.statement;
    const s = new TestSession({ redact: 'none', maxStatementBytes: 100 });
    s.run([...login, ['c', cat([B.header('Q', 1 << 30), Buffer.from("alter role x password '"), Buffer.alloc(cap, 0x41)])]]).end();
    assert.equal(s.events.find((e) => e.kind === 'statement')!.statement, '<masked: unparseable statement>');
  });

  it('Parse and Bind over the head cap: the statement is recorded from its head, the values are never held', () => {
    const cap = DEFAULT_TRACKER_LIMITS.statement;
    const sql = `select $1::text /* ${'p'.repeat(cap)} */`;
    const big = Buffer.alloc(cap * 2, 0x42);
    const s = new TestSession({ redact: 'literals', maxStatementBytes: 64, logParameters: true });
    s.run([...login, ['c', cat([B.parse('s1', sql), B.bind('p1', 's1', [big]), B.execute('p1'), B.sync()])]]);
    assert.ok(s.maxBuffered <= cap, `buffered ${s.maxBuffered}`);
    s.run([['s', cat([B.parseComplete(), B.bindComplete(), B.commandComplete('SELECT 1'), B.readyForQuery()])]]).end();
    assert.deepEqual(s.anomalies, []);
    const st = s.events.filter((e) => e.kind === 'statement');
    // The (binary) value runs past the head: kept as far as max_statement_bytes, as any long value.
    assert.deepEqual(st.map((e) => [e.statement, e.statementTruncated, e.commandTag, e.parameters]), [['select $1::text', true, 'SELECT', ['\\x' + '42'.repeat(31)]]]);
  });

  it('a Bind cut inside its values: the value the head ends in as far as it goes, the ones after it unread, never a wrong count', () => {
    const cap = DEFAULT_TRACKER_LIMITS.statement;
    const s = new TestSession({ redact: 'literals', maxStatementBytes: 64, logParameters: true });
    const values = ['a', Buffer.alloc(cap, 0x43), 'c', null];
    s.run([...login, ['c', cat([B.parse('s2', 'select $1, $2, $3, $4'), B.bind('p2', 's2', values), B.execute('p2'), B.sync()])]], 4096);
    s.run([['s', cat([B.parseComplete(), B.bindComplete(), B.commandComplete('SELECT 1'), B.readyForQuery()])]]).end();
    assert.deepEqual(s.anomalies, []);
    const st = s.events.filter((e) => e.kind === 'statement');
    assert.deepEqual(st.map((e) => e.parameters), [['a', '\\x' + '43'.repeat(31), '<not read: past the head of a message too long to hold>', '<not read: past the head of a message too long to hold>']]);
  });

  it('server_error_response_over_cap', () => {
    expectAnomaly([...login, ['c', B.query('select 1')], ['s', B.header('E', 2 * 1024 * 1024)]], 'oversized_message');
  });

  it('unknown_client_message_type', () => {
    expectAnomaly([...login, ['c', B.raw('z', Buffer.alloc(3))]], 'unknown_message');
  });

  it('unknown_server_message_type', () => {
    expectAnomaly([...login, ['s', B.raw('!', Buffer.alloc(3))]], 'unknown_message');
  });

  it('sync_with_a_body_is_bad_length', () => {
    expectAnomaly([...login, ['c', B.raw('S', Buffer.alloc(1))]], 'bad_length');
  });

  it('ready_for_query_with_wrong_length', () => {
    expectAnomaly([...login, ['c', B.query('select 1')], ['s', B.raw('Z', Buffer.from('II'))]], 'bad_length');
  });

  it('ready_for_query_with_unknown_status', () => {
    expectAnomaly([...login, ['c', B.query('select 1')], ['s', B.raw('Z', Buffer.from('Q'))]], 'bad_message');
  });

  it('query_without_nul_terminator', () => {
    expectAnomaly([...login, ['c', B.raw('Q', Buffer.from('select 1'))]], 'bad_message');
  });

  it('bind_with_format_count_mismatch', () => {
    const body = cat([Buffer.from('\0\0'), Buffer.from([0, 2, 0, 0, 0, 0]), Buffer.from([0, 3])]);
    const s = new TestSession({ logParameters: true }).run([...login, ['c', B.raw('B', body)]]).end();
    assert.deepEqual(s.anomalies, ['bad_message']);
  });

  it('bind_value_length_past_end', () => {
    const body = cat([Buffer.from('\0\0'), Buffer.from([0, 0, 0, 1, 0x7f, 0xff, 0xff, 0xff, 1, 2])]);
    const s = new TestSession({ logParameters: true }).run([...login, ['c', B.raw('B', body)]]).end();
    assert.deepEqual(s.anomalies, ['bad_message']);
  });

  it('execute_with_trailing_bytes', () => {
    expectAnomaly([...login, ['c', B.raw('E', Buffer.from([0, 0, 0, 0, 0, 9]))]], 'bad_message');
  });

  it('error_response_without_terminator', () => {
    expectAnomaly([...login, ['c', B.query('x')], ['s', B.raw('E', Buffer.from('SERROR\0C42000\0'))]], 'bad_message');
  });

  it('command_complete_with_nothing_pending', () => {
    expectAnomaly([...login, ['s', B.commandComplete('SELECT 1')]], 'out_of_sync');
  });

  it('parse_complete_without_parse', () => {
    expectAnomaly([...login, ['c', B.query('select 1')], ['s', B.parseComplete()]], 'out_of_sync');
  });

  it('portal_suspended_answering_a_query', () => {
    expectAnomaly([...login, ['c', B.query('select 1')], ['s', B.portalSuspended()]], 'out_of_sync');
  });

  it('ready_for_query_while_an_execute_is_unanswered', () => {
    expectAnomaly([...login, ['c', cat([B.bind('', ''), B.execute()])], ['s', cat([B.bindComplete(), B.readyForQuery()])]], 'out_of_sync');
  });

  it('query_results_before_authentication_completed', () => {
    expectAnomaly([login[0], ['s', B.commandComplete('SELECT 1')]], 'out_of_sync');
  });

  it('unknown_authentication_code', () => {
    expectAnomaly([login[0], ['s', B.authCode(99)]], 'bad_message');
  });

  it('second_startup_message_after_ssl_answer_n', () => {
    // SSLRequest, 'N', StartupMessage, then the client restarts the startup: typed phase sees garbage.
    expectAnomaly([['c', B.sslRequest()], ['s', Buffer.from('N')], ...login, ['c', B.startup({ user: 'x' })]], 'unknown_message');
  });

  it('ssl_answer_neither_n_nor_s', () => {
    expectAnomaly([['c', B.sslRequest()], ['s', Buffer.from('E')]], 'out_of_sync');
  });

  it('connection_ends_inside_a_message: truncated_message', () => {
    const q = B.query('select 1');
    const s = new TestSession().run([...login, ['c', q.subarray(0, 6)]]).end();
    assert.deepEqual(s.anomalies, ['truncated_message']);
    assert.equal(s.events.at(-1)!.kind, 'session_end');
  });

  it('server_disconnect_inside_a_row: the pending statement is closed by the connection, after the anomaly', () => {
    const row = B.dataRow(['abcdef']);
    const s = new TestSession().run([...login, ['c', B.query('select x from t')], ['s', cat([B.dataRow(['1']), row.subarray(0, 3)])]]).end('server_disconnect');
    assert.deepEqual(s.summary().slice(2), [
      { kind: 'anomaly', reason: 'truncated_message' },
      { kind: 'statement', statement: 'select x from t', class: 'READ', rows: 1, reason: 'connection_closed' },
      { kind: 'session_end', reason: 'server_disconnect' },
    ]);
  });

  it('garbage after an anomaly raises no second anomaly and never throws', () => {
    const s = new TestSession().run([...login, ['c', B.raw('z', Buffer.alloc(1))], ['c', Buffer.alloc(100, 0xff)], ['s', Buffer.alloc(100, 0xee)]]).end();
    assert.deepEqual(s.anomalies, ['unknown_message']);
    assert.equal(s.events.filter((e) => e.kind === 'session_end')[0].bytesFromClient, BigInt((login[0][1] as Buffer).length) + 6n + 100n);
  });

  it('statements pending when decoding stops are recorded as decoding_stopped, not as run', () => {
    const s = new TestSession().run([...login, ['c', B.query('update t set a = 1')], ['s', B.raw('!', Buffer.alloc(0))]]).end();
    assert.deepEqual(s.summary().slice(2), [
      { kind: 'anomaly', reason: 'unknown_message' },
      { kind: 'statement', statement: 'update t set a = 1', class: 'WRITE', reason: 'decoding_stopped' },
      { kind: 'session_end', reason: 'client_disconnect' },
    ]);
  });

  it('pending_overflow: a client that pipelines without bound', () => {
    const s = new TestSession({}, { ...DEFAULT_TRACKER_LIMITS, pendingOps: 10 }).run([...login, ['c', cat(Array.from({ length: 11 }, () => B.sync()))]]).end();
    assert.deepEqual(s.anomalies, ['pending_overflow']);
  });

  it('huge_data_row_is_skipped_by_length_across_chunks', () => {
    const big = 10 * 1024 * 1024;
    const row = Buffer.alloc(5 + big, 0x61);
    row[0] = 0x44;
    row.writeInt32BE(4 + big, 1);
    const s = new TestSession().run([...login, ['c', B.query('select blob')], ['s', cat([row, row, B.commandComplete('SELECT 2'), B.readyForQuery()])]], 65536);
    s.end();
    assert.deepEqual(s.anomalies, []);
    assert.equal(s.summary()[2].rows, 2);
    assert.ok(s.maxBuffered <= 64, `buffered ${s.maxBuffered}`);
  });

  it('huge_copy_data_is_skipped_by_length', () => {
    const big = 4 * 1024 * 1024;
    const d = B.copyData(Buffer.alloc(big));
    const s = new TestSession().run([...login, ['c', B.query('copy t from stdin')], ['s', B.copyInResponse(1)], ['c', cat([d, B.copyDone()])], ['s', cat([B.commandComplete('COPY 1'), B.readyForQuery()])]], 1000);
    assert.deepEqual(s.anomalies, []);
    assert.equal(s.events[2].detail, `copy_bytes=${big} copy_messages=1`);
    assert.ok(s.maxBuffered <= 64);
  });

  it('a large query split across chunks is buffered once at its exact size, then released', () => {
    const q = B.query('select ' + 'x'.repeat(200_000));
    const s = new TestSession().run([...login, ['c', q], ['s', cat([B.commandComplete('SELECT 0'), B.readyForQuery()])]], 4096);
    assert.equal(s.maxBuffered, q.length);
    assert.equal(s.tracker.bufferedBytes, 0);
    assert.equal(s.events[2].statementLength, 200_007n);
  });
});

describe('postgres tracker: large but legal messages', () => {
  it('a 65 535-byte GSS token in both directions is within the caps', () => {
    const token = Buffer.alloc(65_535, 7);
    const s = new TestSession().run([['c', B.startup({ user: 'k' })], ['s', B.raw('R', cat([Buffer.from([0, 0, 0, 7])]))], ['c', B.raw('p', token)], ['s', B.raw('R', cat([Buffer.from([0, 0, 0, 8]), token]))], ['s', B.loginOk()]], 4096).end();
    assert.deepEqual(s.anomalies, []);
    assert.equal(s.events[1].authMethod, 'gss');
  });
});
