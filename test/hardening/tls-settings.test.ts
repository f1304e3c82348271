import assert from 'node:assert/strict';
import net from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { freePort, makeTempDir, makeTlsFiles, sharedPostgres, skipUnless, startPostgres, type PgServer, type TlsFiles } from '../harness/index.js';
import { startStack, type Stack } from '../e2e/stack.js';

type Handshake = { ok: true; version: string; cipher: string } | { ok: false; code: string };

/** SSLRequest to the proxy, then a TLS handshake with the given client options: what was negotiated, or the error code. */
function handshake(port: number, opts: tls.ConnectionOptions): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port }, () => sock.write(Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])));
    sock.once('error', reject);
    sock.once('data', (b: Buffer) => {
      if (b[0] !== 0x53) return reject(new Error(`SSLRequest answered ${b[0]}`));
      const t = tls.connect({ socket: sock, rejectUnauthorized: false, ...opts }, () => {
        const r: Handshake = { ok: true, version: t.getProtocol() ?? '', cipher: t.getCipher().name };
        t.destroy();
        resolve(r);
      });
      t.once('error', (err: Error & { code?: string }) => {
        sock.destroy();
        resolve({ ok: false, code: err.code ?? err.message });
      });
    });
  });
}

// The client side may offer old versions and weak suites (security level 0), so a refusal comes from the proxy's alert, not from the client's own OpenSSL.
const OLD_CLIENT = { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' } as const;

describe('TLS toward applications: minimum version and cipher list', { skip: skipUnless('postgres', 'openssl') }, () => {
  const dir = makeTempDir('tls-settings');
  let files: TlsFiles;
  let pgServer: PgServer;
  before(async () => {
    files = await makeTlsFiles(dir.dir, { cn: 'localhost' });
    pgServer = await sharedPostgres({ pgaudit: true, passwordAuth: true });
  });
  after(() => dir.remove());

  const withStack = async (overrides: Record<string, unknown>, body: (s: Stack) => Promise<void>): Promise<void> => {
    const stack = await startStack(`${pgServer.host}:${pgServer.port}`, { 'collector.tls.cert_file': files.certFile, 'collector.tls.key_file': files.keyFile, ...overrides });
    try {
      await body(stack);
    } finally {
      await stack.close();
    }
  };

  test('default minimum TLS 1.2: a TLS 1.0/1.1 client is refused with a protocol-version alert; 1.2 and 1.3 are accepted', () =>
    withStack({}, async (s) => {
      assert.deepEqual(await handshake(s.proxyPort, OLD_CLIENT), { ok: false, code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' });
      const v12 = await handshake(s.proxyPort, { maxVersion: 'TLSv1.2' });
      assert.equal(v12.ok && v12.version, 'TLSv1.2');
      const v13 = await handshake(s.proxyPort, {});
      assert.equal(v13.ok && v13.version, 'TLSv1.3');
    }));

  test('min_version TLSv1.3: a TLS 1.2 client is refused, a 1.3 client accepted', () =>
    withStack({ 'collector.tls.min_version': 'TLSv1.3' }, async (s) => {
      assert.deepEqual(await handshake(s.proxyPort, { maxVersion: 'TLSv1.2' }), { ok: false, code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' });
      const v13 = await handshake(s.proxyPort, {});
      assert.equal(v13.ok && v13.version, 'TLSv1.3');
    }));

  test('ciphers: TLS 1.2 negotiates only a configured suite; a client offering none of them is refused', () =>
    withStack({ 'collector.tls.ciphers': 'ECDHE-RSA-AES128-GCM-SHA256' }, async (s) => {
      assert.deepEqual(await handshake(s.proxyPort, { maxVersion: 'TLSv1.2' }), { ok: true, version: 'TLSv1.2', cipher: 'ECDHE-RSA-AES128-GCM-SHA256' });
      assert.deepEqual(await handshake(s.proxyPort, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES256-GCM-SHA384' }), { ok: false, code: 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE' });
    }));
});

describe('TLS to the database: libpq sslmode semantics', { skip: skipUnless('postgres', 'openssl') }, () => {
  const dir = makeTempDir('tls-upstream');
  let files: TlsFiles;
  let otherName: TlsFiles;
  let plainPg: PgServer;
  let tlsPg: PgServer;
  let tlsPgOtherName: PgServer;
  before(async () => {
    files = await makeTlsFiles(`${dir.dir}/good`, { cn: 'localhost', san: ['localhost', '127.0.0.1'] });
    otherName = await makeTlsFiles(`${dir.dir}/other-name`, { cn: 'db.example', san: ['db.example'] });
    plainPg = await sharedPostgres({ pgaudit: true, passwordAuth: true });
    tlsPg = await startPostgres({ ssl: { certFile: files.certFile, keyFile: files.keyFile } });
    tlsPgOtherName = await startPostgres({ ssl: { certFile: otherName.certFile, keyFile: otherName.keyFile } });
  });
  after(async () => {
    await tlsPg?.stop();
    await tlsPgOtherName?.stop();
    dir.remove();
  });

  /** Whether the proxy's connection to the database is encrypted, as the database sees it; or the client's error. */
  const hopThrough = async (db: PgServer, upstreamHost: string, overrides: Record<string, unknown>): Promise<{ ssl?: string; error?: string; endDetail?: string }> => {
    const stack = await startStack(`${upstreamHost}:${db.port}`, overrides);
    try {
      const r = await db.psqlResult('select ssl from pg_stat_ssl where pid = pg_backend_pid()', { host: '127.0.0.1', port: stack.proxyPort, sslmode: 'disable', allowError: true });
      const evs = await stack.waitForEvents((e) => e.some((x) => x.kind === 'session_end'));
      const end = evs.find((e) => e.kind === 'session_end')!;
      if (r.code !== 0) return { error: r.stderr, endDetail: `${end.reason}: ${end.detail}` };
      return { ssl: r.stdout.trim() };
    } finally {
      await stack.close();
    }
  };

  test('disable: plain to a database that offers TLS', async () => {
    assert.deepEqual(await hopThrough(tlsPg, 'localhost', { 'collector.upstream_tls.mode': 'disable' }), { ssl: 'f' });
  });

  test('prefer: TLS when the database offers it, plain when it does not', async () => {
    assert.deepEqual(await hopThrough(tlsPg, 'localhost', { 'collector.upstream_tls.mode': 'prefer' }), { ssl: 't' });
    assert.deepEqual(await hopThrough(plainPg, plainPg.host, { 'collector.upstream_tls.mode': 'prefer' }), { ssl: 'f' });
  });

  test('require: TLS without checking the certificate; a database without TLS is refused with a clear error', async () => {
    // The certificate names db.example and no CA is given: require encrypts and does not verify.
    assert.deepEqual(await hopThrough(tlsPgOtherName, '127.0.0.1', { 'collector.upstream_tls.mode': 'require' }), { ssl: 't' });
    const r = await hopThrough(plainPg, plainPg.host, { 'collector.upstream_tls.mode': 'require' });
    assert.match(r.error ?? '', /dbaudit: the database is not reachable through the audit proxy/);
    assert.match(r.endDetail ?? '', /^upstream_error: .*database refused TLS but upstream_tls.mode is require/);
  });

  test('verify-full checks the hostname: the right CA with a certificate for another name is refused', async () => {
    const r = await hopThrough(tlsPgOtherName, 'localhost', { 'collector.upstream_tls.mode': 'verify-full', 'collector.upstream_tls.ca_file': otherName.caFile });
    assert.match(r.error ?? '', /dbaudit: the database is not reachable through the audit proxy/);
    assert.match(r.endDetail ?? '', /^upstream_error: .*TLS to the database failed: Hostname\/IP does not match certificate's altnames/);
    // The same CA and a name the certificate holds (upstream_tls.server_name) pass.
    assert.deepEqual(
      await hopThrough(tlsPgOtherName, '127.0.0.1', { 'collector.upstream_tls.mode': 'verify-full', 'collector.upstream_tls.ca_file': otherName.caFile, 'collector.upstream_tls.server_name': 'db.example' }),
      { ssl: 't' },
    );
  });
});

describe('TLS toward applications: errors during negotiation are answered inside TLS', { skip: skipUnless('postgres', 'openssl') }, () => {
  const dir = makeTempDir('tls-nested');
  after(() => dir.remove());

  test('the database is down: a TLS client (psql sslmode=require) gets the FATAL, not "SSL error: wrong version number"', async () => {
    const files = await makeTlsFiles(join(dir.dir, 'down'), { cn: 'localhost' });
    const server = await sharedPostgres({ pgaudit: true, passwordAuth: true });
    const stack = await startStack(`127.0.0.1:${await freePort()}`, { 'collector.tls.cert_file': files.certFile, 'collector.tls.key_file': files.keyFile });
    try {
      // The proxy wrote its error in plain text onto the TLS connection (the raw socket), which the client read as a broken TLS record.
      const r = await server.psqlResult('select 1', { host: '127.0.0.1', port: stack.proxyPort, sslmode: 'require', allowError: true });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /FATAL: {2}dbaudit: the database is not reachable through the audit proxy/);
      const evs = await stack.waitForEvents((e) => e.some((x) => x.kind === 'session_end'));
      assert.deepEqual(evs.map((e) => [e.kind, e.reason]), [['session_start', ''], ['session_end', 'upstream_error']]);
    } finally {
      await stack.close();
    }
  });

  test('a ClientHello sent inside the TLS session is not a second TLS layer: ErrorResponse 08P01 and an anomaly', async () => {
    const files = await makeTlsFiles(join(dir.dir, 'nested'), { cn: 'localhost' });
    const server = await sharedPostgres({ pgaudit: true, passwordAuth: true });
    const stack = await startStack(`${server.host}:${server.port}`, { 'collector.tls.cert_file': files.certFile, 'collector.tls.key_file': files.keyFile });
    try {
      const got = await new Promise<Buffer>((resolve, reject) => {
        const sock = net.connect({ host: '127.0.0.1', port: stack.proxyPort }, () => sock.write(Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])));
        sock.once('error', reject);
        sock.once('data', () => {
          const t = tls.connect({ socket: sock, rejectUnauthorized: false }, () => {
            const parts: Buffer[] = [];
            t.on('data', (b: Buffer) => parts.push(b));
            t.on('error', () => undefined);
            t.on('close', () => resolve(Buffer.concat(parts)));
            // The first bytes of a TLS ClientHello: record type 0x16, version 3.1.
            t.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x40, ...Buffer.alloc(0x40, 1)]));
          });
          t.once('error', reject);
        });
      });
      assert.equal(got[0], 0x45, 'an ErrorResponse, not a TLS alert');
      assert.match(got.toString('latin1'), /C08P01\0/);
      const evs = await stack.waitForEvents((e) => e.some((x) => x.kind === 'session_end'));
      assert.deepEqual(evs.map((e) => [e.kind, e.tls]), [['session_start', true], ['anomaly', true], ['session_end', true]]);
    } finally {
      await stack.close();
    }
  });
});
