import { fromBinary } from '@bufbuild/protobuf';
import { AuditEventSchema } from '../proto/gen/audit/v1/event_pb.js';
import type { EventBatch } from '../proto/gen/audit/v1/ingest_pb.js';
import { EVENT_KINDS } from '../proxy/events.js';
import { isUuid } from '../lib/uuid.js';
import type { StoredEvent } from './store.js';

/**
 * Checks each event of a batch on its own: a malformed event is refused
 * with a reason (a small fixed set, used as a metric label) and never
 * stops the others.
 */

export const RejectReason = {
  Decode: 'decode',
  EventId: 'event_id',
  Kind: 'kind',
  CollectorId: 'collector_id',
  Epoch: 'epoch',
  Time: 'time',
  FieldTooLong: 'field_too_long',
} as const;
export type RejectReason = (typeof RejectReason)[keyof typeof RejectReason];

export interface Rejection {
  /** Position of the event in the batch. */
  index: number;
  reason: RejectReason;
  message: string;
}

export interface Validated {
  accepted: StoredEvent[];
  rejected: Rejection[];
}

/** Longest identifier-like field (user, database, session, kind, collector, epoch) accepted, in bytes. */
export const MAX_FIELD_BYTES = 1024;
/** Latest event time accepted, microseconds: 2^53-1 keeps times exact in a double. */
const MAX_TIME_MICROS = Number.MAX_SAFE_INTEGER;

const KINDS = new Set(EVENT_KINDS);

function quote(s: string): string {
  return JSON.stringify(s.length > 64 ? s.slice(0, 64) + '…' : s);
}

export function validateBatch(batch: EventBatch, deliveredBy: string, receivedAtMs: number): Validated {
  const accepted: StoredEvent[] = [];
  const rejected: Rejection[] = [];
  const reject = (index: number, reason: RejectReason, message: string): void => {
    rejected.push({ index, reason, message: `event ${index}: ${message}` });
  };
  batch.events.forEach((raw, index) => {
    let ev;
    try {
      ev = fromBinary(AuditEventSchema, raw);
    } catch (err) {
      reject(index, RejectReason.Decode, `not a valid AuditEvent (${err instanceof Error ? err.message : String(err)})`);
      return;
    }
    if (!isUuid(ev.eventId)) return reject(index, RejectReason.EventId, `event_id ${quote(ev.eventId)} is not a lower-case UUID`);
    if (!KINDS.has(ev.kind)) return reject(index, RejectReason.Kind, `kind ${quote(ev.kind)} is not one of ${EVENT_KINDS.join(', ')}`);
    if (!ev.collectorId) return reject(index, RejectReason.CollectorId, 'collector_id is empty');
    if (!ev.epoch) return reject(index, RejectReason.Epoch, 'epoch is empty');
    for (const [name, value] of [['user', ev.user], ['database', ev.database], ['session_id', ev.sessionId], ['collector_id', ev.collectorId], ['epoch', ev.epoch]] as const) {
      if (Buffer.byteLength(value) > MAX_FIELD_BYTES) return reject(index, RejectReason.FieldTooLong, `${name} is longer than ${MAX_FIELD_BYTES} bytes`);
    }
    const t = ev.time;
    if (!t) return reject(index, RejectReason.Time, 'time is missing');
    const micros = Number(t.seconds) * 1_000_000 + Math.floor(t.nanos / 1000);
    if (t.nanos < 0 || t.nanos > 999_999_999 || !Number.isSafeInteger(micros) || micros < 0 || micros > MAX_TIME_MICROS) {
      return reject(index, RejectReason.Time, 'time is out of range');
    }
    accepted.push({ eventId: ev.eventId, timeMicros: micros, event: ev, raw, deliveredBy, receivedAtMs });
  });
  return { accepted, rejected };
}

/** The ack's `error` text for a batch's rejections: a count and the first few reasons. */
export function rejectionSummary(rejected: readonly Rejection[]): string {
  if (rejected.length === 0) return '';
  const shown = rejected.slice(0, 5).map((r) => r.message).join('; ');
  const more = rejected.length > 5 ? `; and ${rejected.length - 5} more` : '';
  return `${rejected.length} event${rejected.length === 1 ? '' : 's'} rejected: ${shown}${more}`;
}
