import type { AuditEvent } from '../proto/gen/audit/v1/event_pb.js';
import type { Config } from '../lib/config.js';
import type { Logger } from '../lib/log.js';
import { GatewayMetrics } from '../lib/metrics.js';
import { startGateway, type GatewayHandle } from './server.js';

export interface RunGatewayOptions {
  config: Config;
  logger: Logger;
  /** Default: a registry with the process metrics too. */
  metrics?: GatewayMetrics;
  /** Called with the events newly stored after each durable write (the demo prints them). */
  onStored?: (events: AuditEvent[]) => void;
}

/** `dbaudit gateway` (and the demo): starts the gateway from a loaded config; the caller stops it with `close()`. */
export async function runGateway(opts: RunGatewayOptions): Promise<GatewayHandle> {
  return startGateway({ config: opts.config, logger: opts.logger, metrics: opts.metrics ?? new GatewayMetrics(), onStored: opts.onStored });
}
