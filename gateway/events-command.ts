import * as grpc from '@grpc/grpc-js';
import { create, toJson } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { AuditEventSchema } from '../proto/gen/audit/v1/event_pb.js';
import { SearchRequestSchema, type SearchRequest, type SearchResponse } from '../proto/gen/audit/v1/query_pb.js';
import { EVENT_KINDS } from '../proxy/events.js';
import { parseAddress } from '../lib/config.js';
import { MAX_MESSAGE_BYTES, QueryClient } from '../lib/grpc.js';
import { formatEventLine } from '../lib/format.js';
import { parseDuration } from '../lib/units.js';
import { AuditError, ErrorCode } from '../lib/errors.js';
import { MAX_SEARCH_LIMIT } from './store.js';
import { clientAuth, type ClientSecurity } from '../lib/client-auth.js';

/**
 * `dbaudit events`: asks a gateway's QueryService for events and prints
 * them newest first, one readable line each, or with --json one object per
 * line in protobuf's JSON mapping of AuditEvent.
 */

export const EVENTS_USAGE = `usage: dbaudit events [--gateway HOST:PORT] [--since T] [--until T] [--user U]
                      [--database D] [--session S] [--kind K] [--text STR]
                      [--limit N] [--json]

  --gateway   gateway query address (env DBAUDIT_GATEWAY; default 127.0.0.1:50051)
  --since T   events at or after T    T: RFC 3339 time (2026-03-01T12:00:00Z)
  --until T   events before T            or a duration ago (90s, 15m, 2h, 7d)
  --user, --database, --session, --kind   exact match
  --text      case-insensitive substring of the statement
  --limit N   at most N events (default 100, at most ${MAX_SEARCH_LIMIT})
  --json      one JSON object per line (protobuf JSON mapping of AuditEvent)
  --token-file F   bearer token for the gateway (env DBAUDIT_COLLECTOR_GATEWAY_TOKEN_FILE)
  --tls-ca F       CA bundle: use TLS (env DBAUDIT_COLLECTOR_GATEWAY_TLS_CA_FILE)
  --tls-cert F, --tls-key F   client certificate for mutual TLS
                   (env DBAUDIT_COLLECTOR_GATEWAY_TLS_CERT_FILE, ..._TLS_KEY_FILE)
  kinds: ${EVENT_KINDS.join(', ')}
`;

const DEFAULT_GATEWAY = '127.0.0.1:50051';
const DEADLINE_MS = 30_000;

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;
const RELATIVE = /^(\d+(\.\d+)?(ms|s|m|h|d))+$/;

function usageError(message: string): AuditError {
  return new AuditError(ErrorCode.Config, message);
}

/** Milliseconds since the epoch for an RFC 3339 time or a duration ago (`15m` → now − 15 minutes). */
export function parseTimeArg(flag: string, text: string, nowMs: number): number {
  const s = text.trim();
  if (RELATIVE.test(s)) {
    const ms = parseDuration(s);
    if (ms !== undefined) return nowMs - ms;
  } else if (RFC3339.test(s)) {
    const ms = Date.parse(s.replace(' ', 'T'));
    if (!Number.isNaN(ms)) return ms;
  }
  throw usageError(`--${flag}: invalid time ${JSON.stringify(text)}; expected an RFC 3339 time such as 2026-03-01T12:00:00Z or a duration ago such as 15m, 2h, 7d`);
}

/** Flags every gateway client command takes: where the gateway is and how to authenticate. */
const CLIENT_FLAGS = ['gateway', 'token-file', 'tls-ca', 'tls-cert', 'tls-key'] as const;
const STRING_FLAGS = [...CLIENT_FLAGS, 'since', 'until', 'user', 'database', 'session', 'kind', 'text', 'limit'] as const;

/** Parsed command line: string flags by name, switches as true, help. */
export type Flags<S extends string> = Partial<Record<S, string>> & { switches: Set<string>; help: boolean };

/** `--name value`, `--name=value`, a switch (`--json`), `--help`/`-h`; anything else is an error naming it. */
export function parseFlags<S extends string>(argv: readonly string[], strings: readonly S[], switches: readonly string[]): Flags<S> {
  const flags = { switches: new Set<string>(), help: false } as Flags<S>;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-h' || arg === '--help') {
      flags.help = true;
      continue;
    }
    if (!arg.startsWith('--')) throw usageError(`unexpected argument ${JSON.stringify(arg)}`);
    const eq = arg.indexOf('=');
    const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    if (switches.includes(name)) {
      if (eq >= 0) throw usageError(`--${name} takes no value`);
      flags.switches.add(name);
      continue;
    }
    if (!(strings as readonly string[]).includes(name)) throw usageError(`unknown flag --${name}`);
    let value: string | undefined;
    if (eq >= 0) value = arg.slice(eq + 1);
    else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) value = argv[++i];
    if (value === undefined) throw usageError(`--${name} needs a value`);
    (flags as Record<string, unknown>)[name] = value;
  }
  return flags;
}

/** The gateway address and credentials a client command's flags (or the environment) name. */
export function gatewayOf(values: Partial<Record<(typeof CLIENT_FLAGS)[number], string>>, env: NodeJS.ProcessEnv): { gateway: string; security: ClientSecurity } {
  const gateway = values.gateway ?? env.DBAUDIT_GATEWAY ?? DEFAULT_GATEWAY;
  if (!parseAddress(gateway)) throw usageError(`--gateway: invalid address ${JSON.stringify(gateway)}; expected host:port`);
  const security: ClientSecurity = {
    tokenFile: values['token-file'] ?? env.DBAUDIT_COLLECTOR_GATEWAY_TOKEN_FILE,
    caFile: values['tls-ca'] ?? env.DBAUDIT_COLLECTOR_GATEWAY_TLS_CA_FILE,
    certFile: values['tls-cert'] ?? env.DBAUDIT_COLLECTOR_GATEWAY_TLS_CERT_FILE,
    keyFile: values['tls-key'] ?? env.DBAUDIT_COLLECTOR_GATEWAY_TLS_KEY_FILE,
  };
  return { gateway, security };
}

/** The SearchRequest and output mode the arguments ask for; throws DBA_CONFIG naming the bad flag. */
export function parseEventsArgs(
  argv: string[],
  env: NodeJS.ProcessEnv,
  nowMs: number,
): { gateway: string; request: SearchRequest; json: boolean; help: boolean; security: ClientSecurity } {
  const values = parseFlags(argv, STRING_FLAGS, ['json']);
  const { gateway, security } = gatewayOf(values, env);
  const request = create(SearchRequestSchema, {
    user: values.user ?? '',
    database: values.database ?? '',
    sessionId: values.session ?? '',
    kind: values.kind ?? '',
    text: values.text ?? '',
  });
  if (values.kind !== undefined && !EVENT_KINDS.includes(values.kind)) {
    throw usageError(`--kind: unknown kind ${JSON.stringify(values.kind)}; expected one of ${EVENT_KINDS.join(', ')}`);
  }
  for (const flag of ['user', 'database', 'session', 'kind', 'text'] as const) {
    if (values[flag] === '') throw usageError(`--${flag}: needs a non-empty value`);
  }
  if (values.limit !== undefined) {
    if (!/^\d+$/.test(values.limit) || Number(values.limit) < 1 || Number(values.limit) > MAX_SEARCH_LIMIT) {
      throw usageError(`--limit: invalid value ${JSON.stringify(values.limit)}; expected a whole number from 1 to ${MAX_SEARCH_LIMIT}`);
    }
    request.limit = Number(values.limit);
  }
  let since: number | undefined;
  let until: number | undefined;
  if (values.since !== undefined) since = parseTimeArg('since', values.since, nowMs);
  if (values.until !== undefined) until = parseTimeArg('until', values.until, nowMs);
  if (since !== undefined && until !== undefined && since >= until) throw usageError('--since must be before --until');
  if (since !== undefined) request.since = timestampFromMs(since);
  if (until !== undefined) request.until = timestampFromMs(until);
  return { gateway, request, json: values.switches.has('json'), help: values.help, security };
}

function search(gateway: string, request: SearchRequest, security: ClientSecurity): Promise<SearchResponse> {
  const { credentials, metadata } = clientAuth(security);
  const client = new QueryClient(gateway, credentials, {
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  }) as unknown as grpc.Client & {
    search(req: SearchRequest, md: grpc.Metadata, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: SearchResponse) => void): void;
  };
  return new Promise<SearchResponse>((resolve, reject) => {
    client.search(request, metadata, { deadline: Date.now() + DEADLINE_MS }, (err, res) => {
      client.close();
      if (err) reject(err);
      else resolve(res as SearchResponse);
    });
  });
}

export function describeFailure(gateway: string, err: grpc.ServiceError): string {
  switch (err.code) {
    case grpc.status.UNAVAILABLE:
      return `cannot reach the gateway at ${gateway}: ${err.details}`;
    case grpc.status.DEADLINE_EXCEEDED:
      return `the gateway at ${gateway} did not answer within ${DEADLINE_MS / 1000}s`;
    case grpc.status.INVALID_ARGUMENT:
      return `the gateway refused the request: ${err.details}`;
    case grpc.status.UNAUTHENTICATED:
    case grpc.status.PERMISSION_DENIED:
      return `the gateway at ${gateway} refused the credentials: ${err.details}`;
    default:
      return `query failed (${grpc.status[err.code] ?? err.code}): ${err.details}`;
  }
}

export function write(out: NodeJS.WritableStream, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    out.write(text, (err) => (err ? reject(err) : resolve()));
  });
}

/** Runs `dbaudit events`; returns the exit code (0 ok, 1 query failed, 2 bad usage). Errors go to `errOut`. */
export async function runEventsCommand(
  argv: string[],
  env: NodeJS.ProcessEnv,
  out: NodeJS.WritableStream,
  errOut: NodeJS.WritableStream = process.stderr,
): Promise<number> {
  let parsed;
  try {
    parsed = parseEventsArgs(argv, env, Date.now());
    clientAuth(parsed.security); // unreadable files are a usage error, before any network
  } catch (err) {
    await write(errOut, `dbaudit events: ${err instanceof Error ? err.message : String(err)}\n\n${EVENTS_USAGE}`);
    return 2;
  }
  if (parsed.help) {
    await write(out, EVENTS_USAGE);
    return 0;
  }
  let res: SearchResponse;
  try {
    res = await search(parsed.gateway, parsed.request, parsed.security);
  } catch (err) {
    const text = err && typeof err === 'object' && 'code' in err ? describeFailure(parsed.gateway, err as grpc.ServiceError) : String(err);
    await write(errOut, `dbaudit events: ${text}\n`);
    return 1;
  }
  const lines = res.events.map((ev) => (parsed.json ? JSON.stringify(toJson(AuditEventSchema, ev)) : formatEventLine(ev)));
  if (lines.length > 0) await write(out, lines.join('\n') + '\n');
  return 0;
}
