import type { AuditEvent } from '../proto/gen/audit/v1/event_pb.js';
import type { Seal, TrailRow } from '../lib/trail.js';
import type { PutResult, SearchFilter, Store, StoredEvent, TrailEpoch, TrailHead } from './store.js';

/**
 * A store that hands every call to another one: the base of stores that
 * change one thing (DR replication queues what `put` stores; tests gate or
 * record writes) and pass the rest through untouched.
 */
export class StoreWrapper implements Store {
  readonly inner: Store;
  readonly deleteBefore?: (micros: number) => Promise<number>;

  constructor(inner: Store) {
    this.inner = inner;
    const del = inner.deleteBefore?.bind(inner);
    if (del) this.deleteBefore = del;
  }

  get kind(): string {
    return this.inner.kind;
  }

  open(): Promise<void> {
    return this.inner.open();
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  put(events: readonly StoredEvent[]): Promise<PutResult> {
    return this.inner.put(events);
  }

  search(filter: SearchFilter): Promise<AuditEvent[]> {
    return this.inner.search(filter);
  }

  get(eventId: string): Promise<{ event: AuditEvent; raw: Uint8Array } | undefined> {
    return this.inner.get(eventId);
  }

  count(): Promise<number> {
    return this.inner.count();
  }

  noteHeads(heads: readonly TrailHead[]): Promise<void> {
    return this.inner.noteHeads(heads);
  }

  trailEpochs(collectorId?: string): Promise<TrailEpoch[]> {
    return this.inner.trailEpochs(collectorId);
  }

  trailRows(collectorId: string, epoch: string, afterSeq: bigint, limit: number, sinceMicros?: number): Promise<TrailRow[]> {
    return this.inner.trailRows(collectorId, epoch, afterSeq, limit, sinceMicros);
  }

  seals(ids: readonly string[]): Promise<Seal[]> {
    return this.inner.seals(ids);
  }
}
