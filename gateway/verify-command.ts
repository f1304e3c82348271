import * as grpc from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { TrailRequestSchema, type TrailChunk, type TrailRequest } from '../proto/gen/audit/v1/query_pb.js';
import { clientAuth, type ClientSecurity } from '../lib/client-auth.js';
import { MAX_MESSAGE_BYTES, QueryClient } from '../lib/grpc.js';
import { EpochVerifier, TrailKeys, formatRange, reportPasses, type Attested, type DroppedRange, type EpochReport, type Seal } from '../lib/trail.js';
import { describeFailure, gatewayOf, parseFlags, parseTimeArg, write } from './events-command.js';
import { deliveredDirectly } from './trail.js';

/**
 * `dbaudit verify`: reads a gateway's stored trail (QueryService.Trail) and
 * checks it here, with the keys the auditor holds: per collector epoch,
 * what is held, which sequence ranges are missing and whether a loss event
 * or retention explains them, and every chain break. The gateway's own
 * verdict is not asked for: a gateway (or its store) that was tampered with
 * cannot talk its way past this.
 */

export const VERIFY_USAGE = `usage: dbaudit verify [--gateway HOST:PORT] [--since T] [--collector ID]
                      [--keys-dir DIR] [--json]

  --gateway     gateway query address (env DBAUDIT_GATEWAY; default 127.0.0.1:50051);
                run it against the DR region's gateway too
  --since T     only events from T on (RFC 3339 time or a duration ago: 15m, 2h, 7d);
                the first event of each epoch in the window is not linked to the one before
  --collector   only this collector's epochs
  --keys-dir    directory of keys, one per file (env DBAUDIT_TRAIL_KEYS_DIR); a file's
                name gives its role: seal* or *.seal a gateway's seal key,
                trail.<collector id> that collector's trail key, any other name a fleet
                trail key. Every keyed hash and seal is checked with a key of its role;
                an unkeyed one, or one made with a key of the wrong role, is a finding
  --no-keys     check without keys: damage and order, not deliberate edits (a verdict
                that says so); without --keys-dir this is required
  --json        one JSON object per collector epoch, then a summary object
  --token-file F, --tls-ca F, --tls-cert F, --tls-key F   as for dbaudit events

Exit status: 0 the trail verifies; 1 an unexplained gap or a chain break was found;
2 bad usage; 3 the trail could not be read.
`;

const STRING_FLAGS = ['gateway', 'token-file', 'tls-ca', 'tls-cert', 'tls-key', 'since', 'collector', 'keys-dir'] as const;

export interface VerifyArgs {
  gateway: string;
  security: ClientSecurity;
  request: TrailRequest;
  keys?: TrailKeys;
  json: boolean;
  help: boolean;
}

export function parseVerifyArgs(argv: readonly string[], env: NodeJS.ProcessEnv, nowMs: number): VerifyArgs {
  const values = parseFlags(argv, STRING_FLAGS, ['json', 'no-keys']);
  const { gateway, security } = gatewayOf(values, env);
  const request = create(TrailRequestSchema, { collectorId: values.collector ?? '' });
  if (values.since !== undefined) {
    const ms = parseTimeArg('since', values.since, nowMs);
    // the gateway takes microseconds since 1970 as a safe integer: refuse here what it would refuse (bad usage, not an unreadable trail)
    if (ms < 0 || !Number.isSafeInteger(Math.floor(ms) * 1000)) throw new Error(`--since: ${JSON.stringify(values.since)} is before 1970 or too far in the future`);
    request.since = timestampFromMs(ms);
  }
  // An empty --keys-dir (an unset variable in a script) must not silently mean "check without keys" and pass.
  if (values['keys-dir'] === '') throw new Error('--keys-dir: empty directory name');
  const dir = values['keys-dir'] ?? env.DBAUDIT_TRAIL_KEYS_DIR;
  const noKeys = values.switches.has('no-keys');
  if (dir && noKeys) throw new Error('--no-keys: given with --keys-dir (or DBAUDIT_TRAIL_KEYS_DIR); choose one');
  // A keyless check cannot tell a deliberate edit from the real trail: it is asked for by name, never the default.
  if (!dir && !noKeys && !values.help) throw new Error('--keys-dir: required (the auditor\'s trail and seal keys); --no-keys checks only damage and order, not deliberate edits');
  const keys = dir ? TrailKeys.fromDir(dir, '--keys-dir') : undefined;
  return { gateway, security, request, keys, json: values.switches.has('json'), help: values.help };
}

/** How long verify waits for the next chunk (or the connection) before it gives up on a gateway that stalls. */
export const STALL_MS = 120_000;

/** Reads the whole trail and verifies it epoch by epoch, as the chunks arrive. */
export function verifyTrail(gateway: string, security: ClientSecurity, request: TrailRequest, keys: TrailKeys | undefined, opts: { stallMs?: number } = {}): Promise<EpochReport[]> {
  const stallMs = opts.stallMs ?? STALL_MS;
  const { credentials, metadata } = clientAuth(security);
  const client = new QueryClient(gateway, credentials, { 'grpc.max_receive_message_length': MAX_MESSAGE_BYTES }) as unknown as grpc.Client & {
    trail(req: TrailRequest, md: grpc.Metadata): grpc.ClientReadableStream<TrailChunk>;
  };
  const reports: EpochReport[] = [];
  const seals = new Map<string, Seal>();
  const windowed = request.since !== undefined;
  let current: { v: EpochVerifier; highest: bigint; dropped: DroppedRange[]; head?: Attested } | undefined;
  const close = (): void => {
    if (current) reports.push(current.v.finish(current.highest, current.dropped, current.head));
    current = undefined;
  };
  return new Promise<EpochReport[]>((resolve, reject) => {
    const call = client.trail(request, metadata);
    // A gateway that accepts the connection and then says nothing (no HTTP/2, a stuck store) must not hang the audit.
    let stalled: NodeJS.Timeout | undefined;
    const watch = (): void => {
      clearTimeout(stalled);
      stalled = setTimeout(() => {
        call.removeAllListeners('error');
        call.on('error', () => undefined);
        call.cancel();
        client.close();
        reject(Object.assign(new Error('stalled'), { code: grpc.status.UNAVAILABLE, details: `it sent nothing for ${stallMs / 1000}s (stalled)` }));
      }, stallMs);
    };
    watch();
    call.on('data', (chunk: TrailChunk) => {
      watch();
      for (const s of chunk.seals) {
        seals.set(s.sealId, { sealId: s.sealId, gatewayId: s.gatewayId, keyId: s.keyId, sealedAtMs: Number(s.sealedAtMs), entries: Buffer.from(s.entries), mac: s.mac });
      }
      if (chunk.epoch) {
        close();
        const ep = chunk.epoch;
        current = {
          v: new EpochVerifier(ep.collectorId, ep.epoch, { keys, linkFirst: !windowed, seal: (id) => seals.get(id), deliveredDirectly }),
          highest: ep.highestReported,
          head: ep.highestReported > 0n ? { mac: ep.headMac, keyId: ep.headKeyId } : undefined,
          dropped: ep.dropped.map((r) => ({ from: r.fromSeq, to: r.toSeq, mac: r.mac, keyId: r.keyId })),
        };
      }
      for (const e of chunk.events) {
        current?.v.add({ seq: e.seq, raw: e.raw, deliveredBy: e.deliveredBy, receivedAtMs: Number(e.receivedAtMs), sealId: e.sealId });
      }
    });
    call.on('error', (err) => {
      clearTimeout(stalled);
      client.close();
      reject(err);
    });
    call.on('end', () => {
      clearTimeout(stalled);
      client.close();
      close();
      resolve(reports);
    });
  });
}

/**
 * A name from the store as one line: collector ids, epochs and event ids come from whoever could
 * write to the gateway, and a line break in one could print a line such as "PASS: …" of its own.
 */
export function oneLine(s: string): string {
  // eslint-disable-next-line no-control-regex
  return /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(s) ? JSON.stringify(s) : s;
}

function describe(r: EpochReport): string {
  const lines = [`collector ${oneLine(r.collectorId)} epoch ${oneLine(r.epoch)}: ${reportPasses(r) ? 'OK' : 'FAILED'}`];
  const span = r.held > 0 ? ` (seq ${r.firstSeq}-${r.lastSeq})` : '';
  lines.push(`  events held: ${r.held}${span}; highest seq reported by the collector: ${r.highestReported > 0n ? r.highestReported : 'none'}`);
  lines.push(`  ranges missing: ${r.missing.length === 0 ? 'none' : r.missing.map(formatRange).join(', ')}`);
  if (r.explained.length > 0) lines.push(`  ranges explained: ${r.explained.map((x) => `${formatRange(x)} (${x.by})`).join(', ')}`);
  lines.push(`  loss events: ${r.losses.length === 0 ? 'none' : r.losses.map((l) => `seq ${l.seq} names ${formatRange(l)} (${oneLine(l.reason)})`).join('; ')}`);
  lines.push(`  chain breaks: ${r.breaks.length === 0 ? 'none' : r.breaks.length}`);
  for (const b of r.breaks) lines.push(`    seq ${b.seq}${b.eventId ? ` event ${oneLine(b.eventId)}` : ''}: ${oneLine(b.problem)}`);
  if (r.unchecked > 0) lines.push(`  not checked: ${r.unchecked} keyed chain hashes (their key is not in --keys-dir)`);
  if (r.unsealed > 0) lines.push(`  unsealed rows: ${r.unsealed} (stored by a gateway without a seal key)`);
  return lines.join('\n');
}

function toJson(r: EpochReport): Record<string, unknown> {
  const range = (x: { from: bigint; to: bigint }): { from: string; to: string } => ({ from: String(x.from), to: String(x.to) });
  return {
    collector_id: r.collectorId,
    epoch: r.epoch,
    ok: reportPasses(r),
    held: r.held,
    first_seq: String(r.firstSeq),
    last_seq: String(r.lastSeq),
    highest_reported: String(r.highestReported),
    missing: r.missing.map(range),
    explained: r.explained.map((x) => ({ ...range(x), by: x.by })),
    loss_events: r.losses.map((l) => ({ seq: String(l.seq), ...range(l), reason: l.reason })),
    chain_breaks: r.breaks.map((b) => ({ seq: String(b.seq), event_id: b.eventId, problem: b.problem })),
    unchecked: r.unchecked,
    unsealed: r.unsealed,
  };
}

/** Runs `dbaudit verify`; returns the exit code. */
export async function runVerifyCommand(argv: string[], env: NodeJS.ProcessEnv, out: NodeJS.WritableStream, errOut: NodeJS.WritableStream = process.stderr): Promise<number> {
  let args: VerifyArgs;
  try {
    args = parseVerifyArgs(argv, env, Date.now());
    clientAuth(args.security);
  } catch (err) {
    await write(errOut, `dbaudit verify: ${err instanceof Error ? err.message : String(err)}\n\n${VERIFY_USAGE}`);
    return 2;
  }
  if (args.help) {
    await write(out, VERIFY_USAGE);
    return 0;
  }
  let reports: EpochReport[];
  try {
    reports = await verifyTrail(args.gateway, args.security, args.request, args.keys);
  } catch (err) {
    const text = err && typeof err === 'object' && 'code' in err ? describeFailure(args.gateway, err as grpc.ServiceError) : String(err);
    await write(errOut, `dbaudit verify: ${text}\n`);
    return 3;
  }
  const failed = reports.filter((r) => !reportPasses(r));
  // A collector asked for by name that has no trail at all is a finding (a typo, or a trail deleted whole), never a pass.
  const absent = args.request.collectorId !== '' && reports.length === 0;
  const events = reports.reduce((n, r) => n + r.held, 0);
  const gaps = reports.reduce((n, r) => n + r.missing.length, 0);
  const breaks = reports.reduce((n, r) => n + r.breaks.length, 0);
  const ok = failed.length === 0 && !absent;
  const verdict = ok ? 'PASS' : 'FAIL';
  if (args.json) {
    const lines = reports.map((r) => JSON.stringify(toJson(r)));
    lines.push(JSON.stringify({ summary: true, ok, ...(absent ? { problem: 'no trail for this collector' } : {}), gateway: args.gateway, epochs: reports.length, events, unexplained_gaps: gaps, chain_breaks: breaks, keys: args.keys?.size ?? 0, keyed: args.keys !== undefined }));
    await write(out, lines.join('\n') + '\n');
  } else {
    const text = reports.map(describe);
    if (absent) text.push(`collector ${oneLine(args.request.collectorId)}: no trail at this gateway (no epoch, no event)`);
    const c = args.keys?.counts();
    const keyNote = c ? `keys: ${c.bound} collector, ${c.fleet} fleet, ${c.seal} seal` : 'WITHOUT KEYS (--no-keys): damage and order checked, keyed hashes and seals not; an edit made with a key would pass';
    text.push(`${verdict}${args.keys ? '' : ' (without keys)'}: ${reports.length} collector epoch(s), ${events} events, ${gaps} unexplained gap(s), ${breaks} chain break(s) at ${args.gateway} (${keyNote})`);
    await write(out, text.join('\n') + '\n');
  }
  return ok ? 0 : 1;
}
