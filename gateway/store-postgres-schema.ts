import type pg from 'pg';
import { AuditError, ErrorCode } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import {
  DAY_MICROS, LOCK, LOCK_CLASS, MIGRATIONS, OVERFLOW_PARTITION, createPartitionSql, dayOfPartition, partitionName,
} from './migrations/postgres.js';

/**
 * Schema work of the PostgreSQL store: migrations at start, partitions made
 * ahead and on demand, and retention by dropping whole partitions (recorded
 * in `dropped_partitions`). Every step that changes the schema holds an
 * advisory lock, so gateway replicas starting or sweeping at the same time
 * take turns instead of failing.
 * @internal
 */

type Queryable = pg.ClientBase;

async function inTransaction<T>(client: Queryable, work: () => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    const out = await work();
    await client.query('COMMIT');
    return out;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** Applies every migration not yet recorded; safe to run from several gateways at once. Returns the versions applied now. */
export async function migrate(client: Queryable, logger: Logger): Promise<number[]> {
  return inTransaction(client, async () => {
    await client.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_CLASS, LOCK.Migrate]);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const done = new Set((await client.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) => r.version));
    const applied: number[] = [];
    for (const m of MIGRATIONS) {
      if (done.has(m.version)) continue;
      if (m.optional) await client.query('SAVEPOINT optional_migration');
      try {
        for (const sql of m.statements) await client.query(sql);
      } catch (err) {
        if (!m.optional) throw AuditError.from(err, ErrorCode.Store, `schema migration ${m.version} (${m.name}) failed`);
        await client.query('ROLLBACK TO SAVEPOINT optional_migration');
        logger.warn({ migration: m.version, err: (err as Error).message }, 'optional schema migration skipped; tried again at the next start');
        continue;
      }
      await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      applied.push(m.version);
    }
    if (applied.length > 0) logger.info({ applied }, 'store schema migrated');
    return applied;
  });
}

/** Names of the current partitions of `events`. */
export async function listPartitions(client: Queryable): Promise<string[]> {
  const r = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'events'::regclass`,
  );
  return r.rows.map((row) => row.name);
}

/** Creates the daily partitions for `days` that do not exist yet (one transaction, under the partition lock). */
export async function ensurePartitions(client: Queryable, days: Iterable<number>): Promise<void> {
  const wanted = [...new Set(days)].filter((d) => d > 0).sort((a, b) => a - b);
  if (wanted.length === 0) return;
  await inTransaction(client, async () => {
    await client.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_CLASS, LOCK.Partitions]);
    const have = new Set(await listPartitions(client));
    for (const day of wanted) if (!have.has(partitionName(day))) await client.query(createPartitionSql(day));
  });
}

export interface SequenceSpan {
  collector_id: string;
  epoch: string;
  first_seq: string;
  last_seq: string;
  events: number;
  /** The dropping gateway's attestation of first_seq–last_seq (hex), and its key id. */
  mac?: string;
  key_id?: string;
}

/** Attests what retention drops (gateway seal key), so a forged record explains no gap. */
type DropSigner = { drop(collectorId: string, epoch: string, r: { from: bigint; to: bigint }): { mac: Uint8Array; keyId: string } };

function signed(spans: SequenceSpan[], signer: DropSigner | undefined): SequenceSpan[] {
  if (!signer) return spans;
  return spans.map((s) => {
    const a = signer.drop(s.collector_id, s.epoch, { from: BigInt(s.first_seq), to: BigInt(s.last_seq) });
    return { ...s, mac: Buffer.from(a.mac).toString('hex'), key_id: a.keyId };
  });
}

export interface RetentionResult {
  removed: number;
  dropped: string[];
}

/**
 * Drops every daily partition that lies wholly before `cutoffMicros` (by its
 * id day range and by its newest event time) and trims the overflow
 * partition row by row. Each drop is recorded in `dropped_partitions`, with
 * the sequence span of every collector epoch it held, and taken off the
 * event counter, in the same transaction. Only one gateway sweeps at a time:
 * the others find the lock taken and skip this round.
 */
export async function dropBefore(client: Queryable, cutoffMicros: number, droppedBy: string, logger: Logger, signer?: DropSigner): Promise<RetentionResult> {
  const got = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [LOCK_CLASS, LOCK.Retention]);
  if (!got.rows[0]?.ok) return { removed: 0, dropped: [] };
  try {
    let removed = 0;
    const dropped: string[] = [];
    const names = (await listPartitions(client)).sort();
    for (const name of names) {
      const day = dayOfPartition(name);
      if (day === undefined || (day + 1) * DAY_MICROS > cutoffMicros) continue;
      const n = await inTransaction(client, async () => {
        const spans = await sequenceSpans(client, `SELECT collector_id, epoch, seq, time_us FROM ${name}`, []);
        const newest = spans.newest;
        if (newest !== undefined && newest >= cutoffMicros) {
          logger.warn({ partition: name, newestTimeUs: newest }, 'partition holds events newer than the retention cutoff; kept');
          return -1;
        }
        await client.query(
          `INSERT INTO dropped_partitions (partition_name, from_day, to_day, cutoff_us, newest_time_us, events, sequences, dropped_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
          [name, day, day + 1, cutoffMicros, newest ?? null, spans.total, JSON.stringify(signed(spans.spans, signer)), droppedBy],
        );
        await client.query(`DROP TABLE ${name}`);
        if (spans.total > 0) await client.query('UPDATE event_count SET n = n - $1 WHERE shard = 0', [spans.total]);
        return spans.total;
      });
      if (n < 0) continue;
      removed += n;
      dropped.push(name);
    }
    removed += await trimOverflow(client, cutoffMicros, droppedBy, signer);
    return { removed, dropped };
  } finally {
    await client.query('SELECT pg_advisory_unlock($1, $2)', [LOCK_CLASS, LOCK.Retention]).catch(() => undefined);
  }
}

async function trimOverflow(client: Queryable, cutoffMicros: number, droppedBy: string, signer: DropSigner | undefined): Promise<number> {
  return inTransaction(client, async () => {
    const spans = await sequenceSpans(
      client,
      `DELETE FROM ${OVERFLOW_PARTITION} WHERE time_us < $1 RETURNING collector_id, epoch, seq, time_us`,
      [cutoffMicros],
    );
    if (spans.total === 0) return 0;
    await client.query(
      `INSERT INTO dropped_partitions (partition_name, cutoff_us, newest_time_us, events, sequences, dropped_by) VALUES ($1, $2, $3, $4, $5, $6)`,
      [OVERFLOW_PARTITION, cutoffMicros, spans.newest ?? null, spans.total, JSON.stringify(signed(spans.spans, signer)), droppedBy],
    );
    await client.query('UPDATE event_count SET n = n - $1 WHERE shard = 0', [spans.total]);
    return spans.total;
  });
}

/**
 * Per collector epoch, each run of consecutive seqs the rows `source` yields (a query with
 * collector_id, epoch, seq, time_us), with its count. Runs, not first-to-last: a partition's
 * seqs need not be contiguous (a statement that started before midnight gets its seq when it
 * ends, after events of the next day), and an attested span over seqs that stay in another
 * partition would explain their later deletion as retention.
 */
async function sequenceSpans(client: Queryable, source: string, params: unknown[]): Promise<{ spans: SequenceSpan[]; total: number; newest?: number }> {
  const r = await client.query<{ collector_id: string; epoch: string; first_seq: string; last_seq: string; events: string; newest: string | null }>(
    `WITH src AS (${source}), runs AS (
       SELECT collector_id, epoch, seq, time_us, seq - dense_rank() OVER (PARTITION BY collector_id, epoch ORDER BY seq) AS run FROM src
     )
     SELECT collector_id, epoch, min(seq)::text AS first_seq, max(seq)::text AS last_seq, count(*)::text AS events, max(time_us)::text AS newest
     FROM runs GROUP BY collector_id, epoch, run ORDER BY collector_id, epoch, min(seq)`,
    params,
  );
  let total = 0;
  let newest: number | undefined;
  const spans = r.rows.map((row) => {
    const events = Number(row.events);
    total += events;
    if (row.newest !== null) newest = Math.max(newest ?? 0, Number(row.newest));
    return { collector_id: row.collector_id, epoch: row.epoch, first_seq: row.first_seq, last_seq: row.last_seq, events };
  });
  return { spans, total, newest };
}
