import { isUuid, uuidv7Time } from '../../lib/uuid.js';

/**
 * Schema of the PostgreSQL store, as numbered migrations the gateway applies
 * at start (gateway/store-postgres.ts `migrate`): each runs once, in order,
 * inside one transaction that holds an advisory lock, and is recorded in
 * `schema_migrations`. Never edit a released migration: add the next one.
 *
 * Partitioning and dedup. `events` is range-partitioned by `part_day`, the
 * day (since 1970-01-01 UTC) of the millisecond time embedded in the event's
 * UUIDv7 `event_id` — a function of event_id alone. A partitioned table's
 * primary key must contain the partition key, so the key is
 * (event_id, part_day); because part_day is determined by event_id, two rows
 * with the same event_id always land in the same partition and collide on
 * that key: uniqueness of event_id holds across every partition without a
 * second table, and `INSERT … ON CONFLICT DO NOTHING` is the whole dedup,
 * across any number of gateway replicas. Our collectors make the id from the
 * event time (proxy/events.ts), so id day = event day and retention can drop
 * whole partitions; it still checks each partition's newest event time
 * before dropping it. Ids that are not UUIDv7 (or whose time is before 2000
 * or after 2199) go to `events_overflow` (part_day 0), which retention
 * trims row by row.
 * @internal
 */

export interface Migration {
  readonly version: number;
  readonly name: string;
  /** Statements, run in order in the migration transaction. */
  readonly statements: readonly string[];
  /** When true a failure is tolerated (savepoint) and the migration is not recorded, so it is tried again at the next start. */
  readonly optional?: boolean;
}

/** Advisory lock keys (two-int form): class "dbau", then what is locked. */
export const LOCK_CLASS = 0x64626175;
export const LOCK = { Migrate: 1, Partitions: 2, Retention: 3 } as const;

/** Shards of the event counter: puts add to one, so replicas rarely wait on the same row. */
export const COUNT_SHARDS = 16;

const INDEXED = ['user_name', 'database_name', 'session_id', 'kind', 'collector_id'] as const;

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'events partitioned by the event id day; counters; dropped partitions',
    statements: [
      `CREATE TABLE events (
        event_id uuid NOT NULL,
        part_day integer NOT NULL,
        time_us bigint NOT NULL,
        kind text NOT NULL,
        user_name text NOT NULL,
        database_name text NOT NULL,
        session_id text NOT NULL,
        collector_id text NOT NULL,
        epoch text NOT NULL,
        seq numeric(20, 0) NOT NULL,
        statement text NOT NULL,
        delivered_by text NOT NULL,
        received_at timestamptz NOT NULL,
        raw bytea NOT NULL,
        PRIMARY KEY (event_id, part_day)
      ) PARTITION BY RANGE (part_day)`,
      `CREATE TABLE events_overflow PARTITION OF events FOR VALUES FROM (MINVALUE) TO (1)`,
      `CREATE INDEX events_time_idx ON events (time_us, event_id)`,
      ...INDEXED.map((c) => `CREATE INDEX events_${c}_idx ON events (${c}, time_us, event_id)`),
      `CREATE INDEX events_sequence_idx ON events (collector_id, epoch, seq)`,
      `CREATE TABLE event_count (shard smallint PRIMARY KEY, n bigint NOT NULL)`,
      `INSERT INTO event_count (shard, n) SELECT g, 0 FROM generate_series(0, ${COUNT_SHARDS - 1}) g`,
      `CREATE TABLE dropped_partitions (
        id bigserial PRIMARY KEY,
        partition_name text NOT NULL,
        from_day integer,
        to_day integer,
        cutoff_us bigint NOT NULL,
        newest_time_us bigint,
        events bigint NOT NULL,
        sequences jsonb NOT NULL,
        dropped_at timestamptz NOT NULL DEFAULT now(),
        dropped_by text NOT NULL
      )`,
      `COMMENT ON TABLE dropped_partitions IS 'dbaudit retention: event ranges removed on purpose (day range of event ids, and per collector epoch the sequence span and count)'`,
    ],
  },
  {
    version: 2,
    name: 'trigram index for statement text search (needs pg_trgm)',
    optional: true,
    statements: [
      `CREATE EXTENSION IF NOT EXISTS pg_trgm`,
      `CREATE INDEX events_statement_trgm_idx ON events USING gin (statement gin_trgm_ops)`,
    ],
  },
  {
    version: 3,
    name: 'trail: reported sequence heads per collector epoch, storage seals',
    statements: [
      `ALTER TABLE events ADD COLUMN seal_id uuid`,
      `CREATE TABLE trail_heads (
        collector_id text NOT NULL,
        epoch text NOT NULL,
        highest_seq numeric(20, 0) NOT NULL DEFAULT 0,
        PRIMARY KEY (collector_id, epoch)
      )`,
      `COMMENT ON TABLE trail_heads IS 'dbaudit trail: every collector epoch known, and the highest sequence number its collector reported'`,
      `INSERT INTO trail_heads (collector_id, epoch) SELECT DISTINCT collector_id, epoch FROM events WHERE seq > 0 ON CONFLICT DO NOTHING`,
      `CREATE TABLE trail_seals (
        seal_id uuid PRIMARY KEY,
        gateway_id text NOT NULL,
        key_id text NOT NULL,
        sealed_at_ms bigint NOT NULL,
        entries bytea NOT NULL,
        mac bytea NOT NULL
      )`,
      `COMMENT ON TABLE trail_seals IS 'dbaudit trail: per stored group, each event id with a digest of its row, under the gateway seal key'`,
    ],
  },
  {
    version: 4,
    name: 'trail: the collector attestation of each reported head',
    statements: [
      `ALTER TABLE trail_heads ADD COLUMN head_mac bytea`,
      `ALTER TABLE trail_heads ADD COLUMN head_key_id text NOT NULL DEFAULT ''`,
    ],
  },
];

const DAY_MS = 86_400_000;
/** 2000-01-01 and 2200-01-01 as days since the epoch: UUIDv7 times outside go to the overflow partition. */
const FIRST_DAY = 10_957;
const END_DAY = 84_006;
export const OVERFLOW_PARTITION = 'events_overflow';

/** The partition day of an event id: its UUIDv7 day, or 0 (overflow) for anything else. */
export function partDay(eventId: string): number {
  if (!isUuid(eventId) || eventId[14] !== '7') return 0;
  const day = Math.floor(uuidv7Time(eventId) / DAY_MS);
  return day >= FIRST_DAY && day < END_DAY ? day : 0;
}

export function dayOfMs(ms: number): number {
  return Math.floor(ms / DAY_MS);
}

/** `events_YYYYMMDD` for the partition holding part_day `day`. */
export function partitionName(day: number): string {
  return `events_${new Date(day * DAY_MS).toISOString().slice(0, 10).replace(/-/g, '')}`;
}

/** The day of a partition name made by `partitionName`, or undefined. */
export function dayOfPartition(name: string): number | undefined {
  const m = /^events_(\d{4})(\d{2})(\d{2})$/.exec(name);
  if (!m) return undefined;
  return dayOfMs(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
}

export function createPartitionSql(day: number): string {
  return `CREATE TABLE IF NOT EXISTS ${partitionName(day)} PARTITION OF events FOR VALUES FROM (${day}) TO (${day + 1})`;
}

export const DAY_MICROS = DAY_MS * 1000;
