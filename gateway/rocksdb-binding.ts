import { createRequire } from 'node:module';

/**
 * The slice of the `rocksdb` package (an abstract-leveldown 7 store) that
 * the embedded store uses, typed here and promisified, because the package
 * ships no type declarations. Keys and values are always Buffers.
 * @internal
 */

type Callback<T = void> = (err: Error | null | undefined, value?: T) => void;

interface RawIterator {
  next(cb: (err: Error | null | undefined, key?: Buffer, value?: Buffer) => void): void;
  end(cb: Callback): void;
}

export interface IteratorOptions {
  gt?: Buffer;
  gte?: Buffer;
  lt?: Buffer;
  lte?: Buffer;
  reverse?: boolean;
  limit?: number;
  keys?: boolean;
  values?: boolean;
}

interface RawChainedBatch {
  put(key: Buffer, value: Buffer): void;
  del(key: Buffer): void;
  write(options: { sync: boolean }, cb: Callback): void;
}

interface RawDb {
  open(options: { createIfMissing: boolean; errorIfExists: boolean; writeBufferSize?: number }, cb: Callback): void;
  close(cb: Callback): void;
  get(key: Buffer, options: { asBuffer: true; fillCache?: boolean }, cb: Callback<Buffer>): void;
  getMany(keys: Buffer[], options: { asBuffer: true; fillCache?: boolean }, cb: Callback<(Buffer | undefined)[]>): void;
  batch(): RawChainedBatch;
  iterator(options: IteratorOptions & { keyAsBuffer: true; valueAsBuffer: true }): RawIterator;
}

const require = createRequire(import.meta.url);
const rocksdb = require('rocksdb') as (location: string) => RawDb;

function settle<T>(resolve: (v: T) => void, reject: (e: Error) => void): Callback<T> {
  return (err, value) => (err ? reject(err) : resolve(value as T));
}

/** One async iterator over a key range; always call `end()` (or run it to completion with `for await`). */
export class RangeIterator {
  readonly #it: RawIterator;
  #ended = false;

  constructor(it: RawIterator) {
    this.#it = it;
  }

  /** The next entry, or undefined at the end of the range. */
  next(): Promise<{ key: Buffer; value: Buffer } | undefined> {
    return new Promise((resolve, reject) => {
      this.#it.next((err, key, value) => {
        if (err) reject(err);
        else if (key === undefined) resolve(undefined);
        else resolve({ key, value: value ?? Buffer.alloc(0) });
      });
    });
  }

  end(): Promise<void> {
    if (this.#ended) return Promise.resolve();
    this.#ended = true;
    return new Promise((resolve, reject) => this.#it.end(settle(resolve, reject)));
  }
}

/**
 * A write batch filled op by op (each goes straight into RocksDB's
 * WriteBatch, cheaper than handing over an array of op objects) and
 * applied atomically by `write`.
 */
export class WriteBatch {
  readonly #b: RawChainedBatch;
  #ops = 0;

  constructor(b: RawChainedBatch) {
    this.#b = b;
  }

  get length(): number {
    return this.#ops;
  }

  put(key: Buffer, value: Buffer): void {
    this.#b.put(key, value);
    this.#ops++;
  }

  del(key: Buffer): void {
    this.#b.del(key);
    this.#ops++;
  }

  /** With `sync` the write-ahead log is fsynced before this resolves. */
  write(sync: boolean): Promise<void> {
    return new Promise((resolve, reject) => this.#b.write({ sync }, settle(resolve, reject)));
  }
}

/** A RocksDB database with promise methods. */
export class RocksDb {
  readonly #db: RawDb;

  readonly #writeBufferSize: number | undefined;

  /** `writeBufferSize`: bytes a memtable takes before it is flushed to a table file (RocksDB's write_buffer_size; the binding's 4 MB when not given). */
  constructor(location: string, opts: { writeBufferSize?: number } = {}) {
    this.#db = rocksdb(location);
    this.#writeBufferSize = opts.writeBufferSize;
  }

  open(): Promise<void> {
    const size = this.#writeBufferSize === undefined ? {} : { writeBufferSize: this.#writeBufferSize };
    return new Promise((resolve, reject) => this.#db.open({ createIfMissing: true, errorIfExists: false, ...size }, settle(resolve, reject)));
  }

  close(): Promise<void> {
    return new Promise((resolve, reject) => this.#db.close(settle(resolve, reject)));
  }

  /** Values for `keys` in order, undefined where a key is absent. */
  getMany(keys: Buffer[]): Promise<(Buffer | undefined)[]> {
    if (keys.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => this.#db.getMany(keys, { asBuffer: true }, settle(resolve, reject)));
  }

  writeBatch(): WriteBatch {
    return new WriteBatch(this.#db.batch());
  }

  iterator(options: IteratorOptions): RangeIterator {
    return new RangeIterator(this.#db.iterator({ ...options, keyAsBuffer: true, valueAsBuffer: true }));
  }
}
