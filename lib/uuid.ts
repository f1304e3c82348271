import { randomFillSync } from 'node:crypto';

const pool = Buffer.allocUnsafe(16 * 256);
let poolPos = pool.length;
let lastMs = 0;
let counter = 0;

const hex: string[] = [];
for (let i = 0; i < 256; i++) hex.push(i.toString(16).padStart(2, '0'));

/**
 * A UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then random bits. Within
 * one millisecond a 12-bit counter in rand_a keeps ids from this process
 * strictly increasing, so sorting by id sorts by creation time.
 */
export function uuidv7(nowMs: number = Date.now()): string {
  if (poolPos === pool.length) {
    randomFillSync(pool);
    poolPos = 0;
  }
  const b = pool.subarray(poolPos, poolPos + 16);
  poolPos += 16;
  if (nowMs <= lastMs) {
    counter++;
    if (counter > 0xfff) {
      lastMs++;
      counter = 0;
    }
    nowMs = lastMs;
  } else {
    lastMs = nowMs;
    counter = b[7] & 0x3f; // random start, room to count up
  }
  const hi = Math.floor(nowMs / 0x10000);
  const lo = nowMs & 0xffff;
  const out =
    hex[(hi >>> 24) & 0xff] + hex[(hi >>> 16) & 0xff] + hex[(hi >>> 8) & 0xff] + hex[hi & 0xff] + '-' +
    hex[lo >>> 8] + hex[lo & 0xff] + '-' +
    hex[0x70 | (counter >>> 8)] + hex[counter & 0xff] + '-' +
    hex[0x80 | (b[8] & 0x3f)] + hex[b[9]] + '-' +
    hex[b[10]] + hex[b[11]] + hex[b[12]] + hex[b[13]] + hex[b[14]] + hex[b[15]];
  return out;
}

/** The millisecond timestamp stored in a UUIDv7. */
export function uuidv7Time(id: string): number {
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export function isUuid(id: string): boolean {
  return UUID_RE.test(id);
}
