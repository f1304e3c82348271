// Parsing pgaudit's lines out of a PostgreSQL stderr log written with the
// harness's log_line_prefix ('%m [%p] %c user=%u db=%d client=%r ').
//
//   2026-12-03 17:40:01.123 UTC [4242] 6750a1.1092 user=postgres db=app client=127.0.0.1(51234) LOG:  AUDIT: SESSION,1,1,READ,SELECT,,,"select 'a,b'",<none>
//
// The message after "AUDIT: " is one CSV record: audit type, statement id,
// substatement id, class, command, object type, object name, statement,
// then the parameters: one CSV field that is itself a CSV list of the
// values (or <none> / <not logged>; a NULL value is logged as empty). A
// statement field holding a comma, quote or newline is CSV-quoted; newlines
// in a message continue on the following log lines, each of which PostgreSQL
// prefixes with one tab.
import { closeSync, openSync, readSync, fstatSync } from 'node:fs';

export interface PgauditEntry {
  /** Log timestamp as written (%m), e.g. "2026-12-03 17:40:01.123 UTC". */
  readonly time: string;
  readonly pid: number;
  /** %c: session id, the same for every line of one backend session. */
  readonly sessionId: string;
  readonly user: string;
  readonly database: string;
  /** %r: "127.0.0.1(51234)", "[local]" or "". */
  readonly client: string;
  /** SESSION or OBJECT. */
  readonly auditType: string;
  readonly statementId: number;
  readonly substatementId: number;
  /** READ, WRITE, FUNCTION, ROLE, DDL, MISC, MISC_SET. */
  readonly class: string;
  /** e.g. SELECT, INSERT, CREATE TABLE, COPY. */
  readonly command: string;
  readonly objectType: string;
  readonly objectName: string;
  /** The statement text, unquoted. */
  readonly statement: string;
  /** The parameter field, unquoted: "<none>", "<not logged>", or a CSV list. */
  readonly parameter: string;
  /** Parameter values ([] for <none>, null for <not logged>); NULL shows as "". */
  readonly parameters: readonly string[] | null;
  /** 1-based line of the log (counted from the offset read) where it starts. */
  readonly line: number;
}

// %m [%p] %c user=%u db=%d client=%r LEVEL:  message
const PREFIX =
  /^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? \S+) \[(\d+)\] (\S+) user=(\S*) db=(\S*) client=(\S*) ([A-Z]+\d?):  (.*)$/;

interface RawMessage {
  readonly time: string;
  readonly pid: number;
  readonly sessionId: string;
  readonly user: string;
  readonly database: string;
  readonly client: string;
  readonly level: string;
  text: string;
  readonly line: number;
}

/** Every message of a harness-format log, continuation lines joined with "\n". */
export function readLogMessages(logFile: string, fromOffset = 0): RawMessage[] {
  const text = readFrom(logFile, fromOffset);
  const out: RawMessage[] = [];
  let cur: RawMessage | undefined;
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  lines.forEach((line, i) => {
    const m = PREFIX.exec(line);
    if (m !== null) {
      cur = {
        time: m[1]!,
        pid: Number(m[2]),
        sessionId: m[3]!,
        user: m[4]!,
        database: m[5]!,
        client: m[6]!,
        level: m[7]!,
        text: m[8]!,
        line: i + 1,
      };
      out.push(cur);
    } else if (cur !== undefined) {
      cur.text += '\n' + (line.startsWith('\t') ? line.slice(1) : line);
    }
  });
  return out;
}

/** pgaudit entries of the log, in log order, from byte `fromOffset` on. */
export function readPgauditLog(logFile: string, opts: { fromOffset?: number } = {}): PgauditEntry[] {
  const entries: PgauditEntry[] = [];
  for (const msg of readLogMessages(logFile, opts.fromOffset ?? 0)) {
    if (!msg.text.startsWith('AUDIT: ')) continue;
    const fields = parseCsvRecord(msg.text.slice('AUDIT: '.length));
    if (fields.length < 9) throw new Error(`pgaudit line ${msg.line}: expected ≥ 9 fields, got ${fields.length}: ${msg.text}`);
    const parameter = fields.slice(8).join(',');
    entries.push({
      time: msg.time,
      pid: msg.pid,
      sessionId: msg.sessionId,
      user: msg.user,
      database: msg.database,
      client: msg.client,
      auditType: fields[0]!,
      statementId: Number(fields[1]),
      substatementId: Number(fields[2]),
      class: fields[3]!,
      command: fields[4]!,
      objectType: fields[5]!,
      objectName: fields[6]!,
      statement: fields[7]!,
      parameter,
      parameters: parameter === '<not logged>' ? null : parameter === '<none>' ? [] : parseCsvRecord(parameter),
      line: msg.line,
    });
  }
  return entries;
}

function readFrom(file: string, offset: number): string {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const len = Math.max(0, size - offset);
    const buf = Buffer.alloc(len);
    let got = 0;
    while (got < len) {
      const n = readSync(fd, buf, got, len - got, offset + got);
      if (n === 0) break;
      got += n;
    }
    return buf.subarray(0, got).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/**
 * Split one CSV record (RFC 4180 quoting: "…" with "" for a quote; quoted
 * fields may hold commas and newlines).
 */
export function parseCsvRecord(text: string): string[] {
  return csvFields(text).map((f) => f.value);
}

interface CsvField {
  readonly value: string;
  /** Offset in the text where the field starts. */
  readonly start: number;
}

function csvFields(text: string): CsvField[] {
  const out: CsvField[] = [];
  let i = 0;
  for (;;) {
    const start = i;
    let value = '';
    if (text[i] === '"') {
      i++;
      for (;;) {
        const q = text.indexOf('"', i);
        if (q < 0) {
          value += text.slice(i); // unterminated: take the rest
          i = text.length;
          break;
        }
        value += text.slice(i, q);
        if (text[q + 1] === '"') {
          value += '"';
          i = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
      // anything between the closing quote and the comma is kept as is
      const comma = text.indexOf(',', i);
      const end = comma < 0 ? text.length : comma;
      value += text.slice(i, end);
      i = end;
    } else {
      const comma = text.indexOf(',', i);
      const end = comma < 0 ? text.length : comma;
      value = text.slice(i, end);
      i = end;
    }
    out.push({ value, start });
    if (i >= text.length) return out;
    i++; // the comma
  }
}
