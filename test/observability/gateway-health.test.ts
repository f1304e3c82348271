import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfig, type Config } from '../../lib/config.js';
import { silentLogger } from '../../lib/log.js';
import { GatewayMetrics } from '../../lib/metrics.js';
import { gatewayChecks, runGateway, type ReplicationPeerStatus } from '../../gateway/run.js';
import { freePort, makeTempDir } from '../harness/index.js';
import { getJson, scrape } from './obs-stack.js';

function gatewayConfig(dir: string, extra: Record<string, unknown> = {}): Config {
  return loadConfig({
    argv: [],
    env: {},
    scope: 'gateway',
    defaults: { 'gateway.listen': '127.0.0.1:0', 'gateway.data_dir': join(dir, 'gw'), 'gateway.http.listen': '127.0.0.1:0', ...extra },
  }).config;
}

test('gateway checks: store answers → healthy; store fails → unhealthy; replication peers degraded while away, healthy when connected', async () => {
  const tmp = makeTempDir('obs-gwh');
  try {
    const plain = gatewayConfig(tmp.dir);
    assert.deepEqual(await gatewayChecks(async () => 7, plain, undefined)(), { store: { status: 'healthy', events: 7 } });
    assert.deepEqual(await gatewayChecks(() => Promise.reject(new Error('store is closed')), plain, undefined)(), { store: { status: 'unhealthy', error: 'store is closed' } });

    const dr = gatewayConfig(tmp.dir, { 'gateway.replicate_to': ['dr.example:9443'] });
    const notRunning = await gatewayChecks(async () => 0, dr, undefined)();
    assert.deepEqual(notRunning.replication, { status: 'degraded', peers: [{ endpoint: 'dr.example:9443', connected: false, pending: 0, error: 'replication is not running in this gateway' }] });
    let peers: ReplicationPeerStatus[] = [{ endpoint: 'dr.example:9443', connected: false, pending: 12, lastError: 'UNAVAILABLE' }];
    const status = { peers: () => peers };
    assert.equal((await gatewayChecks(async () => 0, dr, status)()).replication.status, 'degraded');
    peers = [{ endpoint: 'dr.example:9443', connected: true, pending: 0 }];
    assert.deepEqual((await gatewayChecks(async () => 0, dr, status)()).replication, { status: 'healthy', peers: [{ endpoint: 'dr.example:9443', connected: true, pending: 0 }] });
  } finally {
    tmp.remove();
  }
});

test('runGateway with gateway.replicate_to: /health/ready stays 200 with the DR peer away, degraded in /health/detailed, from the replication startGateway runs', async () => {
  const tmp = makeTempDir('obs-gwh');
  const keyFile = join(tmp.dir, 'replication.key');
  writeFileSync(keyFile, randomBytes(32).toString('base64'));
  const peer = `127.0.0.1:${await freePort()}`;
  const gw = await runGateway({ config: gatewayConfig(tmp.dir, { 'gateway.replicate_to': [peer], 'gateway.replication.key_file': keyFile }), logger: silentLogger, metrics: new GatewayMetrics() });
  try {
    const ready = await getJson(gw.httpAddress, '/health/ready');
    assert.equal(ready.status, 200);
    const checks = ready.body.checks as Record<string, { status: string; peers?: Array<Record<string, unknown>> }>;
    assert.deepEqual(Object.keys(checks), ['store', 'replication']);
    assert.equal(checks.replication.status, 'degraded');
    assert.equal(checks.replication.peers?.[0].endpoint, peer);
    assert.equal(checks.replication.peers?.[0].connected, false);
    const detailed = await getJson(gw.httpAddress, '/health/detailed');
    assert.equal(detailed.body.status, 'degraded');
    assert.deepEqual(Object.keys(detailed.body).sort(), ['checks', 'status', 'uptime_seconds', 'version']);
    assert.equal((detailed.body.checks as Record<string, Record<string, unknown>>).store.kind, 'embedded');
    const s = await scrape(gw.httpAddress);
    assert.equal(s.value('dbaudit_replication_pending'), 0);
    assert.ok(s.names().has('process_cpu_user_seconds_total'));
  } finally {
    await gw.close();
    tmp.remove();
  }
});
