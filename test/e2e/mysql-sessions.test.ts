import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import mysql from 'mysql2/promise';
import { freePort, sharedMariadb, skipUnless, type MariaServer } from '../harness/index.js';
import { Cap } from '../../proxy/mysql/packets.js';
import * as B from '../../proxy/mysql/test-builders.js';
import { compareWithServerAudit } from './ground-truth-mysql.js';
import { brief, startStack, type Stack } from './stack.js';

/** A minimal MySQL client over a raw socket: enough to log in with mysql_native_password and send any bytes. */
class RawMysqlClient {
  readonly #sock: net.Socket;
  #buf = Buffer.alloc(0);
  #waiters: (() => void)[] = [];
  constructor(sock: net.Socket) {
    this.#sock = sock;
    sock.on('data', (c: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, c]);
      for (const w of this.#waiters.splice(0)) w();
    });
  }
  static async open(port: number): Promise<RawMysqlClient> {
    const sock = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
    return new RawMysqlClient(sock);
  }
  /** The next packet's payload. */
  async packet(): Promise<Buffer> {
    for (;;) {
      if (this.#buf.length >= 4) {
        const len = this.#buf[0]! | (this.#buf[1]! << 8) | (this.#buf[2]! << 16);
        if (this.#buf.length >= 4 + len) {
          const p = this.#buf.subarray(4, 4 + len);
          this.#buf = this.#buf.subarray(4 + len);
          return p;
        }
      }
      await new Promise<void>((r) => this.#waiters.push(r));
    }
  }
  /** Reads packets until an OK, EOF or ERR that ends a response; returns its first byte. */
  async response(): Promise<number> {
    let eofs = 0;
    for (;;) {
      const p = await this.packet();
      if (p[0] === 0x00 && eofs === 0) return 0;
      if (p[0] === 0xff) return 0xff;
      if (p[0] === 0xfe && p.length < 9 && ++eofs === 2) return 0xfe;
    }
  }
  /** One result: rows of a result set (-1 for an OK), its status flags, or the error number. */
  async result(deprecateEof: boolean): Promise<{ rows: number; status: number; error: number }> {
    const first = await this.packet();
    if (first[0] === 0xff) return { rows: 0, status: 0, error: first.readUInt16LE(1) };
    if (first[0] === 0x00) return { rows: -1, status: okStatus(first), error: 0 };
    for (let i = 0; i < first[0]!; i++) await this.packet();
    if (!deprecateEof) await this.packet();
    for (let rows = 0; ; rows++) {
      const p = await this.packet();
      if (p[0] === 0xff) return { rows, status: 0, error: p.readUInt16LE(1) };
      if (p[0] === 0xfe && p.length < 0xffffff) return { rows, status: deprecateEof ? okStatus(p) : p.readUInt16LE(3), error: 0 };
    }
  }
  async login(user: string, password: string, db: string, extraCaps = 0): Promise<void> {
    const g = await this.packet();
    const nul = g.indexOf(0, 1);
    const scramble = Buffer.concat([g.subarray(nul + 5, nul + 13), g.subarray(nul + 5 + 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10, nul + 5 + 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10 + 12)]);
    const sha1 = (b: Buffer | string): Buffer => createHash('sha1').update(b).digest();
    const h1 = sha1(password);
    const h3 = sha1(Buffer.concat([scramble, sha1(h1)]));
    const hr = B.handshakeResponse({ user, db, caps: (B.CLIENT_CAPS & ~0x200000) | extraCaps, attrs: { program_name: 'raw' } });
    const auth = Buffer.from(h1.map((b, i) => b ^ h3[i]!));
    const at = hr.indexOf(Buffer.from('01234567890123456789'));
    auth.copy(hr, at);
    this.send(hr);
    const ok = await this.packet();
    assert.equal(ok[0], 0, `login answered 0x${ok[0]!.toString(16)}: ${ok.toString('latin1')}`);
  }
  send(b: Buffer): void {
    this.#sock.write(b);
  }
  close(): void {
    this.#sock.destroy();
  }
}

/** Status flags of an OK packet (0x00 or the 0xFE that ends rows). */
function okStatus(p: Buffer): number {
  let at = 1;
  for (let i = 0; i < 2; i++) at += p[at]! < 0xfb ? 1 : p[at] === 0xfc ? 3 : p[at] === 0xfd ? 4 : 9;
  return p.readUInt16LE(at);
}

describe('MySQL sessions ending every way, refusals, and hostile bytes', { skip: skipUnless('server_audit') }, () => {
  let m: MariaServer;
  let stack: Stack;

  before(async () => {
    m = await sharedMariadb();
    stack = await startStack(`${m.host}:${m.port}`, { 'collector.protocol': 'mysql', 'audit.redact': 'none' });
  });
  after(async () => {
    await stack?.close();
  });

  const ended = (db: string, n = 1) => stack.waitForEvents((e) => e.filter((x) => x.kind === 'session_end').length >= n, { database: db });

  test('an unknown command: one anomaly, the bytes still reach the server (its ERR comes back), the session goes on', async (t) => {
    const db = await m.createDatabase('raw');
    const c = await RawMysqlClient.open(stack.proxyPort);
    t.after(() => c.close());
    await c.login(m.tcpUser.name, m.tcpUser.password, db);
    c.send(B.query('SELECT 1'));
    assert.equal(await c.response(), 0xfe);
    c.send(B.command(0x99, 'xyz'));
    const err = await c.packet();
    assert.equal(err[0], 0xff);
    assert.equal(err.readUInt16LE(1), 1047, 'the server answered: Unknown command');
    c.send(B.query('SELECT 2'));
    assert.equal(await c.response(), 0xfe, 'bytes keep flowing after the anomaly');
    c.send(B.quit());
    const evs = await ended(db);
    assert.deepEqual(evs.map(brief).map((e) => [e.kind, e.statement ?? e.reason ?? '']), [
      ['session_start', ''],
      ['login_success', ''],
      ['statement', 'SELECT 1'],
      ['anomaly', 'unknown_command'],
      ['session_end', 'server_disconnect'], // decoding stopped: COM_QUIT went by unseen, the server then closed
    ]);
    assert.equal(evs[3]!.detail, 'command 0x99');
  });

  test('CLIENT_DEPRECATE_EOF on (no real client here asks for it): result sets end with an OK, several results in one query', async (t) => {
    const db = await m.createDatabase('deof');
    const c = await RawMysqlClient.open(stack.proxyPort);
    t.after(() => c.close());
    await c.login(m.tcpUser.name, m.tcpUser.password, db, Cap.DeprecateEof);
    c.send(B.query('SELECT seq FROM seq_1_to_3'));
    const r0 = await c.result(true);
    assert.deepEqual([r0.rows, r0.error, r0.status & 8], [3, 0, 0]);
    c.send(B.query('SELECT 1; SELECT seq FROM seq_1_to_5; DO 1'));
    const r1 = await c.result(true);
    const r2 = await c.result(true);
    const r3 = await c.result(true);
    assert.deepEqual([r1.rows, r1.status & 8, r2.rows, r2.status & 8, r3.rows, r3.status & 8], [1, 8, 5, 8, -1, 0]);
    c.send(B.query('SELECT * FROM nope'));
    assert.equal((await c.result(true)).error, 1146);
    c.send(B.quit());
    const evs = await ended(db);
    assert.deepEqual(evs.filter((e) => e.kind === 'statement').map((e) => [e.statement, Number(e.rows), e.errorCode]), [
      ['SELECT seq FROM seq_1_to_3', 3, ''],
      ['SELECT 1', 1, ''],
      ['SELECT seq FROM seq_1_to_5', 5, ''],
      ['DO 1', 0, ''],
      ['SELECT * FROM nope', 0, '1146'],
    ]);
    assert.equal(evs.at(-1)!.reason, 'client_terminate');
    assert.equal(evs.filter((e) => e.kind === 'anomaly').length, 0);
  });

  test("sql_mode NO_BACKSLASH_ESCAPES: redaction reads strings as the server does (the status flag tells the proxy)", async () => {
    const lit = await startStack(`${m.host}:${m.port}`, { 'collector.protocol': 'mysql' });
    try {
      const db = await m.createDatabase('nbe');
      const c = await mysql.createConnection({ host: '127.0.0.1', port: lit.proxyPort, user: m.tcpUser.name, password: m.tcpUser.password, database: db });
      await c.query("SELECT 'C:\\\\dir', 'x'"); // default sql_mode: the backslash escapes
      await c.query("SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES'");
      const [rows] = await c.query("SELECT 'C:\\' AS a, 'secret' AS b");
      assert.deepEqual(rows, [{ a: 'C:\\', b: 'secret' }]);
      await c.end();
      const evs = await lit.waitForEvents((e) => e.some((x) => x.kind === 'session_end'), { database: db });
      assert.deepEqual(evs.filter((e) => e.kind === 'statement').map((e) => e.statement), ['SELECT ?, ?', 'SET SESSION sql_mode = ?', 'SELECT ? AS a, ? AS b']);
    } finally {
      await lit.close();
    }
  });

  test('client vanishes mid-statement: the server still finishes it, as without a proxy, and the session ends client_disconnect', async () => {
    const db = await m.createDatabase('vanish');
    const c = await mysql.createConnection({ host: '127.0.0.1', port: stack.proxyPort, user: m.tcpUser.name, password: m.tcpUser.password, database: db });
    c.on('error', () => undefined);
    void c.query('SELECT SLEEP(2)').catch(() => undefined); // never answered: the client is gone
    await new Promise((r) => setTimeout(r, 200));
    c.destroy();
    const evs = await ended(db);
    assert.deepEqual(evs.map(brief).map((e) => [e.kind, e.statement ?? '', e.reason ?? '']), [
      ['session_start', '', ''],
      ['login_success', '', ''],
      ['statement', 'SELECT SLEEP(2)', ''], // MariaDB finishes the statement before it notices the client is gone
      ['session_end', '', 'client_disconnect'],
    ]);
  });

  test('killed by the server: session_end server_disconnect', async () => {
    const db = await m.createDatabase('killed');
    const c = await mysql.createConnection({ host: '127.0.0.1', port: stack.proxyPort, user: m.tcpUser.name, password: m.tcpUser.password, database: db });
    c.on('error', () => undefined);
    await m.mysql(`KILL CONNECTION ${c.threadId}`);
    await assert.rejects(c.query('SELECT 1'));
    const evs = await ended(db);
    assert.equal(evs.at(-1)!.reason, 'server_disconnect');
    assert.equal(evs.filter((e) => e.kind === 'anomaly').length, 0);
  });

  test('database down: the client gets ERR 2013 (08S01) from the proxy with sequence 0, and the attempt is audited', async () => {
    const down = await startStack(`127.0.0.1:${await freePort()}`, { 'collector.protocol': 'mysql' });
    try {
      await assert.rejects(mysql.createConnection({ host: '127.0.0.1', port: down.proxyPort, user: 'x', password: 'y' }), (err: { errno?: number; sqlState?: string; message: string }) => {
        assert.equal(err.errno, 2013);
        assert.equal(err.sqlState, '08S01');
        assert.match(err.message, /^dbaudit: the database is not reachable/);
        return true;
      });
      const evs = await down.waitForEvents((e) => e.some((x) => x.kind === 'session_end'));
      // Audited as any session: session_start first, even though nothing was decoded.
      assert.deepEqual(evs.map((e) => [e.kind, e.reason]), [['session_start', ''], ['session_end', 'upstream_error']]);
    } finally {
      await down.close();
    }
  });

  test('too many connections: ERR 1040 (08004) before the greeting', async () => {
    const one = await startStack(`${m.host}:${m.port}`, { 'collector.protocol': 'mysql', 'collector.limits.max_connections': 1 });
    try {
      const a = await mysql.createConnection({ host: '127.0.0.1', port: one.proxyPort, user: m.tcpUser.name, password: m.tcpUser.password });
      await assert.rejects(mysql.createConnection({ host: '127.0.0.1', port: one.proxyPort, user: m.tcpUser.name, password: m.tcpUser.password }), (err: { errno?: number; sqlState?: string }) => {
        assert.equal(err.errno, 1040);
        assert.equal(err.sqlState, '08004');
        return true;
      });
      await a.end();
    } finally {
      await one.close();
    }
  });

  test('a wrong password: login_failure with 1045 / 28000, as the server said', async () => {
    const db = await m.createDatabase('badpw');
    await assert.rejects(mysql.createConnection({ host: '127.0.0.1', port: stack.proxyPort, user: m.tcpUser.name, password: 'wrong', database: db }), /Access denied/);
    const evs = await ended(db);
    assert.deepEqual(evs.map(brief), [
      { kind: 'session_start', user: m.tcpUser.name, database: db },
      { kind: 'login_failure', user: m.tcpUser.name, database: db, error: '1045' },
      { kind: 'session_end', user: m.tcpUser.name, database: db, reason: 'server_disconnect' },
    ]);
    assert.equal(evs[1]!.sqlstate, '28000');
    // server_audit logged the same failed connection, under the connection id the greeting gave.
    const id = Number(/connection_id=(\d+)/.exec(evs[1]!.detail)![1]);
    const logged = await m.waitAuditLog((e) => e.some((x) => x.connectionId === id && x.operation === 'FAILED_CONNECT'));
    const report = compareWithServerAudit(logged.filter((e) => e.connectionId === id), evs, [m.tcpUser.name]);
    assert.deepEqual(report.connections, { logged: 1, stored: 1, missing: [], extra: [] });
  });
});
