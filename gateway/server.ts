import * as grpc from '@grpc/grpc-js';
import type { AuditEvent } from '../proto/gen/audit/v1/event_pb.js';
import { systemClock, type Clock } from '../lib/clock.js';
import type { Config } from '../lib/config.js';
import { parseAddress } from '../lib/config.js';
import { AuditError, ErrorCode } from '../lib/errors.js';
import { listenError } from '../lib/listen.js';
import { MAX_MESSAGE_BYTES, httpStatusOf, queryDefinition } from '../lib/grpc.js';
import { componentLogger, silentLogger, type Logger } from '../lib/log.js';
import { GatewayMetrics } from '../lib/metrics.js';
import { guardFromConfig, type CallGuard } from './auth.js';
import { serverCredentials } from './credentials.js';
import { IngestHandler, ingestServerDefinition } from './ingest.js';
import { QueryHandler } from './query.js';
import { replicationGuard, startReplication, type Replication } from './replicate.js';
import { startRetention } from './retention.js';
import { createStore, type Store } from './store.js';
import { TrailAuditor, makeSealer, trailHandler } from './trail.js';
import { TrailKeys, loadOptionalKey } from '../lib/trail.js';

/**
 * The gateway: one grpc-js server with the ingest and query services over
 * one store. Transport security comes from `serverCredentials(config)`,
 * caller checks from a `CallGuard`; both are seams for TLS, mTLS and
 * bearer tokens.
 */

export interface GatewayOptions {
  config: Config;
  logger?: Logger;
  metrics?: GatewayMetrics;
  /** Called with the events newly stored (never duplicates) after each durable write. */
  onStored?: (events: AuditEvent[]) => void;
  /** A store to use instead of the one `gateway.store` names (tests, wrappers). Opened here, closed by `close()`. */
  store?: Store;
  /** Admission check for every call; default from gateway.token_file (none: everyone). */
  guard?: CallGuard;
  /** Time source for received_at (tests). */
  clock?: Clock;
  /** Environment for key variables (default process.env). */
  env?: NodeJS.ProcessEnv;
}

export interface GatewayHandle {
  /** The actual host:port listened on (port 0 resolved). */
  readonly address: string;
  readonly store: Store;
  readonly metrics: GatewayMetrics;
  /** DR replication toward gateway.replicate_to (its status is the ReplicationStatus of run.ts); undefined when not configured. */
  readonly replication?: Replication;
  /** The retention sweep run at start (resolved at once when gateway.retention is 0). */
  readonly retentionSwept: Promise<void>;
  /** Tamper evidence: the chain check on ingest and the walk of the stored trail. */
  readonly trail: TrailAuditor;
  /** Stops accepting, answers the batches already received, then closes the store. */
  close(): Promise<void>;
}

/** How long close() lets open streams finish their received batches before cutting them. */
const DRAIN_TIMEOUT_MS = 5_000;

/** grpc-js channel options of the server. */
export const SERVER_OPTIONS: grpc.ServerOptions = {
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  // Ping idle connections so dead collectors are noticed and NAT state stays fresh.
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_timeout_ms': 10_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.http2.min_ping_interval_without_data_ms': 10_000,
  // Long-lived ingest streams are the norm; never recycle connections by age.
  'grpc.max_connection_idle_ms': 0x7fffffff,
};

/** The endpoint label of a method path, as the handlers count it ('/audit.v1.IngestService/Stream' → events). */
function endpointOf(path: string): string {
  if (path.endsWith('/Stream')) return 'events';
  const method = path.slice(path.lastIndexOf('/') + 1);
  return method.toLowerCase();
}

/**
 * Counts the calls grpc-js itself ends before a handler sees the message:
 * a message over grpc.max_receive_message_length (MAX_MESSAGE_BYTES) is
 * refused with RESOURCE_EXHAUSTED inside grpc-js, which tells the call's
 * listeners only that it was cancelled. At that point the status it sent is
 * on the HTTP/2 stream (trailers, or headers of a trailers-only answer);
 * this reads it there and counts a refusal the handlers could not.
 */
function oversizeCounter(metrics: GatewayMetrics): grpc.ServerInterceptor {
  return (method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onCancel: () => {
            const stream = (call as unknown as { stream?: { sentTrailers?: Record<string, unknown>; sentHeaders?: Record<string, unknown> } }).stream;
            const sent = stream?.sentTrailers ?? stream?.sentHeaders;
            const code = Number(sent?.['grpc-status']);
            const details = decodeURIComponent(String(sent?.['grpc-message'] ?? ''));
            if (code !== grpc.status.RESOURCE_EXHAUSTED || !details.startsWith('Received message')) return;
            metrics.eventsRejected.inc({ reason: 'message_too_large' });
            metrics.apiRequests.inc({ endpoint: endpointOf(method.path), status: httpStatusOf(code) });
          },
        }),
    });
}

function bind(server: grpc.Server, address: string, creds: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, creds, (err, port) => (err ? reject(err) : resolve(port)));
  });
}

function withTimeout(p: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
    timer.unref();
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

export async function startGateway(opts: GatewayOptions): Promise<GatewayHandle> {
  const { config } = opts;
  const logger = componentLogger(opts.logger ?? silentLogger, 'gateway');
  const metrics = opts.metrics ?? new GatewayMetrics({ defaultMetrics: false });
  const listen = parseAddress(config.gateway.listen);
  if (!listen) throw new AuditError(ErrorCode.Config, `config gateway.listen: invalid value ${JSON.stringify(config.gateway.listen)}; expected host:port`);
  const creds = serverCredentials(config);
  // Streams marked as DR replication are named replication:<peer>, so what they deliver is not replicated again.
  const guard = replicationGuard(opts.guard ?? guardFromConfig(config, metrics));

  const t = config.gateway.trail;
  const keys = t.keys_dir ? TrailKeys.fromDir(t.keys_dir, 'gateway.trail.keys_dir') : new TrailKeys();
  const requireKeyed = keys.size > 0;
  const sealKey = loadOptionalKey(t.seal_key_file, 'gateway.trail.seal_key_file', opts.env ?? process.env, t.seal_key_env);
  if (sealKey) keys.add(sealKey, { kind: 'seal' }, t.seal_key_file ? `gateway.trail.seal_key_file ${t.seal_key_file}` : `the seal key in $${t.seal_key_env}`);
  const sealer = makeSealer(sealKey, config.gateway.id, opts.clock ?? systemClock);
  const backend = opts.store ?? (await createStore(config.gateway.store, config.gateway.data_dir, { clock: opts.clock, logger, gatewayId: config.gateway.id, sealer, writeBufferSize: config.gateway.write_buffer_size }));
  await backend.open();
  let replication: Replication | undefined;
  if (config.gateway.replicate_to.length > 0) {
    try {
      replication = await startReplication({ config, store: backend, logger, metrics, clock: systemClock }); // real time: the shipper paces replay by it
    } catch (err) {
      await backend.close();
      throw err;
    }
  }
  const store = replication?.store ?? backend;

  const clock = opts.clock;
  const now = clock ? (): number => clock.now() : undefined;
  const trail = new TrailAuditor({ store, metrics, logger, keys, requireKeyed, intervalMs: t.check_interval, fullIntervalMs: t.full_check_interval });
  const ingest = new IngestHandler({ store, metrics, logger, guard, onStored: opts.onStored, now, trail });
  const query = new QueryHandler({ store, metrics, logger, guard });
  const server = new grpc.Server({ ...SERVER_OPTIONS, interceptors: [oversizeCounter(metrics)] });
  server.addService(ingestServerDefinition, { stream: ingest.stream });
  server.addService(queryDefinition, { search: query.search, trail: trailHandler({ store, metrics, logger, guard, flushHeads: () => trail.flushHeads() }) });

  let port: number;
  try {
    port = await bind(server, config.gateway.listen, creds);
  } catch (err) {
    server.forceShutdown();
    await replication?.close();
    await store.close();
    throw listenError(err, 'gateway.listen', config.gateway.listen);
  }
  const retention = startRetention(store, config.gateway.retention, clock ?? systemClock, logger);
  trail.start();
  const host = listen.host.includes(':') ? `[${listen.host}]` : listen.host;
  const address = `${host}:${port}`;
  logger.info({ address, store: store.kind }, 'gateway listening');

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      const shutdown = new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      await withTimeout(ingest.drain(), DRAIN_TIMEOUT_MS);
      server.forceShutdown();
      await shutdown;
      await retention.stop();
      await trail.stop();
      await replication?.close();
      await store.close();
      logger.info({ address }, 'gateway stopped');
    })();
    return closing;
  };

  return { address, store, metrics, replication, retentionSwept: retention.firstSweep, trail, close };
}
