import type { WireReader } from '../wire/reader.js';
import { Cap, Resp, Status, lenenc, lenencSpan, lenencLast, restString, u16 } from './packets.js';

/**
 * Server responses of the command phase: OK (and the OK/EOF that ends a
 * result set), ERR. One instance of each is reused per session (fields
 * overwritten by each parse), so parsing allocates only the strings kept.
 */

/** Session-state-change type of a schema change (CLIENT_SESSION_TRACK). */
const SESSION_TRACK_SCHEMA = 1;

export class OkPacket {
  affectedRows = 0;
  lastInsertId = 0;
  status = 0;
  warnings = 0;
  /** The new default database when the server tracked a schema change, else null. */
  schema: string | null = null;

  get moreResults(): boolean {
    return (this.status & Status.MoreResultsExist) !== 0;
  }
}

/**
 * OK (0x00) or the 0xFE OK that ends rows with DEPRECATE_EOF; `r` at the
 * header byte. False when malformed.
 */
export function parseOk(r: WireReader, caps: number, out: OkPacket): boolean {
  r.uint8();
  out.affectedRows = lenenc(r);
  out.lastInsertId = lenenc(r);
  out.status = 0;
  out.warnings = 0;
  out.schema = null;
  if (caps & Cap.Protocol41) {
    out.status = u16(r);
    out.warnings = u16(r);
  }
  if (!r.ok || out.affectedRows < 0 || out.lastInsertId < 0) return false;
  if (caps & Cap.SessionTrack && r.remaining > 0) {
    lenencSpan(r); // info
    if (out.status & Status.SessionStateChanged && r.remaining > 0) readSchemaChange(r, out);
  }
  return r.ok;
}

function readSchemaChange(r: WireReader, out: OkPacket): void {
  const total = lenenc(r);
  if (!r.ok || total < 0 || total > r.remaining) return;
  const stop = r.position + total;
  while (r.ok && r.position < stop) {
    const type = r.uint8();
    const at = lenencSpan(r);
    const len = lenencLast;
    if (at < 0) return;
    if (type === SESSION_TRACK_SCHEMA) {
      const name = nestedString(r.buffer, at, at + len);
      if (name !== null) out.schema = name;
    }
  }
}

/** A nested length-encoded string at `buf[start, end)` (short form only), or null. */
function nestedString(buf: Buffer, start: number, end: number): string | null {
  if (start >= end) return null;
  const n = buf[start];
  if (n >= 0xfb || start + 1 + n > end) return null;
  return buf.toString('utf8', start + 1, start + 1 + n);
}

/** An EOF packet (0xFE, < 9 bytes): its status flags, or -1 when malformed. */
export function parseEofStatus(r: WireReader, caps: number): number {
  r.uint8();
  if (!(caps & Cap.Protocol41)) return r.ok ? 0 : -1;
  u16(r); // warnings
  const status = u16(r);
  return r.ok ? status : -1;
}

export class ErrPacket {
  code = 0;
  sqlstate = '';
  message = '';
}

/** MariaDB progress reports travel as ERR 0xFFFF; they are not errors. */
export const PROGRESS_CODE = 0xffff;

export function parseErr(r: WireReader, caps: number, out: ErrPacket): boolean {
  if (r.uint8() !== Resp.Err) return false;
  out.code = u16(r);
  out.sqlstate = '';
  if (!r.ok) return false;
  if (out.code === PROGRESS_CODE) {
    out.message = '';
    return true;
  }
  if (caps & Cap.Protocol41 && r.remaining >= 6 && r.buffer[r.position] === 0x23 /* # */) {
    r.skip(1);
    const at = r.skip(5);
    out.sqlstate = r.buffer.toString('latin1', at, at + 5);
  }
  out.message = restString(r);
  return r.ok;
}

/** Cuts an error message for the event (server messages can quote long statement text). */
export function cutMessage(s: string, max = 1024): string {
  return s.length <= max ? s : s.slice(0, max);
}
