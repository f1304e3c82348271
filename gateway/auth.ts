import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type { Config } from '../lib/config.js';
import { AuditError, ErrorCode } from '../lib/errors.js';
import type { GatewayMetrics } from '../lib/metrics.js';

/**
 * Who may call the gateway. Every handler asks its guard first: a guard
 * reads the call's metadata (and, with mutual TLS, its peer certificate)
 * and either admits the caller, naming it when it can (recorded as
 * delivered_by), or refuses it with a status. With no gateway.token_file
 * every caller is admitted; with one, callers must send
 * `authorization: Bearer <token>`.
 */

/** The parts of a grpc-js server call a guard may look at. */
export interface GuardedCall {
  readonly metadata: grpc.Metadata;
  getPeer(): string;
  getAuthContext(): { sslPeerCertificate?: PeerCertificate };
}

export type GuardResult = { ok: true; identity?: string } | { ok: false; status: grpc.StatusObject };

export type CallGuard = (call: GuardedCall) => GuardResult;

/** Admits every caller without naming it. */
export const allowAll: CallGuard = () => ({ ok: true });

function refuse(details: string): GuardResult {
  return { ok: false, status: { code: grpc.status.UNAUTHENTICATED, details, metadata: new grpc.Metadata() } };
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Admits callers presenting `token` as a bearer token; counts and refuses the rest. */
export function tokenGuard(token: string, metrics: GatewayMetrics): CallGuard {
  const want = digest(token);
  return (call) => {
    const header = call.metadata.get('authorization')[0];
    const m = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!m) {
      metrics.authFailures.inc();
      return refuse('missing bearer token (authorization: Bearer <token>)');
    }
    if (!timingSafeEqual(digest(m[1]), want)) {
      metrics.authFailures.inc();
      return refuse('invalid bearer token');
    }
    return { ok: true };
  };
}

/** The common name of a verified client certificate (mutual TLS), if any. */
export function peerCommonName(call: GuardedCall): string | undefined {
  const cn = call.getAuthContext().sslPeerCertificate?.subject?.CN;
  const name = Array.isArray(cn) ? cn[0] : cn;
  return name || undefined;
}

/** Names callers by their client certificate when there is one (mutual TLS). */
function withPeerIdentity(guard: CallGuard): CallGuard {
  return (call) => {
    const result = guard(call);
    if (!result.ok || result.identity) return result;
    const identity = peerCommonName(call);
    return identity ? { ok: true, identity } : result;
  };
}

/**
 * The guard the config asks for: a bearer token when gateway.token_file is
 * set (read once, at start); with mutual TLS, the client certificate's
 * common name becomes the caller's identity.
 */
export function guardFromConfig(config: Config, metrics: GatewayMetrics): CallGuard {
  const base = tokenGuardFromFile(config.gateway.token_file, metrics);
  return config.gateway.tls.client_ca_file ? withPeerIdentity(base) : base;
}

function tokenGuardFromFile(file: string | undefined, metrics: GatewayMetrics): CallGuard {
  if (!file) return allowAll;
  let token: string;
  try {
    token = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw AuditError.from(err, ErrorCode.Config, `config gateway.token_file: cannot read ${JSON.stringify(file)}`);
  }
  if (!/^\S{16,}$/.test(token)) {
    throw new AuditError(ErrorCode.Config, `config gateway.token_file: the token in ${JSON.stringify(file)} must be at least 16 characters without spaces`);
  }
  return tokenGuard(token, metrics);
}
