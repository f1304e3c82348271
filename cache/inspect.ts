import { stat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { loadConfig } from '../lib/config.js';
import { AuditError, ErrorCode } from '../lib/errors.js';
import { formatBytes } from '../lib/units.js';
import { type Keyring, loadKeyring } from './keyring.js';
import { EPOCH_KEY, META_KEY, type Meta, QUARANTINE_START, RECORDS_END, RECORDS_START, decodeMeta, epochFromBytes, epochToBytes, seqOfKey } from './record.js';
import { Rocks } from './rocks.js';
import { openRecord, readHeader } from './seal.js';

/**
 * `dbaudit cache inspect`: what a cache directory holds, read without
 * taking the lock (RocksDB read-only mode), so it works beside a running
 * proxy. Counts come from a full pass over the records, not from the meta
 * record, so a disagreement between the two shows.
 */

export interface InspectOptions {
  dir: string;
  /** Needed only to decrypt (`events`) and to tell corrupt from undecryptable records. */
  keyring?: Keyring;
  /** Return every record, decrypted when a key opens it. */
  events?: boolean;
  /** At most this many records returned with `events` (default: all). */
  limit?: number;
  /** Turns a decrypted payload into something to print (the CLI decodes AuditEvent protobufs). */
  decode?: (payload: Uint8Array) => string;
  /** For the age shown; default Date.now(). */
  nowMs?: number;
}

export interface InspectedRecord {
  seq: bigint;
  timeMs?: number;
  keyId?: string;
  bytes: number;
  payload?: Uint8Array;
  decoded?: string;
  /** Why the record did not open: 'corrupt' (bad header or authentication), 'no-key' (key id not in the keyring). */
  error?: 'corrupt' | 'no-key';
  /** Set aside by the cache because its key was not configured then. */
  quarantined?: boolean;
}

export interface InspectResult {
  dir: string;
  epoch?: string;
  createdMs?: number;
  /** Counters of the meta record (undefined if it is missing or unreadable). */
  meta?: Pick<Meta, 'events' | 'bytes' | 'lastSeq' | 'commit'>;
  /** From the pass over the records. */
  events: number;
  bytes: number;
  diskBytes: number;
  firstSeq?: bigint;
  lastSeq?: bigint;
  oldestTimeMs?: number;
  newestTimeMs?: number;
  nowMs: number;
  /** Records per key id named in their headers. */
  keyIds: Record<string, number>;
  /** Records whose header does not parse, or that fail authentication under a known key. */
  corrupt: number;
  /** Records sealed with a key not in the given keyring (only counted when a keyring is given). */
  noKey: number;
  /** Records set aside because their key was not configured (not in `events`). */
  quarantined: number;
  records?: InspectedRecord[];
}

async function diskUsage(dir: string): Promise<number> {
  let n = 0;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    n += e.isDirectory() ? await diskUsage(p) : (await stat(p)).size;
  }
  return n;
}

export async function inspectCache(opts: InspectOptions): Promise<InspectResult> {
  const { dir } = opts;
  try {
    await stat(join(dir, 'CURRENT'));
  } catch {
    throw new AuditError(ErrorCode.Cache, `cache directory ${dir} holds no cache (no CURRENT file)`);
  }
  let db: Rocks;
  try {
    db = await Rocks.open(dir, { readOnly: true, createIfMissing: false });
  } catch (err) {
    throw AuditError.from(err, ErrorCode.Cache, `cache ${dir}: cannot open read-only`);
  }
  const res: InspectResult = { dir, events: 0, bytes: 0, diskBytes: 0, nowMs: opts.nowMs ?? Date.now(), keyIds: {}, corrupt: 0, noKey: 0, quarantined: 0 };
  try {
    const [metaBuf, epochBuf] = await db.getMany([META_KEY, EPOCH_KEY]);
    try {
      if (epochBuf) res.epoch = epochFromBytes(epochBuf);
      if (metaBuf) {
        const m = decodeMeta(metaBuf);
        res.meta = { events: m.events, bytes: m.bytes, lastSeq: m.lastSeq, commit: m.commit };
        res.createdMs = m.createdMs;
        res.epoch ??= m.epoch;
      }
    } catch {
      // shown as missing
    }
    const epochBytes = res.epoch ? epochToBytes(res.epoch) : undefined;
    const limit = opts.limit ?? Infinity;
    if (opts.events) res.records = [];
    await db.forEach({ gte: QUARANTINE_START, lt: RECORDS_END }, (rawKey, value) => {
      const quarantined = rawKey[0] === QUARANTINE_START[0];
      const key = quarantined ? Buffer.concat([RECORDS_START, rawKey.subarray(1)]) : rawKey;
      const seq = seqOfKey(key);
      if (seq === undefined) return true;
      const bytes = key.length + value.length;
      if (quarantined) res.quarantined++;
      else {
        res.events++;
        res.bytes += bytes;
        res.firstSeq ??= seq;
        res.lastSeq = seq;
      }
      const h = readHeader(value);
      const rec: InspectedRecord = { seq, bytes, timeMs: h?.timeMs, keyId: h?.keyId, quarantined: quarantined || undefined };
      if (!h) {
        res.corrupt++;
        rec.error = 'corrupt';
      } else {
        res.keyIds[h.keyId] = (res.keyIds[h.keyId] ?? 0) + 1;
        if (!quarantined && (res.oldestTimeMs === undefined || h.timeMs < res.oldestTimeMs)) res.oldestTimeMs = h.timeMs;
        if (!quarantined && (res.newestTimeMs === undefined || h.timeMs > res.newestTimeMs)) res.newestTimeMs = h.timeMs;
        if (opts.keyring) {
          if (!opts.keyring.has(h.keyId)) {
            res.noKey++;
            rec.error = 'no-key';
          } else if (epochBytes) {
            try {
              rec.payload = openRecord(opts.keyring, epochBytes, key, value).payload;
            } catch {
              res.corrupt++;
              rec.error = 'corrupt';
            }
          }
        }
      }
      if (res.records && res.records.length < limit) {
        if (rec.payload && opts.decode) {
          try {
            rec.decoded = opts.decode(rec.payload);
          } catch (err) {
            rec.decoded = `(payload does not decode: ${err instanceof Error ? err.message : String(err)})`;
          }
        }
        res.records.push(rec);
      }
      return true;
    });
  } finally {
    await db.close();
  }
  res.diskBytes = await diskUsage(dir);
  return res;
}

function iso(ms: number | undefined): string {
  return ms === undefined ? '-' : new Date(ms).toISOString();
}

function age(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172_800) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d`;
}

/** Human-readable report; with records, one line per record after the summary. */
export function formatInspect(r: InspectResult): string {
  const lines: string[] = [];
  lines.push(`cache      ${r.dir}`);
  lines.push(`epoch      ${r.epoch ?? '(missing)'}${r.createdMs !== undefined ? `  created ${iso(r.createdMs)}` : ''}`);
  const metaNote = r.meta ? (r.meta.events === r.events && r.meta.bytes === r.bytes ? '' : `  (meta record says ${r.meta.events} events, ${r.meta.bytes} bytes)`) : '  (meta record missing)';
  lines.push(`events     ${r.events}${metaNote}`);
  lines.push(`bytes      ${r.bytes} (${formatBytes(r.bytes)}) in records, ${formatBytes(r.diskBytes)} on disk`);
  lines.push(`seq        ${r.firstSeq === undefined ? '-' : `${r.firstSeq}..${r.lastSeq}`}${r.meta ? `  (last committed ${r.meta.lastSeq})` : ''}`);
  if (r.oldestTimeMs !== undefined) {
    lines.push(`age range  ${iso(r.oldestTimeMs)} .. ${iso(r.newestTimeMs)}  (oldest ${age(r.nowMs - r.oldestTimeMs)} old, newest ${age(r.nowMs - r.newestTimeMs!)} old)`);
  } else lines.push('age range  -');
  const keys = Object.entries(r.keyIds).map(([id, n]) => `${id}: ${n}`);
  lines.push(`keys       ${keys.length ? keys.join(', ') : '-'}`);
  lines.push(`corrupt    ${r.corrupt}${r.noKey ? `  no key for ${r.noKey}` : ''}${r.quarantined ? `  quarantined (key was not configured) ${r.quarantined}` : ''}`);
  for (const rec of r.records ?? []) {
    const head = `${rec.seq} ${iso(rec.timeMs)} key=${rec.keyId ?? '-'} ${rec.bytes}B${rec.quarantined ? ' quarantined' : ''}`;
    if (rec.error) lines.push(`${head} (${rec.error === 'no-key' ? 'sealed with a key not given' : 'corrupt'})`);
    else if (rec.decoded !== undefined) lines.push(`${head} ${rec.decoded}`);
    else if (rec.payload) lines.push(`${head} ${Buffer.from(rec.payload).toString('base64')}`);
    else lines.push(`${head} (no key given)`);
  }
  return lines.join('\n') + '\n';
}

const CACHE_USAGE = `usage: dbaudit cache inspect --cache-dir DIR [--events] [--limit N] [--json] [--config FILE]

  Prints the events held, their bytes and age range. With --events and the
  cache key (collector.cache.encryption.key_file or $DBAUDIT_CACHE_KEY, and
  read_key_files for older keys) it also prints each decrypted event.
`;

function jsonOf(r: InspectResult): string {
  return JSON.stringify(r, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v instanceof Uint8Array ? Buffer.from(v).toString('base64') : v), 2) + '\n';
}

/** Default payload decoder: AuditEvent protobuf, one line per event. Loaded lazily so the cache library needs no schema. */
async function auditEventDecoder(): Promise<(payload: Uint8Array) => string> {
  const [{ fromBinary }, { AuditEventSchema }, { formatEventLine }] = await Promise.all([
    import('@bufbuild/protobuf'),
    import('../proto/gen/audit/v1/event_pb.js'),
    import('../lib/format.js'),
  ]);
  return (payload) => formatEventLine(fromBinary(AuditEventSchema, payload));
}

/**
 * `dbaudit cache …` (argv after "cache"). Returns the exit code.
 * Reads --cache-dir / --config / env through lib/config.ts (scope collector).
 */
export async function runCacheCommand(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  io: { out?: NodeJS.WritableStream; decode?: (payload: Uint8Array) => string } = {},
): Promise<number> {
  const out = io.out ?? process.stdout;
  if (argv.includes('--help') || argv.includes('-h') || argv.length === 0) {
    out.write(CACHE_USAGE);
    return argv.length === 0 ? 2 : 0;
  }
  const { config, rest } = loadConfig({ argv, env, scope: 'collector' });
  const [sub, ...more] = rest;
  if (sub !== 'inspect') throw new AuditError(ErrorCode.Config, `dbaudit cache: unknown subcommand ${JSON.stringify(sub ?? '')} (expected inspect)`);
  let events = false;
  let json = false;
  let limit: number | undefined;
  for (let i = 0; i < more.length; i++) {
    const a = more[i];
    if (a === '--events') events = true;
    else if (a === '--json') json = true;
    else if (a === '--limit' || a.startsWith('--limit=')) {
      const v = a.includes('=') ? a.slice(8) : more[++i];
      limit = Number(v);
      if (!Number.isSafeInteger(limit) || limit < 0) throw new AuditError(ErrorCode.Config, `--limit: invalid value ${JSON.stringify(v)}; expected a whole number`);
    } else throw new AuditError(ErrorCode.Config, `dbaudit cache inspect: unknown argument ${JSON.stringify(a)}`);
  }
  let keyring: Keyring | undefined;
  if (events) {
    keyring = loadKeyring(config, env, { readOnly: true });
    if (keyring.keyIds.length === 0) {
      throw new AuditError(ErrorCode.Config, `--events needs the cache key: set collector.cache.encryption.key_file or the environment variable ${config.collector.cache.encryption.key_env}`);
    }
  }
  const decode = events ? (io.decode ?? (await auditEventDecoder())) : undefined;
  const res = await inspectCache({ dir: config.collector.cache.path, keyring, events, limit, decode });
  out.write(json ? jsonOf(res) : formatInspect(res));
  return 0;
}
