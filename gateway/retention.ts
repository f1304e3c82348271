import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/log.js';
import type { Store } from './store.js';

/**
 * `gateway.retention`: drops stored events older than the retention once
 * at start and then every minute. A store without `deleteBefore` keeps
 * everything (and says so once).
 */

export const RETENTION_INTERVAL_MS = 60_000;

export interface Retention {
  /** Resolves when the first sweep (started with the gateway) has finished. */
  readonly firstSweep: Promise<void>;
  stop(): Promise<void>;
}

export function startRetention(store: Store, retentionMs: number, clock: Clock, logger: Logger): Retention {
  if (retentionMs <= 0) return { firstSweep: Promise.resolve(), stop: () => Promise.resolve() };
  if (!store.deleteBefore) {
    logger.warn({ store: store.kind }, 'gateway.retention is set but this store cannot delete; keeping every event');
    return { firstSweep: Promise.resolve(), stop: () => Promise.resolve() };
  }
  const deleteBefore = store.deleteBefore.bind(store);
  let running: Promise<void> = Promise.resolve();
  let busy = false;
  let stopped = false;
  const sweep = (): Promise<void> => {
    if (busy || stopped) return running;
    busy = true;
    const cutoffMs = clock.now() - retentionMs;
    running = deleteBefore(Math.max(0, cutoffMs) * 1000).then(
      (n) => {
        if (n > 0) logger.info({ removed: n, before: new Date(cutoffMs).toISOString() }, 'retention removed old events');
      },
      (err: unknown) => logger.error({ err }, 'retention sweep failed'),
    ).finally(() => {
      busy = false;
    });
    return running;
  };
  const firstSweep = sweep();
  const timer = setInterval(() => void sweep(), RETENTION_INTERVAL_MS);
  timer.unref();
  return {
    firstSweep,
    stop: async () => {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
