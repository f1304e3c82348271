import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fromBinary } from '@bufbuild/protobuf';
import { AuditEventSchema, type AuditEvent } from '../proto/gen/audit/v1/event_pb.js';
import { AuditError, ErrorCode } from './errors.js';
import { readKeyEnv, readKeyFile } from './keys.js';

/**
 * The audit trail's tamper evidence.
 *
 * Chain. Every event a collector makes carries `prev_chain_hash` (the
 * chain hash of the event before it in the same collector epoch; empty for
 * seq 1) and `chain_key_id`, and ends with `chain_hash`:
 *
 *   body       = the event encoded in field order without chain_hash
 *   chain_hash = HMAC-SHA256(trail key, body)       (keyed)
 *              | SHA-256(body)                      (no trail key: shows damage, not deliberate edits)
 *   bytes      = body ‖ 0xDA 0x02 0x20 ‖ chain_hash  (field 43, 32 bytes, written last)
 *
 * Because body holds the collector, epoch, seq, event id and the previous
 * hash, one hash authenticates the event's content and its position, and
 * consecutive events link. The gateway stores the bytes exactly as received,
 * so the check needs no re-encoding: split the last 35 bytes off.
 *
 * Seals. Each group of events a gateway stores is sealed: the seal lists,
 * per event, its id and a digest of what the gateway stored with it (the
 * bytes, delivered_by, received_at), under an HMAC with the gateway's seal
 * key. Editing a stored row's gateway-side fields, or its bytes, breaks
 * the seal.
 *
 * Keys are 32 random bytes (`dbaudit keygen`); a key is named by its id,
 * the first 8 bytes of HMAC-SHA256(key, "dbaudit trail key id") in hex, so
 * a verifier holding a directory of keys picks the right one without the
 * id revealing the key.
 */

export const CHAIN_HASH_BYTES = 32;
/** Field 43, wire type 2, length 32. */
const TRAILER = Buffer.from([0xda, 0x02, CHAIN_HASH_BYTES]);
export const CHAIN_TRAILER_BYTES = TRAILER.length + CHAIN_HASH_BYTES;
const EMPTY = new Uint8Array(0);

export interface TrailKey {
  readonly id: string;
  readonly key: Buffer;
}

export function trailKeyId(key: Buffer): string {
  return createHmac('sha256', key).update('dbaudit trail key id').digest().subarray(0, 8).toString('hex');
}

export function trailKey(key: Buffer): TrailKey {
  return { id: trailKeyId(key), key };
}

export function readTrailKey(path: string, what: string): TrailKey {
  return trailKey(readKeyFile(path, what));
}

/** A key from `fileKey`'s file, else from the environment variable `envName` names; undefined when neither is set. */
export function loadOptionalKey(file: string | undefined, fileKey: string, env: NodeJS.ProcessEnv, envName: string): TrailKey | undefined {
  if (file) return readTrailKey(file, fileKey);
  const k = envName ? readKeyEnv(env, envName) : undefined;
  return k ? trailKey(k) : undefined;
}

/**
 * What a key may check. A seal key checks gateway seals and retention
 * records only; a trail key checks collectors' chain hashes and heads only,
 * and a trail key bound to a collector checks that collector's alone. So a
 * collector's key cannot forge another collector's events, nor a gateway's
 * seals, and a seal key cannot forge events.
 */
export type KeyRole = { kind: 'seal' } | { kind: 'trail'; collector?: string };

interface HeldKey {
  key: Buffer;
  role: KeyRole;
  /** Where it came from, for messages (a file name, never the key). */
  source: string;
}

/** The role a key file's name gives it in a keys directory: `seal*` or `*.seal` a seal key, `trail.<collector id>` that collector's own trail key, any other name a fleet trail key (good for any collector). */
export function roleOfKeyFile(name: string): KeyRole {
  if (name.startsWith('seal') || name.endsWith('.seal')) return { kind: 'seal' };
  if (name.startsWith('trail.') && name.length > 'trail.'.length) return { kind: 'trail', collector: name.slice('trail.'.length) };
  return { kind: 'trail' };
}

/**
 * Why a key file's name would give its key a role its owner probably did not
 * mean, or undefined. Such a name is refused when a keys directory is read:
 * a misread role shows up only later, as every event (or every seal) failing
 * as "forged", and with heads not kept.
 */
export function keyFileNameProblem(name: string): string | undefined {
  const role = roleOfKeyFile(name);
  const fix = 'name a seal key seal.<name> or <name>.seal, a collector\'s trail key trail.<collector id>, a fleet trail key anything else (fleet.key)';
  if (role.kind === 'seal' && name.startsWith('trail.')) return `the name starts with "trail." (a collector's trail key) but ends with ".seal" (a seal key): ambiguous; ${fix}`;
  if (role.kind === 'seal' && /^seal[a-z]/i.test(name)) return `the name starts with "seal" (a seal key by the rule) but reads as another word ("${name.split(/[^a-z]/i)[0]}"); ${fix}`;
  if (role.kind === 'trail' && role.collector === undefined && /seal/i.test(name)) return `the name mentions "seal" but makes a fleet trail key (only seal* and *.seal are seal keys; names are case-sensitive); ${fix}`;
  if (role.kind === 'trail' && role.collector !== undefined && /(^|\.)(key|pem|txt|b64|hex|base64|secret)$/i.test(role.collector)) {
    return `the name binds the key to a collector named "${role.collector}", which looks like a file extension; ${fix}`;
  }
  return undefined;
}

const roleName = (r: KeyRole): string => (r.kind === 'seal' ? 'a seal key' : r.collector !== undefined ? `collector ${r.collector}'s trail key` : 'a fleet trail key');

/** Keys by id, each with its role: the trail keys of collectors and the seal keys of gateways a verifier trusts. */
export class TrailKeys {
  readonly #byId = new Map<string, HeldKey>();

  constructor(keys: Iterable<TrailKey> = [], role: KeyRole = { kind: 'trail' }) {
    for (const k of keys) this.add(k, role);
  }

  /** Adds a key in a role; the same key in two different roles is refused (it would let one role forge the other). */
  add(k: TrailKey, role: KeyRole = { kind: 'trail' }, source = 'a key'): void {
    const held = this.#byId.get(k.id);
    if (held && (held.role.kind !== role.kind || (held.role.kind === 'trail' && role.kind === 'trail' && held.role.collector !== role.collector))) {
      throw new AuditError(ErrorCode.Config, `${source} holds the same key (id ${k.id}) as ${held.source}, once as ${roleName(held.role)} and once as ${roleName(role)}: a key has one role (remove the copy, or rename it for the role it has)`);
    }
    this.#byId.set(k.id, { key: k.key, role, source });
  }

  /** The key to check collector `collectorId`'s chain hash or head with, or why key `id` may not. */
  forTrail(id: string, collectorId: string): { key?: Buffer; refused?: string } {
    const h = this.#byId.get(id);
    if (!h) return {};
    if (h.role.kind !== 'trail') return { refused: `key ${id}, which is ${roleName(h.role)}, not a trail key (forged with the wrong key)` };
    if (h.role.collector !== undefined && h.role.collector !== collectorId) return { refused: `trail key ${id}, which belongs to collector ${h.role.collector}, not ${collectorId} (forged with another collector's key)` };
    return { key: h.key };
  }

  /** The key to check a seal or a retention record with, or why key `id` may not. */
  forSeal(id: string): { key?: Buffer; refused?: string } {
    const h = this.#byId.get(id);
    if (!h) return {};
    if (h.role.kind !== 'seal') return { refused: `key ${id}, which is ${roleName(h.role)}, not a seal key (forged with the wrong key)` };
    return { key: h.key };
  }

  get size(): number {
    return this.#byId.size;
  }

  ids(): string[] {
    return [...this.#byId.keys()].sort();
  }

  /** How many keys of each role, for a verifier's summary. */
  counts(): { seal: number; fleet: number; bound: number } {
    const c = { seal: 0, fleet: 0, bound: 0 };
    for (const h of this.#byId.values()) {
      if (h.role.kind === 'seal') c.seal++;
      else if (h.role.collector === undefined) c.fleet++;
      else c.bound++;
    }
    return c;
  }

  /**
   * Every regular file of `dir` is a key (a Kubernetes Secret mounted as a
   * directory: its ..data links and dotfiles are skipped), its role from its
   * name (roleOfKeyFile). The error of a bad file names the file, never its
   * text.
   */
  static fromDir(dir: string, what: string): TrailKeys {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch (err) {
      throw new AuditError(ErrorCode.Config, `${what} ${dir}: cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
    }
    const keys = new TrailKeys();
    for (const name of names.sort()) {
      if (name.startsWith('.')) continue;
      const path = join(dir, name);
      let isFile: boolean;
      try {
        isFile = statSync(path).isFile();
      } catch (err) {
        throw new AuditError(ErrorCode.Config, `${what} file ${path}: cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
      }
      if (!isFile) continue;
      const problem = keyFileNameProblem(name);
      if (problem) throw new AuditError(ErrorCode.Config, `${what} file ${path}: ${problem}`);
      keys.add(readTrailKey(path, `${what} file`), roleOfKeyFile(name), `${what} file ${path}`);
    }
    if (keys.size === 0) throw new AuditError(ErrorCode.Config, `${what} ${dir}: holds no key file`);
    return keys;
  }
}

/** The chain hash of an event body: keyed with the trail key, or a bare SHA-256 without one. */
export function chainHashOf(key: Buffer | undefined, body: Uint8Array): Buffer {
  return key ? createHmac('sha256', key).update(body).digest() : createHash('sha256').update(body).digest();
}

/** body ‖ chain_hash as its last field: the bytes an event is cached, shipped and stored as. */
export function appendChainHash(body: Uint8Array, hash: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(body.length + CHAIN_TRAILER_BYTES);
  out.set(body, 0);
  TRAILER.copy(out, body.length);
  out.set(hash, body.length + TRAILER.length);
  return out;
}

/** The body and chain hash of stored bytes, or undefined when they do not end with a chain hash. */
export function splitChainHash(raw: Uint8Array): { body: Uint8Array; hash: Uint8Array } | undefined {
  const at = raw.length - CHAIN_TRAILER_BYTES;
  if (at < 0) return undefined;
  for (let i = 0; i < TRAILER.length; i++) if (raw[at + i] !== TRAILER[i]) return undefined;
  return { body: raw.subarray(0, at), hash: raw.subarray(at + TRAILER.length) };
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && (a.length === 0 || timingSafeEqual(a, b));
}

/**
 * Makes the chain of one collector epoch: each call hashes one event,
 * linked to the one before. The caller keeps the tail across restarts
 * (the cache's meta record does).
 */
export class ChainMaker {
  readonly #key: TrailKey | undefined;
  #tail: Uint8Array;

  constructor(key: TrailKey | undefined, tail: Uint8Array | undefined) {
    this.#key = key;
    this.#tail = tail ?? EMPTY;
  }

  get keyId(): string {
    return this.#key?.id ?? '';
  }

  /** Links `ev` (its prev_chain_hash and chain_key_id are set here) and returns its bytes, chain hash last. */
  link(ev: AuditEvent, encode: (ev: AuditEvent) => Uint8Array): Buffer {
    ev.prevChainHash = this.#tail;
    ev.chainKeyId = this.keyId;
    ev.chainHash = EMPTY;
    const body = encode(ev);
    const hash = chainHashOf(this.#key?.key, body);
    ev.chainHash = hash;
    this.#tail = hash;
    return appendChainHash(body, hash);
  }
}

/** Looks a key up for its role: a collector's trail key (a chain hash, a head) or a seal key (a seal, a retention record). */
type KeyLookup = (keys: TrailKeys, id: string) => { key?: Buffer; refused?: string };
const sealLookup: KeyLookup = (keys, id) => keys.forSeal(id);
const trailLookup = (collectorId: string): KeyLookup => (keys, id) => keys.forTrail(id, collectorId);

/**
 * The key `id` names, taken in its role; else the verdict: a finding when the
 * key is refused for that role or unknown among the keys given, "unchecked"
 * when no keys were given. `made` says how the item was made with it ("is
 * hashed with"), `named` how the key is named in the message ("trail key").
 */
function keyFor(keys: TrailKeys | undefined, lookup: KeyLookup, id: string, made: string, named: string, unknownNote = ''): { key: Buffer } | { problem?: string; unchecked?: boolean } {
  const found = keys ? lookup(keys, id) : {};
  if (found.refused) return { problem: `${made} ${found.refused}` };
  if (found.key) return { key: found.key };
  return keys && keys.size > 0 ? { problem: `${made} ${named} ${id}, which is not among the known keys${unknownNote}` } : { unchecked: true };
}

/** Why one stored event fails its own check, or undefined when its chain hash is right. */
export function checkChainHash(raw: Uint8Array, keyId: string, collectorId: string, keys: TrailKeys | undefined, requireKeyed: boolean): { problem?: string; unchecked?: boolean } {
  const split = splitChainHash(raw);
  if (!split) return { problem: 'carries no chain hash' };
  if (keyId === '') {
    if (requireKeyed) return { problem: 'is not keyed (bare SHA-256) where a trail key is required' };
    return same(chainHashOf(undefined, split.body), split.hash) ? {} : { problem: 'chain hash does not match its content (modified)' };
  }
  const k = keyFor(keys, trailLookup(collectorId), keyId, 'is hashed with', 'trail key', ' (forged, or a key missing here)');
  if (!('key' in k)) return k;
  return same(chainHashOf(k.key, split.body), split.hash) ? {} : { problem: 'chain hash does not match its content (modified or forged without the key)' };
}

// ---- attestations: a reported head, a retention drop ----------------------

/** A MAC (or bare SHA-256 without a key) over a statement, and the id of the key that made it. */
export interface Attested {
  mac: Uint8Array;
  keyId: string;
}

function attest(key: TrailKey | undefined, statement: string): Attested {
  return { mac: chainHashOf(key?.key, Buffer.from(statement, 'utf8')), keyId: key?.id ?? '' };
}

/** A text field of an attested statement, length-prefixed so no id can pass for two fields (ids may hold newlines). */
const field = (s: string): string => `${s.length}:${s}`;
const headStatement = (collectorId: string, epoch: string, seq: bigint): string => `dbaudit head\n${field(collectorId)}\n${field(epoch)}\n${seq}`;
const dropStatement = (collectorId: string, epoch: string, r: SeqRange): string => `dbaudit retention drop\n${field(collectorId)}\n${field(epoch)}\n${r.from}\n${r.to}`;

/** The collector's attestation of the highest seq of its epoch (trail key). */
export function attestHead(key: TrailKey | undefined, collectorId: string, epoch: string, seq: bigint): Attested {
  return attest(key, headStatement(collectorId, epoch, seq));
}

/** A gateway's attestation that retention dropped a range (seal key). */
export function attestDrop(key: TrailKey | undefined, collectorId: string, epoch: string, r: SeqRange): Attested {
  return attest(key, dropStatement(collectorId, epoch, r));
}

function checkAttested(a: Attested, statement: string, keys: TrailKeys | undefined, lookup: KeyLookup, requireKeyed: boolean): { problem?: string; unchecked?: boolean } {
  if (a.mac.length === 0) return { problem: 'carries no attestation' };
  let key: Buffer | undefined;
  if (a.keyId === '') {
    if (requireKeyed) return { problem: 'is not keyed where a key is required' };
  } else {
    const k = keyFor(keys, lookup, a.keyId, 'is attested with', 'key');
    if (!('key' in k)) return k;
    key = k.key;
  }
  return same(chainHashOf(key, Buffer.from(statement, 'utf8')), a.mac) ? {} : { problem: 'attestation does not match (altered)' };
}

export function checkHead(a: Attested, collectorId: string, epoch: string, seq: bigint, keys: TrailKeys | undefined, requireKeyed: boolean): { problem?: string; unchecked?: boolean } {
  return checkAttested(a, headStatement(collectorId, epoch, seq), keys, trailLookup(collectorId), requireKeyed);
}

// ---- seals of stored rows -------------------------------------------------

/** The digest of one stored row: its bytes and what the gateway stored beside them. */
export function rowDigest(raw: Uint8Array, deliveredBy: string, receivedAtMs: number): Buffer {
  const t = Buffer.allocUnsafe(8);
  t.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(receivedAtMs))));
  return createHash('sha256').update(raw).update(t).update(deliveredBy, 'utf8').digest();
}

export interface Seal {
  sealId: string;
  gatewayId: string;
  keyId: string;
  sealedAtMs: number;
  /** 16-byte event id ‖ 32-byte row digest, per event, in the order sealed. */
  entries: Buffer;
  mac: Uint8Array;
}

export const SEAL_ENTRY_BYTES = 48;

function sealInput(s: Omit<Seal, 'mac'>): Buffer {
  const t = Buffer.allocUnsafe(8);
  t.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(s.sealedAtMs))));
  return Buffer.concat([Buffer.from(`${s.sealId}\n${s.gatewayId}\n${s.keyId}\n`, 'utf8'), t, s.entries]);
}

export function makeSeal(key: TrailKey | undefined, fields: Omit<Seal, 'mac' | 'keyId'>): Seal {
  const s = { ...fields, keyId: key?.id ?? '' };
  return { ...s, mac: chainHashOf(key?.key, sealInput(s)) };
}

/** Why a seal does not hold, undefined when it does (or `unchecked` without its key). */
export function checkSeal(s: Seal, keys: TrailKeys | undefined, requireKeyed: boolean): { problem?: string; unchecked?: boolean } {
  if (s.entries.length % SEAL_ENTRY_BYTES !== 0) return { problem: 'has a malformed entry list' };
  let key: Buffer | undefined;
  if (s.keyId === '') {
    if (requireKeyed) return { problem: 'is not keyed where a seal key is required' };
  } else {
    const k = keyFor(keys, sealLookup, s.keyId, 'is made with', 'seal key');
    if (!('key' in k)) return k;
    key = k.key;
  }
  return same(chainHashOf(key, sealInput(s)), s.mac) ? {} : { problem: 'MAC does not match its entries (seal modified)' };
}

/** The digests a seal holds, by event id as 32 hex digits. */
export function sealedDigests(s: Seal): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (let at = 0; at + SEAL_ENTRY_BYTES <= s.entries.length; at += SEAL_ENTRY_BYTES) {
    out.set(s.entries.toString('hex', at, at + 16), s.entries.subarray(at + 16, at + SEAL_ENTRY_BYTES));
  }
  return out;
}

// ---- verification of one collector epoch ----------------------------------

export interface SeqRange {
  from: bigint;
  to: bigint;
}

/** One stored event of an epoch, as a store or the Trail API returns it. */
export interface TrailRow {
  /** The seq the store holds it at (its index), which the event itself must agree with. */
  seq: bigint;
  raw: Uint8Array;
  deliveredBy: string;
  receivedAtMs: number;
  /** The seal of the store group that wrote it ('' when the store kept none). */
  sealId: string;
}

export interface Finding {
  seq: bigint;
  eventId: string;
  problem: string;
}

export interface LossSeen {
  seq: bigint;
  from: bigint;
  to: bigint;
  reason: string;
}

/** A range retention dropped, as recorded with the gateway's attestation. */
export type DroppedRange = SeqRange & Partial<Attested>;

export interface EpochReport {
  collectorId: string;
  epoch: string;
  /** Rows read (events held within the window). */
  held: number;
  firstSeq: bigint;
  lastSeq: bigint;
  /** Highest seq the collector reported (0 when it never did, e.g. at a DR replica). */
  highestReported: bigint;
  /** Ranges missing that nothing explains. */
  missing: SeqRange[];
  /** Ranges missing that a loss event or a retention drop explains. */
  explained: (SeqRange & { by: string })[];
  losses: LossSeen[];
  breaks: Finding[];
  /** Events whose keyed hash could not be checked here (their key is not given). */
  unchecked: number;
  unsealed: number;
}

export interface VerifyOptions {
  keys?: TrailKeys;
  /** Unkeyed events and seals are findings (default: when keys are given). */
  requireKeyed?: boolean;
  /** Continue a chain verified earlier: the walk starts after this seq, linked to this hash. */
  after?: { seq: bigint; hash: Uint8Array };
  /** Check the first row's link to seq - 1 (false when the window starts mid-epoch, e.g. --since). */
  linkFirst?: boolean;
  /** Look up a seal by id (undefined: seals not checked). */
  seal?: (sealId: string) => Seal | undefined;
  /**
   * Did a collector deliver this row itself (not DR replication)? A
   * collector reports an attested head with every batch, so an epoch with
   * such a row and no head in the store has lost its head record (and a
   * deleted tail could hide behind it). Undefined: heads are not required.
   */
  deliveredDirectly?: (deliveredBy: string) => boolean;
  /** Rows delivered directly that an earlier walk (before `after`) already saw. */
  directBefore?: number;
}

function fmtSeqs(r: SeqRange): string {
  return r.from === r.to ? `${r.from}` : `${r.from}-${r.to}`;
}

export function formatRange(r: SeqRange): string {
  return fmtSeqs(r);
}

/** `ranges` minus `cover`: the parts of each range no cover range overlaps (both sorted or not). */
export function subtractRanges(ranges: readonly SeqRange[], cover: readonly SeqRange[]): { left: SeqRange[]; covered: SeqRange[] } {
  const sorted = [...cover].sort((a, b) => (a.from < b.from ? -1 : a.from > b.from ? 1 : 0));
  const left: SeqRange[] = [];
  const covered: SeqRange[] = [];
  for (const r of ranges) {
    let at = r.from;
    for (const c of sorted) {
      if (c.to < at || c.from > r.to) continue;
      if (c.from > at) left.push({ from: at, to: c.from - 1n });
      const end = c.to < r.to ? c.to : r.to;
      covered.push({ from: c.from > at ? c.from : at, to: end });
      at = end + 1n;
      if (at > r.to) break;
    }
    if (at <= r.to) left.push({ from: at, to: r.to });
  }
  return { left, covered };
}

/**
 * Walks one collector epoch's stored events in seq order and reports what
 * is held, what is missing and explained (loss events, retention) or not,
 * and every break: an event that fails its own hash, a link that does not
 * join, a seq held twice, an event stored somewhere it does not say, a row
 * its seal does not cover. The gateway runs it as events arrive; `dbaudit
 * verify` runs it over the query API.
 */
export class EpochVerifier {
  readonly collectorId: string;
  readonly epoch: string;
  readonly #o: VerifyOptions;
  readonly #requireKeyed: boolean;
  #held = 0;
  #first = 0n;
  #last = 0n;
  #prev: { seq: bigint; hash: Uint8Array; eventId: string } | undefined;
  #expect: bigint;
  readonly #missing: SeqRange[] = [];
  readonly #losses: LossSeen[] = [];
  readonly #breaks: Finding[] = [];
  #unchecked = 0;
  #unsealed = 0;
  #direct: number;
  #linkNext: boolean;
  /** A window (--since): where it starts in the epoch is unknown until its first row. */
  readonly #windowed: boolean;
  /** Seals already checked: their verdict and digests by event id. */
  readonly #sealsSeen = new Map<string, { problem?: string; digests: Map<string, Buffer> } | undefined>();

  constructor(collectorId: string, epoch: string, opts: VerifyOptions = {}) {
    this.collectorId = collectorId;
    this.epoch = epoch;
    this.#o = opts;
    this.#requireKeyed = opts.requireKeyed ?? (opts.keys !== undefined && opts.keys.size > 0);
    if (opts.after) this.#prev = { seq: opts.after.seq, hash: opts.after.hash, eventId: '' };
    this.#expect = opts.after ? opts.after.seq + 1n : 1n;
    this.#linkNext = opts.linkFirst ?? true;
    this.#windowed = !this.#linkNext;
    this.#direct = opts.directBefore ?? 0;
  }

  /** Rows a collector delivered itself, seen so far (with `directBefore`). */
  get direct(): number {
    return this.#direct;
  }

  /** The last seq walked and its hash: where a later walk may continue. */
  get tail(): { seq: bigint; hash: Uint8Array } | undefined {
    return this.#prev ? { seq: this.#prev.seq, hash: this.#prev.hash } : undefined;
  }

  #break(seq: bigint, eventId: string, problem: string): void {
    this.#breaks.push({ seq, eventId, problem });
  }

  add(row: TrailRow): void {
    let ev: AuditEvent;
    try {
      ev = fromBinary(AuditEventSchema, row.raw);
    } catch {
      this.#break(row.seq, '', 'stored bytes are not an event');
      return;
    }
    const id = ev.eventId;
    this.#held++;
    if (this.#o.deliveredDirectly?.(row.deliveredBy)) this.#direct++;
    if (this.#held === 1) this.#first = row.seq;
    if (ev.collectorId !== this.collectorId || ev.epoch !== this.epoch || ev.seq !== row.seq) {
      this.#break(row.seq, id, `is stored as collector ${this.collectorId} epoch ${this.epoch} seq ${row.seq} but says collector ${ev.collectorId} epoch ${ev.epoch} seq ${ev.seq}`);
    }
    const own = checkChainHash(row.raw, ev.chainKeyId, this.collectorId, this.#o.keys, this.#requireKeyed);
    if (own.problem) this.#break(row.seq, id, own.problem);
    if (own.unchecked) this.#unchecked++;
    this.#checkSeal(row, id);

    const prev = this.#prev;
    if (prev && row.seq === prev.seq) {
      this.#break(row.seq, id, `seq ${row.seq} is held twice (events ${prev.eventId} and ${id})`);
      return;
    }
    if (prev && row.seq < prev.seq) {
      this.#break(row.seq, id, `is out of order (after seq ${prev.seq})`);
      return;
    }
    if (row.seq > this.#expect && this.#linkNext) this.#missing.push({ from: this.#expect, to: row.seq - 1n });
    if (row.seq === 1n) {
      if (ev.prevChainHash.length !== 0) this.#break(row.seq, id, 'is the first event of the epoch but links to a previous one');
    } else if (ev.prevChainHash.length === 0) {
      this.#break(row.seq, id, 'starts a new chain in the middle of the epoch (its link to the previous event is empty)');
    } else if (prev && prev.seq === row.seq - 1n && this.#linkNext && !same(ev.prevChainHash, prev.hash)) {
      this.#break(row.seq, id, `does not link to seq ${prev.seq}: its previous-hash is not that event's chain hash (removed, reordered or replaced)`);
    }
    this.#linkNext = true;
    if (ev.kind === 'loss' && ev.lossFromSeq > 0n && ev.lossToSeq >= ev.lossFromSeq) {
      this.#losses.push({ seq: row.seq, from: ev.lossFromSeq, to: ev.lossToSeq, reason: ev.reason });
    }
    this.#prev = { seq: row.seq, hash: ev.chainHash, eventId: id };
    this.#last = row.seq;
    this.#expect = row.seq + 1n;
  }

  #checkSeal(row: TrailRow, eventId: string): void {
    const lookup = this.#o.seal;
    if (!lookup) return;
    if (row.sealId === '') {
      this.#unsealed++;
      if (this.#requireKeyed) this.#break(row.seq, eventId, 'is not covered by a storage seal');
      return;
    }
    if (!this.#sealsSeen.has(row.sealId)) {
      const seal = lookup(row.sealId);
      this.#sealsSeen.set(row.sealId, seal && { problem: checkSeal(seal, this.#o.keys, this.#requireKeyed).problem, digests: sealedDigests(seal) });
    }
    const seal = this.#sealsSeen.get(row.sealId);
    if (!seal) {
      this.#break(row.seq, eventId, `names storage seal ${row.sealId}, which is missing`);
      return;
    }
    if (seal.problem) this.#break(row.seq, eventId, `storage seal ${row.sealId} ${seal.problem}`);
    const digest = seal.digests.get(eventId.replace(/-/g, '').toLowerCase());
    if (!digest) this.#break(row.seq, eventId, `is not in its storage seal ${row.sealId}`);
    else if (!same(digest, rowDigest(row.raw, row.deliveredBy, row.receivedAtMs))) this.#break(row.seq, eventId, `stored row differs from what seal ${row.sealId} recorded (row edited)`);
  }

  /**
   * The report. `highestReported` extends the expected range past the last
   * event held (a deleted tail is missing too), once its attestation by the
   * collector checks (`head`; without one the head is taken as given);
   * `dropped` are ranges retention removed on purpose, each explaining only
   * when its gateway attestation checks. `partial`: the walk stopped before
   * the end of the epoch, so its head is not looked at.
   */
  finish(highestReported: bigint, dropped: readonly DroppedRange[] = [], head?: Attested, partial = false): EpochReport {
    const keys = this.#o.keys;
    if (!partial && highestReported === 0n && this.#direct > 0) {
      this.#break(this.#prev?.seq ?? this.#last, '', `no reported head is stored for this epoch, yet ${this.#direct} of its events were delivered by the collector itself, which reports an attested head with every batch: the head record was removed or zeroed, and a deleted tail cannot be ruled out`);
    }
    if (head && highestReported > 0n) {
      const h = checkHead(head, this.collectorId, this.epoch, highestReported, keys, this.#requireKeyed);
      if (h.problem) this.#break(highestReported, '', `the reported head (highest seq ${highestReported}) ${h.problem}: the collector did not report it so`);
    }
    const trusted: SeqRange[] = [];
    for (const d of dropped) {
      const a = checkAttested({ mac: d.mac ?? new Uint8Array(0), keyId: d.keyId ?? '' }, dropStatement(this.collectorId, this.epoch, d), keys, sealLookup, this.#requireKeyed);
      if (a.problem) this.#break(d.from, '', `the retention record for seqs ${fmtSeqs(d)} ${a.problem}: it explains nothing`);
      else trusted.push({ from: d.from, to: d.to });
    }
    const missing = [...this.#missing];
    const top = highestReported > this.#last ? highestReported : this.#last;
    // A window with no row of this epoch does not know which seqs fall in it: nothing is called missing
    // (as with the rows before a window's first one). Without this every epoch older than the window failed.
    if (top >= this.#expect && !(this.#windowed && this.#held === 0)) missing.push({ from: this.#expect, to: top });
    const byLoss = subtractRanges(missing, this.#losses.map((l) => ({ from: l.from, to: l.to })));
    const byRetention = subtractRanges(byLoss.left, trusted);
    const explained: (SeqRange & { by: string })[] = [];
    const parts = [...byLoss.covered.map((r) => ({ ...r, by: 'loss event' })), ...byRetention.covered.map((r) => ({ ...r, by: 'retention' }))].sort((a, b) => (a.from < b.from ? -1 : 1));
    for (const r of parts) {
      const prev = explained[explained.length - 1];
      if (prev && prev.by === r.by && prev.to + 1n === r.from) prev.to = r.to; // adjacent explanations of one kind read as one range
      else explained.push({ ...r });
    }
    return {
      collectorId: this.collectorId,
      epoch: this.epoch,
      held: this.#held,
      firstSeq: this.#first,
      lastSeq: this.#last,
      highestReported,
      missing: byRetention.left,
      explained,
      losses: [...this.#losses],
      breaks: [...this.#breaks],
      unchecked: this.#unchecked,
      unsealed: this.#unsealed,
    };
  }
}

/** A report's verdict: true when nothing is missing unexplained and nothing is broken. */
export function reportPasses(r: EpochReport): boolean {
  return r.missing.length === 0 && r.breaks.length === 0;
}
