import type { Config } from '../lib/config.js';
import type { Logger } from '../lib/log.js';
import { GatewayMetrics } from '../lib/metrics.js';
import { startGateway, type GatewayHandle } from './server.js';

/** `dbaudit gateway`: starts the gateway from a loaded config; the caller stops it with `close()` on a signal. */
export async function runGateway(opts: { config: Config; logger: Logger; metrics?: GatewayMetrics }): Promise<GatewayHandle> {
  return startGateway({ config: opts.config, logger: opts.logger, metrics: opts.metrics ?? new GatewayMetrics() });
}
