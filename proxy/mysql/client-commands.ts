import type { Clock } from '../../lib/clock.js';
import type { WireReader } from '../wire/reader.js';
import { parseChangeUser } from './handshake.js';
import { Com, u16, u32 } from './packets.js';
import { Command, Resp } from './pending.js';

/**
 * A client command as what it asks of the server. Returns the command to
 * queue (its response expected), `null` for a command that gets no
 * response, or the command's name when its payload is malformed. `r` is
 * positioned after the command byte. Execute, change-user, long data and
 * close need the session's state and are parsed by the flow.
 */
export function simpleCommand(com: number, r: WireReader, clock: Clock): Command | string | null {
  const c = new Command(com, clock.now(), clock.monoMicros());
  switch (com) {
    case Com.Query:
    case Com.StmtPrepare: {
      const n = r.remaining;
      const at = r.skip(n);
      c.sql = r.buffer.toString('utf8', at, at + n);
      c.sqlBytes = n;
      return c;
    }
    case Com.InitDb: {
      c.database = rest(r);
      c.sql = `USE ${quoteIdent(c.database)}`;
      c.sqlBytes = -1;
      return c;
    }
    case Com.CreateDb:
    case Com.DropDb: {
      c.database = rest(r);
      c.sql = `${com === Com.CreateDb ? 'CREATE' : 'DROP'} DATABASE ${quoteIdent(c.database)}`;
      c.sqlBytes = -1;
      return c;
    }
    case Com.ProcessKill: {
      const id = u32(r);
      if (!r.ok) return 'COM_PROCESS_KILL';
      c.sql = `KILL ${id}`;
      c.sqlBytes = -1;
      return c;
    }
    case Com.Shutdown:
      c.sql = 'SHUTDOWN';
      c.sqlBytes = -1;
      return c;
    case Com.SetOption: {
      const opt = u16(r);
      if (!r.ok || opt > 1) return 'COM_SET_OPTION';
      c.left = opt; // 0: multi-statements on, 1: off
      return c;
    }
    case Com.StmtReset:
    case Com.StmtFetch: {
      c.stmtId = u32(r);
      if (!r.ok) return com === Com.StmtReset ? 'COM_STMT_RESET' : 'COM_STMT_FETCH';
      if (com === Com.StmtFetch) c.state = Resp.Rows;
      return c;
    }
    case Com.FieldList:
      c.state = Resp.FieldList;
      return c;
    case Com.Statistics:
      c.state = Resp.AnyOne;
      return c;
    case Com.Ping:
    case Com.Refresh:
    case Com.Debug:
    case Com.ResetConnection:
    case Com.ProcessInfo:
      return c;
    default:
      return null;
  }
}

/** COM_CHANGE_USER (the whole payload at `buf[start, end)`): the user and database asked for; its answer is an auth exchange. */
export function changeUserCommand(buf: Buffer, start: number, end: number, caps: number, clock: Clock): Command | null {
  const m = parseChangeUser(buf, start + 1, end, caps);
  if (m === null) return null;
  const c = new Command(Com.ChangeUser, clock.now(), clock.monoMicros());
  c.user = m.user;
  c.database = m.database;
  c.plugin = m.authPlugin;
  c.state = Resp.Auth;
  return c;
}

function rest(r: WireReader): string {
  const n = r.remaining;
  const at = r.skip(n);
  return r.buffer.toString('utf8', at, at + n);
}

/** A backtick-quoted identifier (for the statement text of COM_INIT_DB and friends). */
export function quoteIdent(name: string): string {
  return '`' + name.replace(/`/g, '``') + '`';
}

/** The database named by `USE x` (the first word after USE, unquoted), or null if `sql` is not a USE. */
export function useTarget(sql: string): string | null {
  const m = /^\s*(?:\/\*.*?\*\/\s*)*use\s+(`(?:[^`]|``)+`|[^\s;`]+)\s*;?\s*$/is.exec(sql);
  if (m === null) return null;
  const id = m[1]!;
  return id.startsWith('`') ? id.slice(1, -1).replace(/``/g, '`') : id;
}
