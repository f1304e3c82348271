import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { IngestClient } from '../lib/grpc.js';
import { freePort } from '../test/harness/index.js';
import { RecordingStore, replicationFlags, waitFor, writeKeyFile } from './replicate-testing.js';
import { startGateway } from './server.js';
import { T0, TestStream, batchOf, gatewayConfig, makeTestEvent, tempDir } from './testing.js';

/** A gateway in its own process (the `dbaudit gateway` command), so it can be killed with SIGKILL. */
async function spawnGateway(port: number, dataDir: string, extra: string[]): Promise<ChildProcess> {
  const repo = new URL('..', import.meta.url).pathname;
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'proxy/main.ts', 'gateway', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir, '--gateway.http.listen', '127.0.0.1:0', '--log-level', 'warn', ...extra],
    { cwd: repo, stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const client = new IngestClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  try {
    await new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`gateway exited with ${code}`)));
      client.waitForReady(Date.now() + 30_000, (err) => (err ? reject(err) : resolve()));
    });
  } finally {
    client.close();
  }
  return child;
}

function kill9(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

test('A killed with SIGKILL mid-replication: after its restart the replay resumes from its cache; B holds every event once', async () => {
  const tmp = tempDir();
  const [portA, portB] = [await freePort(), await freePort()];
  const storeB = new RecordingStore(join(tmp.dir, 'b-store'));
  storeB.delayMs = 40; // a slow peer, so A is caught mid-way
  const b = await startGateway({ config: gatewayConfig(join(tmp.dir, 'b'), ['--gateway.listen', `127.0.0.1:${portB}`]), store: storeB });
  const flags = [...replicationFlags('gw-a', [`127.0.0.1:${portB}`], writeKeyFile(tmp.dir)), '--gateway.replication.batch_size', '50'];
  let a = await spawnGateway(portA, join(tmp.dir, 'a'), flags);
  try {
    const evs = Array.from({ length: 2000 }, (_, i) => makeTestEvent({ timeMs: T0 + i, seq: BigInt(i + 1) }));
    const s = new TestStream(`127.0.0.1:${portA}`);
    for (let i = 0; i < 4; i++) s.send(batchOf(i + 1, evs.slice(i * 500, i * 500 + 500)));
    await s.waitAcks(4);
    assert.equal(s.acks.reduce((n, ack) => n + ack.stored, 0), 2000, 'A stored (and queued) every event before acknowledging');
    await s.finish();

    await waitFor('B to be part-way', async () => (await b.store.count()) > 0);
    const before = await b.store.count();
    await kill9(a);
    assert.ok(before < 2000, `A was killed mid-replication (B had ${before})`);

    a = await spawnGateway(portA, join(tmp.dir, 'a'), flags);
    await waitFor('B to hold every event', async () => (await b.store.count()) === 2000, 60_000);
    const held = new Set((await b.store.search({ limit: 10_000 })).map((e) => e.eventId));
    assert.deepEqual([...held].sort(), evs.map((e) => e.eventId).sort());
    // Only batches in flight at the kill (a window of 4 × 50) may arrive twice; B stores them once.
    const repeats = storeB.received.length - 2000;
    assert.ok(repeats >= 0 && repeats <= 200, `${repeats} events reached B again`);
  } finally {
    await kill9(a);
    await b.close();
    tmp.remove();
  }
});
