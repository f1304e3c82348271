/**
 * What the PostgreSQL tracker remembers between a client message and the
 * server's answer: the queue of operations waiting for a response, the
 * prepared statements and portals the server confirmed, and the statement
 * text as the audit keeps it. Everything here is bounded.
 */

/** Kinds of client operations that expect a server response. */
export const Op = {
  Query: 1,
  Parse: 2,
  Bind: 3,
  Describe: 4,
  Close: 5,
  Execute: 6,
  Sync: 7,
  FunctionCall: 8,
  /** A Sync the server ignores: it came during COPY FROM STDIN (libpq sends one with the command and one after CopyDone). */
  IgnoredSync: 9,
} as const;
export type Op = (typeof Op)[keyof typeof Op];

/** What a bound value past the head of a message too long to hold is recorded as (it streamed through unread). */
export const UNREAD_VALUE = '<not read: past the head of a message too long to hold>';

/** One client operation waiting for its response. One class for every kind so the tracker stays monomorphic. */
export class PendingOp {
  kind: Op;
  /** Parse: statement; Bind/Execute: portal; Close/Describe: target name. */
  name: string;
  /** Bind: statement name. */
  ref: string;
  /** Close/Describe: 'S' or 'P'. */
  target: number;
  /** Query: the whole text; Parse: the statement text. */
  sql: string;
  /** Parse: byte length of `sql` as sent. */
  sqlBytes: number;
  /** Query / Parse delivered as a head (too long to hold): bytes of SQL past `sql`, streamed through unread. */
  sqlCut: number;
  /** Bind / FunctionCall: rendered values when log_parameters is on. */
  params: string[] | null;
  /** FunctionCall: the function's oid. */
  oid: number;
  /** When the client sent it (ms since epoch) and the monotonic start (µs). */
  timeMs: number;
  mono: number;
  /** DataRows seen for the current statement. */
  rows: number;
  /** Query: where the next statement starts in `sql`. */
  cursor: number;
  copyBytes: number;
  copyMessages: number;
  /** Query / FunctionCall: finished (error or all statements done); later results are not statements. */
  done: boolean;
  /** The client ended a COPY (CopyDone / CopyFail) right after sending this. */
  copyEnd: boolean;

  constructor(kind: Op, timeMs: number, mono: number) {
    this.kind = kind;
    this.name = '';
    this.ref = '';
    this.target = 0;
    this.sql = '';
    this.sqlBytes = 0;
    this.sqlCut = 0;
    this.params = null;
    this.oid = 0;
    this.timeMs = timeMs;
    this.mono = mono;
    this.rows = 0;
    this.cursor = 0;
    this.copyBytes = 0;
    this.copyMessages = 0;
    this.done = false;
    this.copyEnd = false;
  }
}

/** A statement's text as the audit keeps it: redacted, cut, classified once. */
export class StatementText implements Weighed {
  readonly text: string;
  /** Byte length as sent (before redaction). */
  readonly length: number;
  readonly truncated: boolean;
  readonly cls: string;
  constructor(text: string, length: number, truncated: boolean, cls: string) {
    this.text = text;
    this.length = length;
    this.truncated = truncated;
    this.cls = cls;
  }
  get weight(): number {
    return 64 + this.text.length * 2;
  }
}

export const UNKNOWN_STATEMENT = new StatementText('', 0, false, 'MISC');

/** A portal run that was suspended (Execute with a row limit) and not finished yet. */
export class PortalRun {
  readonly timeMs: number;
  readonly mono: number;
  rows: number;
  constructor(timeMs: number, mono: number, rows: number) {
    this.timeMs = timeMs;
    this.mono = mono;
    this.rows = rows;
  }
}

export class Portal implements Weighed {
  readonly statement: StatementText;
  readonly statementName: string;
  readonly params: string[] | null;
  /** Memory held by the values (the statement text is shared with the prepared statement). */
  readonly weight: number;
  run: PortalRun | null;
  constructor(statement: StatementText, statementName: string, params: string[] | null) {
    this.statement = statement;
    this.statementName = statementName;
    this.params = params;
    this.weight = 64 + paramsWeight(params);
    this.run = null;
  }
}

/** Approximate bytes held by rendered parameter values. */
export function paramsWeight(params: string[] | null): number {
  if (params === null) return 0;
  let n = 0;
  for (const p of params) n += 16 + p.length * 2;
  return n;
}

/** A FIFO ring of at most `limit` items. */
export class RingQueue<T> {
  #items: (T | undefined)[];
  #head: number;
  #size: number;
  readonly limit: number;

  constructor(limit: number, initial = 16) {
    this.#items = new Array<T | undefined>(initial);
    this.#head = 0;
    this.#size = 0;
    this.limit = limit;
  }

  get size(): number {
    return this.#size;
  }

  /** False (and nothing added) when the queue is at its limit. */
  push(item: T): boolean {
    if (this.#size >= this.limit) return false;
    const cap = this.#items.length;
    if (this.#size === cap) {
      const next = new Array<T | undefined>(cap * 2);
      for (let i = 0; i < this.#size; i++) next[i] = this.#items[(this.#head + i) % cap];
      this.#items = next;
      this.#head = 0;
    }
    this.#items[(this.#head + this.#size) % this.#items.length] = item;
    this.#size++;
    return true;
  }

  peek(): T | undefined {
    return this.#size === 0 ? undefined : this.#items[this.#head];
  }

  /** The i-th item from the head. */
  at(i: number): T | undefined {
    return i < 0 || i >= this.#size ? undefined : this.#items[(this.#head + i) % this.#items.length];
  }

  shift(): T | undefined {
    if (this.#size === 0) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head] = undefined;
    this.#head = (this.#head + 1) % this.#items.length;
    this.#size--;
    return item;
  }
}

/** Something a BoundedMap can weigh (bytes of memory it holds, roughly). */
export interface Weighed {
  readonly weight: number;
}

/**
 * A map that forgets its oldest entries beyond `maxEntries` or `maxWeight`
 * (the newest entry is always kept). Replaced and forgotten entries go to
 * `onDrop`, so a caller can settle what they held.
 */
export class BoundedMap<V extends Weighed> {
  readonly #map = new Map<string, V>();
  readonly #maxEntries: number;
  readonly #maxWeight: number;
  readonly #onDrop: ((v: V) => void) | null;
  #weight: number;

  constructor(maxEntries: number, maxWeight: number, onDrop: ((v: V) => void) | null = null) {
    this.#maxEntries = maxEntries;
    this.#maxWeight = maxWeight;
    this.#onDrop = onDrop;
    this.#weight = 0;
  }
  get size(): number {
    return this.#map.size;
  }
  get weight(): number {
    return this.#weight;
  }
  get(key: string): V | undefined {
    return this.#map.get(key);
  }
  /** Sets `key` as the newest entry. */
  set(key: string, value: V): void {
    const old = this.#map.get(key);
    if (old !== undefined) {
      this.#map.delete(key);
      this.#weight -= old.weight;
      this.#onDrop?.(old);
    }
    this.#map.set(key, value);
    this.#weight += value.weight;
    while (this.#map.size > 1 && (this.#map.size > this.#maxEntries || this.#weight > this.#maxWeight)) {
      const oldest = this.#map.entries().next();
      if (oldest.done) break;
      this.#map.delete(oldest.value[0]);
      this.#weight -= oldest.value[1].weight;
      this.#onDrop?.(oldest.value[1]);
    }
  }
  /** Removes `key` (without `onDrop`) and returns its value. */
  delete(key: string): V | undefined {
    const v = this.#map.get(key);
    if (v !== undefined) {
      this.#map.delete(key);
      this.#weight -= v.weight;
    }
    return v;
  }
  values(): IterableIterator<V> {
    return this.#map.values();
  }
  clear(): void {
    this.#map.clear();
    this.#weight = 0;
  }
}
