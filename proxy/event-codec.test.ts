import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { create, toBinary } from '@bufbuild/protobuf';
import fc from 'fast-check';
import { AuditEventSchema } from '../proto/gen/audit/v1/event_pb.js';
import { ENCODED_FIELDS, encodeAuditEvent } from './event-codec.js';
import { makeEvent, newSessionMeta } from './events.js';

const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
const text = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.constantFrom('', 'SELECT 1', 'naïve ☃ 𝄞', 'x'.repeat(300)));

describe('encodeAuditEvent', () => {
  it('knows every field of AuditEvent', () => {
    assert.deepEqual([...ENCODED_FIELDS].sort((a, b) => a - b), AuditEventSchema.fields.map((f) => f.number).sort((a, b) => a - b));
  });

  it('writes the same bytes as toBinary for an event made by makeEvent', () => {
    const meta = newSessionMeta('postgres', '127.0.0.1:5000', '127.0.0.1:5432', Date.now());
    const ev = makeEvent('statement', meta, Date.now());
    assert.deepEqual(Buffer.from(encodeAuditEvent(ev)), Buffer.from(toBinary(AuditEventSchema, ev)));
    assert.deepEqual(Buffer.from(encodeAuditEvent(create(AuditEventSchema))), Buffer.from(toBinary(AuditEventSchema, create(AuditEventSchema))));
  });

  it('writes the same bytes as toBinary for any field values', () => {
    fc.assert(
      fc.property(
        fc.record({
          eventId: text, kind: text, sessionId: text, user: text, database: text, tls: fc.boolean(), statement: text, parameters: fc.array(text, { maxLength: 4 }),
          rows: u64, durationUs: u64, statementTruncated: fc.boolean(), statementLength: u64, errorMessage: text, bytesToClient: u64, detail: text,
          collectorId: text, epoch: text, seq: u64, chainHash: fc.uint8Array({ maxLength: 40 }), lossToSeq: u64, deliveredBy: text,
          time: fc.option(fc.record({ seconds: fc.bigInt({ min: -(2n ** 40n), max: 2n ** 40n }), nanos: fc.integer({ min: 0, max: 999_999_999 }) }), { nil: undefined }),
          receivedAt: fc.option(fc.record({ seconds: fc.bigInt({ min: 0n, max: 2n ** 40n }), nanos: fc.integer({ min: 0, max: 999_999_999 }) }), { nil: undefined }),
        }),
        (init) => {
          const ev = create(AuditEventSchema, init);
          assert.deepEqual(Buffer.from(encodeAuditEvent(ev)), Buffer.from(toBinary(AuditEventSchema, ev)));
        },
      ),
      { numRuns: 500 },
    );
  });
});
