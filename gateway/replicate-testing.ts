import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AuditEvent } from '../proto/gen/audit/v1/event_pb.js';
import { EmbeddedStore } from './store-embedded.js';
import type { PutResult, StoredEvent } from './store.js';
import { StoreWrapper } from './store-wrapper.js';

/**
 * Helpers for the replication tests: a key file, a store that records what
 * reached it, and polling for convergence across gateways.
 * @internal
 */

export function writeKeyFile(dir: string, name = 'replication.key'): string {
  const file = join(dir, name);
  writeFileSync(file, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
  return file;
}

/** Flags that make a gateway replicate to `peers` quickly (short retry delays). */
export function replicationFlags(id: string, peers: string[], keyFile: string): string[] {
  return [
    '--gateway.id', id,
    '--gateway.replicate_to', peers.join(','),
    '--gateway.replication.key_file', keyFile,
    '--gateway.replication.retry.initial_delay', '50ms',
    '--gateway.replication.retry.max_delay', '200ms',
  ];
}

/** An embedded store that remembers every event offered to it and by whom. */
export class RecordingStore extends StoreWrapper {
  /** Every event offered to put, in order: id and delivered_by. */
  readonly received: Array<{ eventId: string; deliveredBy: string }> = [];
  /** Extra wait before each put (a slow peer). */
  delayMs = 0;

  constructor(dir: string) {
    super(new EmbeddedStore(dir));
  }

  override async put(events: readonly StoredEvent[]): Promise<PutResult> {
    for (const ev of events) this.received.push({ eventId: ev.eventId, deliveredBy: ev.deliveredBy });
    if (this.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    return this.inner.put(events);
  }

  /** Events received from DR replication streams, by id → times received. */
  replicated(): Map<string, number> {
    const out = new Map<string, number>();
    for (const r of this.received) if (r.deliveredBy.startsWith('replication:')) out.set(r.eventId, (out.get(r.eventId) ?? 0) + 1);
    return out;
  }
}

/** Polls `check` until it returns true; fails with `what` after `timeoutMs`. */
export async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
