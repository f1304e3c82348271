import { createCipheriv, createDecipheriv, randomFillSync } from 'node:crypto';
import { AuditError, ErrorCode } from '../lib/errors.js';
import { KEY_ID_BYTES, type Keyring } from './keyring.js';

export { Keyring, loadKeyring, keyIdOf } from './keyring.js';

/**
 * AES-256-GCM sealing of one cache record.
 *
 * Value layout (version 1), all integers big-endian:
 *   0      u8   version (1)
 *   1..4   4 B  key id (first bytes of SHA-256 over the key, see keyring.ts)
 *   5..12  u64  event time, Unix milliseconds (plaintext: inspection and
 *               max_age expiry need it without the key; it is authenticated)
 *   13..24 12 B nonce, random per record
 *   25..   ciphertext, then the 16-byte GCM tag
 * Associated data: the 13 header bytes, the cache epoch (16 bytes) and the
 * record's RocksDB key, so a record moved to another key, swapped with
 * another, copied from another cache or with an edited header fails to open.
 */
export const SEAL_VERSION = 1;
export const HEADER_BYTES = 25;
export const TAG_BYTES = 16;
export const SEAL_OVERHEAD = HEADER_BYTES + TAG_BYTES;
const NONCE_BYTES = 12;
const AAD_HEAD = 13;

const noncePool = Buffer.allocUnsafe(NONCE_BYTES * 512);
let noncePos = noncePool.length;

function fillNonce(out: Buffer, at: number): void {
  if (noncePos === noncePool.length) {
    randomFillSync(noncePool);
    noncePos = 0;
  }
  noncePool.copy(out, at, noncePos, noncePos + NONCE_BYTES);
  noncePos += NONCE_BYTES;
}

function aad(header: Uint8Array, epoch: Uint8Array, key: Uint8Array, into?: Buffer): Buffer {
  const n = AAD_HEAD + epoch.length + key.length;
  const out = into && into.length >= n ? into.subarray(0, n) : Buffer.allocUnsafe(n);
  out.set(header.subarray(0, AAD_HEAD), 0);
  out.set(epoch, AAD_HEAD);
  out.set(key, AAD_HEAD + epoch.length);
  return out;
}

/** Scratch for the associated data of a seal: setAAD consumes it before returning. */
const aadScratch = Buffer.allocUnsafe(64);
/** The last write key id seen, as the 4 header bytes. */
let idHex = '';
const idBytes = Buffer.alloc(KEY_ID_BYTES);

/** Seals `payload` for storage under `key` in the cache of `epoch`, with the keyring's write key. */
export function sealRecord(keyring: Keyring, epoch: Uint8Array, key: Uint8Array, timeMs: number, payload: Uint8Array): Buffer {
  const { id, key: secret } = keyring.writeKey();
  const out = Buffer.allocUnsafe(HEADER_BYTES + payload.length + TAG_BYTES);
  out[0] = SEAL_VERSION;
  if (id !== idHex) {
    idBytes.write(id, 0, KEY_ID_BYTES, 'hex');
    idHex = id;
  }
  idBytes.copy(out, 1);
  const t = Math.max(0, Math.floor(timeMs));
  out.writeUInt32BE(Math.floor(t / 0x1_0000_0000), 5);
  out.writeUInt32BE(t % 0x1_0000_0000, 9);
  fillNonce(out, 13);
  const cipher = createCipheriv('aes-256-gcm', secret, out.subarray(13, HEADER_BYTES), { authTagLength: TAG_BYTES });
  cipher.setAAD(aad(out, epoch, key, aadScratch));
  let n = HEADER_BYTES;
  n += cipher.update(payload).copy(out, n);
  n += cipher.final().copy(out, n);
  cipher.getAuthTag().copy(out, n);
  return out;
}

export interface RecordHeader {
  version: number;
  keyId: string;
  timeMs: number;
}

/** The plaintext header of a sealed value, or undefined when it is not a version-1 record. */
export function readHeader(value: Uint8Array): RecordHeader | undefined {
  if (value.length < SEAL_OVERHEAD || value[0] !== SEAL_VERSION) return undefined;
  const b = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  const t = b.readBigUInt64BE(5);
  if (t > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  return { version: value[0], keyId: b.toString('hex', 1, 1 + KEY_ID_BYTES), timeMs: Number(t) };
}

/** Opens a sealed value. Throws AuditError DBA_CACHE_CORRUPT (message names the reason only) when it does not open. */
export function openRecord(keyring: Keyring, epoch: Uint8Array, key: Uint8Array, value: Uint8Array): { timeMs: number; keyId: string; payload: Buffer } {
  const h = readHeader(value);
  if (!h) throw new AuditError(ErrorCode.CacheCorrupt, 'cache record has no valid header');
  const secret = keyring.readKey(h.keyId);
  if (!secret) throw new AuditError(ErrorCode.CacheCorrupt, `cache record sealed with unknown key id ${h.keyId}`);
  const b = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  try {
    const d = createDecipheriv('aes-256-gcm', secret, b.subarray(13, HEADER_BYTES), { authTagLength: TAG_BYTES });
    d.setAAD(aad(b, epoch, key));
    d.setAuthTag(b.subarray(b.length - TAG_BYTES));
    const head = d.update(b.subarray(HEADER_BYTES, b.length - TAG_BYTES));
    const tail = d.final();
    return { timeMs: h.timeMs, keyId: h.keyId, payload: tail.length ? Buffer.concat([head, tail]) : head };
  } catch (err) {
    throw new AuditError(ErrorCode.CacheCorrupt, 'cache record failed authentication', { cause: err });
  }
}
