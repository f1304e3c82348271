import { constants } from 'node:fs';
import { access, open as openFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { MemoryDb } from './memory-db.js';

/**
 * A small promise wrapper over the `rocksdb` binding (abstract-leveldown
 * API), typed for what the cache uses. Keys and values are Buffers.
 * @internal
 */

type Cb<T = void> = (err: Error | null | undefined, value?: T) => void;

interface RawIterator {
  next(cb: (err: Error | null | undefined, key?: Buffer, value?: Buffer) => void): void;
  end(cb: Cb): void;
}

interface RawDb {
  open(opts: Record<string, unknown>, cb: Cb): void;
  close(cb: Cb): void;
  get(key: Buffer, opts: Record<string, unknown>, cb: Cb<Buffer>): void;
  getMany(keys: Buffer[], opts: Record<string, unknown>, cb: Cb<(Buffer | undefined)[]>): void;
  batch(ops: BatchOp[], opts: Record<string, unknown>, cb: Cb): void;
  /** The binding's own batch, below abstract-leveldown's per-operation checks and copies. */
  _batch?(ops: BatchOp[], opts: Record<string, unknown>, cb: Cb): void;
  status?: string;
  iterator(opts: Record<string, unknown>): RawIterator;
}

type RocksFactory = ((location: string) => RawDb) & { destroy(location: string, cb: Cb): void; repair(location: string, cb: Cb): void };

const require = createRequire(import.meta.url);
const rocksdb = require('rocksdb') as RocksFactory;

export type BatchOp = { type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer };

export interface RangeOptions {
  gt?: Buffer;
  gte?: Buffer;
  lt?: Buffer;
  lte?: Buffer;
  reverse?: boolean;
  limit?: number;
  values?: boolean;
}

export interface OpenOptions {
  writeBufferSize?: number;
  createIfMissing?: boolean;
  readOnly?: boolean;
}

/** RocksDB found damaged data (a block checksum, a torn file): `Rocks.repair` is the way out. */
export function isCorruption(err: unknown): boolean {
  return err instanceof Error && /^Corruption:/.test(err.message);
}

function isNotFound(err: Error): boolean {
  return /NotFound/i.test(err.message);
}

export class Rocks {
  readonly #db: RawDb;
  readonly location: string;

  private constructor(location: string, db: RawDb) {
    this.location = location;
    this.#db = db;
  }

  static async open(location: string, opts: OpenOptions = {}): Promise<Rocks> {
    if (!opts.readOnly) await probeWritable(location);
    const db = rocksdb(location);
    await new Promise<void>((resolve, reject) =>
      db.open(
        {
          createIfMissing: opts.createIfMissing ?? true,
          readOnly: opts.readOnly ?? false,
          compression: true,
          writeBufferSize: opts.writeBufferSize ?? 4 << 20,
          // No infoLogLevel: the binding installs a null logger, so no LOG files are written.
        },
        (err) => (err ? reject(err) : resolve()),
      ),
    );
    return new Rocks(location, db);
  }

  /** A database held in memory only (cache/memory-db.ts): nothing touches the disk, everything is gone with the process. */
  static memory(location = '(memory)'): Rocks {
    return new Rocks(location, new MemoryDb() as unknown as RawDb);
  }

  /** Read-write if the directory takes writes, else read-only (reads keep working), else nothing; with the read-write error. */
  static async openWritableOrReadOnly(location: string, opts: OpenOptions = {}): Promise<{ db?: Rocks; readOnly: boolean; error?: unknown }> {
    try {
      return { db: await Rocks.open(location, opts), readOnly: false };
    } catch (error) {
      const db = await Rocks.open(location, { ...opts, readOnly: true }).catch(() => undefined);
      return { db, readOnly: true, error };
    }
  }

  close(): Promise<void> {
    return new Promise((resolve, reject) => this.#db.close((err) => (err ? reject(err) : resolve())));
  }

  get(key: Buffer): Promise<Buffer | undefined> {
    return new Promise((resolve, reject) =>
      this.#db.get(key, { asBuffer: true, fillCache: true }, (err, v) => {
        if (err) return isNotFound(err) ? resolve(undefined) : reject(err);
        resolve(v);
      }),
    );
  }

  getMany(keys: Buffer[]): Promise<(Buffer | undefined)[]> {
    if (keys.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) =>
      this.#db.getMany(keys, { asBuffer: true, fillCache: true }, (err, v) => (err ? reject(err) : resolve(v ?? []))),
    );
  }

  write(ops: BatchOp[], sync: boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      const done: Cb = (err) => (err ? reject(err) : resolve());
      const db = this.#db;
      // Our ops are already what the binding takes (Buffer keys and values, put/del): skip
      // abstract-leveldown's per-op validation and copy. Only while open: the wrapper turns
      // a write to a closed database into an error, the binding would not.
      if (db.status === 'open' && db._batch && ops.length > 0) db._batch(ops, { sync }, done);
      else db.batch(ops, { sync }, done);
    });
  }

  /** Calls `each` for every entry in range, in order, until it returns false. */
  async forEach(range: RangeOptions, each: (key: Buffer, value: Buffer) => boolean | void): Promise<void> {
    const it = this.#db.iterator({ ...range, limit: range.limit ?? -1, keys: true, values: range.values ?? true, keyAsBuffer: true, valueAsBuffer: true });
    let failure: unknown;
    try {
      for (;;) {
        const entry = await new Promise<[Buffer, Buffer] | undefined>((resolve, reject) =>
          it.next((err, k, v) => (err ? reject(err) : resolve(k === undefined ? undefined : [k, v ?? Buffer.alloc(0)]))),
        );
        if (!entry || each(entry[0], entry[1]) === false) break;
      }
    } catch (err) {
      failure = err;
    }
    await new Promise<void>((resolve) => it.end(() => resolve()));
    if (failure !== undefined) throw failure;
  }

  /** RocksDB's RepairDB: rebuilds the MANIFEST, moves table files it cannot read into lost/. The database must be closed. */
  static repair(location: string): Promise<void> {
    return new Promise((resolve, reject) => rocksdb.repair(location, (err) => (err ? reject(err) : resolve())));
  }

  static destroy(location: string): Promise<void> {
    return new Promise((resolve, reject) => rocksdb.destroy(location, (err) => (err ? reject(err) : resolve())));
  }
}

/**
 * Fails when the directory or its LOCK file cannot be written. RocksDB 6.17
 * (fs_posix.cc LockFile) leaves the LOCK path in its per-process table when
 * opening that file fails, after which no read-write open of the directory
 * can succeed in this process; so never let it try while writes would fail.
 */
async function probeWritable(location: string): Promise<void> {
  try {
    await access(location, constants.W_OK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  try {
    const fh = await openFile(join(location, 'LOCK'), 'r+');
    await fh.close();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
