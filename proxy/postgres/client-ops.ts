import type { Clock } from '../../lib/clock.js';
import type { WireReader } from '../wire/reader.js';
import { Frontend, parseBind, parseExecute, parseFunctionCall, parseParse, parseTarget } from './messages.js';
import { Op, PendingOp, paramsWeight } from './pending.js';

/**
 * A client message as the operation it asks of the server. Returns the
 * operation to queue, `undefined` for a message that gets no response of
 * its own (Flush, CopyData/Done/Fail), or the message's name when its body
 * is malformed. `r` is positioned at the body.
 */
export function clientOp(type: number, r: WireReader, clock: Clock, logParameters: boolean, maxValueBytes: number, declared = -1): PendingOp | string | undefined {
  if (declared >= 0) return headOp(type, r, clock, declared, logParameters, maxValueBytes);
  switch (type) {
    case Frontend.Query: {
      const start = r.position;
      const nul = r.cstringEnd();
      if (nul < 0 || !r.atEnd) return 'Query';
      const op = new PendingOp(Op.Query, clock.now(), clock.monoMicros());
      op.sql = r.buffer.toString('utf8', start, nul);
      op.sqlBytes = nul - start;
      return op;
    }
    case Frontend.Parse: {
      const m = parseParse(r);
      if (m === null) return 'Parse';
      const op = new PendingOp(Op.Parse, clock.now(), clock.monoMicros());
      op.name = m.name;
      op.sql = m.query;
      op.sqlBytes = m.queryBytes;
      return op;
    }
    case Frontend.Bind: {
      const m = parseBind(r, logParameters, maxValueBytes);
      if (m === null) return 'Bind';
      const op = new PendingOp(Op.Bind, clock.now(), clock.monoMicros());
      op.name = m.portal;
      op.ref = m.statement;
      op.params = m.params;
      op.sqlBytes = paramsWeight(m.params); // counted against the pending-bytes bound
      return op;
    }
    case Frontend.Describe:
    case Frontend.Close: {
      const m = parseTarget(r);
      if (m === null) return type === Frontend.Close ? 'Close' : 'Describe';
      const op = new PendingOp(type === Frontend.Close ? Op.Close : Op.Describe, clock.now(), clock.monoMicros());
      op.name = m.name;
      op.target = m.kind;
      return op;
    }
    case Frontend.Execute: {
      const m = parseExecute(r);
      if (m === null) return 'Execute';
      const op = new PendingOp(Op.Execute, clock.now(), clock.monoMicros());
      op.name = m.portal;
      return op;
    }
    case Frontend.Sync:
      return new PendingOp(Op.Sync, clock.now(), clock.monoMicros());
    case Frontend.FunctionCall: {
      const m = parseFunctionCall(r, logParameters, maxValueBytes);
      if (m === null) return 'FunctionCall';
      const op = new PendingOp(Op.FunctionCall, clock.now(), clock.monoMicros());
      op.oid = m.oid;
      op.params = m.params;
      op.sqlBytes = paramsWeight(m.params);
      return op;
    }
    default:
      return undefined;
  }
}

/**
 * The head of a Query / Parse / Bind / FunctionCall too long to hold
 * (`declared`: its whole body length; the rest streams through unread): the
 * SQL as far as it goes, names and oid, and the values the head holds.
 */
function headOp(type: number, r: WireReader, clock: Clock, declared: number, logParameters: boolean, maxValueBytes: number): PendingOp | string | undefined {
  const start = r.position;
  const end = start + r.remaining;
  const buf = r.buffer;
  switch (type) {
    case Frontend.Query: {
      const op = new PendingOp(Op.Query, clock.now(), clock.monoMicros());
      op.sql = buf.toString('utf8', start, end);
      op.sqlBytes = end - start;
      op.sqlCut = declared - 1 - op.sqlBytes; // the NUL ends the body
      return op;
    }
    case Frontend.Parse: {
      const name = r.cstring();
      if (!r.ok) return 'Parse';
      const op = new PendingOp(Op.Parse, clock.now(), clock.monoMicros());
      op.name = name;
      const at = r.position;
      op.sql = buf.toString('utf8', at, end);
      op.sqlBytes = end - at;
      op.sqlCut = Math.max(0, declared - (at - start) - op.sqlBytes - 3); // NUL and the parameter type count (types, if any, are counted too)
      return op;
    }
    case Frontend.Bind: {
      const m = parseBind(r, logParameters, maxValueBytes, true);
      if (m === null) return 'Bind';
      const op = new PendingOp(Op.Bind, clock.now(), clock.monoMicros());
      op.name = m.portal;
      op.ref = m.statement;
      op.params = m.params;
      op.sqlBytes = paramsWeight(m.params);
      return op;
    }
    case Frontend.FunctionCall: {
      const oid = r.int32();
      if (!r.ok) return 'FunctionCall';
      const op = new PendingOp(Op.FunctionCall, clock.now(), clock.monoMicros());
      op.oid = oid;
      return op;
    }
    default:
      return type === Frontend.Query ? 'Query' : undefined;
  }
}
