import type { WireReader } from '../wire/reader.js';
import { UNREAD_VALUE } from './pending.js';

/**
 * PostgreSQL protocol 3.0 message codes and the body parsers the tracker
 * needs. Parsers take a reader positioned at the body (after type and
 * length) and return a parsed object, or null when the body is malformed;
 * they never throw. Objects are built by constructors that set every field.
 */

/** Frontend (client → server) message types. */
export const Frontend = {
  Bind: 0x42, // 'B'
  Close: 0x43, // 'C'
  CopyData: 0x64, // 'd'
  CopyDone: 0x63, // 'c'
  CopyFail: 0x66, // 'f'
  Describe: 0x44, // 'D'
  Execute: 0x45, // 'E'
  Flush: 0x48, // 'H'
  FunctionCall: 0x46, // 'F'
  Parse: 0x50, // 'P'
  /** PasswordMessage, SASLInitialResponse, SASLResponse, GSSResponse. */
  Password: 0x70, // 'p'
  Query: 0x51, // 'Q'
  Sync: 0x53, // 'S'
  Terminate: 0x58, // 'X'
} as const;

/** Backend (server → client) message types. */
export const Backend = {
  Authentication: 0x52, // 'R'
  BackendKeyData: 0x4b, // 'K'
  BindComplete: 0x32, // '2'
  CloseComplete: 0x33, // '3'
  CommandComplete: 0x43, // 'C'
  CopyBothResponse: 0x57, // 'W'
  CopyData: 0x64, // 'd'
  CopyDone: 0x63, // 'c'
  CopyInResponse: 0x47, // 'G'
  CopyOutResponse: 0x48, // 'H'
  DataRow: 0x44, // 'D'
  EmptyQueryResponse: 0x49, // 'I'
  ErrorResponse: 0x45, // 'E'
  FunctionCallResponse: 0x56, // 'V'
  NegotiateProtocolVersion: 0x76, // 'v'
  NoData: 0x6e, // 'n'
  NoticeResponse: 0x4e, // 'N'
  NotificationResponse: 0x41, // 'A'
  ParameterDescription: 0x74, // 't'
  ParameterStatus: 0x53, // 'S'
  ParseComplete: 0x31, // '1'
  PortalSuspended: 0x73, // 's'
  ReadyForQuery: 0x5a, // 'Z'
  RowDescription: 0x54, // 'T'
} as const;

/** Startup-phase request codes (the int32 after the length of an untyped message). */
export const StartupCode = {
  /** Protocol 3.0; 3.x minor versions share the major 3 in the high 16 bits. */
  Protocol3: 196608,
  SSLRequest: 80877103,
  GSSENCRequest: 80877104,
  CancelRequest: 80877102,
} as const;

/** Authentication request codes (first int32 of an 'R' message). */
export const AuthCode = {
  Ok: 0,
  KerberosV5: 2,
  CleartextPassword: 3,
  MD5Password: 5,
  GSS: 7,
  GSSContinue: 8,
  SSPI: 9,
  SASL: 10,
  SASLContinue: 11,
  SASLFinal: 12,
} as const;

export class StartupMessage {
  readonly user: string;
  readonly database: string;
  readonly applicationName: string;
  constructor(user: string, database: string, applicationName: string) {
    this.user = user;
    this.database = database;
    this.applicationName = applicationName;
  }
}

/** Body of a StartupMessage after the protocol code: name/value pairs ending in an empty name. */
export function parseStartupParams(r: WireReader): StartupMessage | null {
  let user = '';
  let database = '';
  let app = '';
  for (let i = 0; i < 1000; i++) {
    const name = r.cstring();
    if (!r.ok) return null;
    if (name === '') return r.atEnd ? new StartupMessage(user, database === '' ? user : database, app) : null;
    const value = r.cstring();
    if (!r.ok) return null;
    if (name === 'user') user = value;
    else if (name === 'database') database = value;
    else if (name === 'application_name') app = value;
  }
  return null;
}

/** The fields of an ErrorResponse (or NoticeResponse) the audit keeps. */
export class ErrorFields {
  readonly severity: string;
  readonly code: string;
  readonly message: string;
  constructor(severity: string, code: string, message: string) {
    this.severity = severity;
    this.code = code;
    this.message = message;
  }
}

export function parseErrorFields(r: WireReader): ErrorFields | null {
  let sevLocalized = '';
  let sev = '';
  let code = '';
  let message = '';
  for (;;) {
    const field = r.uint8();
    if (!r.ok) return null;
    if (field === 0) break;
    const value = r.cstring();
    if (!r.ok) return null;
    if (field === 0x56 /* V */) sev = value;
    else if (field === 0x53 /* S */) sevLocalized = value;
    else if (field === 0x43 /* C */) code = value;
    else if (field === 0x4d /* M */) message = value;
  }
  if (!r.atEnd) return null;
  return new ErrorFields(sev || sevLocalized, code, message);
}

/** CommandComplete tag split into the command (numbers removed) and its row count. */
export class CommandTag {
  readonly command: string;
  readonly rows: number;
  readonly hasRows: boolean;
  constructor(command: string, rows: number, hasRows: boolean) {
    this.command = command;
    this.rows = rows;
    this.hasRows = hasRows;
  }
}

/** Commands whose tag ends in a row count (INSERT also carries an oid before it). */
const COUNTED = new Set(['INSERT', 'SELECT', 'UPDATE', 'DELETE', 'MERGE', 'COPY', 'MOVE', 'FETCH']);

export function parseCommandTag(tag: string): CommandTag {
  const sp = tag.indexOf(' ');
  const first = sp < 0 ? tag : tag.slice(0, sp);
  if (sp > 0 && COUNTED.has(first)) {
    const last = tag.lastIndexOf(' ');
    const n = tag.slice(last + 1);
    if (/^[0-9]{1,20}$/.test(n)) return new CommandTag(first, Number(n), true);
  }
  return new CommandTag(tag, 0, false);
}

export class BindMessage {
  readonly portal: string;
  readonly statement: string;
  /** Rendered values when requested (text as text, binary as \x-hex, NULL as "NULL"), else null. */
  readonly params: string[] | null;
  constructor(portal: string, statement: string, params: string[] | null) {
    this.portal = portal;
    this.statement = statement;
    this.params = params;
  }
}

/**
 * Bind: portal, statement, format codes, values, result formats. Values are
 * rendered only when `render` (log_parameters), each cut to `maxValueBytes`.
 */
/**
 * A Bind; values rendered when `render`. `cut`: `r` holds only the head of
 * the message (the rest streamed through unread): the value the head ends
 * in is rendered as far as it goes, the ones after it as UNREAD_VALUE.
 */
export function parseBind(r: WireReader, render: boolean, maxValueBytes: number, cut = false): BindMessage | null {
  const portal = r.cstring();
  const statement = r.cstring();
  if (!r.ok) return null;
  if (!render) return new BindMessage(portal, statement, null);
  const nFormats = r.int16();
  if (nFormats < 0) return null;
  const formatsAt = r.skip(nFormats * 2);
  const nParams = r.int16();
  if (!r.ok || nParams < 0 || (nFormats > 1 && nFormats !== nParams)) return null;
  const buf = r.buffer;
  const params: string[] = new Array<string>(nParams);
  for (let i = 0; i < nParams; i++) {
    const len = r.int32();
    if (!r.ok || len < -1) {
      if (!cut || len < -1) return null;
      params.fill(UNREAD_VALUE, i);
      break;
    }
    if (len === -1) {
      params[i] = 'NULL';
      continue;
    }
    const fmt = nFormats === 0 ? 0 : buf.readInt16BE(formatsAt + (nFormats === 1 ? 0 : i * 2));
    const avail = r.remaining;
    if (cut && len > avail) {
      params[i] = avail > 0 ? renderValue(buf, r.position, avail, fmt, maxValueBytes) : UNREAD_VALUE;
      params.fill(UNREAD_VALUE, i + 1);
      break;
    }
    const at = r.skip(len);
    if (at < 0) return null;
    params[i] = renderValue(buf, at, len, fmt, maxValueBytes);
  }
  return new BindMessage(portal, statement, params);
}

/** Text values as text, binary as `\x` + hex; cut to `maxBytes` of source. */
export function renderValue(buf: Buffer, at: number, len: number, format: number, maxBytes: number): string {
  if (format === 0) {
    if (len <= maxBytes) return buf.toString('utf8', at, at + len);
    let end = at + maxBytes;
    while (end > at && (buf[end] & 0xc0) === 0x80) end--; // do not split a UTF-8 sequence
    return buf.toString('utf8', at, end);
  }
  const n = len * 2 + 2 > maxBytes ? Math.max(0, (maxBytes - 2) >> 1) : len;
  return '\\x' + buf.toString('hex', at, at + n);
}

export class ExecuteMessage {
  readonly portal: string;
  readonly maxRows: number;
  constructor(portal: string, maxRows: number) {
    this.portal = portal;
    this.maxRows = maxRows;
  }
}

export function parseExecute(r: WireReader): ExecuteMessage | null {
  const portal = r.cstring();
  const maxRows = r.int32();
  return r.atEnd ? new ExecuteMessage(portal, maxRows) : null;
}

/** Close and Describe: a kind byte ('S' statement, 'P' portal) and a name. */
export class TargetMessage {
  readonly kind: number;
  readonly name: string;
  constructor(kind: number, name: string) {
    this.kind = kind;
    this.name = name;
  }
}

export const TARGET_STATEMENT = 0x53; // 'S'
export const TARGET_PORTAL = 0x50; // 'P'

export function parseTarget(r: WireReader): TargetMessage | null {
  const kind = r.uint8();
  const name = r.cstring();
  if (!r.atEnd || (kind !== TARGET_STATEMENT && kind !== TARGET_PORTAL)) return null;
  return new TargetMessage(kind, name);
}

export class FunctionCallMessage {
  readonly oid: number;
  readonly params: string[] | null;
  constructor(oid: number, params: string[] | null) {
    this.oid = oid;
    this.params = params;
  }
}

/** FunctionCall: oid, argument formats, arguments, result format. */
export function parseFunctionCall(r: WireReader, render: boolean, maxValueBytes: number): FunctionCallMessage | null {
  const oid = r.int32();
  const nFormats = r.int16();
  if (!r.ok || nFormats < 0) return null;
  const formatsAt = r.skip(nFormats * 2);
  const nArgs = r.int16();
  if (!r.ok || nArgs < 0 || (nFormats > 1 && nFormats !== nArgs)) return null;
  const buf = r.buffer;
  const params: string[] | null = render ? new Array<string>(nArgs) : null;
  for (let i = 0; i < nArgs; i++) {
    const len = r.int32();
    if (!r.ok || len < -1) return null;
    if (len === -1) {
      if (params) params[i] = 'NULL';
      continue;
    }
    const at = r.skip(len);
    if (at < 0) return null;
    if (params) {
      const fmt = nFormats === 0 ? 0 : buf.readInt16BE(formatsAt + (nFormats === 1 ? 0 : i * 2));
      params[i] = renderValue(buf, at, len, fmt, maxValueBytes);
    }
  }
  r.int16();
  return r.atEnd ? new FunctionCallMessage(oid >>> 0, params) : null;
}

/** Parse: statement name, query text (as a span, so its byte length is known), parameter types. */
export class ParseMessage {
  readonly name: string;
  readonly query: string;
  readonly queryBytes: number;
  constructor(name: string, query: string, queryBytes: number) {
    this.name = name;
    this.query = query;
    this.queryBytes = queryBytes;
  }
}

export function parseParse(r: WireReader): ParseMessage | null {
  const name = r.cstring();
  const start = r.position;
  const nul = r.cstringEnd();
  if (nul < 0) return null;
  const query = r.buffer.toString('utf8', start, nul);
  const nTypes = r.int16();
  if (!r.ok || nTypes < 0) return null;
  r.skip(nTypes * 4);
  return r.atEnd ? new ParseMessage(name, query, nul - start) : null;
}
