import assert from 'node:assert/strict';
import { test } from 'node:test';
import client from 'prom-client';
import { startHttpServer, type CheckResult } from './http.js';

async function serve(checks: Record<string, CheckResult>, accepting = true): Promise<{ url: string; close(): Promise<void>; refreshed: () => number }> {
  const registry = new client.Registry();
  const g = new client.Gauge({ name: 'dbaudit_test_gauge', help: 'test', registers: [registry] });
  let refreshed = 0;
  const srv = await startHttpServer('127.0.0.1:0', {
    registry,
    accepting: () => accepting,
    ready: async () => checks,
    detailed: async () => ({ status: 'healthy', checks }),
    refreshMetrics: () => {
      refreshed++;
      g.set(refreshed);
    },
  });
  return { url: `http://${srv.address}`, close: () => srv.close(), refreshed: () => refreshed };
}

test('/health/ready: 200 when no check is unhealthy (degraded does not fail), 503 naming the unhealthy ones', async () => {
  const ok = await serve({ a: { status: 'healthy' }, b: { status: 'degraded' } });
  const bad = await serve({ database: { status: 'unhealthy', error: 'down' }, api_connection: { status: 'healthy' }, cache: { status: 'unhealthy' } });
  try {
    const r1 = await fetch(`${ok.url}/health/ready`);
    assert.equal(r1.status, 200);
    assert.deepEqual(((await r1.json()) as { failing: string[] }).failing, []);
    const r2 = await fetch(`${bad.url}/health/ready`);
    assert.equal(r2.status, 503);
    const body = (await r2.json()) as { status: string; failing: string[]; checks: Record<string, CheckResult> };
    assert.equal(body.status, 'not_ready');
    assert.deepEqual(body.failing, ['database', 'cache']);
    assert.equal(body.checks.database.error, 'down');
  } finally {
    await ok.close();
    await bad.close();
  }
});

test('/health/ready: 503 shutting_down once shutdown began; /health/live stays 200', async () => {
  const s = await serve({ a: { status: 'healthy' } }, false);
  try {
    const r = await fetch(`${s.url}/health/ready`);
    assert.equal(r.status, 503);
    assert.deepEqual(((await r.json()) as { failing: string[] }).failing, ['shutting_down']);
    assert.equal((await fetch(`${s.url}/health/live`)).status, 200);
  } finally {
    await s.close();
  }
});

test('/metrics refreshes gauges before rendering, in the Prometheus text format; other paths 404, other methods 405', async () => {
  const s = await serve({});
  try {
    const r = await fetch(`${s.url}/metrics`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    assert.match(await r.text(), /^dbaudit_test_gauge 1$/m);
    assert.equal(s.refreshed(), 1);
    assert.equal((await fetch(`${s.url}/nope`)).status, 404);
    assert.equal((await fetch(`${s.url}/metrics`, { method: 'POST' })).status, 405);
    assert.equal((await fetch(`${s.url}/health/detailed?x=1`)).status, 200);
  } finally {
    await s.close();
  }
});

test('startHttpServer: a bad address is a config error naming it', async () => {
  await assert.rejects(startHttpServer('nonsense', { registry: new client.Registry(), accepting: () => true, ready: async () => ({}), detailed: async () => ({}) }, 'collector.http.listen'), /^AuditError: config collector.http.listen: invalid value "nonsense"; expected host:port$/);
});

test('startHttpServer: a port already in use is one config error naming the key and the address (EADDRINUSE)', async () => {
  const source = { registry: new client.Registry(), accepting: () => true, ready: async () => ({}), detailed: async () => ({}) };
  const first = await startHttpServer('127.0.0.1:0', source);
  try {
    await assert.rejects(startHttpServer(first.address, source, 'gateway.http.listen'), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'DBA_CONFIG');
      assert.equal(err.message, `config gateway.http.listen: ${first.address} is already in use (another process listens there)`);
      return true;
    });
  } finally {
    await first.close();
  }
});
