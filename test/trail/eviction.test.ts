import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, test } from 'node:test';
import pg from 'pg';
import { loadConfig } from '../../lib/config.js';
import { silentLogger } from '../../lib/log.js';
import { CollectorMetrics, GatewayMetrics } from '../../lib/metrics.js';
import { startGateway } from '../../gateway/server.js';
import { runVerifyCommand } from '../../gateway/verify-command.js';
import { startCollector } from '../../proxy/collector.js';
import { freePort, makeTempDir, sharedPostgres, skipUnless } from '../harness/index.js';

/**
 * The outage case of tamper evidence: the gateway is down while a collector
 * with a small cache keeps auditing, so the cache evicts its oldest events
 * (and, as it keeps overflowing, some of its own loss events). When the
 * gateway comes up, `dbaudit verify` must find the evicted seqs missing,
 * every one of them named by a loss event that was delivered, and nothing
 * else wrong.
 */

interface EpochJson {
  ok: boolean;
  held: number;
  missing: unknown[];
  explained: { from: string; to: string; by: string }[];
  loss_events: { seq: string; from: string; to: string; reason: string }[];
  chain_breaks: unknown[];
  highest_reported: string;
}

describe('tamper evidence across an outage that evicts', { skip: skipUnless('postgres') }, () => {
  const dir = makeTempDir('dbaudit-evict-');
  after(() => dir.remove());

  test('verify reports exactly the evicted ranges, each covered by a loss event, and nothing else', async () => {
    const server = await sharedPostgres({});
    const db = await server.createDatabase('evict');
    const keys = join(dir.dir, 'keys');
    mkdirSync(keys);
    const key = randomBytes(32).toString('base64');
    writeFileSync(join(keys, 'collector.key'), key);
    writeFileSync(join(dir.dir, 'seal.key'), randomBytes(32).toString('base64'));
    const port = await freePort();
    const metrics = new CollectorMetrics({ defaultMetrics: false });
    const { config } = loadConfig({
      argv: [],
      env: {},
      scope: 'collector',
      defaults: {
        'collector.id': 'evicting',
        'collector.listen': '127.0.0.1:0',
        'collector.upstream': `${server.host}:${server.port}`,
        'collector.http.listen': '127.0.0.1:0',
        'collector.gateway.endpoints': [`127.0.0.1:${port}`],
        'collector.cache.path': join(dir.dir, 'cache'),
        'collector.cache.max_size': '48KB',
        'collector.trail.key_file': join(keys, 'collector.key'),
        'collector.retry.initial_delay': '100ms',
        'collector.retry.max_delay': '300ms',
        'audit.redact': 'none',
        'log.level': 'silent',
      },
    });
    const collector = await startCollector({ config, logger: silentLogger, env: { DBAUDIT_CACHE_KEY: randomBytes(32).toString('base64') }, metrics });
    const [host, p] = collector.address.split(':');
    // ~1 KB per statement event: the 48 KB cache holds a few dozen of the 300
    const c = new pg.Client({ host, port: Number(p), user: 'postgres', database: db });
    await c.connect();
    for (let i = 0; i < 300; i++) await c.query(`SELECT '${String(i).padStart(4, '0')}${'x'.repeat(1000)}' AS pad`);
    await c.end();
    const dropped = (await metrics.cacheDropped.get()).values.reduce((n, v) => n + v.value, 0);
    assert.ok(dropped > 100, `the cache evicted only ${dropped} events`);

    const { config: gwConfig } = loadConfig({
      argv: [],
      env: {},
      scope: 'gateway',
      defaults: {
        'gateway.id': 'gw-evict',
        'gateway.listen': `127.0.0.1:${port}`,
        'gateway.data_dir': join(dir.dir, 'gateway'),
        'gateway.trail.keys_dir': keys,
        'gateway.trail.seal_key_file': join(dir.dir, 'seal.key'),
        'gateway.trail.check_interval': '0s',
        'log.level': 'silent',
      },
    });
    const gateway = await startGateway({ config: gwConfig, logger: silentLogger, metrics: new GatewayMetrics({ defaultMetrics: false }) });
    try {
      assert.equal(await collector.shipper.waitIdle(60_000), true, 'the cache did not drain');
      await gateway.trail.flushHeads();
      let text = '';
      const out = new Writable({ write: (chunk, _enc, cb) => ((text += String(chunk)), cb()) });
      const auditor = join(dir.dir, 'auditor');
      mkdirSync(auditor);
      writeFileSync(join(auditor, 'collector.key'), key);
      writeFileSync(join(auditor, 'gateway.seal'), readFileSync(join(dir.dir, 'seal.key')));
      const code = await runVerifyCommand(['--gateway', gateway.address, '--keys-dir', auditor, '--json'], {}, out, out);
      const [e] = text.trim().split('\n').map((l) => JSON.parse(l) as EpochJson);
      assert.equal(code, 0, text);
      assert.deepEqual({ ok: e.ok, missing: e.missing, breaks: e.chain_breaks }, { ok: true, missing: [], breaks: [] });
      // What is missing is exactly what the cache dropped, and loss events name all of it.
      const head = BigInt(e.highest_reported);
      const held = e.held;
      const explained = e.explained.reduce((n, r) => n + Number(BigInt(r.to) - BigInt(r.from) + 1n), 0);
      assert.equal(held + explained, Number(head), `held ${held} + explained ${explained} != head ${head}`);
      // Read again now: the loss event appended after the last eviction may itself have evicted one more record.
      const droppedInAll = (await metrics.cacheDropped.get()).values.reduce((n, v) => n + v.value, 0);
      assert.equal(explained, droppedInAll);
      assert.ok(e.explained.every((r) => r.by === 'loss event'));
      assert.ok(e.loss_events.length > 0 && e.loss_events.every((l) => l.reason === 'size'));
      // The gateway's own walk agrees: no gap without a loss event.
      const [report] = await gateway.trail.pass();
      assert.deepEqual({ missing: report.missing, breaks: report.breaks }, { missing: [], breaks: [] });
      assert.equal((await gateway.metrics.trailGaps.get()).values[0].value, 0);
    } finally {
      await collector.shutdown(500);
      await gateway.close();
    }
  });
});
