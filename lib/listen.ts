import { AuditError, ErrorCode } from './errors.js';

/** What each way a listening socket fails to open means, for the one line the operator reads. */
const REASONS: Readonly<Record<string, string>> = {
  EADDRINUSE: 'is already in use (another process listens there)',
  EACCES: 'cannot be opened: permission denied (ports below 1024 need privileges)',
  EADDRNOTAVAIL: 'is not an address of this host',
  EAFNOSUPPORT: 'uses an address family this host does not support',
  ENOTFOUND: 'names a host that does not resolve',
  EAI_AGAIN: 'names a host that cannot be resolved now (DNS unavailable)',
  EAI_NONAME: 'names a host that does not resolve',
};

/**
 * A listening socket that could not be opened, as one clear line that
 * names the config key and the address: `config collector.listen:
 * 127.0.0.1:5432 is already in use (…)`. `err` is Node's system error, or
 * grpc-js's bind error, which keeps no code and carries Node's in its text.
 */
export function listenError(err: unknown, key: string, address: string): AuditError {
  const code = systemCode(err);
  const reason = code !== undefined ? REASONS[code] : undefined;
  const text = err instanceof Error ? err.message : String(err);
  const message = reason !== undefined ? `${address} ${reason}` : `cannot listen on ${address}: ${text}`;
  return new AuditError(ErrorCode.Config, `config ${key}: ${message}`, { cause: err });
}

function systemCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  const text = err instanceof Error ? err.message : '';
  if (/^Name resolution failed/.test(text)) return 'ENOTFOUND';
  return /\b(EADDRINUSE|EACCES|EADDRNOTAVAIL|EAFNOSUPPORT)\b/.exec(text)?.[1];
}
