import type { ProtocolHandler } from '../protocol-handler.js';
import { negotiateMysql } from './negotiate.js';
import { errPacket } from './packets.js';
import { createMysqlTracker } from './tracker.js';

/**
 * Errors the proxy itself answers with: the server error number and
 * SQLSTATE a MySQL client expects for that situation.
 */
const ERRORS = {
  unavailable: [2013, '08S01'], // CR_SERVER_LOST: the database cannot be reached
  too_many_connections: [1040, '08004'], // ER_CON_COUNT_ERROR
  timeout: [1159, '08S01'], // ER_NET_READ_INTERRUPTED: startup or idle timeout
  cache_unavailable: [1026, 'HY000'], // ER_ERROR_ON_WRITE: the audit record cannot be written
  protocol: [1043, '08S01'], // ER_HANDSHAKE_ERROR
} as const;

export const mysqlHandler: ProtocolHandler = {
  name: 'mysql',
  negotiate: negotiateMysql,
  createTracker: createMysqlTracker,
  /**
   * An ERR packet. Sequence id: 0 — before the greeting the proxy speaks
   * first, as a server refusing a connection does (too many connections,
   * database unreachable, startup timeout); except for a cache failure,
   * which answers a command the client sent (its response starts at 1);
   * or the `seq` the tracker gives (the database lost mid-handshake or
   * mid-command).
   */
  fatalError: (kind, message, seq) => {
    const [code, sqlstate] = ERRORS[kind];
    return errPacket(seq ?? (kind === 'cache_unavailable' ? 1 : 0), code, sqlstate, `dbaudit: ${message}`);
  },
};
