import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { AuditEventSchema, type AuditEvent } from '../proto/gen/audit/v1/event_pb.js';
import { clean, formatEventLine, formatMicros } from './format.js';

const T = Date.UTC(2026, 2, 1, 12, 0, 0, 250);

function ev(fields: Partial<Omit<AuditEvent, '$typeName'>>): AuditEvent {
  return create(AuditEventSchema, {
    eventId: '0195f0a0-0001-7000-8000-000000000001',
    time: timestampFromMs(T),
    sessionId: '0195f0a0-0000-7000-8000-00000000beef',
    clientAddress: '10.0.0.7:51234',
    user: 'app',
    database: 'prod',
    ...fields,
  });
}

test('one line per kind', () => {
  assert.equal(formatEventLine(ev({ kind: 'login_success', authMethod: 'scram-sha-256', applicationName: 'psql' })),
    '2026-03-01T12:00:00.250Z login_success app@prod [0000beef] 10.0.0.7:51234 auth=scram-sha-256 app=psql');
  assert.equal(formatEventLine(ev({ kind: 'login_failure', errorCode: '1045', errorMessage: 'Access denied' })),
    '2026-03-01T12:00:00.250Z login_failure app@prod [0000beef] 10.0.0.7:51234 error 1045: Access denied');
  assert.equal(formatEventLine(ev({ kind: 'statement', statement: 'select 1', commandTag: 'SELECT 1', rows: 1n, durationUs: 2_500_000n, statementTruncated: true })),
    '2026-03-01T12:00:00.250Z statement app@prod [0000beef] 10.0.0.7:51234 "select 1"… SELECT 1 rows=1 2.50s');
  assert.equal(formatEventLine(ev({ kind: 'anomaly', reason: 'frame_too_large', detail: 'declared length 1073741824' })),
    '2026-03-01T12:00:00.250Z anomaly app@prod [0000beef] 10.0.0.7:51234 reason=frame_too_large declared length 1073741824');
  assert.equal(formatEventLine(ev({ kind: 'loss', user: '', database: '', sessionId: '', clientAddress: '', lossFromSeq: 10n, lossToSeq: 20n, reason: 'max_size' })),
    '2026-03-01T12:00:00.250Z loss - [-] - seq=10-20 reason=max_size');
  assert.equal(formatEventLine(ev({ kind: 'cancel', reason: 'cancel_request' })),
    '2026-03-01T12:00:00.250Z cancel app@prod [0000beef] 10.0.0.7:51234 reason=cancel_request');
  assert.equal(formatEventLine(ev({ kind: 'session_end', durationUs: 3_725_000_000n, bytesFromClient: 10n, bytesToClient: 3n * 1024n * 1024n })),
    '2026-03-01T12:00:00.250Z session_end app@prod [0000beef] 10.0.0.7:51234 duration=1h02m in=10B out=3MB');
});

test('wire text cannot break the line or smuggle terminal controls', () => {
  const line = formatEventLine(ev({ kind: 'statement', statement: 'select "a\\b"\r\n;\u001b[2J\u009b\u2028', user: 'ev\nil' }));
  assert.equal(line, '2026-03-01T12:00:00.250Z statement ev\\nil@prod [0000beef] 10.0.0.7:51234 "select \\"a\\\\b\\"\\r\\n;\\u001b[2J\\u009b\\u2028" rows=0 0us');
  assert.ok(!/[\n\r\u001b\u009b\u2028]/.test(line));
  assert.equal(clean('a\tb'), 'a\\tb');
});

test('durations', () => {
  assert.deepEqual([0, 999, 1000, 12_345, 1_000_000, 59_990_000, 61_000_000, 7_200_000_000].map(formatMicros),
    ['0us', '999us', '1.00ms', '12.35ms', '1.00s', '59.99s', '1m01s', '2h00m']);
});
