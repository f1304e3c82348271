import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/log.js';
import type { CollectorMetrics } from '../lib/metrics.js';
import type { Loss } from './evict.js';
import type { Keyring } from './keyring.js';

/** The public types of the cache (re-exported by wal.ts). */

export interface CacheOptions {
  /** Directory; created if missing. */
  path: string;
  /** The setting `path` comes from (e.g. collector.cache.path), named in the error when the cache cannot be opened. */
  setting?: string;
  /**
   * The collector id whose trail this cache's epoch continues. Recorded at
   * the first open; opening the cache under another id is refused, since the
   * epoch's sequence would go on under a name the gateway has not seen from
   * seq 1 (a false gap that never closes).
   */
  owner?: string;
  /** collector.cache.max_size, bytes of records (key + sealed value) held. */
  maxBytes: number;
  /** collector.cache.max_age; 0 disables expiry. */
  maxAgeMs: number;
  keyring: Keyring;
  /** Group-commit window (collector.cache.sync.commit_interval). */
  commitIntervalMs: number;
  clock?: Clock;
  logger?: Logger;
  metrics?: CollectorMetrics;
  /**
   * Called when records are dropped by policy or found corrupt, so the caller can emit a loss event.
   * Losses found while opening (max_age after a long stop, a repaired database) arrive on the
   * event-loop turn after open() resolves.
   */
  onLoss?: (loss: Loss) => void;
  /** Told when writes start failing (with the error) and when they succeed again; `writable` has the current state. */
  onWritableChange?: (writable: boolean, error?: Error) => void;
  /** Memory for appends held while writes fail, before the oldest are dropped (default 64 MiB). */
  maxPendingBytes?: number;
  /** How often max_age is enforced in the background (default maxAge/10, within 100 ms..60 s). */
  expireIntervalMs?: number;
  /** Retry delays after a failed write: first, then doubled up to the max (defaults 100 ms, 5 s). */
  retryMinMs?: number;
  retryMaxMs?: number;
  /** RocksDB memtable size (default 4 MiB). */
  writeBufferSize?: number;
  /**
   * `fsync` (default): a group commit counts as durable once RocksDB's
   * write-ahead log is synced; it survives a power loss.
   * `write`: it counts once written to the log (the operating system holds
   * it: it survives a crash or kill -9 of the process, not of the machine),
   * and the log is synced in the background every `fsyncIntervalMs`.
   */
  durability?: 'fsync' | 'write';
  /**
   * No disk at all (collector.cache.enabled: false): the records live in
   * memory, bounded by maxBytes, with every other rule of the cache
   * (sealing, eviction with loss records, max_age, acknowledgement) as on
   * disk; `path` is not used and a restart begins a new epoch.
   */
  memory?: boolean;
  /** Background sync period in `write` durability (default 200 ms). */
  fsyncIntervalMs?: number;
}

export interface CachedRecord {
  seq: bigint;
  timeMs: number;
  payload: Uint8Array;
  bytes: number;
}

export interface ScanOptions {
  order: 'oldest_first' | 'newest_first';
  afterSeq?: bigint;
  beforeSeq?: bigint;
  limit: number;
}

export interface CacheStats {
  events: number;
  bytes: number;
  maxBytes: number;
  oldestTimeMs?: number;
  newestTimeMs?: number;
  pendingAppends: number;
  writable: boolean;
  lastError?: string;
}
