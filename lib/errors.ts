/**
 * The one error class of the project. Callers branch on `code`, never on
 * the message. Messages never carry secrets, SQL text or parameters.
 */
export const ErrorCode = {
  Config: 'DBA_CONFIG',
  Protocol: 'DBA_PROTOCOL',
  Upstream: 'DBA_UPSTREAM',
  Cache: 'DBA_CACHE',
  CacheCorrupt: 'DBA_CACHE_CORRUPT',
  CacheFull: 'DBA_CACHE_FULL',
  Gateway: 'DBA_GATEWAY',
  InvalidRequest: 'DBA_INVALID_REQUEST',
  Store: 'DBA_STORE',
  Limit: 'DBA_LIMIT',
  Closed: 'DBA_CLOSED',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export class AuditError extends Error {
  readonly code: ErrorCode;
  override readonly name = 'AuditError';

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  /** Normalises anything thrown into an AuditError, keeping the original as cause. */
  static from(err: unknown, code: ErrorCode, context?: string): AuditError {
    if (err instanceof AuditError) return err;
    const text = err instanceof Error ? err.message : String(err);
    return new AuditError(code, context ? `${context}: ${text}` : text, { cause: err });
  }
}

export function isAuditError(err: unknown, code?: ErrorCode): err is AuditError {
  return err instanceof AuditError && (code === undefined || err.code === code);
}
