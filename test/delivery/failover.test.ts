import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { EventCache } from '../../cache/wal.js';
import { Keyring } from '../../cache/seal.js';
import { systemClock } from '../../lib/clock.js';
import { loadConfig } from '../../lib/config.js';
import { silentLogger } from '../../lib/log.js';
import { CollectorMetrics, GatewayMetrics } from '../../lib/metrics.js';
import { startGateway, type GatewayHandle } from '../../gateway/server.js';
import type { CallGuard } from '../../gateway/auth.js';
import { EventKind, makeEvent, newSessionMeta } from '../../proxy/events.js';
import { EventPipeline } from '../../proxy/pipeline.js';
import { Shipper } from '../../proxy/shipper.js';
import { freePort, makeTempDir } from '../harness/index.js';

const dir = makeTempDir('delivery');
after(() => dir.remove());

async function gateway(name: string, port: number, guard?: CallGuard): Promise<GatewayHandle> {
  const { config } = loadConfig({
    argv: [],
    env: {},
    scope: 'gateway',
    defaults: { 'gateway.id': name, 'gateway.listen': `127.0.0.1:${port}`, 'gateway.data_dir': join(dir.dir, name), 'log.level': 'silent' },
  });
  return startGateway({ config, logger: silentLogger, metrics: new GatewayMetrics({ defaultMetrics: false }), guard });
}

async function collector(name: string, endpoints: string[], opts: { maxAttempts?: number; failbackMs?: number } = {}) {
  const metrics = new CollectorMetrics({ defaultMetrics: false });
  const cache = await EventCache.open({
    path: join(dir.dir, `${name}-cache`),
    maxBytes: 64 << 20,
    maxAgeMs: 3_600_000,
    keyring: new Keyring(randomBytes(32)),
    commitIntervalMs: 0,
    logger: silentLogger,
    metrics,
  });
  const shipper = new Shipper({
    cache,
    collectorId: name,
    endpoints,
    retry: { maxAttempts: opts.maxAttempts ?? 2, initialDelayMs: 50, maxDelayMs: 200, multiplier: 2 },
    batchSize: 50,
    syncRate: 100_000,
    syncOrder: 'oldest_first',
    clock: systemClock,
    logger: silentLogger,
    metrics,
    failbackIntervalMs: opts.failbackMs ?? 200,
  });
  const pipeline = new EventPipeline({ cache, collectorId: name, clock: systemClock, logger: silentLogger, metrics, onCacheFailure: 'forward', onDurable: () => shipper.notify() });
  shipper.start();
  const meta = newSessionMeta('postgres', '127.0.0.1:1', '127.0.0.1:2', Date.now());
  meta.user = 'alice';
  meta.database = 'app';
  const offer = (n: number, tag: string): string[] => {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const ev = makeEvent(EventKind.Statement, meta, Date.now());
      ev.statement = `${tag} ${i}`;
      pipeline.offer(ev);
      ids.push(ev.eventId);
    }
    return ids;
  };
  return {
    cache,
    shipper,
    metrics,
    offer,
    async close() {
      await shipper.stop();
      await cache.close();
    },
  };
}

async function idsIn(gw: GatewayHandle): Promise<string[]> {
  return (await gw.store.search({ limit: 10_000 })).map((e) => e.eventId);
}

async function until(pred: () => Promise<boolean> | boolean, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('delivery: failover, failback, backpressure', () => {
  test('primary down → secondary takes over after max_attempts; primary back → fail back; nothing lost or doubled', async () => {
    const portA = await freePort();
    const portB = await freePort();
    let a = await gateway('gw-a', portA);
    const b = await gateway('gw-b', portB);
    const c = await collector('c1', [`127.0.0.1:${portA}`, `127.0.0.1:${portB}`]);
    try {
      const first = c.offer(100, 'first');
      await until(async () => (await idsIn(a)).length === 100);
      assert.equal(c.shipper.endpoint, `127.0.0.1:${portA}`);

      await a.close();
      const second = c.offer(100, 'second');
      await until(async () => (await idsIn(b)).length === 100);
      assert.equal(c.shipper.endpoint, `127.0.0.1:${portB}`);
      assert.deepEqual(new Set(await idsIn(b)), new Set(second));

      a = await gateway('gw-a', portA);
      await until(() => c.shipper.endpoint === `127.0.0.1:${portA}`);
      const third = c.offer(100, 'third');
      await until(async () => (await idsIn(a)).length === 200);
      const inA = await idsIn(a);
      assert.deepEqual(new Set(inA), new Set([...first, ...third]));
      assert.equal(new Set(inA).size, inA.length);
      await until(() => c.cache.stats().events === 0);
    } finally {
      await c.close();
      await a.close();
      await b.close();
    }
  });

  test('RESOURCE_EXHAUSTED slows the sender down without failing over, and everything arrives once', async () => {
    const portA = await freePort();
    const portB = await freePort();
    let refusals = 0;
    const busy: CallGuard = () => {
      if (refusals < 3) {
        refusals++;
        return { ok: false, status: { code: grpc.status.RESOURCE_EXHAUSTED, details: 'busy', metadata: new grpc.Metadata() } };
      }
      return { ok: true };
    };
    const a = await gateway('busy-a', portA, busy);
    const b = await gateway('busy-b', portB);
    const c = await collector('c2', [`127.0.0.1:${portA}`, `127.0.0.1:${portB}`], { maxAttempts: 1 });
    try {
      const ids = c.offer(120, 'busy');
      await until(async () => (await idsIn(a)).length === 120);
      assert.equal(refusals, 3);
      assert.deepEqual((await idsIn(b)).length, 0, 'backpressure must not fail over');
      const req = await c.metrics.apiRequests.get();
      assert.equal(req.values.find((v) => v.labels.status === '429')?.value, 3);
      assert.deepEqual(new Set(await idsIn(a)), new Set(ids));
    } finally {
      await c.close();
      await a.close();
      await b.close();
    }
  });
});
