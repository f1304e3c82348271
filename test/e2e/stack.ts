import { randomBytes } from 'node:crypto';
import { toJsonString } from '@bufbuild/protobuf';
import { AuditEventSchema } from '../../proto/gen/audit/v1/event_pb.js';
import { join } from 'node:path';
import { loadConfig } from '../../lib/config.js';
import { silentLogger } from '../../lib/log.js';
import { CollectorMetrics, GatewayMetrics } from '../../lib/metrics.js';
import { startGateway, type GatewayHandle } from '../../gateway/server.js';
import type { SearchFilter } from '../../gateway/store.js';
import { startCollector, type CollectorHandle } from '../../proxy/collector.js';
import type { AuditEvent } from '../../proxy/events.js';
import { makeTempDir } from '../harness/index.js';

export const TEST_CACHE_KEY = randomBytes(32).toString('base64');

export interface Stack {
  collector: CollectorHandle;
  gateway: GatewayHandle;
  proxyHost: string;
  proxyPort: number;
  cacheDir: string;
  /** All stored events matching the filter, oldest first. */
  events(filter?: Partial<SearchFilter>): Promise<AuditEvent[]>;
  /** Waits (bounded) until `pred` holds for the stored events matching `filter`; returns them oldest first. */
  waitForEvents(pred: (evs: AuditEvent[]) => boolean, filter?: Partial<SearchFilter>, timeoutMs?: number): Promise<AuditEvent[]>;
  close(): Promise<void>;
}

/** A gateway and a proxy in this process, in front of `upstream`, with their own temporary directories. */
export async function startStack(upstream: string, overrides: Record<string, unknown> = {}, gatewayOverrides: Record<string, unknown> = {}): Promise<Stack> {
  const dir = makeTempDir('dbaudit-e2e-');
  const gwConfig = loadConfig({
    argv: [],
    env: {},
    scope: 'gateway',
    defaults: { 'gateway.listen': '127.0.0.1:0', 'gateway.data_dir': join(dir.dir, 'gateway'), 'gateway.http.listen': '127.0.0.1:0', 'log.level': 'silent', ...gatewayOverrides },
  }).config;
  const gateway = await startGateway({ config: gwConfig, logger: silentLogger, metrics: new GatewayMetrics({ defaultMetrics: false }) });
  const cacheDir = join(dir.dir, 'cache');
  // a collector that cannot start must not leave the gateway holding the test process open
  const fail = async (err: unknown): Promise<never> => {
    await gateway.close();
    dir.remove();
    throw err;
  };
  const { config } = await Promise.resolve().then(() => loadConfig({
    argv: [],
    env: {},
    scope: 'collector',
    defaults: {
      'collector.id': 'e2e',
      'collector.listen': '127.0.0.1:0',
      'collector.upstream': upstream,
      'collector.http.listen': '127.0.0.1:0',
      'collector.gateway.endpoints': [gateway.address],
      'collector.cache.path': cacheDir,
      'collector.retry.initial_delay': '100ms',
      'collector.retry.max_delay': '1s',
      'log.level': 'silent',
      ...overrides,
    },
  })).catch(fail);
  const collector = await startCollector({ config, logger: silentLogger, env: { DBAUDIT_CACHE_KEY: TEST_CACHE_KEY }, metrics: new CollectorMetrics({ defaultMetrics: false }) }).catch(fail);
  const [proxyHost, port] = collector.address.split(':');
  const events = async (filter: Partial<SearchFilter> = {}): Promise<AuditEvent[]> => {
    const found = await gateway.store.search({ limit: 10_000, ...filter });
    return found.reverse();
  };
  return {
    collector,
    gateway,
    proxyHost,
    proxyPort: Number(port),
    cacheDir,
    events,
    async waitForEvents(pred, filter = {}, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const evs = await events(filter);
        if (pred(evs)) return evs;
        if (Date.now() > deadline) return evs;
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async close() {
      await collector.shutdown(500);
      await gateway.close();
      dir.remove();
    },
  };
}

/** A compact, comparable view of an event for exact assertions. */
export function brief(ev: AuditEvent): Record<string, unknown> {
  const out: Record<string, unknown> = { kind: ev.kind };
  if (ev.user) out.user = ev.user;
  if (ev.database) out.database = ev.database;
  if (ev.statement) out.statement = ev.statement;
  if (ev.commandTag) out.tag = ev.commandTag;
  if (ev.kind === 'statement') out.rows = Number(ev.rows);
  if (ev.errorCode) out.error = ev.errorCode;
  if (ev.parameters.length > 0) out.params = [...ev.parameters];
  if (ev.reason) out.reason = ev.reason;
  return out;
}

/** The event as protobuf JSON, for searching it for strings that must not be there. */
export function eventJson(ev: AuditEvent): string {
  return toJsonString(AuditEventSchema, ev);
}
