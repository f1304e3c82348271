import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { binary, makeTempDir, run, skipUnless } from '../harness/index.js';

const BIN = join(import.meta.dirname, '../../bin/dbaudit.js');

function dbaudit(args: string[], env: NodeJS.ProcessEnv = {}) {
  return run(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, allowFail: true, timeoutMs: 60_000 });
}

describe('the dbaudit command', () => {
  test('bad configuration stops the start with the key, the value and what is allowed', async () => {
    const r = await dbaudit(['proxy', '--collector.cache.max_size', '10XB']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim(), 'dbaudit: config collector.cache.max_size: invalid value "10XB"; expected a size such as 512MB, 10GB or a number of bytes');
    const e = await dbaudit(['proxy'], { DBAUDIT_AUDIT_REDACT: 'some' });
    assert.equal(e.stderr.trim(), 'dbaudit: config audit.redact: invalid value "some"; expected one of literals, none');
    const u = await dbaudit(['gateway', '--no-such-flag']);
    assert.equal(u.code, 1);
    assert.match(u.stderr, /unknown argument "--no-such-flag"/);
    const k = await dbaudit(['nope']);
    assert.equal(k.code, 2);
    // bounded keys: a batch_delay past what a timer holds, a memory bound of nothing
    const d = await dbaudit(['proxy', '--collector.gateway.batch_delay', '30d']);
    assert.equal(d.stderr.trim(), 'dbaudit: config collector.gateway.batch_delay: invalid value "30d"; expected a duration of at most 10000ms');
    const m = await dbaudit(['proxy', '--collector.cache.memory_max_size', '0']);
    assert.equal(m.stderr.trim(), 'dbaudit: config collector.cache.memory_max_size: invalid value "0"; expected a size of at least 4096 bytes');
  });

  test('a listen port already in use (EADDRINUSE) or an address not of this host: one line naming the key and the address, exit 1, no stack', async () => {
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const inUse = `127.0.0.1:${(busy.address() as net.AddressInfo).port}`;
    const tmp = makeTempDir('cli-listen');
    try {
      const proxy = (flags: string[]) =>
        dbaudit(['proxy', '--collector.upstream', '127.0.0.1:1', '--collector.cache.path', join(tmp.dir, 'cache'), '--collector.gateway.endpoints', '127.0.0.1:1', '--log.level', 'silent', ...flags], {
          DBAUDIT_CACHE_KEY: randomBytes(32).toString('base64'),
        });
      const cases: [string[], string][] = [
        [['--collector.listen', inUse], `dbaudit: config collector.listen: ${inUse} is already in use (another process listens there)`],
        [['--collector.listen', '127.0.0.1:0', '--collector.http.listen', inUse], `dbaudit: config collector.http.listen: ${inUse} is already in use (another process listens there)`],
        [['--collector.listen', '192.0.2.1:5432'], 'dbaudit: config collector.listen: 192.0.2.1:5432 is not an address of this host'],
      ];
      for (const [flags, line] of cases) {
        const r = await proxy(flags);
        assert.equal(r.code, 1, r.stderr);
        assert.equal(r.stderr.trim(), line);
      }
      const g = await dbaudit(['gateway', '--gateway.listen', inUse, '--gateway.data_dir', join(tmp.dir, 'gw'), '--log.level', 'silent']);
      assert.equal(g.code, 1, g.stderr);
      // grpc-js also logs its own "E No address added …" line before ours.
      assert.equal(g.stderr.trim().split('\n').at(-1), `dbaudit: config gateway.listen: ${inUse} is already in use (another process listens there)`);
      assert.doesNotMatch(g.stderr, /\n\s+at /);
    } finally {
      busy.close();
      tmp.remove();
    }
  });

  test('--cache-dir under /proc (where mkdir -p never ends in Node) fails at once, naming the key and the path', async () => {
    const r = await dbaudit(['proxy', '--cache-dir', '/proc/dbaudit-cache', '--collector.listen', '127.0.0.1:0', '--collector.http.listen', '127.0.0.1:0', '--collector.upstream', '127.0.0.1:1', '--collector.gateway.endpoints', '127.0.0.1:1', '--log.level', 'silent'], {
      DBAUDIT_CACHE_KEY: randomBytes(32).toString('base64'),
    });
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stderr.trim(), "dbaudit: cache /proc/dbaudit-cache (collector.cache.path): cannot create the directory: ENOENT: no such file or directory, mkdir '/proc/dbaudit-cache'");
  });

  test('keygen prints a 32-byte base64 key', async () => {
    const r = await dbaudit(['keygen']);
    assert.equal(r.code, 0);
    assert.equal(Buffer.from(r.stdout.trim(), 'base64').length, 32);
  });

  test('npm start (the demo): psql through it, events printed live, events --json, Ctrl-C stops cleanly', { skip: skipUnless('postgres') }, async () => {
    const child = spawn(process.execPath, [BIN, 'demo', '--listen', '127.0.0.1:0', '--http', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const waitFor = async (re: RegExp, ms = 60_000): Promise<RegExpMatchArray> => {
      const deadline = Date.now() + ms;
      for (;;) {
        const m = out.match(re);
        if (m) return m;
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`did not see ${re} in:\n${out}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    try {
      const [, port] = await waitFor(/psql "postgresql:\/\/postgres@127\.0\.0\.1:(\d+)\/postgres\?sslmode=disable"/);
      const [, gateway] = await waitFor(/dbaudit events --gateway (\S+)/);
      const psql = await run(binary('psql'), ['-X', '-A', '-t', '-h', '127.0.0.1', '-p', port, '-U', 'postgres', '-d', 'postgres', '-c', "select 'demo-' || 40 + 2"], {
        env: { ...process.env, PGSSLMODE: 'disable' },
      });
      assert.equal(psql.stdout.trim(), 'demo-42');
      await waitFor(/ statement postgres@postgres \[[0-9a-f]{8}\] 127\.0\.0\.1:\d+ "select \? \|\| \? \+ \?" SELECT rows=1/);
      await waitFor(/ session_end postgres@postgres /);
      const q = await dbaudit(['events', '--gateway', gateway, '--kind', 'statement', '--json']);
      assert.equal(q.code, 0, q.stderr);
      const events = q.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.equal(events.length, 1);
      assert.equal(events[0].statement, 'select ? || ? + ?');
      assert.equal(events[0].commandTag, 'SELECT');
      assert.equal(events[0].rows, '1');
      child.kill('SIGINT');
      const code = await new Promise<number | null>((r) => child.once('exit', r));
      assert.equal(code, 0);
      assert.match(out, /stopped\n$/);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
