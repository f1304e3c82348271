import client from 'prom-client';

/**
 * Every metric is declared here, once, with the brief's names and labels.
 * Each component (a proxy, a gateway) owns one registry, so several can
 * live in one process (tests, the demo) and be asserted exactly.
 * Labels are small fixed sets: never a statement, a user-supplied string
 * or a client address. Database names are capped (see `databaseLabel`).
 */

const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Distinct database label values kept before the rest are folded into "other". */
export const MAX_DATABASE_LABELS = 64;
/** Longer names are not real database names (PostgreSQL allows 63 bytes, MySQL 64): they are "other". */
export const MAX_DATABASE_LABEL_BYTES = 64;

/**
 * `dbaudit_database_connections_errors_total` exactly as the brief shows it
 * (no labels, present at 0 from the start), with the breakdown by reason in
 * `dbaudit_database_connection_errors_by_reason_total{reason}`.
 */
export class ReasonCounter {
  readonly total: client.Counter;
  readonly byReason: client.Counter<'reason'>;
  constructor(total: client.Counter, byReason: client.Counter<'reason'>) {
    this.total = total;
    this.byReason = byReason;
  }
  inc(labels: { reason: string }, value = 1): void {
    this.total.inc(value);
    this.byReason.inc(labels, value);
  }
  /** The by-reason values. */
  get(): Promise<client.MetricObjectWithValues<client.MetricValue<'reason'>>> {
    return this.byReason.get();
  }
}

export class CollectorMetrics {
  readonly registry = new client.Registry();
  readonly eventsProcessed: client.Counter<'database' | 'status'>;
  readonly eventLatency: client.Histogram;
  readonly cacheSizeBytes: client.Gauge;
  readonly cacheEventsCount: client.Gauge;
  readonly cacheMaxBytes: client.Gauge;
  readonly cacheSyncPending: client.Gauge;
  readonly cacheDropped: client.Counter<'reason'>;
  readonly cacheCorrupt: client.Counter;
  readonly cacheWriteErrors: client.Counter;
  readonly eventLag: client.Gauge;
  readonly apiRequests: client.Counter<'endpoint' | 'status'>;
  readonly apiLatency: client.Histogram;
  readonly dbConnectionsActive: client.Gauge;
  readonly dbConnectionsTotal: client.Counter;
  readonly dbConnectionErrors: ReasonCounter;
  readonly anomalies: client.Counter<'protocol' | 'reason'>;
  readonly bytesForwarded: client.Counter<'direction'>;
  readonly limitRejections: client.Counter<'limit'>;
  readonly eventBufferUtilization: client.Gauge;
  readonly #databases = new Set<string>();
  /**
   * Counts made on the hot path (per chunk, per event) go into plain numbers
   * and reach the counters when they are read (prom-client calls `collect`
   * on every get and scrape): a labelled inc() hashes its labels each time.
   */
  #forwardedToServer = 0;
  #forwardedToClient = 0;
  /** Events processed not yet in the counter, by database label: [success, error]. */
  readonly #eventCounts = new Map<string, [number, number]>();

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    const r = [this.registry];
    const self = this;
    if (opts.defaultMetrics !== false) client.collectDefaultMetrics({ register: this.registry });
    this.eventsProcessed = new client.Counter({
      name: 'dbaudit_events_processed_total',
      help: 'Audit events processed, by database and outcome (success, error).',
      labelNames: ['database', 'status'],
      registers: r,
      collect() {
        for (const [database, n] of self.#eventCounts) {
          if (n[0] > 0) this.inc({ database, status: 'success' }, n[0]);
          if (n[1] > 0) this.inc({ database, status: 'error' }, n[1]);
          n[0] = n[1] = 0;
        }
      },
    });
    this.eventLatency = new client.Histogram({ name: 'dbaudit_event_latency_seconds', help: 'Time from an event being captured to it being durable in the local cache.', buckets: LATENCY_BUCKETS, registers: r });
    this.cacheSizeBytes = new client.Gauge({ name: 'dbaudit_cache_size_bytes', help: 'Bytes of events held in the local cache.', registers: r });
    this.cacheEventsCount = new client.Gauge({ name: 'dbaudit_cache_events_count', help: 'Events held in the local cache.', registers: r });
    this.cacheMaxBytes = new client.Gauge({ name: 'dbaudit_cache_max_bytes', help: 'Configured maximum size of the local cache.', registers: r });
    this.cacheSyncPending = new client.Gauge({ name: 'dbaudit_cache_sync_pending', help: 'Cached events not yet acknowledged by a gateway.', registers: r });
    this.cacheDropped = new client.Counter({ name: 'dbaudit_cache_dropped_events_total', help: 'Events dropped from the cache by policy (size, age).', labelNames: ['reason'], registers: r });
    for (const reason of ['size', 'age']) this.cacheDropped.inc({ reason }, 0);
    this.cacheCorrupt = new client.Counter({ name: 'dbaudit_cache_corrupt_records_total', help: 'Cache records that could not be read or decrypted.', registers: r });
    this.cacheWriteErrors = new client.Counter({ name: 'dbaudit_cache_write_errors_total', help: 'Failed writes to the local cache.', registers: r });
    this.eventLag = new client.Gauge({ name: 'dbaudit_event_lag_seconds', help: 'Age of the oldest event not yet acknowledged by a gateway.', registers: r });
    this.apiRequests = new client.Counter({ name: 'dbaudit_api_requests_total', help: 'Requests to the gateway API (one per event batch or failed attempt), by endpoint and HTTP-style status.', labelNames: ['endpoint', 'status'], registers: r });
    this.apiRequests.inc({ endpoint: 'events', status: '200' }, 0);
    this.apiLatency = new client.Histogram({ name: 'dbaudit_api_latency_seconds', help: 'Gateway API round-trip time of an event batch (sent to acknowledged).', buckets: LATENCY_BUCKETS, registers: r });
    this.dbConnectionsActive = new client.Gauge({ name: 'dbaudit_database_connections_active', help: 'Client sessions currently proxied to the database.', registers: r });
    this.dbConnectionsTotal = new client.Counter({ name: 'dbaudit_database_connections_total', help: 'Client sessions accepted.', registers: r });
    this.dbConnectionErrors = new ReasonCounter(
      new client.Counter({ name: 'dbaudit_database_connections_errors_total', help: 'Failures connecting to or talking with the database.', registers: r }),
      new client.Counter({ name: 'dbaudit_database_connection_errors_by_reason_total', help: 'Failures connecting to (connect) or talking with (io) the database, by reason.', labelNames: ['reason'], registers: r }),
    );
    for (const reason of ['connect', 'io']) this.dbConnectionErrors.byReason.inc({ reason }, 0);
    this.anomalies = new client.Counter({ name: 'dbaudit_protocol_anomalies_total', help: 'Wire traffic the decoder could not follow.', labelNames: ['protocol', 'reason'], registers: r });
    this.bytesForwarded = new client.Counter({
      name: 'dbaudit_bytes_forwarded_total',
      help: 'Bytes forwarded, by direction.',
      labelNames: ['direction'],
      registers: r,
      collect() {
        if (self.#forwardedToServer > 0) this.inc({ direction: 'client_to_server' }, self.#forwardedToServer);
        if (self.#forwardedToClient > 0) this.inc({ direction: 'server_to_client' }, self.#forwardedToClient);
        self.#forwardedToServer = 0;
        self.#forwardedToClient = 0;
      },
    });
    this.limitRejections = new client.Counter({ name: 'dbaudit_limit_rejections_total', help: 'Connections or statements refused by a configured limit.', labelNames: ['limit'], registers: r });
    this.eventBufferUtilization = new client.Gauge({ name: 'dbaudit_event_buffer_utilization_ratio', help: 'Fill of the in-memory event buffer ahead of the cache (0..1).', registers: r });
  }

  /** Bytes forwarded client → server (dbaudit_bytes_forwarded_total{direction="client_to_server"}). */
  forwardedToServer(bytes: number): void {
    this.#forwardedToServer += bytes;
  }

  /** Bytes forwarded server → client. */
  forwardedToClient(bytes: number): void {
    this.#forwardedToClient += bytes;
  }

  /** One event processed (dbaudit_events_processed_total{database, status}). */
  eventProcessed(database: string, error: boolean): void {
    const label = this.databaseLabel(database);
    let n = this.#eventCounts.get(label);
    if (n === undefined) this.#eventCounts.set(label, (n = [0, 0]));
    n[error ? 1 : 0]++;
  }

  /** The `database` label for a database name: the first MAX_DATABASE_LABELS names as they are, then "other". */
  databaseLabel(name: string): string {
    if (this.#databases.has(name)) return name;
    if (name.length > MAX_DATABASE_LABEL_BYTES || Buffer.byteLength(name) > MAX_DATABASE_LABEL_BYTES) return 'other';
    if (this.#databases.size >= MAX_DATABASE_LABELS) return 'other';
    this.#databases.add(name);
    return name;
  }
}

export class GatewayMetrics {
  readonly registry = new client.Registry();
  readonly eventsStored: client.Counter;
  readonly eventsDuplicate: client.Counter;
  readonly eventsRejected: client.Counter<'reason'>;
  readonly apiRequests: client.Counter<'endpoint' | 'status'>;
  readonly apiLatency: client.Histogram<'endpoint'>;
  readonly authFailures: client.Counter;
  readonly trailGaps: client.Gauge;
  readonly trailChainBreaks: client.Counter<'check'>;
  readonly replicationPending: client.Gauge;

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    const r = [this.registry];
    if (opts.defaultMetrics !== false) client.collectDefaultMetrics({ register: this.registry });
    this.eventsStored = new client.Counter({ name: 'dbaudit_gateway_events_stored_total', help: 'Events newly stored.', registers: r });
    this.eventsDuplicate = new client.Counter({ name: 'dbaudit_gateway_events_duplicate_total', help: 'Events received again and not stored twice.', registers: r });
    this.eventsRejected = new client.Counter({ name: 'dbaudit_gateway_events_rejected_total', help: 'Events or batches refused as malformed.', labelNames: ['reason'], registers: r });
    this.apiRequests = new client.Counter({ name: 'dbaudit_api_requests_total', help: 'API requests served, by endpoint and HTTP-style status.', labelNames: ['endpoint', 'status'], registers: r });
    this.apiLatency = new client.Histogram({ name: 'dbaudit_api_latency_seconds', help: 'Time to serve an API request.', labelNames: ['endpoint'], buckets: LATENCY_BUCKETS, registers: r });
    this.authFailures = new client.Counter({ name: 'dbaudit_gateway_auth_failures_total', help: 'Callers refused for missing or invalid credentials.', registers: r });
    this.trailGaps = new client.Gauge({ name: 'dbaudit_trail_gaps', help: 'Sequence ranges missing without a loss event, over all collector epochs.', registers: r });
    this.trailChainBreaks = new client.Counter({
      name: 'dbaudit_trail_chain_breaks_total',
      help: 'Chain breaks found: check="ingest" an arriving event fails its own hash; check="store" the walk of the stored trail found a bad hash, link, seal, position or a seq held twice.',
      labelNames: ['check'],
      registers: r,
    });
    // Both series exist from the start, so increase() sees the first break.
    for (const check of ['ingest', 'store']) this.trailChainBreaks.inc({ check }, 0);
    this.replicationPending = new client.Gauge({ name: 'dbaudit_replication_pending', help: 'Stored events not yet acknowledged by the DR peer.', registers: r });
  }
}
