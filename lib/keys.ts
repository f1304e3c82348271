import { readFileSync } from 'node:fs';
import { AuditError, ErrorCode } from './errors.js';

/**
 * Loading of 32-byte secret keys (cache encryption, chain hashing) from a
 * file or an environment variable, written as 64 hex digits or base64.
 * Error messages name the source and what was expected, never the text.
 */

export const KEY_BYTES = 32;

const HEX_RE = /^[0-9a-fA-F]{64}$/;
const B64_RE = /^[A-Za-z0-9+/_-]+={0,2}$/;

/** Decodes key text; `source` names where it came from, for the error. */
export function parseKey(text: string, source: string): Buffer {
  const s = text.trim();
  if (HEX_RE.test(s)) return Buffer.from(s, 'hex');
  const expected = `expected ${KEY_BYTES} bytes (64 hex digits or 44 base64 characters)`;
  if (B64_RE.test(s)) {
    const isUrl = /[-_]/.test(s);
    const buf = Buffer.from(s, isUrl ? 'base64url' : 'base64');
    const canonical = buf.toString(isUrl ? 'base64url' : 'base64').replace(/=+$/, '') === s.replace(/=+$/, '');
    if (buf.length === KEY_BYTES && canonical) return buf;
    if (/^[0-9a-fA-F]+$/.test(s)) throw new AuditError(ErrorCode.Config, `${source}: key is ${s.length} hex digits; ${expected}`);
    if (canonical) throw new AuditError(ErrorCode.Config, `${source}: key is ${buf.length} bytes after base64 decoding; ${expected}`);
  }
  throw new AuditError(ErrorCode.Config, `${source}: key is not ${KEY_BYTES} bytes as 64 hex digits or base64 (${s.length} characters read)`);
}

/** Reads and decodes a key file. */
export function readKeyFile(path: string, what = 'key file'): Buffer {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new AuditError(ErrorCode.Config, `${what} ${path}: cannot be read (${code})`, { cause: err });
  }
  return parseKey(text, `${what} ${path}`);
}

/** Reads and decodes a key from an environment variable; undefined when unset or empty. */
export function readKeyEnv(env: NodeJS.ProcessEnv, name: string): Buffer | undefined {
  const v = env[name];
  if (v === undefined || v.trim() === '') return undefined;
  return parseKey(v, `environment variable ${name}`);
}
