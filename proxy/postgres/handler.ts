import type { ProtocolHandler } from '../protocol-handler.js';
import { negotiatePostgres, postgresError } from './negotiate.js';
import { createPostgresTracker } from './tracker.js';

/** SQLSTATEs the proxy itself answers with. */
const SQLSTATE = {
  unavailable: '08006', // connection_failure
  too_many_connections: '53300', // too_many_connections
  timeout: '57P05', // idle_session_timeout (also used for startup)
  cache_unavailable: '58030', // io_error: the audit record cannot be written
  protocol: '08P01', // protocol_violation
} as const;

export const postgresHandler: ProtocolHandler = {
  name: 'postgres',
  negotiate: negotiatePostgres,
  createTracker: createPostgresTracker,
  fatalError: (kind, message) => postgresError(SQLSTATE[kind], message),
};
