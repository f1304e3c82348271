import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import net from 'node:net';
import { describe, test } from 'node:test';
import { serialize } from 'pg-protocol';
import { DEFAULT_MYSQL_LIMITS, type MysqlTracker } from '../../proxy/mysql/tracker.js';
import { DEFAULT_TRACKER_LIMITS, type PostgresTracker } from '../../proxy/postgres/tracker.js';
import { sharedMariadb, sharedPostgres, skipUnless } from '../harness/index.js';
import { startStack, type Stack } from '../e2e/stack.js';

/** Counts the server's messages by type as they arrive, split anywhere; resolves `ready` at each ReadyForQuery. */
class MessageCounter {
  readonly counts = new Map<number, number>();
  #buf = Buffer.alloc(0);
  #waiters: (() => void)[] = [];

  push(b: Buffer): void {
    let buf = this.#buf.length > 0 ? Buffer.concat([this.#buf, b]) : b;
    let at = 0;
    while (buf.length - at >= 5) {
      const len = buf.readInt32BE(at + 1);
      if (buf.length - at < 1 + len) break;
      const type = buf[at];
      this.counts.set(type, (this.counts.get(type) ?? 0) + 1);
      at += 1 + len;
      if (type === 0x5a /* Z */) this.#waiters.shift()?.();
    }
    buf = buf.subarray(at);
    this.#buf = Buffer.from(buf);
  }

  count(type: string): number {
    return this.counts.get(type.charCodeAt(0)) ?? 0;
  }

  /** The next ReadyForQuery. */
  ready(): Promise<void> {
    return new Promise((r) => this.#waiters.push(r));
  }
}

/** The session's tracker, while the session is open. */
function trackerOf<T>(stack: Stack): T {
  const conns = [...stack.collector.listener.connections];
  assert.equal(conns.length, 1);
  return conns[0].tracker as T;
}

/** MySQL packets as they arrive, split anywhere: `next()` resolves with the next payload; `oks` counts OK packets once logged in. */
class MysqlPackets {
  oks = 0;
  counting = false;
  #buf = Buffer.alloc(0);
  #queue: Buffer[] = [];
  #waiters: ((p: Buffer) => void)[] = [];
  #okWaiters: [number, () => void][] = [];

  push(b: Buffer): void {
    let buf = this.#buf.length > 0 ? Buffer.concat([this.#buf, b]) : b;
    let at = 0;
    while (buf.length - at >= 4) {
      const len = buf.readUIntLE(at, 3);
      if (buf.length - at < 4 + len) break;
      const payload = buf.subarray(at + 4, at + 4 + len);
      at += 4 + len;
      if (this.counting) {
        if (payload[0] === 0x00) this.oks++;
        while (this.#okWaiters.length > 0 && this.oks >= this.#okWaiters[0][0]) this.#okWaiters.shift()![1]();
      } else {
        const w = this.#waiters.shift();
        if (w) w(Buffer.from(payload));
        else this.#queue.push(Buffer.from(payload));
      }
    }
    buf = buf.subarray(at);
    this.#buf = Buffer.from(buf);
  }

  next(): Promise<Buffer> {
    const p = this.#queue.shift();
    return p ? Promise.resolve(p) : new Promise((r) => this.#waiters.push(r));
  }

  /** Resolves once `n` OK packets were counted. */
  untilOks(n: number): Promise<void> {
    return this.oks >= n ? Promise.resolve() : new Promise((r) => this.#okWaiters.push([n, r]));
  }
}

const mysqlPacket = (seq: number, payload: Buffer): Buffer => {
  const h = Buffer.alloc(4);
  h.writeUIntLE(payload.length, 0, 3);
  h[3] = seq;
  return Buffer.concat([h, payload]);
};
const comQuery = (sql: string): Buffer => mysqlPacket(0, Buffer.concat([Buffer.from([0x03]), Buffer.from(sql)]));
const sha1 = (b: Buffer): Buffer => createHash('sha1').update(b).digest();
function nativePassword(password: string, scramble: Buffer): Buffer {
  const h1 = sha1(Buffer.from(password));
  const h3 = sha1(Buffer.concat([scramble, sha1(h1)]));
  return Buffer.from(h1.map((x, i) => x ^ h3[i]));
}

describe('pipelining', { skip: skipUnless('postgres') }, () => {
  test('pending_overflow_on_large_pipeline: 300,000 Bind/Execute and one Sync are audited in full; the proxy pauses the client instead of overflowing', async (t) => {
    const pgServer = await sharedPostgres({ pgaudit: true, passwordAuth: true });
    const stack = await startStack(`${pgServer.host}:${pgServer.port}`);
    try {
      const db = await pgServer.createDatabase('pipeline');
      const n = 300_000; // three times the tracker's bound of 100,000 operations waiting
      assert.ok(n > 2 * DEFAULT_TRACKER_LIMITS.pendingOps);
      const sock = net.connect({ host: stack.proxyHost, port: stack.proxyPort });
      await new Promise((r) => sock.once('connect', r));
      // The client reads its results as they come (libpq pipeline mode, pgx batches read concurrently).
      const msgs = new MessageCounter();
      sock.on('data', (b: Buffer) => msgs.push(b));
      let ready = msgs.ready();
      sock.write(serialize.startup({ user: 'postgres', database: db, application_name: 'pipeline' }));
      await ready;
      const tracker = trackerOf<PostgresTracker>(stack);

      ready = msgs.ready();
      sock.write(serialize.parse({ name: 's1', text: 'select $1::int as v', types: [] }));
      const batch = 1000;
      for (let i = 0; i < n; i += batch) {
        const parts: Buffer[] = [];
        for (let j = i; j < i + batch; j++) parts.push(serialize.bind({ statement: 's1', values: [String(j)] }), serialize.execute());
        if (!sock.write(Buffer.concat(parts))) await new Promise((r) => sock.once('drain', r));
      }
      sock.write(serialize.sync());
      await ready;
      assert.equal(msgs.count('C'), n, 'every Execute completed');
      assert.equal(msgs.count('D'), n);
      assert.equal(msgs.count('E'), 0);

      // Still audited after the pipeline.
      ready = msgs.ready();
      sock.write(serialize.query('select 4242 as after_pipeline'));
      await ready;
      const peak = tracker.peakPendingOps;
      assert.equal(tracker.pendingOps, 0);
      assert.equal(tracker.decoding, true);
      sock.end(serialize.end());

      const evs = await stack.waitForEvents((e) => e.some((x) => x.kind === 'session_end'), { database: db, kind: 'session_end' }, 120_000);
      assert.equal(evs.length, 1);
      const session = evs[0].sessionId;
      assert.equal(evs[0].reason, 'client_terminate');
      assert.deepEqual(await stack.events({ kind: 'anomaly' }), []);
      const after = await stack.events({ sessionId: session, text: 'after_pipeline' });
      assert.equal(after.length, 1);
      assert.equal(after[0].kind, 'statement');
      assert.equal(after[0].rows, 1n);
      // Exactly: session_start, login_success, one statement per Execute, the one after, session_end (this stack audits nothing else).
      assert.equal(await stack.gateway.store.count(), 2 + n + 1 + 1);
      for (const e of await stack.events({ sessionId: session, kind: 'statement', limit: 100 })) assert.match(e.statement, /^select (\$1::int as v|\? as after_pipeline|4242 as after_pipeline)$/);

      // Bounded: the client was paused above the high-water mark; one 64 KiB read holds at most 13,108 five-byte messages.
      t.diagnostic(`peak operations waiting in the proxy: ${peak} (pause above ${DEFAULT_TRACKER_LIMITS.pendingOpsHigh}, bound ${DEFAULT_TRACKER_LIMITS.pendingOps})`);
      assert.ok(peak <= DEFAULT_TRACKER_LIMITS.pendingOpsHigh + Math.ceil(65536 / 5), `peak ${peak}`);
    } finally {
      await stack.close();
    }
  });
});

describe('pipelining: COPY through the extended protocol', { skip: skipUnless('postgres') }, () => {
  test('extended_copy_sync_out_of_sync: libpq sends a Sync with the COPY command and another after CopyDone; PostgreSQL ignores the first and the session stays audited', async () => {
    const pgServer = await sharedPostgres({ pgaudit: true, passwordAuth: true });
    const stack = await startStack(`${pgServer.host}:${pgServer.port}`);
    try {
      const db = await pgServer.createDatabase('extcopy');
      await pgServer.psql('create table t (a int)', { db });
      const sock = net.connect({ host: stack.proxyHost, port: stack.proxyPort });
      await new Promise((r) => sock.once('connect', r));
      const msgs = new MessageCounter();
      sock.on('data', (b: Buffer) => msgs.push(b));
      let ready = msgs.ready();
      sock.write(serialize.startup({ user: 'postgres', database: db, application_name: 'extcopy' }));
      await ready;
      // PQexecParams: Parse/Bind/Describe/Execute/Sync; PQputCopyData; PQputCopyEnd: CopyDone and Sync.
      ready = msgs.ready();
      sock.write(Buffer.concat([serialize.parse({ text: 'copy t from stdin' }), serialize.bind({}), serialize.describe({ type: 'P' }), serialize.execute({}), serialize.sync()]));
      while (msgs.count('G') === 0) await new Promise((r) => sock.once('data', r));
      sock.write(Buffer.concat([serialize.copyData(Buffer.from('1\n2\n')), serialize.copyDone(), serialize.sync()]));
      await ready;
      assert.equal(msgs.count('Z'), 2, 'one ReadyForQuery for the two Syncs');
      ready = msgs.ready();
      sock.write(serialize.query('select 1 as after_copy'));
      await ready;
      sock.end(serialize.end());
      const evs = await stack.waitForEvents((e) => e.some((x) => x.kind === 'session_end'), { database: db });
      assert.deepEqual(
        evs.map((e) => [e.kind, e.kind === 'statement' ? e.statement : e.reason, e.kind === 'statement' ? Number(e.rows) : 0]),
        [
          ['session_start', '', 0],
          ['login_success', '', 0],
          ['statement', 'copy t from stdin', 2],
          ['statement', 'select ? as after_copy', 1],
          ['session_end', 'client_terminate', 0],
        ],
      );
    } finally {
      await stack.close();
    }
  });
});

describe('pipelining, MySQL', { skip: skipUnless('mariadb') }, () => {
  test('pending_overflow_on_back_to_back_commands: 120,000 COM_QUERY written without waiting are audited in full; the proxy pauses the client', async (t) => {
    const maria = await sharedMariadb();
    const stack = await startStack(`${maria.host}:${maria.port}`, { 'collector.protocol': 'mysql' });
    try {
      const db = await maria.createDatabase('pipeline');
      const n = 120_000; // more than the tracker's bound of 100,000 commands waiting
      assert.ok(n > DEFAULT_MYSQL_LIMITS.pendingOps);
      const sock = net.connect({ host: stack.proxyHost, port: stack.proxyPort });
      const packets = new MysqlPackets();
      sock.on('data', (b: Buffer) => packets.push(b));
      // Login with mysql_native_password, by hand: no driver writes commands back to back.
      const greeting = await packets.next();
      const v = greeting.indexOf(0, 1);
      const authLen = greeting[v + 1 + 4 + 8 + 1 + 2 + 1 + 2 + 2];
      const rest = greeting.subarray(v + 1 + 4 + 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10);
      const scramble = Buffer.concat([greeting.subarray(v + 5, v + 13), rest.subarray(0, Math.max(13, authLen - 8) - 1)]);
      const caps = 0x1 | 0x8 | 0x200 | 0x2000 | 0x8000 | 0x80000; // LONG_PASSWORD CONNECT_WITH_DB PROTOCOL_41 TRANSACTIONS SECURE_CONNECTION PLUGIN_AUTH
      const head = Buffer.alloc(32);
      head.writeUInt32LE(caps, 0);
      head.writeUInt32LE(1 << 24, 4);
      head[8] = 33;
      const token = nativePassword(maria.tcpUser.password, scramble);
      sock.write(mysqlPacket(1, Buffer.concat([head, Buffer.from(`${maria.tcpUser.name}\0`), Buffer.from([token.length]), token, Buffer.from(`${db}\0mysql_native_password\0`)])));
      const answer = await packets.next();
      assert.equal(answer[0], 0x00, `login: ${answer.toString('latin1')}`);
      const tracker = trackerOf<MysqlTracker>(stack);

      packets.counting = true;
      const one = comQuery('DO 1');
      const batch = 1000;
      const chunk = Buffer.concat(Array.from({ length: batch }, () => one));
      for (let i = 0; i < n; i += batch) {
        if (!sock.write(chunk)) await new Promise((r) => sock.once('drain', r));
      }
      await packets.untilOks(n);
      sock.write(comQuery('SET @after_pipeline = 1'));
      await packets.untilOks(n + 1);
      assert.equal(packets.oks, n + 1, 'every command answered OK');
      const peak = tracker.peakPendingOps;
      assert.equal(tracker.pendingOps, 0);
      assert.equal(tracker.decoding, true);
      sock.end(mysqlPacket(0, Buffer.from([0x01])));

      const evs = await stack.waitForEvents((e) => e.some((x) => x.kind === 'session_end'), { database: db, kind: 'session_end' }, 120_000);
      assert.equal(evs.length, 1);
      const session = evs[0].sessionId;
      assert.deepEqual(await stack.events({ kind: 'anomaly' }), []);
      const after = await stack.events({ sessionId: session, text: 'after_pipeline' });
      assert.equal(after.length, 1);
      assert.equal(after[0].kind, 'statement');
      // Exactly: session_start, login_success, one statement per command, the one after, session_end.
      assert.equal(await stack.gateway.store.count(), 2 + n + 1 + 1);
      for (const e of await stack.events({ sessionId: session, kind: 'statement', limit: 100 })) assert.match(e.statement, /^(DO \?|DO 1|SET @after_pipeline = (\?|1))$/);

      t.diagnostic(`peak commands waiting in the proxy: ${peak} (pause above ${DEFAULT_MYSQL_LIMITS.pendingOpsHigh}, bound ${DEFAULT_MYSQL_LIMITS.pendingOps})`);
      assert.ok(peak <= DEFAULT_MYSQL_LIMITS.pendingOpsHigh + Math.ceil(65536 / 5), `peak ${peak}`);
    } finally {
      await stack.close();
    }
  });
});
