import * as grpc from '@grpc/grpc-js';
import { create, toBinary } from '@bufbuild/protobuf';
import type { Timestamp } from '@bufbuild/protobuf/wkt';
import { AuditEventSchema, type AuditEvent } from '../proto/gen/audit/v1/event_pb.js';
import { SearchResponseSchema, type SearchRequest, type SearchResponse } from '../proto/gen/audit/v1/query_pb.js';
import { EVENT_KINDS } from '../proxy/events.js';
import { MAX_MESSAGE_BYTES, httpStatusOf } from '../lib/grpc.js';
import { AuditError, ErrorCode, isAuditError } from '../lib/errors.js';
import type { GatewayMetrics } from '../lib/metrics.js';
import type { Logger } from '../lib/log.js';
import type { CallGuard } from './auth.js';
import { normaliseLimit, type SearchFilter, type Store } from './store.js';
import { MAX_FIELD_BYTES } from './validate.js';

/** QueryService.Search: a checked SearchRequest → store.search → events newest first. */

const ENDPOINT = 'query';
/** Room left in a response for framing, so the events always fit in MAX_MESSAGE_BYTES. */
const RESPONSE_MARGIN = 64 * 1024;

export interface QueryOptions {
  store: Store;
  metrics: GatewayMetrics;
  logger: Logger;
  guard: CallGuard;
}

function micros(ts: Timestamp, name: string): number {
  const n = Number(ts.seconds) * 1_000_000 + Math.floor(ts.nanos / 1000);
  if (ts.nanos < 0 || ts.nanos > 999_999_999 || !Number.isSafeInteger(n) || n < 0) {
    throw new AuditError(ErrorCode.InvalidRequest, `${name} is not a valid time after 1970-01-01`);
  }
  return n;
}

/** The store filter a request asks for; throws DBA_INVALID_REQUEST naming the bad field. */
export function filterOf(req: SearchRequest): SearchFilter {
  const filter: SearchFilter = { limit: normaliseLimit(req.limit) };
  if (req.since) filter.sinceMicros = micros(req.since, 'since');
  if (req.until) filter.untilMicros = micros(req.until, 'until');
  if (filter.sinceMicros !== undefined && filter.untilMicros !== undefined && filter.sinceMicros >= filter.untilMicros) {
    throw new AuditError(ErrorCode.InvalidRequest, 'since must be before until');
  }
  const fields = [['user', req.user], ['database', req.database], ['session_id', req.sessionId], ['kind', req.kind], ['collector_id', req.collectorId], ['text', req.text]] as const;
  for (const [name, value] of fields) {
    if (Buffer.byteLength(value) > MAX_FIELD_BYTES) throw new AuditError(ErrorCode.InvalidRequest, `${name} is longer than ${MAX_FIELD_BYTES} bytes`);
  }
  if (req.kind && !EVENT_KINDS.includes(req.kind)) {
    throw new AuditError(ErrorCode.InvalidRequest, `kind ${JSON.stringify(req.kind)} is unknown; expected one of ${EVENT_KINDS.join(', ')}`);
  }
  if (req.user) filter.user = req.user;
  if (req.database) filter.database = req.database;
  if (req.sessionId) filter.sessionId = req.sessionId;
  if (req.kind) filter.kind = req.kind;
  if (req.collectorId) filter.collectorId = req.collectorId;
  if (req.text) filter.text = req.text;
  return filter;
}

/** Keeps the newest events that fit in one response message. */
function fitting(events: AuditEvent[]): { events: AuditEvent[]; truncated: boolean } {
  let bytes = 0;
  for (let i = 0; i < events.length; i++) {
    bytes += toBinary(AuditEventSchema, events[i]).length + 6;
    if (bytes > MAX_MESSAGE_BYTES - RESPONSE_MARGIN) return { events: events.slice(0, i), truncated: true };
  }
  return { events, truncated: false };
}

export class QueryHandler {
  readonly #opts: QueryOptions;

  constructor(opts: QueryOptions) {
    this.#opts = opts;
  }

  /** The grpc-js handler for QueryService.Search. */
  readonly search = (call: grpc.ServerUnaryCall<SearchRequest, SearchResponse>, callback: grpc.sendUnaryData<SearchResponse>): void => {
    const started = process.hrtime.bigint();
    const { metrics, logger, store } = this.#opts;
    const finish = (code: grpc.status, details: string, res?: SearchResponse, trailer?: grpc.Metadata): void => {
      metrics.apiRequests.inc({ endpoint: ENDPOINT, status: httpStatusOf(code) });
      metrics.apiLatency.observe({ endpoint: ENDPOINT }, Number(process.hrtime.bigint() - started) / 1e9);
      if (code === grpc.status.OK) callback(null, res, trailer);
      else callback({ code, details, metadata: new grpc.Metadata() });
    };
    const auth = this.#opts.guard(call);
    if (!auth.ok) return finish(auth.status.code, auth.status.details);
    let filter: SearchFilter;
    try {
      filter = filterOf(call.request);
    } catch (err) {
      return finish(grpc.status.INVALID_ARGUMENT, err instanceof Error ? err.message : String(err));
    }
    store.search(filter).then(
      (found) => {
        const { events, truncated } = fitting(found);
        const trailer = new grpc.Metadata();
        if (truncated) {
          trailer.set('dbaudit-truncated', 'true');
          logger.warn({ found: found.length, sent: events.length }, 'search answer cut to fit one message');
        }
        finish(grpc.status.OK, 'OK', create(SearchResponseSchema, { events }), trailer);
      },
      (err: unknown) => {
        const closed = isAuditError(err, ErrorCode.Closed);
        if (!closed) logger.error({ err }, 'search failed');
        finish(grpc.status.UNAVAILABLE, closed ? 'the gateway is shutting down' : 'search failed in the gateway store');
      },
    );
  };
}
