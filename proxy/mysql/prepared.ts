import { BoundedMap, UNKNOWN_STATEMENT, paramsWeight } from '../postgres/pending.js';
import type { TrackerOptions } from '../protocol.js';
import type { WireReader } from '../wire/reader.js';
import { Com, u16, u32 } from './packets.js';
import { ExecuteHead, parseExecute } from './params.js';
import { Command, Prepared } from './pending.js';
import type { StatementText } from './statements.js';

/**
 * The statements the server prepared for a session, by statement id
 * (bounded: the oldest are forgotten first; an execute of a forgotten one
 * is recorded without text), with what the client attached to them:
 * parameter types of the last execute that bound them, and long data.
 */
export class PreparedStatements {
  readonly #map: BoundedMap<Prepared>;
  readonly #exec = new ExecuteHead();

  constructor(maxEntries: number, maxBytes: number) {
    this.#map = new BoundedMap<Prepared>(maxEntries, maxBytes);
  }

  get size(): number {
    return this.#map.size;
  }

  add(id: number, st: StatementText, nParams: number): void {
    this.#map.set(String(id), new Prepared(st, nParams));
  }

  /** COM_STMT_CLOSE (`r` after the command byte). */
  close(r: WireReader): void {
    this.#map.delete(String(u32(r)));
  }

  /** COM_STMT_RESET answered OK: the statement's long data is dropped. */
  reset(id: number): void {
    const p = this.#map.get(String(id));
    if (p !== undefined) p.longData = null;
  }

  /** COM_RESET_CONNECTION, COM_CHANGE_USER: every statement is gone. */
  clear(): void {
    this.#map.clear();
  }

  /** COM_STMT_SEND_LONG_DATA: counts the bytes per parameter (never keeps them). False when malformed. */
  longData(r: WireReader): boolean {
    const id = u32(r);
    const param = u16(r);
    if (!r.ok) return false;
    const p = this.#map.get(String(id));
    if (p !== undefined) {
      p.longData ??= new Map();
      p.longData.set(param, (p.longData.get(param) ?? 0) + r.remaining);
    }
    return true;
  }

  /**
   * The head of COM_STMT_SEND_LONG_DATA too long to hold: counts it and the
   * `unread` bytes after it; returns the counter for its continuation
   * packets, null when malformed.
   */
  longDataHead(r: WireReader, unread: number): ((bytes: number) => void) | null {
    const id = u32(r);
    const param = u16(r);
    if (!r.ok) return null;
    const p = this.#map.get(String(id));
    if (p === undefined) return () => undefined;
    const count = (bytes: number): void => {
      p.longData ??= new Map();
      p.longData.set(param, (p.longData.get(param) ?? 0) + bytes);
    };
    count(r.remaining + unread);
    return count;
  }

  /**
   * COM_STMT_EXECUTE / BULK_EXECUTE as the command to queue: the prepared
   * text, and the values when `log_parameters` (bulk values are not
   * decoded). Null when malformed. `r` is after the command byte. `cut`:
   * only the head of the execute is here (it was too long to hold).
   */
  execute(com: number, r: WireReader, o: TrackerOptions, cut = false): Command | null {
    const at = r.position;
    const end = at + r.remaining;
    const id = u32(r);
    if (!r.ok) return null;
    const p = this.#map.get(String(id));
    const c = new Command(com, o.clock.now(), o.clock.monoMicros());
    c.stmtId = id;
    c.st = p?.st ?? UNKNOWN_STATEMENT;
    if (com !== Com.StmtExecute) return c;
    r.reset(r.buffer, at, end); // parseExecute reads the id again with the rest of the head
    const exec = this.#exec;
    const params = parseExecute(r, p?.nParams ?? 0, p?.types ?? null, p?.longData ?? null, o.logParameters && p !== undefined, o.maxStatementBytes, exec, cut);
    if (params === undefined) return null;
    c.params = params;
    c.sqlBytes = paramsWeight(params); // the rendered values count against the pending bound
    c.cursorFlag = (exec.flags & 0x07) !== 0;
    if (p !== undefined) {
      if (exec.types !== null) p.types = exec.types;
      p.longData = null; // long data is consumed by the execute
    }
    return c;
  }
}
