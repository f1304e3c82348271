// A gateway (runGateway: gRPC + its HTTP endpoints) and a collector in this
// process, with Node default metrics on, logs captured in memory at a chosen
// level, and helpers to scrape and parse /metrics and the health endpoints.
import { Writable } from 'node:stream';
import { join } from 'node:path';
import { loadConfig } from '../../lib/config.js';
import { createLogger, type Logger } from '../../lib/log.js';
import { CollectorMetrics } from '../../lib/metrics.js';
import { runGateway, type RunningGateway } from '../../gateway/run.js';
import type { SearchFilter } from '../../gateway/store.js';
import { startCollector, type CollectorHandle } from '../../proxy/collector.js';
import type { AuditEvent } from '../../proxy/events.js';
import { makeTempDir } from '../harness/index.js';
import { TEST_CACHE_KEY } from '../e2e/stack.js';

export { TEST_CACHE_KEY };

/** Every line written to a logger, as text. */
export class LogCapture extends Writable {
  readonly lines: string[] = [];
  #partial = '';
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    const text = this.#partial + chunk.toString('utf8');
    const parts = text.split('\n');
    this.#partial = parts.pop() ?? '';
    this.lines.push(...parts.filter((l) => l.length > 0));
    cb();
  }
  get text(): string {
    return this.lines.join('\n') + (this.#partial ? '\n' + this.#partial : '');
  }
  json(): Array<Record<string, unknown>> {
    return this.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  }
}

export interface ObsStack {
  collector: CollectorHandle;
  gateway: RunningGateway;
  logs: LogCapture;
  logger: Logger;
  proxyHost: string;
  proxyPort: number;
  dir: string;
  events(filter?: Partial<SearchFilter>): Promise<AuditEvent[]>;
  waitForEvents(pred: (evs: AuditEvent[]) => boolean, filter?: Partial<SearchFilter>, timeoutMs?: number): Promise<AuditEvent[]>;
  /** Stops the gateway (the collector keeps running). */
  stopGateway(): Promise<void>;
  /** Starts a gateway again on the same address and data directory. */
  startGateway(): Promise<void>;
  close(): Promise<void>;
}

export interface ObsStackOptions {
  /** Collector config keys. */
  overrides?: Record<string, unknown>;
  /** Gateway config keys. */
  gatewayOverrides?: Record<string, unknown>;
  logLevel?: string;
  /** Cache directory (default: under the stack's temp dir). */
  cacheDir?: string;
}

export async function startObsStack(upstream: string, opts: ObsStackOptions = {}): Promise<ObsStack> {
  const tmp = makeTempDir('obs');
  const logs = new LogCapture();
  const logger = createLogger(opts.logLevel ?? 'debug', logs);
  let gwListen = '127.0.0.1:0';
  const gwConfig = (): ReturnType<typeof loadConfig>['config'] =>
    loadConfig({
      argv: [],
      env: {},
      scope: 'gateway',
      defaults: { 'gateway.listen': gwListen, 'gateway.data_dir': join(tmp.dir, 'gateway'), 'gateway.http.listen': '127.0.0.1:0', 'log.level': 'debug', ...opts.gatewayOverrides },
    }).config;
  let gateway = await runGateway({ config: gwConfig(), logger: logger.child({ component: 'gateway' }) });
  gwListen = gateway.address;
  let gatewayUp = true;
  const { config } = loadConfig({
    argv: [],
    env: {},
    scope: 'collector',
    defaults: {
      'collector.id': 'obs',
      'collector.listen': '127.0.0.1:0',
      'collector.upstream': upstream,
      'collector.http.listen': '127.0.0.1:0',
      'collector.gateway.endpoints': [gateway.address],
      'collector.cache.path': opts.cacheDir ?? join(tmp.dir, 'cache'),
      'collector.retry.initial_delay': '100ms',
      'collector.retry.max_delay': '500ms',
      'log.level': 'debug',
      ...opts.overrides,
    },
  });
  const collector = await startCollector({ config, logger: logger.child({ component: 'proxy' }), env: { DBAUDIT_CACHE_KEY: TEST_CACHE_KEY }, metrics: new CollectorMetrics() });
  const [proxyHost, port] = collector.address.split(':');
  const events = async (filter: Partial<SearchFilter> = {}): Promise<AuditEvent[]> => (await gateway.store.search({ limit: 10_000, ...filter })).reverse();
  return {
    collector,
    get gateway() {
      return gateway;
    },
    logs,
    logger,
    proxyHost,
    proxyPort: Number(port),
    dir: tmp.dir,
    events,
    async waitForEvents(pred, filter = {}, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const evs = await events(filter);
        if (pred(evs) || Date.now() > deadline) return evs;
        await sleep(50);
      }
    },
    async stopGateway() {
      if (!gatewayUp) return;
      gatewayUp = false;
      await gateway.close();
    },
    async startGateway() {
      if (gatewayUp) return;
      gateway = await runGateway({ config: gwConfig(), logger: logger.child({ component: 'gateway' }) });
      gatewayUp = true;
    },
    async close() {
      await collector.shutdown(500);
      if (gatewayUp) await gateway.close();
      tmp.remove();
    },
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `fn` until `pred` holds (returns that value) or the time is up (returns the last value). */
export async function until<T>(fn: () => Promise<T>, pred: (v: T) => boolean, timeoutMs = 20_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (pred(v) || Date.now() > deadline) return v;
    await sleep(everyMs);
  }
}

export async function getJson(address: string, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://${address}${path}`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** One exported sample: metric name, its labels, its value. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text format (as prom-client writes it). */
export function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparseable metrics line: ${line}`);
    const labels: Record<string, string> = {};
    if (m[2]) {
      for (const l of m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2].replace(/\\(.)/g, (_s, c: string) => (c === 'n' ? '\n' : c));
    }
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

export class Scrape {
  readonly samples: Sample[];
  readonly text: string;
  constructor(text: string) {
    this.text = text;
    this.samples = parseExposition(text);
  }
  /** The value of the one sample with exactly these labels (undefined when absent). */
  value(name: string, labels: Record<string, string> = {}): number | undefined {
    const want = Object.entries(labels).sort();
    const found = this.samples.filter((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === JSON.stringify(want));
    if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)}: ${found.length} samples`);
    return found[0]?.value;
  }
  /** Every sample of `name`. */
  all(name: string): Sample[] {
    return this.samples.filter((s) => s.name === name);
  }
  names(): Set<string> {
    return new Set(this.samples.map((s) => s.name));
  }
}

export async function scrape(address: string): Promise<Scrape> {
  const res = await fetch(`http://${address}/metrics`);
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  return new Scrape(await res.text());
}
