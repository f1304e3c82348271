// Parsing MariaDB server_audit's file log:
//
//   20261203 17:20:00,vm,u1,127.0.0.1,5,7,QUERY,d1,'insert into t values (\'it\'\'s\')',0
//
// timestamp, server host, user, client host, connection id, query id,
// operation (CONNECT, QUERY, DISCONNECT, FAILED_CONNECT …), database, object
// (for QUERY the statement in single quotes, with \' \\ \n \r \t escapes),
// return code (the error number, 0 on success). One event per line: newlines
// inside statements are escaped.
import { setTimeout as sleep } from 'node:timers/promises';
import { closeSync, existsSync, fstatSync, openSync, readSync } from 'node:fs';

export interface ServerAuditEntry {
  /** As written, e.g. "20261203 17:20:00". */
  readonly time: string;
  readonly serverHost: string;
  readonly user: string;
  /** The client's host (127.0.0.1, localhost for the socket). */
  readonly client: string;
  readonly connectionId: number;
  readonly queryId: number;
  /** CONNECT, DISCONNECT, FAILED_CONNECT, QUERY, (READ, WRITE … if enabled). */
  readonly operation: string;
  readonly database: string;
  /** The object field, unquoted and unescaped: the statement text for QUERY. */
  readonly statement: string;
  /** Return code: 0 or the server's error number (1146 …). */
  readonly errno: number;
  /** 1-based line counted from the offset read. */
  readonly line: number;
}

const HEAD = /^(\d{8} \d\d:\d\d:\d\d),([^,]*),([^,]*),([^,]*),(\d+),(\d+),([A-Z_]+),([^,]*),/;

export function parseServerAuditLine(text: string, line = 1): ServerAuditEntry {
  const m = HEAD.exec(text);
  const lastComma = text.lastIndexOf(',');
  if (m === null || lastComma < m[0].length - 1) throw new Error(`server_audit line ${line} not understood: ${text}`);
  const object = text.slice(m[0].length, lastComma);
  return {
    time: m[1]!,
    serverHost: m[2]!,
    user: m[3]!,
    client: m[4]!,
    connectionId: Number(m[5]),
    queryId: Number(m[6]),
    operation: m[7]!,
    database: m[8]!,
    statement: unquote(object),
    errno: Number(text.slice(lastComma + 1)),
    line,
  };
}

const ESCAPES: Record<string, string> = { n: '\n', r: '\r', t: '\t', '0': '\0', b: '\b', Z: '\x1a' };

function unquote(field: string): string {
  if (!(field.length >= 2 && field.startsWith("'") && field.endsWith("'"))) return field;
  const body = field.slice(1, -1);
  let out = '';
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c === '\\' && i + 1 < body.length) {
      const n = body[++i]!;
      out += ESCAPES[n] ?? n;
    } else {
      out += c;
    }
  }
  return out;
}

export function readServerAuditLog(file: string, opts: { fromOffset?: number } = {}): ServerAuditEntry[] {
  if (!existsSync(file)) return [];
  const fd = openSync(file, 'r');
  let text: string;
  try {
    const from = opts.fromOffset ?? 0;
    const len = Math.max(0, fstatSync(fd).size - from);
    const buf = Buffer.alloc(len);
    let got = 0;
    while (got < len) {
      const n = readSync(fd, buf, got, len - got, from + got);
      if (n === 0) break;
      got += n;
    }
    text = buf.subarray(0, got).toString('utf8');
  } finally {
    closeSync(fd);
  }
  const lines = text.split('\n');
  // a last line without "\n" may still be being written: leave it for later
  lines.pop();
  return lines.map((l, i) => parseServerAuditLine(l, i + 1));
}

/**
 * server_audit writes an event after the client already has its answer, so a
 * test reads the log until `done(entries)` holds (≤ timeoutMs, then returns
 * what is there).
 */
export async function waitForServerAudit(
  file: string,
  done: (entries: ServerAuditEntry[]) => boolean,
  opts: { fromOffset?: number; timeoutMs?: number } = {},
): Promise<ServerAuditEntry[]> {
  const deadline = Date.now() + (opts.timeoutMs ?? 5_000);
  for (;;) {
    const entries = readServerAuditLog(file, opts);
    if (done(entries) || Date.now() > deadline) return entries;
    await sleep(50);
  }
}
