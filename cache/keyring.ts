import { type KeyObject, createHash, createSecretKey } from 'node:crypto';
import type { Config } from '../lib/config.js';
import { AuditError, ErrorCode } from '../lib/errors.js';
import { KEY_BYTES, readKeyEnv, readKeyFile } from '../lib/keys.js';

/** Bytes of the key id written in each record header. */
export const KEY_ID_BYTES = 4;

/** The public id of a key: the first 4 bytes of a SHA-256 over a label and the key, as 8 hex digits. */
export function keyIdOf(key: Uint8Array): string {
  return createHash('sha256').update('dbaudit cache key id\0').update(key).digest().subarray(0, KEY_ID_BYTES).toString('hex');
}

/**
 * One key to write with and any number to read with (rotation: the old key
 * stays readable while new records use the new one). Keys live only as
 * KeyObjects in #private fields; JSON and inspection show ids only.
 */
export class Keyring {
  readonly #keys = new Map<string, KeyObject>();
  readonly #writeId: string | undefined;

  /** `write` may be undefined for a read-only keyring (inspection). */
  constructor(write: Uint8Array | undefined, read: readonly Uint8Array[] = []) {
    for (const k of write ? [write, ...read] : read) {
      if (k.length !== KEY_BYTES) throw new AuditError(ErrorCode.Config, `cache key must be ${KEY_BYTES} bytes, got ${k.length}`);
      const id = keyIdOf(k);
      const prev = this.#keys.get(id);
      const obj = createSecretKey(Buffer.from(k));
      if (prev && !prev.equals(obj)) throw new AuditError(ErrorCode.Config, `two different cache keys share the id ${id}`);
      this.#keys.set(id, obj);
    }
    this.#writeId = write ? keyIdOf(write) : undefined;
  }

  /** Id of the key new records are sealed with; undefined for a read-only keyring. */
  get writeKeyId(): string | undefined {
    return this.#writeId;
  }

  /** Ids of every key that can open records (the write key included). */
  get keyIds(): string[] {
    return [...this.#keys.keys()];
  }

  has(id: string): boolean {
    return this.#keys.has(id);
  }

  /** @internal Key bytes for sealing; throws on a read-only keyring. */
  writeKey(): { id: string; key: KeyObject } {
    const id = this.#writeId;
    if (id === undefined) throw new AuditError(ErrorCode.Cache, 'this keyring has no write key');
    return { id, key: this.#keys.get(id)! };
  }

  /** @internal Key bytes for opening a record, by id. */
  readKey(id: string): KeyObject | undefined {
    return this.#keys.get(id);
  }

  toJSON(): { writeKeyId?: string; keyIds: string[] } {
    return { writeKeyId: this.#writeId, keyIds: this.keyIds };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `Keyring(write=${this.#writeId ?? 'none'}, keys=${this.keyIds.join(',')})`;
  }
}

export interface KeyringOptions {
  /** Allow a keyring without a write key (for `cache inspect`). */
  readOnly?: boolean;
}

/**
 * The keyring named by collector.cache.encryption.*: the write key from
 * key_file, or else from the environment variable named by key_env; every
 * read_key_files entry is an older key still accepted for reading.
 */
export function loadKeyring(config: Pick<Config, 'collector'>, env: NodeJS.ProcessEnv = process.env, opts: KeyringOptions = {}): Keyring {
  const enc = config.collector.cache.encryption;
  let write: Buffer | undefined;
  if (enc.key_file) write = readKeyFile(enc.key_file, 'collector.cache.encryption.key_file');
  else if (enc.key_env) write = readKeyEnv(env, enc.key_env);
  const read = (enc.read_key_files ?? []).map((f) => readKeyFile(f, 'collector.cache.encryption.read_key_files entry'));
  if (!write && !opts.readOnly) {
    throw new AuditError(
      ErrorCode.Config,
      `collector.cache.encryption: no cache key; set key_file to a file holding ${KEY_BYTES} bytes (64 hex digits or base64) or the environment variable ${enc.key_env || 'DBAUDIT_CACHE_KEY'}`,
    );
  }
  return new Keyring(write, read);
}
