import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { makeTempDir, makeTlsFiles, sharedPostgres, skipUnless, startPostgres, type PgServer, type TlsFiles } from '../harness/index.js';
import { startStack, type Stack } from './stack.js';

describe('TLS through the proxy', { skip: skipUnless('pgaudit', 'openssl') }, () => {
  let pg: PgServer;
  let tlsPg: PgServer;
  let files: TlsFiles;
  let wrongCa: TlsFiles;
  const dir = makeTempDir('tls-e2e');

  before(async () => {
    files = await makeTlsFiles(`${dir.dir}/good`, { cn: 'localhost', san: ['localhost', '127.0.0.1'] });
    wrongCa = await makeTlsFiles(`${dir.dir}/other`, { cn: 'localhost', san: ['localhost', '127.0.0.1'] });
    pg = await sharedPostgres({ pgaudit: true, passwordAuth: true });
    tlsPg = await startPostgres({ ssl: { certFile: files.certFile, keyFile: files.keyFile } });
  });
  after(async () => {
    await tlsPg?.stop();
    dir.remove();
  });

  test('TLS terminated at the proxy: verify-full client works, the session is marked tls', async () => {
    const stack = await startStack(`${pg.host}:${pg.port}`, { 'collector.tls.cert_file': files.certFile, 'collector.tls.key_file': files.keyFile });
    try {
      const db = await pg.createDatabase('tls');
      const out = await pg.psql('select ssl from pg_stat_ssl where pid = pg_backend_pid()', {
        host: 'localhost',
        port: stack.proxyPort,
        db,
        sslmode: 'verify-full',
        env: { PGSSLROOTCERT: files.caFile },
      });
      // The hop proxy → database is plain here; the client's hop was TLS.
      assert.equal(out.trim(), 'f');
      const evs = await stack.waitForEvents((e) => e.some((x) => x.kind === 'session_end'), { database: db });
      assert.deepEqual(
        evs.map((e) => [e.kind, e.tls]),
        [
          ['session_start', true],
          ['login_success', true],
          ['statement', true],
          ['session_end', true],
        ],
      );
      // A plain client still works with sslmode=disable, and is marked so.
      await pg.psql('select 1', { host: '127.0.0.1', port: stack.proxyPort, db, sslmode: 'disable' });
      const plain = await stack.waitForEvents((e) => e.filter((x) => x.kind === 'session_end').length === 2, { database: db });
      assert.equal(plain.filter((e) => e.kind === 'session_start' && !e.tls).length, 1);
    } finally {
      await stack.close();
    }
  });

  test('without a certificate the proxy answers N: sslmode=require clients refuse, prefer clients go plain', async () => {
    const stack = await startStack(`${pg.host}:${pg.port}`);
    try {
      const db = await pg.createDatabase('notls');
      const r = await pg.psqlResult('select 1', { host: '127.0.0.1', port: stack.proxyPort, db, sslmode: 'require', allowError: true });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /server does not support SSL/);
      assert.equal((await pg.psql('select 42', { host: '127.0.0.1', port: stack.proxyPort, db, sslmode: 'prefer' })).trim(), '42');
    } finally {
      await stack.close();
    }
  });

  test('TLS to the database with verify-full: the upstream hop is encrypted; a wrong CA is refused with a clear error', async () => {
    const stack = await startStack(`localhost:${tlsPg.port}`, { 'collector.upstream_tls.mode': 'verify-full', 'collector.upstream_tls.ca_file': files.caFile });
    try {
      const out = await tlsPg.psql('select ssl from pg_stat_ssl where pid = pg_backend_pid()', { host: '127.0.0.1', port: stack.proxyPort, sslmode: 'disable' });
      assert.equal(out.trim(), 't');
      const evs = await stack.waitForEvents((e) => e.some((x) => x.kind === 'session_end'));
      assert.deepEqual(evs.filter((e) => e.kind === 'statement').map((e) => e.statement), ['select ssl from pg_stat_ssl where pid = pg_backend_pid()']);
    } finally {
      await stack.close();
    }
    const bad = await startStack(`localhost:${tlsPg.port}`, { 'collector.upstream_tls.mode': 'verify-full', 'collector.upstream_tls.ca_file': wrongCa.caFile });
    try {
      const r = await tlsPg.psqlResult('select 1', { host: '127.0.0.1', port: bad.proxyPort, sslmode: 'disable', allowError: true });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /dbaudit: the database is not reachable through the audit proxy/);
      const evs = await bad.waitForEvents((e) => e.some((x) => x.kind === 'session_end'));
      const end = evs.find((e) => e.kind === 'session_end')!;
      assert.equal(end.reason, 'upstream_error');
      assert.match(end.detail, /TLS to the database failed/);
    } finally {
      await bad.close();
    }
  });
});
