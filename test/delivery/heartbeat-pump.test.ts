// An event that becomes durable while a heartbeat is in flight: is it shipped?
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import { EventCache } from '../../cache/wal.js';
import { Keyring } from '../../cache/keyring.js';
import { systemClock } from '../../lib/clock.js';
import { silentLogger } from '../../lib/log.js';
import { CollectorMetrics } from '../../lib/metrics.js';
import { ingestDefinition } from '../../lib/grpc.js';
import { BatchAckSchema } from '../../proto/gen/audit/v1/ingest_pb.js';
import { Shipper } from '../../proxy/shipper.js';
import { freePort } from '../harness/index.js';

test('an event made durable while a heartbeat is out is shipped (heartbeat ack pumps)', async () => {
  const port = await freePort();
  const got: { n: number; at: number }[] = [];
  const server = new grpc.Server();
  const method = Object.keys(ingestDefinition)[0];
  server.addService(ingestDefinition, {
    [method]: (call: grpc.ServerDuplexStream<any, any>) => {
      call.on('data', (b: any) => {
        got.push({ n: b.events.length, at: Date.now() });
        // acks arrive 300 ms later (a slow or distant gateway)
        setTimeout(() => call.write(create(BatchAckSchema, { batchId: b.batchId, stored: b.events.length })), 300);
      });
      call.on('end', () => call.end());
    },
  } as any);
  await new Promise<void>((res, rej) => server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? rej(e) : res())));
  const metrics = new CollectorMetrics({ defaultMetrics: false });
  const cache = await EventCache.open({ path: '/nonexistent', memory: true, maxBytes: 1 << 20, maxAgeMs: 0, keyring: new Keyring(randomBytes(32)), commitIntervalMs: 0, logger: silentLogger, metrics, clock: systemClock });
  const shipper = new Shipper({ cache, collectorId: 'hb', endpoints: [`127.0.0.1:${port}`], retry: { maxAttempts: 3, initialDelayMs: 20, maxDelayMs: 50, multiplier: 2 },
    batchSize: 512, batchDelayMs: 5, syncRate: 1e6, syncOrder: 'oldest_first', clock: systemClock, logger: silentLogger, metrics, heartbeatMs: 200, ackTimeoutMs: 1000 });
  shipper.start();
  try {
    // wait for the first heartbeat to go out, then make one event durable while it is in flight
    const deadline = Date.now() + 5000;
    while (!got.some((g) => g.n === 0)) { assert.ok(Date.now() < deadline, 'no heartbeat'); await new Promise((r) => setTimeout(r, 5)); }
    const seq = cache.reserveSeq();
    cache.append(seq, Buffer.from('x'), Date.now());
    await cache.flush();
    shipper.notify();
    // give it 2 s (10 heartbeat intervals, 6 ack round trips)
    await new Promise((r) => setTimeout(r, 4000));
    assert.ok(got.some((g) => g.n === 1), 'the event was sent');
  } finally {
    await shipper.stop();
    await cache.close();
    server.forceShutdown();
  }
});
