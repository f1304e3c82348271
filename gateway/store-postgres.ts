import pg from 'pg';
import { fromBinary } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { AuditEventSchema, type AuditEvent } from '../proto/gen/audit/v1/event_pb.js';
import { systemClock, type Clock } from '../lib/clock.js';
import { AuditError, ErrorCode } from '../lib/errors.js';
import { silentLogger, type Logger } from '../lib/log.js';
import { isUuid } from '../lib/uuid.js';
import { COUNT_SHARDS, dayOfMs, dayOfPartition, partDay, partitionName } from './migrations/postgres.js';
import { dropBefore, ensurePartitions, listPartitions, migrate, type SequenceSpan } from './store-postgres-schema.js';
import type { DroppedRange, Seal, TrailRow } from '../lib/trail.js';
import type { PutResult, Sealer, SearchFilter, Store, StoredEvent, TrailEpoch, TrailHead } from './store.js';

/**
 * The PostgreSQL store (`gateway.store: postgres://…`): several gateway
 * replicas share one database and dedup holds across them, because an
 * event_id is unique in the table itself (see migrations/postgres.ts for
 * the partitioning that keeps it so) and every put is one
 * `INSERT … ON CONFLICT DO NOTHING RETURNING` statement: what it returns is
 * what this call stored; a put resolves once that statement has committed.
 * The schema is created and migrated at open; daily partitions are made
 * ahead (yesterday to two days on) and on demand for older or later days.
 *
 * The password: give it in PGPASSWORD or ~/.pgpass (PGPASSFILE) rather than
 * in the URL; either way it never appears in an error or a log line.
 */

export interface PostgresStoreOptions {
  clock?: Clock;
  logger?: Logger;
  /** Recorded in dropped_partitions.dropped_by (gateway.id). */
  gatewayId?: string;
  /** Pool size (default 10). */
  poolMax?: number;
  /** Seals every stored group (none: rows are stored unsealed). */
  sealer?: Sealer;
}

/** Text columns cannot hold NUL: U+E000 escapes itself and NUL, one to one (the raw bytes keep the truth). */
const ESC = '\uE000';
function col(s: string): string {
  if (!s.includes('\0') && !s.includes(ESC)) return s;
  return s.replaceAll(ESC, ESC + ESC).replaceAll('\0', ESC + '0');
}

/** The text `col` stored, back as it was sent. */
function uncol(s: string): string {
  if (!s.includes(ESC)) return s;
  return s.replace(/\uE000(\uE000|0)/g, (_m, c: string) => (c === '0' ? '\0' : ESC));
}

function likePattern(needle: string): string {
  return '%' + col(needle).replace(/[\\%_]/g, (c) => '\\' + c) + '%';
}

const INSERT_SQL = `
WITH ins AS (
  INSERT INTO events (event_id, part_day, time_us, kind, user_name, database_name, session_id, collector_id, epoch, seq, statement, delivered_by, received_at, raw, seal_id)
  SELECT t.event_id, t.part_day, t.time_us, t.kind, t.user_name, t.database_name, t.session_id, t.collector_id, t.epoch, t.seq, t.statement,
         t.delivered_by, to_timestamp(t.received_ms / 1000.0), t.raw, $16::uuid
  FROM unnest($1::uuid[], $2::int[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::numeric[],
              $11::text[], $12::text[], $13::float8[], $14::bytea[])
       AS t(event_id, part_day, time_us, kind, user_name, database_name, session_id, collector_id, epoch, seq, statement, delivered_by, received_ms, raw)
  ORDER BY t.part_day, t.event_id
  ON CONFLICT (event_id, part_day) DO NOTHING
  RETURNING event_id, collector_id, epoch, seq
), sealed AS (
  -- the seal covers every event offered here; it is kept when any of them was stored by this statement
  INSERT INTO trail_seals (seal_id, gateway_id, key_id, sealed_at_ms, entries, mac)
  SELECT $16::uuid, $17, $18, $19, $20, $21 WHERE $16::uuid IS NOT NULL AND EXISTS (SELECT 1 FROM ins)
), heads AS (
  INSERT INTO trail_heads (collector_id, epoch)
  SELECT DISTINCT collector_id, epoch FROM ins WHERE seq > 0 ORDER BY 1, 2
  ON CONFLICT DO NOTHING
), inserted AS (
  SELECT count(*) AS n FROM ins
), bump AS (
  -- after every insert (count(*) reads ins to the end), so no shard row is held while waiting on another put's keys
  UPDATE event_count SET n = event_count.n + inserted.n FROM inserted WHERE event_count.shard = $15 AND inserted.n > 0
)
SELECT event_id::text AS id FROM ins`;

const SELECT_COLUMNS = `raw, delivered_by, round(extract(epoch FROM received_at) * 1000)::text AS received_ms`;

interface Row {
  raw: Buffer;
  delivered_by: string;
  received_ms: string;
}

function toEvent(row: Row): AuditEvent {
  const ev = fromBinary(AuditEventSchema, row.raw);
  ev.deliveredBy = row.delivered_by;
  ev.receivedAt = timestampFromMs(Number(row.received_ms));
  return ev;
}

/** SQLSTATEs worth one more try: no partition for the row (made meanwhile or dropped), deadlock, serialization. */
const RETRY = new Set(['23514', '40P01', '40001']);
const MAX_TRIES = 4;

export class PostgresStore implements Store {
  readonly kind = 'postgres';
  readonly #url: string;
  readonly #safeUrl: string;
  readonly #password: string;
  readonly #opts: PostgresStoreOptions;
  readonly #clock: Clock;
  readonly #log: Logger;
  #pool: pg.Pool | undefined;
  #closed = false;
  readonly #busy = new Set<Promise<unknown>>();
  /** Days that have a partition, as far as this gateway knows. */
  readonly #days = new Set<number>();
  #shard = Math.floor(Math.random() * COUNT_SHARDS);

  constructor(url: string, opts: PostgresStoreOptions = {}) {
    this.#url = url;
    this.#opts = opts;
    this.#clock = opts.clock ?? systemClock;
    this.#log = opts.logger ?? silentLogger;
    let password = '';
    let safe = 'postgres://…';
    try {
      const u = new URL(url);
      password = decodeURIComponent(u.password);
      if (u.password) u.password = '***';
      safe = u.toString();
    } catch {
      // an unparsable URL is reported by open() without echoing it
    }
    this.#password = password;
    this.#safeUrl = safe;
  }

  /** The URL with its password replaced by ***, for logs. */
  get safeUrl(): string {
    return this.#safeUrl;
  }

  async open(): Promise<void> {
    if (this.#pool) return;
    if (this.#closed) throw new AuditError(ErrorCode.Closed, 'the store is closed');
    let durable = true;
    try {
      const client = new pg.Client({ connectionString: this.#url, application_name: 'dbaudit-gateway' });
      await client.connect();
      try {
        await migrate(client, this.#log);
        const today = dayOfMs(this.#clock.now());
        await ensurePartitions(client, [today - 1, today, today + 1, today + 2]);
        await this.#loadDays(client);
        durable = (await client.query<{ v: string }>(`SELECT current_setting('synchronous_commit') AS v`)).rows[0]?.v !== 'off';
      } finally {
        await client.end().catch(() => undefined);
      }
    } catch (err) {
      throw this.#error(err, `cannot open the PostgreSQL store ${this.#safeUrl}`);
    }
    // "durable = committed": never run with synchronous_commit=off, whatever the server's default.
    const pool = new pg.Pool({
      connectionString: this.#url,
      max: this.#opts.poolMax ?? 10,
      application_name: 'dbaudit-gateway',
      ...(durable ? {} : { options: '-c synchronous_commit=on' }),
    });
    pool.on('error', (err) => this.#log.warn({ err: this.#scrub(err.message) }, 'idle PostgreSQL store connection failed'));
    this.#pool = pool;
    this.#log.info({ store: this.#safeUrl, partitions: this.#days.size }, 'PostgreSQL store opened');
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    while (this.#busy.size > 0) await Promise.allSettled([...this.#busy]);
    const pool = this.#pool;
    this.#pool = undefined;
    await pool?.end();
  }

  put(events: readonly StoredEvent[]): Promise<PutResult> {
    if (events.length === 0) return Promise.resolve({ stored: 0, duplicates: 0, fresh: [] });
    return this.#track('store write failed', (pool) => this.#put(pool, events));
  }

  search(filter: SearchFilter): Promise<AuditEvent[]> {
    return this.#track('search failed', async (pool) => {
      const params: unknown[] = [];
      const p = (v: unknown): string => {
        params.push(v);
        return `$${params.length}`;
      };
      const where: string[] = [];
      if (filter.sinceMicros !== undefined && filter.sinceMicros > 0) where.push(`time_us >= ${p(Math.floor(filter.sinceMicros))}`);
      if (filter.untilMicros !== undefined) where.push(`time_us < ${p(Math.ceil(filter.untilMicros))}`);
      if (filter.user) where.push(`user_name = ${p(col(filter.user))}`);
      if (filter.database) where.push(`database_name = ${p(col(filter.database))}`);
      if (filter.sessionId) where.push(`session_id = ${p(col(filter.sessionId))}`);
      if (filter.kind) where.push(`kind = ${p(col(filter.kind))}`);
      if (filter.collectorId) where.push(`collector_id = ${p(col(filter.collectorId))}`);
      if (filter.text) where.push(`statement ILIKE ${p(likePattern(filter.text))}`);
      const sql = `SELECT ${SELECT_COLUMNS} FROM events ${where.length ? 'WHERE ' + where.join(' AND ') : ''}
                   ORDER BY time_us DESC, event_id DESC LIMIT ${p(filter.limit)}`;
      const r = await pool.query<Row>(sql, params);
      return r.rows.map(toEvent);
    });
  }

  get(eventId: string): Promise<{ event: AuditEvent; raw: Uint8Array } | undefined> {
    return this.#track('get failed', async (pool) => {
      if (!isUuid(eventId)) return undefined;
      const r = await pool.query<Row>(`SELECT ${SELECT_COLUMNS} FROM events WHERE event_id = $1 AND part_day = $2`, [eventId, partDay(eventId)]);
      const row = r.rows[0];
      return row ? { event: toEvent(row), raw: Buffer.from(row.raw) } : undefined;
    });
  }

  count(): Promise<number> {
    return this.#track('count failed', async (pool) => {
      const r = await pool.query<{ n: string | null }>('SELECT sum(n)::text AS n FROM event_count');
      return Number(r.rows[0]?.n ?? 0);
    });
  }

  /**
   * Retention: drops the daily partitions wholly before `micros` (whole
   * partitions only: events of the day that holds the cutoff stay until
   * that day is wholly past) and trims the overflow partition; records each
   * drop in dropped_partitions. Also makes the partitions ahead.
   */
  deleteBefore(micros: number): Promise<number> {
    return this.#track('retention failed', async (pool) => {
      const client = await pool.connect();
      try {
        const today = dayOfMs(this.#clock.now());
        await ensurePartitions(client, [today, today + 1, today + 2]);
        const r = await dropBefore(client, micros, this.#opts.gatewayId ?? '', this.#log, this.#opts.sealer);
        if (r.dropped.length > 0) this.#log.info({ partitions: r.dropped, removed: r.removed }, 'retention dropped partitions');
        await this.#loadDays(client);
        return r.removed;
      } finally {
        client.release();
      }
    });
  }

  noteHeads(heads: readonly TrailHead[]): Promise<void> {
    if (heads.length === 0) return Promise.resolve();
    return this.#track('recording reported sequence heads failed', async (pool) => {
      const sorted = [...heads].sort((a, b) => (a.collectorId < b.collectorId ? -1 : a.collectorId > b.collectorId ? 1 : a.epoch < b.epoch ? -1 : 1));
      await pool.query(
        `INSERT INTO trail_heads (collector_id, epoch, highest_seq, head_mac, head_key_id)
         SELECT * FROM unnest($1::text[], $2::text[], $3::numeric[], $4::bytea[], $5::text[])
         ON CONFLICT (collector_id, epoch) DO UPDATE
           SET highest_seq = excluded.highest_seq, head_mac = excluded.head_mac, head_key_id = excluded.head_key_id
         WHERE trail_heads.highest_seq < excluded.highest_seq`,
        [
          sorted.map((h) => col(h.collectorId)), sorted.map((h) => col(h.epoch)), sorted.map((h) => h.highestSeq.toString()),
          sorted.map((h) => Buffer.from(h.attested.mac)), sorted.map((h) => h.attested.keyId),
        ],
      );
    });
  }

  trailEpochs(collectorId?: string): Promise<TrailEpoch[]> {
    return this.#track('listing trail epochs failed', async (pool) => {
      // Every epoch the events hold, not only those with a trail_heads row: a head row deleted in the
      // store must not take its epoch (and any edit in it) out of the check. The epochs are found by a
      // skip scan of events_sequence_idx (one index probe per epoch), not by reading every event.
      const only = collectorId !== undefined ? 'AND collector_id = $1' : '';
      const heads = await pool.query<{ collector_id: string; epoch: string; highest: string; head_mac: Buffer | null; head_key_id: string }>(
        `WITH RECURSIVE held AS (
           (SELECT collector_id, epoch FROM events WHERE seq > 0 ${only} ORDER BY collector_id, epoch LIMIT 1)
           UNION ALL
           SELECT n.collector_id, n.epoch FROM held, LATERAL (
             SELECT collector_id, epoch FROM events WHERE (collector_id, epoch) > (held.collector_id, held.epoch) AND seq > 0 ${only}
             ORDER BY collector_id, epoch LIMIT 1) n
         ), known AS (
           SELECT collector_id, epoch FROM trail_heads WHERE true ${only} UNION SELECT collector_id, epoch FROM held
         )
         SELECT k.collector_id, k.epoch, coalesce(h.highest_seq, 0)::text AS highest, h.head_mac, coalesce(h.head_key_id, '') AS head_key_id
         FROM known k LEFT JOIN trail_heads h USING (collector_id, epoch) ORDER BY k.collector_id, k.epoch`,
        collectorId !== undefined ? [col(collectorId)] : [],
      );
      const drops = await pool.query<{ sequences: SequenceSpan[] }>('SELECT sequences FROM dropped_partitions ORDER BY id');
      const dropped = new Map<string, DroppedRange[]>();
      for (const row of drops.rows) {
        if (!Array.isArray(row.sequences)) continue; // a malformed record explains nothing (the gap it would cover stays a finding)
        for (const s of row.sequences) {
          let range: DroppedRange;
          try {
            const a = typeof s.mac === 'string' ? { mac: Buffer.from(s.mac, 'hex'), keyId: typeof s.key_id === 'string' ? s.key_id : '' } : {};
            range = { from: BigInt(s.first_seq), to: BigInt(s.last_seq), ...a };
          } catch {
            continue;
          }
          const k = `${s.collector_id}\u0000${s.epoch}`;
          dropped.set(k, [...(dropped.get(k) ?? []), range]);
        }
      }
      return heads.rows.map((h) => ({
        // as sent (trailRows escapes them again): an id holding NUL or U+E000 must still find its rows
        collectorId: uncol(h.collector_id),
        epoch: uncol(h.epoch),
        highestReported: BigInt(h.highest),
        head: h.head_mac ? { mac: Buffer.from(h.head_mac), keyId: h.head_key_id } : undefined,
        dropped: dropped.get(`${h.collector_id}\u0000${h.epoch}`) ?? [],
      }));
    });
  }

  trailRows(collectorId: string, epoch: string, afterSeq: bigint, limit: number, sinceMicros?: number): Promise<TrailRow[]> {
    return this.#track('reading the trail failed', async (pool) => {
      const r = await pool.query<Row & { seq: string; seal_id: string | null }>(
        `SELECT seq::text AS seq, seal_id::text AS seal_id, ${SELECT_COLUMNS} FROM events
         WHERE collector_id = $1 AND epoch = $2 AND seq > $3 ${sinceMicros !== undefined ? 'AND time_us >= $5' : ''}
         ORDER BY events.seq, events.event_id LIMIT $4`,
        sinceMicros !== undefined ? [col(collectorId), col(epoch), afterSeq.toString(), limit, Math.floor(sinceMicros)] : [col(collectorId), col(epoch), afterSeq.toString(), limit],
      );
      return r.rows.map((row) => ({ seq: BigInt(row.seq), raw: Buffer.from(row.raw), deliveredBy: row.delivered_by, receivedAtMs: Number(row.received_ms), sealId: row.seal_id ?? '' }));
    });
  }

  seals(ids: readonly string[]): Promise<Seal[]> {
    const wanted = ids.filter(isUuid);
    if (wanted.length === 0) return Promise.resolve([]);
    return this.#track('reading storage seals failed', async (pool) => {
      const r = await pool.query<{ seal_id: string; gateway_id: string; key_id: string; sealed_at_ms: string; entries: Buffer; mac: Buffer }>(
        'SELECT seal_id::text AS seal_id, gateway_id, key_id, sealed_at_ms::text AS sealed_at_ms, entries, mac FROM trail_seals WHERE seal_id = ANY($1::uuid[])',
        [wanted],
      );
      return r.rows.map((s) => ({ sealId: s.seal_id, gatewayId: s.gateway_id, keyId: s.key_id, sealedAtMs: Number(s.sealed_at_ms), entries: Buffer.from(s.entries), mac: Buffer.from(s.mac) }));
    });
  }

  async #put(pool: pg.Pool, events: readonly StoredEvent[]): Promise<PutResult> {
    // First occurrence of each id is the candidate; later repeats in the call are duplicates.
    const first = new Map<string, number>();
    events.forEach((ev, i) => {
      if (!first.has(ev.eventId)) first.set(ev.eventId, i);
    });
    const rows = [...first.values()].map((i) => events[i]);
    // sealed as stored: text columns hold delivered_by escaped (col)
    const seal = this.#opts.sealer?.seal(rows.map((ev) => ({ ...ev, deliveredBy: col(ev.deliveredBy) })));
    const days = rows.map((ev) => partDay(ev.eventId));
    const cols = {
      ids: rows.map((ev) => ev.eventId),
      times: rows.map((ev) => String(Math.floor(ev.timeMicros))),
      kinds: rows.map((ev) => col(ev.event.kind)),
      users: rows.map((ev) => col(ev.event.user)),
      dbs: rows.map((ev) => col(ev.event.database)),
      sessions: rows.map((ev) => col(ev.event.sessionId)),
      collectors: rows.map((ev) => col(ev.event.collectorId)),
      epochs: rows.map((ev) => col(ev.event.epoch)),
      seqs: rows.map((ev) => ev.event.seq.toString()),
      statements: rows.map((ev) => col(ev.event.statement)),
      delivered: rows.map((ev) => col(ev.deliveredBy)),
      received: rows.map((ev) => ev.receivedAtMs),
      raws: rows.map((ev) => Buffer.from(ev.raw.buffer, ev.raw.byteOffset, ev.raw.byteLength)),
    };
    let inserted: Set<string> | undefined;
    for (let attempt = 1; inserted === undefined; attempt++) {
      const missing = days.filter((d) => d > 0 && !this.#days.has(d));
      if (missing.length > 0) await this.#ensure(pool, missing);
      try {
        const shard = this.#shard;
        this.#shard = (this.#shard + 1) % COUNT_SHARDS;
        const r = await pool.query<{ id: string }>(INSERT_SQL, [
          cols.ids, days, cols.times, cols.kinds, cols.users, cols.dbs, cols.sessions, cols.collectors, cols.epochs, cols.seqs,
          cols.statements, cols.delivered, cols.received, cols.raws, shard,
          seal?.sealId ?? null, seal?.gatewayId ?? '', seal?.keyId ?? '', seal?.sealedAtMs ?? 0, seal?.entries ?? Buffer.alloc(0), seal ? Buffer.from(seal.mac) : Buffer.alloc(0),
        ]);
        inserted = new Set(r.rows.map((row) => row.id));
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (attempt >= MAX_TRIES || typeof code !== 'string' || !RETRY.has(code)) throw err;
        if (code === '23514') this.#days.clear(); // a partition went away (retention elsewhere): make what is missing again
      }
    }
    const fresh: number[] = [];
    for (const [id, i] of first) if (inserted.has(id)) fresh.push(i);
    fresh.sort((a, b) => a - b);
    return { stored: fresh.length, duplicates: events.length - fresh.length, fresh };
  }

  async #ensure(pool: pg.Pool, days: number[]): Promise<void> {
    const client = await pool.connect();
    try {
      await ensurePartitions(client, days);
      await this.#loadDays(client);
    } finally {
      client.release();
    }
    for (const d of days) if (!this.#days.has(d)) throw new AuditError(ErrorCode.Store, `partition ${partitionName(d)} could not be created`);
  }

  async #loadDays(client: pg.ClientBase): Promise<void> {
    const names = await listPartitions(client);
    this.#days.clear();
    for (const n of names) {
      const day = dayOfPartition(n);
      if (day !== undefined) this.#days.add(day);
    }
  }

  /** Runs `work` on the open pool, counted for close(), with errors as DBA_STORE (password scrubbed). */
  #track<T>(what: string, work: (pool: pg.Pool) => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new AuditError(ErrorCode.Closed, 'the store is closed'));
    const pool = this.#pool;
    if (!pool) return Promise.reject(new AuditError(ErrorCode.Store, 'the store is not open'));
    const p = work(pool).catch((err: unknown) => {
      throw this.#error(err, what);
    });
    this.#busy.add(p);
    const done = (): void => {
      this.#busy.delete(p);
    };
    p.then(done, done);
    return p;
  }

  #scrub(text: string): string {
    let out = text;
    if (this.#password) out = out.split(this.#password).join('***');
    return out.split(this.#url).join(this.#safeUrl);
  }

  #error(err: unknown, context: string): AuditError {
    if (err instanceof AuditError) return err;
    const text = this.#scrub(err instanceof Error ? err.message : String(err));
    const code = (err as { code?: unknown }).code;
    const state = typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? ` (SQLSTATE ${code})` : '';
    return new AuditError(ErrorCode.Store, `${context}: ${text}${state}`, { cause: err });
  }
}
