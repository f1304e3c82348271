import * as grpc from '@grpc/grpc-js';

/**
 * Who may call the gateway. Every handler asks its guard first; today the
 * only guard admits everyone (insecure transport, no token). Bearer tokens
 * (gateway.token_file) and mutual-TLS peer identities plug in here: a
 * guard reads the call's metadata and auth context and either admits the
 * caller, naming it (recorded as delivered_by), or refuses it with a status.
 */

/** The parts of a grpc-js server call a guard may look at. */
export interface GuardedCall {
  readonly metadata: grpc.Metadata;
  getPeer(): string;
}

export type GuardResult = { ok: true; identity?: string } | { ok: false; status: grpc.StatusObject };

export type CallGuard = (call: GuardedCall) => GuardResult;

/** Admits every caller without naming it. */
export const allowAll: CallGuard = () => ({ ok: true });
