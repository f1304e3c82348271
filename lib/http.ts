import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { parseAddress } from './config.js';
import { AuditError, ErrorCode } from './errors.js';
import { listenError } from './listen.js';

/** One named readiness check: healthy or not, with a short reason. */
export interface CheckResult {
  status: 'healthy' | 'unhealthy' | 'degraded';
  [field: string]: unknown;
}

export interface HealthSource {
  /** Checks for /health/ready; any unhealthy one makes it 503. */
  ready(): Promise<Record<string, CheckResult>>;
  /** The /health/detailed body. */
  detailed(): Promise<Record<string, unknown>>;
  /** Called before /metrics is rendered, to bring gauges up to date. */
  refreshMetrics?(): Promise<void> | void;
  registry: Registry;
  /** False once shutdown began: /health/ready answers 503. */
  accepting(): boolean;
}

/**
 * The health and metrics HTTP server shared by the proxy and the gateway:
 * /health/live, /health/ready, /health/detailed, /metrics.
 */
export async function startHttpServer(address: string, source: HealthSource, key = 'http.listen'): Promise<{ address: string; close(): Promise<void> }> {
  const addr = parseAddress(address);
  if (!addr) throw new AuditError(ErrorCode.Config, `config ${key}: invalid value ${JSON.stringify(address)}; expected host:port`);
  const server = http.createServer((req, res) => {
    void handle(req, res, source).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`internal error: ${err instanceof Error ? err.message : String(err)}\n`);
    });
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(listenError(err, key, address)));
    server.listen(addr.port, addr.host, () => resolve());
  });
  const a = server.address() as AddressInfo;
  return {
    address: `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function json(res: http.ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function handle(req: http.IncomingMessage, res: http.ServerResponse, source: HealthSource): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD' });
    res.end();
    return;
  }
  switch (path) {
    case '/health/live':
      json(res, 200, { status: 'alive' });
      return;
    case '/health/ready': {
      const checks = await source.ready();
      const failing = Object.entries(checks).filter(([, c]) => c.status === 'unhealthy').map(([k]) => k);
      if (!source.accepting()) failing.unshift('shutting_down');
      json(res, failing.length === 0 ? 200 : 503, { status: failing.length === 0 ? 'ready' : 'not_ready', failing, checks });
      return;
    }
    case '/health/detailed':
      json(res, 200, await source.detailed());
      return;
    case '/metrics': {
      await source.refreshMetrics?.();
      const body = await source.registry.metrics();
      res.writeHead(200, { 'content-type': source.registry.contentType });
      res.end(body);
      return;
    }
    default:
      json(res, 404, { error: 'not found', endpoints: ['/health/live', '/health/ready', '/health/detailed', '/metrics'] });
  }
}
