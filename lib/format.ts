import type { AuditEvent } from '../proto/gen/audit/v1/event_pb.js';
import { formatBytes } from './units.js';

/**
 * One readable line per audit event, for `dbaudit events` and the demo:
 *
 *   <time> <kind> <user>@<database> [<session>] <client> <what happened>
 *
 * Everything that came off the wire (statement text, names, messages) is
 * escaped so the line stays one line and cannot carry terminal control
 * sequences; the statement is quoted.
 */

// C0 and C1 controls, DEL, and the Unicode line/paragraph separators.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

function escapeChar(c: string): string {
  switch (c) {
    case '\n': return '\\n';
    case '\r': return '\\r';
    case '\t': return '\\t';
    default: return '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0');
  }
}

/** A wire-supplied string made safe for one terminal line. */
export function clean(s: string): string {
  return s.replace(CONTROL, escapeChar);
}

/** The statement quoted, with quotes, backslashes and control characters escaped. */
function quoted(s: string): string {
  return '"' + s.replace(/["\\]/g, (c) => '\\' + c).replace(CONTROL, escapeChar) + '"';
}

/** 850us, 1.25ms, 3.40s, 2m05s, 1h02m. */
export function formatMicros(us: bigint | number): string {
  const n = Number(us);
  if (n < 1000) return `${n}us`;
  if (n < 1_000_000) return `${(n / 1000).toFixed(2)}ms`;
  const s = n / 1_000_000;
  if (s < 60) return `${s.toFixed(2)}s`;
  const total = Math.floor(s);
  if (total < 3600) return `${Math.floor(total / 60)}m${String(total % 60).padStart(2, '0')}s`;
  return `${Math.floor(total / 3600)}h${String(Math.floor((total % 3600) / 60)).padStart(2, '0')}m`;
}

function timeOf(ev: AuditEvent): string {
  if (!ev.time) return '-';
  const ms = Number(ev.time.seconds) * 1000 + Math.floor(ev.time.nanos / 1_000_000);
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? '-' : d.toISOString();
}

/** The last 8 hex digits of a session id: the random part of a UUIDv7, so it tells sessions apart. */
function shortSession(id: string): string {
  if (!id) return '-';
  const hex = id.replace(/-/g, '');
  return clean(hex.length >= 8 ? hex.slice(-8) : id);
}

function errorPart(ev: AuditEvent): string {
  const code = ev.sqlstate || ev.errorCode;
  if (!code && !ev.errorMessage) return '';
  return `error ${clean(code || '?')}${ev.errorMessage ? ': ' + clean(ev.errorMessage) : ''}`;
}

function details(ev: AuditEvent): string[] {
  const out: string[] = [];
  switch (ev.kind) {
    case 'session_start':
      out.push(ev.protocol || '-', ev.tls ? 'tls' : 'plain', `-> ${clean(ev.serverAddress || '-')}`);
      break;
    case 'login_success':
      if (ev.authMethod) out.push(`auth=${clean(ev.authMethod)}`);
      if (ev.applicationName) out.push(`app=${clean(ev.applicationName)}`);
      break;
    case 'login_failure':
      out.push(errorPart(ev) || 'error ?');
      break;
    case 'statement': {
      out.push(quoted(ev.statement) + (ev.statementTruncated ? '…' : ''));
      if (ev.commandTag) out.push(clean(ev.commandTag));
      out.push(`rows=${ev.rows}`, formatMicros(ev.durationUs));
      const err = errorPart(ev);
      if (err) out.push(err);
      break;
    }
    case 'session_end':
      out.push(`duration=${formatMicros(ev.durationUs)}`, `in=${formatBytes(Number(ev.bytesFromClient))}`, `out=${formatBytes(Number(ev.bytesToClient))}`);
      if (ev.reason) out.push(`reason=${clean(ev.reason)}`);
      break;
    case 'loss':
      out.push(`seq=${ev.lossFromSeq}-${ev.lossToSeq}`);
      if (ev.reason) out.push(`reason=${clean(ev.reason)}`);
      break;
    default: // anomaly, cancel and kinds added later
      if (ev.reason) out.push(`reason=${clean(ev.reason)}`);
      if (ev.detail) out.push(clean(ev.detail));
      {
        const err = errorPart(ev);
        if (err) out.push(err);
      }
  }
  return out;
}

export function formatEventLine(ev: AuditEvent): string {
  const who = ev.user || ev.database ? `${clean(ev.user || '?')}@${clean(ev.database || '?')}` : '-';
  return [timeOf(ev), clean(ev.kind || '?'), who, `[${shortSession(ev.sessionId)}]`, clean(ev.clientAddress || '-'), ...details(ev)].join(' ');
}
