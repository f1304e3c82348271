import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parse as parseYaml } from 'yaml';
import { AuditError, ErrorCode } from './errors.js';
import { parseDuration, parseSize } from './units.js';

/**
 * Configuration: one YAML file, every key overridable by a command-line
 * flag (`--collector.cache.max_size 1GB`, or a short alias such as
 * `--cache-dir`) and an environment variable (`DBAUDIT_COLLECTOR_CACHE_MAX_SIZE`).
 * Precedence: flag > env > file > default. Validated once at start; the
 * result is frozen. Secrets are never values here: only paths to files or
 * the names of environment variables that hold them.
 */

type Kind = 'string' | 'int' | 'bool' | 'size' | 'duration' | 'list' | 'address';

interface KeySpec {
  key: string;
  kind: Kind;
  default?: unknown;
  /** Allowed values, for enumerations. */
  allowed?: readonly string[];
  /** Short command-line aliases (without the leading dashes). */
  flags?: readonly string[];
  /** Bounds for int, size (bytes) and duration (ms) keys. */
  min?: number;
  max?: number;
  help: string;
}

/** Why `n` is outside the key's bounds (in the key's own unit), or undefined. */
function outOfBounds(spec: KeySpec, n: number, unit: string): string | undefined {
  const lo = spec.min !== undefined && n < spec.min;
  const hi = spec.max !== undefined && n > spec.max;
  if (!lo && !hi) return undefined;
  const parts = [spec.min !== undefined ? `at least ${spec.min}${unit}` : '', spec.max !== undefined ? `at most ${spec.max}${unit}` : ''].filter(Boolean);
  return parts.join(' and ');
}

export const CONFIG_KEYS: readonly KeySpec[] = [
  { key: 'collector.id', kind: 'string', help: 'collector identity (default: $POD_NAME or the host name)' },
  { key: 'collector.protocol', kind: 'string', default: 'postgres', allowed: ['postgres', 'mysql'], flags: ['protocol'], help: 'wire protocol of the upstream database' },
  { key: 'collector.listen', kind: 'address', default: '127.0.0.1:6432', flags: ['listen'], help: 'address applications connect to' },
  { key: 'collector.upstream', kind: 'address', default: '127.0.0.1:5432', flags: ['upstream'], help: 'the database behind the proxy' },
  { key: 'collector.http.listen', kind: 'address', default: '0.0.0.0:8080', flags: ['http'], help: 'health and metrics HTTP address' },
  { key: 'collector.gateway.endpoints', kind: 'list', default: ['127.0.0.1:50051'], flags: ['gateway'], help: 'gateway endpoints, primary first' },
  { key: 'collector.gateway.token_file', kind: 'string', help: 'file holding the bearer token sent to the gateway' },
  { key: 'collector.gateway.tls.ca_file', kind: 'string', help: 'CA bundle that signs the gateway certificate' },
  { key: 'collector.gateway.tls.cert_file', kind: 'string', help: 'client certificate for mutual TLS' },
  { key: 'collector.gateway.tls.key_file', kind: 'string', help: 'client key for mutual TLS' },
  { key: 'collector.gateway.batch_size', kind: 'int', default: 512, min: 1, help: 'events per batch sent to the gateway (at most 10000)' },
  { key: 'collector.gateway.batch_delay', kind: 'duration', default: '25ms', max: 10_000, help: 'a partial batch of new events waits up to this long for more before it is sent (fewer, fuller batches; adds at most this much, or one gateway round trip, to delivery lag, never to the client; 0: send at once)' },
  { key: 'collector.gateway.failback_interval', kind: 'duration', default: '10s', help: 'how often a collector on a secondary gateway checks whether the primary is back' },
  { key: 'collector.gateway.ack_timeout', kind: 'duration', default: '30s', help: 'a batch not acknowledged within this long reopens the stream' },
  { key: 'collector.gateway.heartbeat_interval', kind: 'duration', default: '30s', help: 'an idle stream sends an empty batch this often, reporting the highest sequence number (the gateway then knows a deleted tail is missing)' },
  { key: 'collector.tls.cert_file', kind: 'string', flags: ['tls-cert'], help: 'certificate for TLS toward applications' },
  { key: 'collector.tls.key_file', kind: 'string', flags: ['tls-key'], help: 'key for TLS toward applications' },
  { key: 'collector.tls.min_version', kind: 'string', default: 'TLSv1.2', allowed: ['TLSv1.2', 'TLSv1.3'], help: 'lowest TLS version accepted' },
  { key: 'collector.tls.ciphers', kind: 'string', help: 'OpenSSL cipher list for TLS toward applications' },
  { key: 'collector.upstream_tls.mode', kind: 'string', default: 'disable', allowed: ['disable', 'prefer', 'require', 'verify-full'], flags: ['upstream-tls'], help: 'TLS to the database, as libpq sslmode' },
  { key: 'collector.upstream_tls.ca_file', kind: 'string', flags: ['upstream-ca'], help: 'CA bundle for verify-full' },
  { key: 'collector.upstream_tls.server_name', kind: 'string', help: 'host name checked in verify-full (default: the upstream host)' },
  { key: 'collector.cache.enabled', kind: 'bool', default: true, help: 'keep events in the local write-ahead cache on disk; false: events wait for the gateway in memory only (memory_max_size), and a crash or restart loses what was not yet acknowledged' },
  { key: 'collector.cache.memory_max_size', kind: 'size', default: '16MB', min: 4096, help: 'with enabled: false, the sealed bytes of the events that wait for the gateway in memory (the process grows by about 6x this); the oldest are dropped (with a loss event) beyond it' },
  { key: 'collector.cache.path', kind: 'string', default: '/var/lib/dbaudit/cache', flags: ['cache-dir'], help: 'cache directory' },
  { key: 'collector.cache.max_size', kind: 'size', default: '10GB', help: 'oldest events are dropped beyond this size' },
  { key: 'collector.cache.max_age', kind: 'duration', default: '24h', help: 'events older than this are dropped' },
  { key: 'collector.cache.encryption.key_file', kind: 'string', help: 'file holding the 32-byte cache key (base64 or hex)' },
  { key: 'collector.cache.encryption.key_env', kind: 'string', default: 'DBAUDIT_CACHE_KEY', help: 'environment variable holding the cache key' },
  { key: 'collector.cache.encryption.read_key_files', kind: 'list', default: [], help: 'older keys still accepted for reading' },
  { key: 'collector.cache.sync.rate_limit', kind: 'int', default: 10000, min: 1, help: 'events per second replayed after reconnection' },
  { key: 'collector.cache.sync.order', kind: 'string', default: 'newest_first', allowed: ['newest_first', 'oldest_first'], help: 'replay order of the backlog' },
  { key: 'collector.cache.durability', kind: 'string', default: 'fsync', allowed: ['fsync', 'write'], help: 'fsync: an event counts as cached (and its result is released) once the cache log is synced; write: once written to the log (survives a proxy crash, not a power loss), synced in the background' },
  { key: 'collector.cache.fsync_interval', kind: 'duration', default: '200ms', help: 'background sync period with durability: write' },
  { key: 'collector.cache.sync.commit_interval', kind: 'duration', default: '0ms', help: 'extra wait to gather a group commit (0: commit as soon as the previous one is done)' },
  { key: 'collector.trail.key_file', kind: 'string', help: 'file holding the 32-byte trail key that makes each event\'s chain hash (the gateway and verifiers hold it too); without one the chain is a bare SHA-256' },
  { key: 'collector.trail.key_env', kind: 'string', default: 'DBAUDIT_TRAIL_KEY', help: 'environment variable holding the trail key' },
  { key: 'collector.retry.max_attempts', kind: 'int', default: 10, min: 1, help: 'attempts on one gateway before failing over' },
  { key: 'collector.retry.initial_delay', kind: 'duration', default: '1s', help: 'first retry delay' },
  { key: 'collector.retry.max_delay', kind: 'duration', default: '5m', help: 'longest retry delay' },
  { key: 'collector.retry.backoff_multiplier', kind: 'int', default: 2, min: 1, help: 'growth of the retry delay' },
  { key: 'collector.limits.max_connections', kind: 'int', default: 10000, min: 1, help: 'client connections at once' },
  { key: 'collector.limits.startup_timeout', kind: 'duration', default: '10s', help: 'time allowed to finish startup and login' },
  { key: 'collector.limits.idle_timeout', kind: 'duration', default: '0s', help: 'close sessions idle this long (0: never)' },
  { key: 'collector.limits.max_statement_bytes', kind: 'size', default: '64KB', help: 'statement text kept in an event' },
  { key: 'collector.shutdown.grace_period', kind: 'duration', default: '25s', help: 'time open sessions get to finish on SIGTERM' },
  { key: 'audit.redact', kind: 'string', default: 'literals', allowed: ['literals', 'none'], flags: ['redact'], help: 'statement text redaction' },
  { key: 'audit.log_parameters', kind: 'bool', default: false, flags: ['log-parameters'], help: 'record bound parameter values' },
  { key: 'audit.on_cache_failure', kind: 'string', default: 'forward', allowed: ['forward', 'block'], help: 'what to do when the cache cannot write' },
  { key: 'gateway.id', kind: 'string', help: 'gateway identity (default: $POD_NAME or the host name)' },
  { key: 'gateway.listen', kind: 'address', default: '127.0.0.1:50051', flags: ['listen'], help: 'gRPC listen address' },
  { key: 'gateway.data_dir', kind: 'string', default: '/var/lib/dbaudit/gateway', flags: ['data-dir'], help: 'embedded store directory' },
  { key: 'gateway.store', kind: 'string', default: 'embedded', flags: ['store'], help: '"embedded" or a postgres:// URL' },
  // ~1 kB an event over eight keys: at the binding's 4MB the store flushed every ~4,000 events and kept
  // compactions running (event pipeline, interleaved: gateway 58-60 us an event at 4MB, 53-54 at 16MB)
  { key: 'gateway.write_buffer_size', kind: 'size', default: '16MB', min: 1 << 20, max: 1 << 30, help: 'embedded store: bytes RocksDB collects in memory before it flushes a table file (larger: fewer flushes and compactions, more memory)' },
  { key: 'gateway.http.listen', kind: 'address', default: '0.0.0.0:8081', flags: ['http'], help: 'health and metrics HTTP address' },
  { key: 'gateway.retention', kind: 'duration', default: '0s', help: 'drop stored events older than this (0: keep)' },
  { key: 'gateway.replicate_to', kind: 'list', default: [], help: 'peer-region gateways that receive every stored event' },
  { key: 'gateway.token_file', kind: 'string', help: 'file holding the bearer token callers must present' },
  { key: 'gateway.tls.cert_file', kind: 'string', help: 'gateway certificate' },
  { key: 'gateway.tls.key_file', kind: 'string', help: 'gateway key' },
  { key: 'gateway.tls.client_ca_file', kind: 'string', help: 'CA that signs client certificates (mutual TLS)' },
  { key: 'gateway.trail.keys_dir', kind: 'string', help: 'directory of the collectors\' trail keys (one key per file): chain hashes are checked on ingest, and unkeyed events become findings' },
  { key: 'gateway.trail.seal_key_file', kind: 'string', help: 'file holding the 32-byte key that seals each group of stored events' },
  { key: 'gateway.trail.seal_key_env', kind: 'string', default: 'DBAUDIT_SEAL_KEY', help: 'environment variable holding the seal key' },
  { key: 'gateway.trail.check_interval', kind: 'duration', default: '30s', help: 'how often the gateway walks the stored trail for gaps and chain breaks (0: never)' },
  { key: 'gateway.trail.full_check_interval', kind: 'duration', default: '1h', help: 'how often a walk starts again from seq 1 of every epoch, to find rows edited behind its checkpoints (0: only after a restart)' },
  { key: 'gateway.replication.cache_dir', kind: 'string', help: 'replication cache directory (default: <data_dir>/replication)' },
  { key: 'gateway.replication.key_file', kind: 'string', help: 'file holding the 32-byte replication cache key (base64 or hex)' },
  { key: 'gateway.replication.key_env', kind: 'string', default: 'DBAUDIT_REPLICATION_KEY', help: 'environment variable holding the replication cache key' },
  { key: 'gateway.replication.max_size', kind: 'size', default: '10GB', help: 'replication cache bound; oldest unreplicated events are dropped (and counted) beyond it' },
  { key: 'gateway.replication.max_age', kind: 'duration', default: '168h', help: 'unreplicated events older than this are dropped (0: keep)' },
  { key: 'gateway.replication.batch_size', kind: 'int', default: 512, min: 1, help: 'events per batch sent to the peer' },
  { key: 'gateway.replication.batch_delay', kind: 'duration', default: '25ms', max: 10_000, help: 'a partial batch waits up to this long for more events before it is sent to the peer (0: at once)' },
  { key: 'gateway.replication.rate_limit', kind: 'int', default: 10000, min: 1, help: 'events per second replayed to the peer after an outage' },
  { key: 'gateway.replication.retry.initial_delay', kind: 'duration', default: '1s', help: 'first retry delay toward the peer' },
  { key: 'gateway.replication.retry.max_delay', kind: 'duration', default: '30s', help: 'longest retry delay toward the peer' },
  { key: 'gateway.replication.retry.max_attempts', kind: 'int', default: 3, min: 1, help: 'attempts on one peer endpoint before trying the next in replicate_to' },
  { key: 'gateway.replication.token_file', kind: 'string', help: 'file holding the bearer token presented to the peer gateway' },
  { key: 'gateway.replication.tls.ca_file', kind: 'string', help: 'CA bundle that signs the peer gateway certificate' },
  { key: 'gateway.replication.tls.cert_file', kind: 'string', help: 'client certificate toward the peer (mutual TLS)' },
  { key: 'gateway.replication.tls.key_file', kind: 'string', help: 'client key toward the peer (mutual TLS)' },
  { key: 'log.level', kind: 'string', default: 'info', allowed: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], flags: ['log-level'], help: 'log level' },
];

export interface Config {
  collector: {
    id: string;
    protocol: 'postgres' | 'mysql';
    listen: string;
    upstream: string;
    http: { listen: string };
    gateway: { endpoints: string[]; token_file?: string; tls: { ca_file?: string; cert_file?: string; key_file?: string }; batch_size: number; batch_delay: number; failback_interval: number; ack_timeout: number; heartbeat_interval: number };
    tls: { cert_file?: string; key_file?: string; min_version: 'TLSv1.2' | 'TLSv1.3'; ciphers?: string };
    upstream_tls: { mode: 'disable' | 'prefer' | 'require' | 'verify-full'; ca_file?: string; server_name?: string };
    cache: {
      enabled: boolean;
      /** Bytes. */
      memory_max_size: number;
      path: string;
      /** Bytes. */
      max_size: number;
      /** Milliseconds. */
      max_age: number;
      durability: 'fsync' | 'write';
      /** Milliseconds. */
      fsync_interval: number;
      encryption: { key_file?: string; key_env: string; read_key_files: string[] };
      sync: { rate_limit: number; order: 'newest_first' | 'oldest_first'; commit_interval: number };
    };
    retry: { max_attempts: number; initial_delay: number; max_delay: number; backoff_multiplier: number };
    limits: { max_connections: number; startup_timeout: number; idle_timeout: number; max_statement_bytes: number };
    shutdown: { grace_period: number };
    trail: { key_file?: string; key_env: string };
  };
  audit: { redact: 'literals' | 'none'; log_parameters: boolean; on_cache_failure: 'forward' | 'block' };
  gateway: {
    id: string;
    listen: string;
    data_dir: string;
    store: string;
    write_buffer_size: number;
    http: { listen: string };
    retention: number;
    replicate_to: string[];
    token_file?: string;
    tls: { cert_file?: string; key_file?: string; client_ca_file?: string };
    /** Tamper evidence (lib/trail.ts, gateway/trail-audit.ts). */
    trail: { keys_dir?: string; seal_key_file?: string; seal_key_env: string; check_interval: number; full_check_interval: number };
    /** DR replication toward gateway.replicate_to (gateway/replicate.ts). */
    replication: {
      cache_dir?: string;
      key_file?: string;
      key_env: string;
      /** Bytes. */
      max_size: number;
      /** Milliseconds. */
      max_age: number;
      batch_size: number;
      /** Milliseconds. */
      batch_delay: number;
      rate_limit: number;
      retry: { initial_delay: number; max_delay: number; max_attempts: number };
      token_file?: string;
      tls: { ca_file?: string; cert_file?: string; key_file?: string };
    };
  };
  log: { level: string };
}

/** The scope a subcommand reads its short flags from: `--listen` means collector.listen for `proxy`, gateway.listen for `gateway`. */
export type Scope = 'collector' | 'gateway';

export interface LoadOptions {
  argv?: readonly string[];
  env?: NodeJS.ProcessEnv;
  scope?: Scope;
  /** Values that win over the file but lose to flags and env (used by the demo). */
  defaults?: Record<string, unknown>;
}

export interface Loaded {
  config: Config;
  /** Positional arguments left after flags. */
  rest: string[];
}

function envName(key: string): string {
  return 'DBAUDIT_' + key.toUpperCase().replace(/\./g, '_');
}

function configError(key: string, value: unknown, allowed: string): AuditError {
  const shown = typeof value === 'string' ? JSON.stringify(value) : JSON.stringify(value) ?? String(value);
  return new AuditError(ErrorCode.Config, `config ${key}: invalid value ${shown}; expected ${allowed}`);
}

function coerce(spec: KeySpec, raw: unknown): unknown {
  const { key } = spec;
  switch (spec.kind) {
    case 'string': {
      if (typeof raw !== 'string' && typeof raw !== 'number') throw configError(key, raw, spec.allowed ? `one of ${spec.allowed.join(', ')}` : 'a string');
      const s = String(raw);
      if (spec.allowed && !spec.allowed.includes(s)) throw configError(key, raw, `one of ${spec.allowed.join(', ')}`);
      return s;
    }
    case 'int': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^-?\d+$/.test(raw.trim()) ? Number(raw) : NaN;
      if (!Number.isSafeInteger(n) || (spec.min !== undefined && n < spec.min)) throw configError(key, raw, `a whole number${spec.min !== undefined ? ` >= ${spec.min}` : ''}`);
      return n;
    }
    case 'bool': {
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === '1' || raw === 'yes' || raw === 'on') return true;
      if (raw === 'false' || raw === '0' || raw === 'no' || raw === 'off') return false;
      throw configError(key, raw, 'true or false');
    }
    case 'size': {
      const n = typeof raw === 'string' || typeof raw === 'number' ? parseSize(raw) : undefined;
      if (n === undefined) throw configError(key, raw, 'a size such as 512MB, 10GB or a number of bytes');
      const bad = outOfBounds(spec, n, ' bytes');
      if (bad) throw configError(key, raw, `a size of ${bad}`);
      return n;
    }
    case 'duration': {
      const n = typeof raw === 'string' || typeof raw === 'number' ? parseDuration(raw) : undefined;
      if (n === undefined) throw configError(key, raw, 'a duration such as 250ms, 1s, 5m, 24h');
      const bad = outOfBounds(spec, n, 'ms');
      if (bad) throw configError(key, raw, `a duration of ${bad}`);
      return n;
    }
    case 'list': {
      if (Array.isArray(raw) && raw.every((x) => typeof x === 'string')) return raw.map((x: string) => x.trim()).filter(Boolean);
      if (typeof raw === 'string') return raw.split(',').map((x) => x.trim()).filter(Boolean);
      throw configError(key, raw, 'a list of strings or a comma-separated string');
    }
    case 'address': {
      if (typeof raw !== 'string' || parseAddress(raw) === undefined) throw configError(key, raw, 'host:port');
      return raw;
    }
  }
}

/** Splits `host:port` (IPv6 as `[::1]:5432`). */
export function parseAddress(text: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d{1,5})$/.exec(text.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { host: m[1] ?? m[2], port };
}

function lookup(obj: unknown, path: string[]): unknown {
  let cur: unknown = obj;
  for (const p of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[p];
  }
  return cur;
}

function assign(obj: Record<string, unknown>, path: string[], value: unknown): void {
  let cur = obj;
  for (const p of path.slice(0, -1)) {
    cur = (cur[p] ??= {}) as Record<string, unknown>;
  }
  const last = path[path.length - 1];
  if (last !== '\0') cur[last] = value;
}

/** Reports keys in the file that the schema does not know, so a typo is an error, not a silent default. */
function checkUnknown(obj: unknown, prefix: string, known: Set<string>): void {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) return;
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (known.has(key)) continue;
    const isPrefix = [...known].some((x) => x.startsWith(key + '.'));
    if (!isPrefix) throw new AuditError(ErrorCode.Config, `config ${key}: unknown key`);
    checkUnknown(v, key, known);
  }
}

export function loadConfig(opts: LoadOptions = {}): Loaded {
  const argv = opts.argv ?? [];
  const env = opts.env ?? process.env;
  const scope = opts.scope ?? 'collector';
  const flagValues = new Map<string, string>();
  const rest: string[] = [];
  let file: string | undefined = env.DBAUDIT_CONFIG;

  const byFlag = new Map<string, KeySpec>();
  for (const spec of CONFIG_KEYS) {
    byFlag.set(spec.key, spec);
    const inScope = spec.key.startsWith(scope + '.') || !/^(collector|gateway)\./.test(spec.key);
    for (const f of spec.flags ?? []) if (inScope) byFlag.set(f, spec);
  }

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) {
      rest.push(arg);
      continue;
    }
    let name = arg.slice(2);
    let value: string | undefined;
    const eq = name.indexOf('=');
    if (eq >= 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    if (name === 'config') {
      file = value ?? argv[++i];
      if (file === undefined) throw new AuditError(ErrorCode.Config, '--config needs a file path');
      continue;
    }
    const spec = byFlag.get(name);
    if (!spec) {
      rest.push(arg);
      if (value === undefined && argv[i + 1] !== undefined && !argv[i + 1].startsWith('--')) rest.push(argv[++i]);
      continue;
    }
    if (value === undefined) {
      const next = argv[i + 1];
      if (spec.kind === 'bool' && (next === undefined || next.startsWith('--'))) value = 'true';
      else if (next === undefined) throw new AuditError(ErrorCode.Config, `--${name} needs a value`);
      else value = argv[++i];
    }
    flagValues.set(spec.key, value);
  }

  let fileObj: unknown = {};
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw AuditError.from(err, ErrorCode.Config, `config file ${file}`);
    }
    try {
      fileObj = parseYaml(text) ?? {};
    } catch (err) {
      throw AuditError.from(err, ErrorCode.Config, `config file ${file} is not valid YAML`);
    }
    if (typeof fileObj !== 'object' || Array.isArray(fileObj)) throw new AuditError(ErrorCode.Config, `config file ${file}: top level must be a mapping`);
    checkUnknown(fileObj, '', new Set(CONFIG_KEYS.map((s) => s.key)));
  }

  const out: Record<string, unknown> = {};
  for (const spec of CONFIG_KEYS) {
    const path = spec.key.split('.');
    let raw: unknown = flagValues.get(spec.key);
    if (raw === undefined) raw = env[envName(spec.key)];
    if (raw === undefined) raw = lookup(fileObj, path);
    if (raw === undefined || raw === null) raw = opts.defaults?.[spec.key];
    if (raw === undefined || raw === null) raw = spec.default;
    if (raw === undefined || raw === null) {
      assign(out, path.slice(0, -1).concat('\0'), undefined); // keep the parent object present
      continue;
    }
    assign(out, path, coerce(spec, raw));
  }
  const config = out as unknown as Config;
  const defaultId = env.POD_NAME || hostname();
  config.collector.id ??= defaultId;
  config.gateway.id ??= defaultId;
  return { config: deepFreeze(config), rest };
}

function deepFreeze<T>(obj: T): T {
  if (obj && typeof obj === 'object') {
    for (const v of Object.values(obj)) deepFreeze(v);
    Object.freeze(obj);
  }
  return obj;
}

/** Human-readable list of keys, flags and env names, for `--help`. */
export function describeKeys(scope: Scope): string {
  return CONFIG_KEYS.filter((s) => s.key.startsWith(scope + '.') || !/^(collector|gateway)\./.test(s.key))
    .map((s) => {
      const flags = [`--${s.key}`, ...(s.flags ?? []).map((f) => `--${f}`)].join(', ');
      const def = s.default === undefined ? '' : ` (default ${JSON.stringify(s.default)})`;
      return `  ${flags}\n      env ${envName(s.key)}${def}\n      ${s.help}`;
    })
    .join('\n');
}
