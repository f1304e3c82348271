import type { Config } from '../lib/config.js';
import { startHttpServer, type CheckResult } from '../lib/http.js';
import type { Logger } from '../lib/log.js';
import { GatewayMetrics } from '../lib/metrics.js';
import { VERSION } from '../lib/version.js';
import type { AuditEvent } from '../proto/gen/audit/v1/event_pb.js';
import { startGateway, type GatewayHandle, type GatewayOptions } from './server.js';

/**
 * What the gateway's health endpoints need from DR replication
 * (`gateway.replicate_to`): one entry per configured peer. Replication
 * implements this and passes it to runGateway as `replication`.
 */
export interface ReplicationStatus {
  peers(): ReplicationPeerStatus[];
}

export interface ReplicationPeerStatus {
  endpoint: string;
  /** A stream to the peer is open and acknowledging. */
  connected: boolean;
  /** Stored events the peer has not acknowledged yet. */
  pending: number;
  lastError?: string;
}

export interface RunningGateway extends GatewayHandle {
  httpAddress: string;
}

export interface RunGatewayOptions {
  config: Config;
  logger: Logger;
  onStored?: (events: AuditEvent[]) => void;
  metrics?: GatewayMetrics;
  /** Status of DR replication, instead of the gateway's own (tests); with neither, a set gateway.replicate_to reads "not running". */
  replication?: ReplicationStatus;
  store?: GatewayOptions['store'];
}

/**
 * Readiness of the store (it answers), and of each replication peer. A peer
 * that is away does not make the gateway unready: collectors must keep
 * delivering to the primary while the DR region is down (events queue for
 * replication). It reads "degraded" in both /health/ready's checks and
 * /health/detailed, and `dbaudit_replication_pending` grows.
 */
export function gatewayChecks(store: () => Promise<number>, config: Config, replication: ReplicationStatus | undefined): () => Promise<Record<string, CheckResult>> {
  return async () => {
    const checks: Record<string, CheckResult> = {};
    try {
      checks.store = { status: 'healthy', events: await store() };
    } catch (err) {
      checks.store = { status: 'unhealthy', error: (err as Error).message };
    }
    const peers = config.gateway.replicate_to;
    if (peers.length > 0) {
      const status = replication?.peers() ?? peers.map((endpoint) => ({ endpoint, connected: false, pending: 0, lastError: 'replication is not running in this gateway' }));
      const down = status.filter((p) => !p.connected);
      checks.replication = {
        status: down.length === 0 ? 'healthy' : 'degraded',
        peers: status.map((p) => ({ endpoint: p.endpoint, connected: p.connected, pending: p.pending, ...(p.lastError ? { error: p.lastError } : {}) })),
      };
    }
    return checks;
  };
}

/** `dbaudit gateway`: the gRPC server plus its health and metrics endpoints. */
export async function runGateway(opts: RunGatewayOptions): Promise<RunningGateway> {
  const { config, logger } = opts;
  const metrics = opts.metrics ?? new GatewayMetrics();
  const gw = await startGateway({ config, logger, metrics, onStored: opts.onStored, store: opts.store });
  const startedAt = Date.now();
  let accepting = true;
  // DR replication started by startGateway (gateway.replicate_to) reports here unless the caller brings its own.
  const replication = opts.replication ?? gw.replication;
  const ready = gatewayChecks(() => gw.store.count(), config, replication);
  const http = await startHttpServer(config.gateway.http.listen, {
    registry: metrics.registry,
    accepting: () => accepting,
    ready,
    refreshMetrics: () => {
      const peers = replication?.peers();
      if (peers) metrics.replicationPending.set(peers.reduce((n, p) => n + p.pending, 0));
    },
    detailed: async () => {
      const checks = await ready();
      const statuses = Object.values(checks).map((c) => c.status);
      return {
        status: !accepting || statuses.includes('unhealthy') ? 'unhealthy' : statuses.every((s) => s === 'healthy') ? 'healthy' : 'degraded',
        version: VERSION,
        uptime_seconds: Math.floor((Date.now() - startedAt) / 1000),
        checks: { ...checks, store: { ...checks.store, kind: gw.store.kind } },
      };
    },
  }, 'gateway.http.listen');
  logger.info({ listen: gw.address, http: http.address, store: gw.store.kind, replicateTo: config.gateway.replicate_to.length }, 'dbaudit gateway started');
  return {
    ...gw,
    httpAddress: http.address,
    async close() {
      accepting = false;
      await gw.close();
      await http.close();
      logger.info('dbaudit gateway stopped');
    },
  };
}
