import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { EventCache } from '../../cache/wal.js';
import { Keyring } from '../../cache/seal.js';
import { ManualClock } from '../../lib/clock.js';
import { loadConfig } from '../../lib/config.js';
import { silentLogger } from '../../lib/log.js';
import { CollectorMetrics, GatewayMetrics } from '../../lib/metrics.js';
import { startGateway, type GatewayHandle } from '../../gateway/server.js';
import { createStore, type Store } from '../../gateway/store.js';
import { EventKind, makeEvent, newSessionMeta } from '../../proxy/events.js';
import { EventPipeline } from '../../proxy/pipeline.js';
import { Shipper, type ShipperOptions } from '../../proxy/shipper.js';
import { freePort, makeTempDir } from '../harness/index.js';

const dir = makeTempDir('replay');
after(() => dir.remove());

const RATE = 100;

/** A gateway on `port`: the seqs it stored, in order, and the same grouped as stored (one array a batch). */
/** A gate the gateway's store waits on before each write (its acknowledgements wait with it); open() lets every write through. */
function storeGate(): { wait: () => Promise<void>; open: () => void } {
  let opened = false;
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => (release = r));
  return { wait: () => (opened ? Promise.resolve() : gate), open: () => ((opened = true), release()) };
}

async function gatewayOn(port: number, name: string, gate?: { wait: () => Promise<void> }): Promise<{ gw: GatewayHandle; arrivals: bigint[]; batches: bigint[][] }> {
  const arrivals: bigint[] = [];
  const batches: bigint[][] = [];
  const { config } = loadConfig({ argv: [], env: {}, scope: 'gateway', defaults: { 'gateway.listen': `127.0.0.1:${port}`, 'gateway.data_dir': join(dir.dir, name), 'log.level': 'silent' } });
  const onStored = (evs: { seq: bigint }[]): void => {
    const seqs = evs.map((e) => e.seq);
    arrivals.push(...seqs);
    batches.push(seqs);
  };
  let store: Store | undefined;
  if (gate) {
    const inner = await createStore('embedded', config.gateway.data_dir);
    store = new Proxy(inner, {
      get: (target, prop, receiver) => {
        const v = Reflect.get(target, prop, receiver) as unknown;
        if (prop === 'put') return async (...args: Parameters<Store['put']>) => (await gate.wait(), target.put(...args));
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  }
  const gw = await startGateway({ config, logger: silentLogger, metrics: new GatewayMetrics({ defaultMetrics: false }), onStored, store });
  return { gw, arrivals, batches };
}

/** A cache, a shipper toward `port` and the pipeline that feeds them, on a stopped clock; `offer(n)` makes n statement events. */
async function collectorOn(port: number, name: string, ship: Pick<ShipperOptions, 'syncRate' | 'syncOrder'> & Partial<ShipperOptions>) {
  const clock = new ManualClock();
  const metrics = new CollectorMetrics({ defaultMetrics: false });
  const cache = await EventCache.open({ path: join(dir.dir, `cache-${name}`), maxBytes: 64 << 20, maxAgeMs: 0, keyring: new Keyring(randomBytes(32)), commitIntervalMs: 0, logger: silentLogger, metrics, clock });
  const shipper = (over: Partial<ShipperOptions> = {}): Shipper =>
    new Shipper({
      cache,
      collectorId: name,
      endpoints: [`127.0.0.1:${port}`],
      retry: { maxAttempts: 3, initialDelayMs: 20, maxDelayMs: 50, multiplier: 2 },
      batchSize: 10,
      clock,
      logger: silentLogger,
      metrics,
      ...ship,
      ...over,
    });
  let current: Shipper | undefined;
  const pipeline = new EventPipeline({ cache, collectorId: name, clock, logger: silentLogger, metrics, onCacheFailure: 'forward', onDurable: () => current?.notify() });
  const meta = newSessionMeta('postgres', '127.0.0.1:1', '127.0.0.1:2', clock.now());
  return {
    clock,
    cache,
    /** Stops the current shipper, if any, and starts a new one with `over`. */
    async ship(over: Partial<ShipperOptions> = {}): Promise<Shipper> {
      await current?.stop();
      current = shipper(over);
      current.start();
      return current;
    },
    offer(n: number): void {
      for (let i = 0; i < n; i++) pipeline.offer(makeEvent(EventKind.Statement, meta, clock.now()));
    },
    async close(): Promise<void> {
      await current?.stop();
      await cache.close();
    },
  };
}

async function until(what: string, pred: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

for (const order of ['newest_first', 'oldest_first'] as const) {
  describe(`backlog replay after an outage: ${order}`, () => {
    test(`replays at sync.rate_limit in ${order} order while live events go first`, async () => {
      const port = await freePort();
      const { clock, cache, ship, offer, close } = await collectorOn(port, `replay-${order}`, { syncRate: RATE, syncOrder: order });
      // The gateway is down: 300 events pile up in the cache.
      await ship();
      offer(300);
      await cache.flush();
      assert.equal(cache.stats().events, 300);

      const { gw, arrivals } = await gatewayOn(port, `gw-${order}`);
      try {
        // The token bucket starts full: one second's worth (RATE) goes at once, then nothing until time passes.
        await until('the first second of backlog', () => arrivals.length === RATE);
        await new Promise((r) => setTimeout(r, 300));
        assert.equal(arrivals.length, RATE, 'no more than rate_limit before the clock moves');
        const first = arrivals.slice();
        assert.deepEqual(first, order === 'newest_first' ? range(300, 201) : range(1, 100));

        // Live events are not held behind the backlog.
        offer(5);
        await until('live events', () => arrivals.length === RATE + 5);
        assert.deepEqual(arrivals.slice(RATE), range(301, 305));

        // Each simulated second releases exactly RATE more of the backlog.
        clock.advance(1000);
        await until('the second second of backlog', () => arrivals.length === 2 * RATE + 5);
        clock.advance(1000);
        await until('the rest of the backlog', () => arrivals.length === 3 * RATE + 5);
        const backlog = [...first, ...arrivals.slice(RATE + 5)];
        assert.deepEqual(backlog, order === 'newest_first' ? range(300, 1) : range(1, 300));
        await until('the cache emptied', () => cache.stats().events === 0);
      } finally {
        await close();
        await gw.close();
      }
    });
  });
}

function range(from: number, to: number): bigint[] {
  const out: bigint[] = [];
  if (from <= to) for (let i = from; i <= to; i++) out.push(BigInt(i));
  else for (let i = from; i >= to; i--) out.push(BigInt(i));
  return out;
}

describe('collector.gateway.batch_delay', () => {
  test('a partial batch waits for more events up to batch_delay, a full batch goes at once', async () => {
    const port = await freePort();
    const c = await collectorOn(port, 'linger', { syncRate: 1_000_000, syncOrder: 'oldest_first' });
    const { gw, batches } = await gatewayOn(port, 'gw-linger');
    const ship = async (batchDelayMs: number): Promise<void> => {
      const s = await c.ship({ batchDelayMs });
      await until('connected', () => s.connected);
    };
    const offer = async (n: number): Promise<void> => {
      c.offer(n);
      await c.cache.flush();
    };
    try {
      // three events, then two more 100 ms later: nothing leaves before the delay, then all five in one batch
      await ship(400);
      const t0 = performance.now();
      await offer(3);
      await new Promise((r) => setTimeout(r, 100));
      await offer(2);
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(batches, [], 'a partial batch waits');
      await until('the lingering batch', () => batches.length === 1);
      assert.ok(performance.now() - t0 >= 400, 'not before batch_delay');
      assert.deepEqual(batches[0], range(1, 5));
      await until('the cache emptied', () => c.cache.stats().events === 0);

      // a full batch goes at once; two events behind it wait for its acknowledgement and then
      // for the rest of batch_delay from when they were seen, not only for the acknowledgement
      await offer(10);
      const t1 = performance.now();
      await offer(2);
      await until('the full batch', () => batches.length === 2);
      assert.deepEqual(batches[1], range(6, 15));
      await new Promise((r) => setTimeout(r, 150));
      assert.equal(batches.length, 2, 'the two events linger after the acknowledgement');
      await until('the lingering pair', () => batches.length === 3);
      assert.ok(performance.now() - t1 >= 390, `not before batch_delay (${(performance.now() - t1).toFixed(0)} ms)`);
      assert.deepEqual(batches[2], range(16, 17));
      await until('the cache emptied', () => c.cache.stats().events === 0);

      // with a delay longer than the test, a partial batch stays; filling it to batch_size sends it
      await ship(600_000);
      await offer(4);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(batches.length, 3, 'four events wait');
      await offer(6);
      await until('the full batch', () => batches.length === 4);
      assert.deepEqual(batches[3], range(18, 27));
      await until('the cache emptied', () => c.cache.stats().events === 0);
    } finally {
      await c.close();
      await gw.close();
    }
  });

  test('events seen while every batch slot is out count their batch_delay from then, not from the acknowledgement', async () => {
    const port = await freePort();
    const c = await collectorOn(port, 'linger-window', { syncRate: 1_000_000, syncOrder: 'oldest_first', window: 1 });
    const gate = storeGate();
    const { gw, batches } = await gatewayOn(port, 'gw-linger-window', gate);
    try {
      const s = await c.ship({ batchDelayMs: 3_000 });
      await until('connected', () => s.connected);
      await c.cache.flush();
      c.offer(10); // a full batch: out at once, its acknowledgement held at the gateway
      await c.cache.flush();
      c.offer(2); // seen while the one batch slot is taken
      await c.cache.flush();
      await new Promise((r) => setTimeout(r, 3_200)); // their batch_delay runs out while the slot is still taken
      assert.deepEqual(batches, [], 'nothing stored while the gate is shut');
      const opened = performance.now();
      gate.open();
      await until('both batches', () => batches.length === 2);
      assert.deepEqual(batches, [range(1, 10), range(11, 12)]);
      // counted from the acknowledgement, the pair would wait another 3 s
      assert.ok(performance.now() - opened < 2_000, `the pair left ${(performance.now() - opened).toFixed(0)} ms after the acknowledgement`);
    } finally {
      gate.open();
      await c.close();
      await gw.close();
    }
  });
});
