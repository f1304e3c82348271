import type { Config } from '../lib/config.js';
import { startHttpServer } from '../lib/http.js';
import type { Logger } from '../lib/log.js';
import { GatewayMetrics } from '../lib/metrics.js';
import { VERSION } from '../lib/version.js';
import type { AuditEvent } from '../proto/gen/audit/v1/event_pb.js';
import { startGateway, type GatewayHandle } from './server.js';

export interface RunningGateway extends GatewayHandle {
  httpAddress: string;
}

/** `dbaudit gateway`: the gRPC server plus its health and metrics endpoints. */
export async function runGateway(opts: { config: Config; logger: Logger; onStored?: (events: AuditEvent[]) => void }): Promise<RunningGateway> {
  const { config, logger } = opts;
  const metrics = new GatewayMetrics();
  const gw = await startGateway({ config, logger, metrics, onStored: opts.onStored });
  const startedAt = Date.now();
  let accepting = true;
  const storeCheck = async (): Promise<{ status: 'healthy' | 'unhealthy'; events?: number; error?: string }> => {
    try {
      return { status: 'healthy', events: await gw.store.count() };
    } catch (err) {
      return { status: 'unhealthy', error: (err as Error).message };
    }
  };
  const http = await startHttpServer(config.gateway.http.listen, {
    registry: metrics.registry,
    accepting: () => accepting,
    ready: async () => ({ store: await storeCheck() }),
    detailed: async () => {
      const store = await storeCheck();
      return {
        status: store.status === 'healthy' && accepting ? 'healthy' : 'unhealthy',
        version: VERSION,
        uptime_seconds: Math.floor((Date.now() - startedAt) / 1000),
        checks: { store: { ...store, kind: gw.store.kind } },
      };
    },
  });
  logger.info({ listen: gw.address, http: http.address, store: gw.store.kind }, 'dbaudit gateway started');
  return {
    ...gw,
    address: gw.address,
    store: gw.store,
    metrics: gw.metrics,
    retentionSwept: gw.retentionSwept,
    httpAddress: http.address,
    async close() {
      accepting = false;
      await gw.close();
      await http.close();
      logger.info('dbaudit gateway stopped');
    },
  };
}
