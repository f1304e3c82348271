import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { create, toBinary } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { AuditEventSchema, type AuditEvent } from '../proto/gen/audit/v1/event_pb.js';
import { EventBatchSchema, type BatchAck, type EventBatch } from '../proto/gen/audit/v1/ingest_pb.js';
import { loadConfig, type Config } from '../lib/config.js';
import { IngestClient } from '../lib/grpc.js';
import { uuidv7 } from '../lib/uuid.js';

/**
 * Helpers for the gateway's tests: temp dirs, a gateway config, generated
 * events and a real IngestClient stream.
 * @internal
 */

export function tempDir(prefix = 'dbaudit-gw-'): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export function gatewayConfig(dataDir: string, extra: string[] = []): Config {
  return loadConfig({ argv: ['--listen', '127.0.0.1:0', '--data-dir', dataDir, ...extra], env: {}, scope: 'gateway' }).config;
}

export const T0 = Date.UTC(2026, 2, 1, 12, 0, 0);

/** A valid event at `timeMs` (default T0) with the given fields. */
export function makeTestEvent(fields: Partial<Omit<AuditEvent, '$typeName'>> & { timeMs?: number } = {}): AuditEvent {
  const { timeMs = T0, ...rest } = fields;
  return create(AuditEventSchema, {
    eventId: uuidv7(timeMs),
    kind: 'statement',
    time: timestampFromMs(timeMs),
    sessionId: 'sess-1',
    protocol: 'postgres',
    clientAddress: '127.0.0.1:40000',
    serverAddress: '127.0.0.1:5432',
    user: 'alice',
    database: 'shop',
    collectorId: 'col-a',
    epoch: 'epoch-1',
    seq: 1n,
    ...rest,
  });
}

/** An event whose UUIDv7 carries exactly its own time (lib/uuid.ts would not go back in time within a process). */
export function eventAt(ms: number, fields: Partial<AuditEvent> = {}): AuditEvent {
  const t = ms.toString(16).padStart(12, '0');
  const r = Array.from({ length: 19 }, () => Math.floor(Math.random() * 16).toString(16)).join('');
  const eventId = `${t.slice(0, 8)}-${t.slice(8)}-7${r.slice(0, 3)}-a${r.slice(3, 6)}-${r.slice(6, 18)}`;
  return makeTestEvent({ timeMs: ms, eventId, ...fields });
}

export function encode(ev: AuditEvent): Uint8Array {
  return toBinary(AuditEventSchema, ev);
}

export function batchOf(batchId: number, events: Array<AuditEvent | Uint8Array>, collectorId = 'col-a'): EventBatch {
  return create(EventBatchSchema, {
    batchId: BigInt(batchId),
    collectorId,
    epoch: 'epoch-1',
    events: events.map((e) => (e instanceof Uint8Array ? e : encode(e))),
  });
}

/** One ingest stream on a real client: send batches, then collect every ack until the server ends it. */
export class TestStream {
  readonly client: grpc.Client;
  readonly call: grpc.ClientDuplexStream<EventBatch, BatchAck>;
  readonly acks: BatchAck[] = [];
  readonly done: Promise<grpc.StatusObject>;
  #waiters: Array<{ n: number; resolve(): void }> = [];

  constructor(address: string) {
    this.client = new IngestClient(address, grpc.credentials.createInsecure());
    const stream = (this.client as unknown as { stream(): grpc.ClientDuplexStream<EventBatch, BatchAck> }).stream.bind(this.client);
    this.call = stream();
    this.call.on('data', (ack: BatchAck) => {
      this.acks.push(ack);
      this.#waiters = this.#waiters.filter((w) => (this.acks.length >= w.n ? (w.resolve(), false) : true));
    });
    this.done = new Promise((resolve) => {
      this.call.on('status', (s: grpc.StatusObject) => resolve(s));
      this.call.on('error', () => undefined);
    });
  }

  send(batch: EventBatch): void {
    this.call.write(batch);
  }

  /** Resolves when `n` acks have arrived. */
  waitAcks(n: number): Promise<void> {
    if (this.acks.length >= n) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ n, resolve }));
  }

  /** Half-closes and waits for the final status. */
  async finish(): Promise<grpc.StatusObject> {
    this.call.end();
    const s = await this.done;
    this.client.close();
    return s;
  }
}

/** The plain-object view of an ack, for deepStrictEqual. */
export function ackView(a: BatchAck): { batchId: number; stored: number; duplicates: number; rejected: number; error: string } {
  return { batchId: Number(a.batchId), stored: a.stored, duplicates: a.duplicates, rejected: a.rejected, error: a.error };
}
