import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { Writable } from 'node:stream';
import { ManualClock } from '../lib/clock.js';
import { startGateway, type GatewayHandle } from './server.js';
import { runEventsCommand } from './events-command.js';
import { T0, TestStream, batchOf, gatewayConfig, makeTestEvent, tempDir } from './testing.js';

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
  get lines(): string[] {
    return this.text.split('\n').filter((l) => l !== '');
  }
}

async function run(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; out: string[]; err: string }> {
  const out = new Capture();
  const err = new Capture();
  const code = await runEventsCommand(argv, env, out, err);
  return { code, out: out.lines, err: err.text };
}

const S1 = '0195f0a0-0000-7000-8000-0000000a11ce';
const S2 = '0195f0a0-0000-7000-8000-000000000b0b';
const RECEIVED = Date.UTC(2026, 2, 1, 13, 0, 0);

let tmp: ReturnType<typeof tempDir>;
let gw: GatewayHandle;
let gwArg: string[];

const events = [
  makeTestEvent({ eventId: '0195f0a0-0001-7000-8000-000000000001', timeMs: T0, kind: 'session_start', sessionId: S1, user: '', database: '', tls: true }),
  makeTestEvent({ eventId: '0195f0a0-0002-7000-8000-000000000002', timeMs: T0 + 1000, kind: 'login_failure', sessionId: S2, user: 'mallory', sqlstate: '28P01', errorCode: '28P01', errorMessage: 'password authentication failed for user "mallory"' }),
  makeTestEvent({ eventId: '0195f0a0-0003-7000-8000-000000000003', timeMs: T0 + 2000, sessionId: S1, statement: 'SELECT *\nFROM orders\tWHERE id = $1', commandTag: 'SELECT 1', rows: 1n, durationUs: 1250n, seq: 3n }),
  makeTestEvent({ eventId: '0195f0a0-0004-7000-8000-000000000004', timeMs: T0 + 3000, sessionId: S1, statement: 'DELETE FROM audit_log', rows: 0n, durationUs: 420n, sqlstate: '42501', errorMessage: 'permission denied for table audit_log', seq: 4n }),
  makeTestEvent({ eventId: '0195f0a0-0005-7000-8000-000000000005', timeMs: T0 + 4000, kind: 'session_end', sessionId: S1, durationUs: 4_000_000n, bytesFromClient: 2048n, bytesToClient: 1536n, reason: 'client_terminate', seq: 5n }),
];

before(async () => {
  tmp = tempDir();
  gw = await startGateway({ config: gatewayConfig(tmp.dir), clock: new ManualClock(RECEIVED) });
  gwArg = ['--gateway', gw.address];
  const s = new TestStream(gw.address);
  s.send(batchOf(1, events));
  s.send(batchOf(2, [makeTestEvent({ eventId: '0195f0a0-0006-7000-8000-000000000006', timeMs: Date.now() - 10 * 60_000, user: 'recent', statement: 'select now()' })]));
  await s.waitAcks(2);
  await s.finish();
});

after(async () => {
  await gw.close();
  tmp.remove();
});

test('readable lines, newest first, one per event', async () => {
  const r = await run([...gwArg, '--until', '2026-03-02T00:00:00Z']);
  assert.equal(r.code, 0);
  assert.equal(r.err, '');
  assert.deepEqual(r.out, [
    '2026-03-01T12:00:04.000Z session_end alice@shop [000a11ce] 127.0.0.1:40000 duration=4.00s in=2KB out=1.5KB reason=client_terminate',
    '2026-03-01T12:00:03.000Z statement alice@shop [000a11ce] 127.0.0.1:40000 "DELETE FROM audit_log" rows=0 420us error 42501: permission denied for table audit_log',
    '2026-03-01T12:00:02.000Z statement alice@shop [000a11ce] 127.0.0.1:40000 "SELECT *\\nFROM orders\\tWHERE id = $1" SELECT 1 rows=1 1.25ms',
    '2026-03-01T12:00:01.000Z login_failure mallory@shop [00000b0b] 127.0.0.1:40000 error 28P01: password authentication failed for user "mallory"',
    '2026-03-01T12:00:00.000Z session_start - [000a11ce] 127.0.0.1:40000 postgres tls -> 127.0.0.1:5432',
  ]);
});

test('--json: protobuf JSON mapping, one compact object per line', async () => {
  const r = await run([...gwArg, '--json', '--session', S1, '--kind', 'statement']);
  assert.equal(r.code, 0);
  assert.deepEqual(r.out, [
    '{"eventId":"0195f0a0-0004-7000-8000-000000000004","kind":"statement","time":"2026-03-01T12:00:03Z","sessionId":"0195f0a0-0000-7000-8000-0000000a11ce","protocol":"postgres","clientAddress":"127.0.0.1:40000","serverAddress":"127.0.0.1:5432","user":"alice","database":"shop","statement":"DELETE FROM audit_log","sqlstate":"42501","errorMessage":"permission denied for table audit_log","durationUs":"420","collectorId":"col-a","epoch":"epoch-1","seq":"4","deliveredBy":"col-a","receivedAt":"2026-03-01T13:00:00Z"}',
    '{"eventId":"0195f0a0-0003-7000-8000-000000000003","kind":"statement","time":"2026-03-01T12:00:02Z","sessionId":"0195f0a0-0000-7000-8000-0000000a11ce","protocol":"postgres","clientAddress":"127.0.0.1:40000","serverAddress":"127.0.0.1:5432","user":"alice","database":"shop","statement":"SELECT *\\nFROM orders\\tWHERE id = $1","commandTag":"SELECT 1","rows":"1","durationUs":"1250","collectorId":"col-a","epoch":"epoch-1","seq":"3","deliveredBy":"col-a","receivedAt":"2026-03-01T13:00:00Z"}',
  ]);
  for (const line of r.out) assert.equal(line, JSON.stringify(JSON.parse(line)));
});

test('filters reach the gateway: user, database, text, limit, since/until', async () => {
  const ids = async (argv: string[]): Promise<string[]> => {
    const r = await run([...gwArg, '--json', ...argv]);
    assert.equal(r.code, 0, r.err);
    return r.out.map((l) => (JSON.parse(l) as { eventId: string }).eventId.slice(-1));
  };
  assert.deepEqual(await ids(['--user', 'mallory']), ['2']);
  assert.deepEqual(await ids(['--database', 'shop', '--limit', '2']), ['6', '5']);
  assert.deepEqual(await ids(['--text', 'ORDERS']), ['3']);
  assert.deepEqual(await ids(['--since', '2026-03-01T12:00:01Z', '--until', '2026-03-01T12:00:03Z']), ['3', '2']);
  assert.deepEqual(await ids(['--since', '2026-03-01T13:00:01+01:00', '--until', '2026-03-01T12:00:01.500Z']), ['2']);
  assert.deepEqual(await ids(['--since', '30m']), ['6']);
  assert.deepEqual(await ids(['--until', '30m', '--since', '2026-03-01T12:00:04Z']), ['5']);
  assert.deepEqual(await ids(['--user', 'nobody']), []);
});

test('the gateway address also comes from DBAUDIT_GATEWAY', async () => {
  const r = await run(['--user=recent'], { DBAUDIT_GATEWAY: gw.address });
  assert.equal(r.code, 0);
  assert.equal(r.out.length, 1);
  assert.match(r.out[0], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z statement recent@shop \[sess-1\] 127\.0\.0\.1:40000 "select now\(\)" rows=0 0us$/);
});

test('bad flags: exit 2 and a message naming the flag', async () => {
  const cases: Array<[string[], string]> = [
    [['--bogus'], 'dbaudit events: unknown flag --bogus'],
    [['--json=yes'], 'dbaudit events: --json takes no value'],
    [['--user', '--json'], 'dbaudit events: --user needs a value'],
    [['--text='], 'dbaudit events: --text: needs a non-empty value'],
    [['--limit', 'ten'], 'dbaudit events: --limit: invalid value "ten"; expected a whole number from 1 to 10000'],
    [['--limit', '20000'], 'dbaudit events: --limit: invalid value "20000"; expected a whole number from 1 to 10000'],
    [['--since', 'yesterday'], 'dbaudit events: --since: invalid time "yesterday"; expected an RFC 3339 time such as 2026-03-01T12:00:00Z or a duration ago such as 15m, 2h, 7d'],
    [['--until', '2026-13-45'], 'dbaudit events: --until: invalid time "2026-13-45"; expected an RFC 3339 time such as 2026-03-01T12:00:00Z or a duration ago such as 15m, 2h, 7d'],
    [['--since', '1h', '--until', '2h'], 'dbaudit events: --since must be before --until'],
    [['--kind', 'telepathy'], 'dbaudit events: --kind: unknown kind "telepathy"; expected one of session_start, login_success, login_failure, statement, session_end, anomaly, cancel, loss'],
    [['--gateway', 'nowhere'], 'dbaudit events: --gateway: invalid address "nowhere"; expected host:port'],
    [['--user'], 'dbaudit events: --user needs a value'],
    [['extra'], 'dbaudit events: unexpected argument "extra"'],
  ];
  for (const [argv, message] of cases) {
    const r = await run(argv);
    assert.equal(r.code, 2, argv.join(' '));
    assert.equal(r.err.split('\n')[0], message);
    assert.deepEqual(r.out, []);
  }
});

test('an unreachable gateway: exit 1 and a clear message', async () => {
  const port = await new Promise<number>((resolve) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const p = (srv.address() as { port: number }).port;
      srv.close(() => resolve(p));
    });
  });
  const r = await run(['--gateway', `127.0.0.1:${port}`]);
  assert.equal(r.code, 1);
  assert.match(r.err, new RegExp(`^dbaudit events: cannot reach the gateway at 127\\.0\\.0\\.1:${port}: `));
  assert.deepEqual(r.out, []);
});

test('--help prints the usage', async () => {
  const out = new Capture();
  assert.equal(await runEventsCommand(['--help'], {}, out, new Capture()), 0);
  assert.match(out.text, /^usage: dbaudit events /);
});
