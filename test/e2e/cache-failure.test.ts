import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { makeTempDir, sharedPostgres, skipUnless, type PgServer } from '../harness/index.js';
import { startStack, type Stack } from './stack.js';

const isRoot = process.getuid?.() === 0;

function sh(cmd: string, ...args: string[]): boolean {
  return spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
}

async function until(what: string, pred: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * The cache directory on a small tmpfs that a junk file fills: RocksDB's
 * writes then fail with ENOSPC until the junk is removed.
 */
describe('the cache cannot write (disk full)', { skip: skipUnless('postgres') || (isRoot ? false : 'needs root to mount a size-limited tmpfs') }, () => {
  let pgServer: PgServer;
  const tmp = makeTempDir('cache-full');
  let mounted = false;

  before(async () => {
    pgServer = await sharedPostgres({ pgaudit: true, passwordAuth: true });
    mounted = sh('mount', '-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', tmp.dir);
    assert.ok(mounted, 'mount a 4 MB tmpfs');
  });
  after(() => {
    if (mounted) sh('umount', '-l', tmp.dir);
    tmp.remove();
  });

  async function scenario(policy: 'forward' | 'block') {
    const cacheDir = join(tmp.dir, policy);
    mkdirSync(cacheDir);
    const stack: Stack = await startStack(`${pgServer.host}:${pgServer.port}`, { 'collector.cache.path': cacheDir, 'audit.on_cache_failure': policy });
    const db = await pgServer.createDatabase(`full_${policy}`);
    const client = new pg.Client({ host: stack.proxyHost, port: stack.proxyPort, user: 'postgres', database: db, application_name: `full-${policy}` });
    await client.connect();
    client.on('error', () => undefined);
    const junk = join(tmp.dir, 'junk');
    return {
      stack,
      db,
      client,
      fill() {
        // Leave no room: write junk until the file system refuses.
        try {
          writeFileSync(junk, Buffer.alloc(4 << 20));
        } catch {
          // ENOSPC: the disk is now full, which is the point
        }
      },
      free() {
        rmSync(junk, { force: true });
      },
    };
  }

  test('on_cache_failure: forward — statements keep working, readiness fails, nothing is lost once space returns', async () => {
    const s = await scenario('forward');
    try {
      s.fill();
      let ran = 0;
      // Statements go on; sooner or later RocksDB needs a block it cannot get.
      await until('a failed cache write', async () => {
        await s.client.query(`select ${ran++} as n, repeat('x', 2000)`);
        return !s.stack.collector.cache.writable;
      });
      const ready = await fetch(`http://${s.stack.collector.httpAddress}/health/ready`);
      assert.equal(ready.status, 503);
      const body = (await ready.json()) as { failing: string[] };
      assert.ok(body.failing.includes('cache'), JSON.stringify(body));
      for (let i = 0; i < 5; i++) await s.client.query(`select ${ran++} as n`);
      s.free();
      await until('the cache writable again', () => s.stack.collector.cache.writable);
      await s.client.end();
      const evs = await s.stack.waitForEvents((e) => e.filter((x) => x.kind === 'statement').length >= ran, { database: s.db }, 60_000);
      assert.equal(evs.filter((e) => e.kind === 'statement').length, ran, 'every statement that ran is audited');
    } finally {
      s.free();
      await s.stack.close();
    }
  });

  test('on_cache_failure: block — new statements and connections are refused with a protocol error until the cache writes again', async () => {
    const s = await scenario('block');
    try {
      s.fill();
      let ran = 0;
      let refused = '';
      for (let i = 0; i < 10_000 && refused === ''; i++) {
        try {
          await s.client.query(`select ${i} as n, repeat('x', 2000)`);
          ran++;
        } catch (err) {
          refused = (err as Error).message;
        }
      }
      assert.match(refused, /the audit cache cannot record statements/);
      const again = await pgServer.psqlResult('select 1', { host: '127.0.0.1', port: s.stack.proxyPort, db: s.db, allowError: true });
      assert.notEqual(again.code, 0);
      assert.match(again.stderr, /the audit cache cannot record sessions/);
      s.free();
      await until('the cache writable again', () => s.stack.collector.cache.writable);
      const out = await pgServer.psql('select 42', { host: '127.0.0.1', port: s.stack.proxyPort, db: s.db });
      assert.equal(out.trim(), '42');
      const evs = await s.stack.waitForEvents((e) => e.filter((x) => x.kind === 'statement').length >= ran + 1, { database: s.db }, 60_000);
      assert.equal(evs.filter((e) => e.kind === 'statement').length, ran + 1, 'every statement that ran is audited, none that was refused');
    } finally {
      s.free();
      await s.stack.close();
    }
  });
});
