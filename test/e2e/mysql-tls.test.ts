import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import mysql from 'mysql2/promise';
import { makeTempDir, makeTlsFiles, sharedMariadb, skipUnless, startMariadb, type MariaServer, type TlsFiles } from '../harness/index.js';
import { Cap } from '../../proxy/mysql/packets.js';
import { brief, startStack, type Stack } from './stack.js';

/** The capability flags of the greeting a MySQL server (or the proxy) sends first. */
async function greetingCaps(port: number): Promise<number> {
  const sock = net.connect(port, '127.0.0.1');
  const data = await new Promise<Buffer>((resolve, reject) => {
    let buf = Buffer.alloc(0);
    sock.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (buf.length >= 4 && buf.length >= 4 + (buf[0] | (buf[1] << 8) | (buf[2] << 16))) resolve(buf);
    });
    sock.on('error', reject);
  });
  sock.destroy();
  const p = data.subarray(4);
  const at = p.indexOf(0, 1) + 1 + 4 + 8 + 1;
  return (p.readUInt16LE(at) | (p.readUInt16LE(at + 5) << 16)) >>> 0;
}

describe('MySQL TLS and capabilities through the proxy', { skip: skipUnless('server_audit', 'openssl') }, () => {
  let m: MariaServer;
  let tlsMaria: MariaServer;
  let files: TlsFiles;
  let wrongCa: TlsFiles;
  const dir = makeTempDir('mysql-tls');

  before(async () => {
    files = await makeTlsFiles(`${dir.dir}/good`, { cn: 'localhost', san: ['localhost', '127.0.0.1'] });
    wrongCa = await makeTlsFiles(`${dir.dir}/other`, { cn: 'localhost', san: ['localhost', '127.0.0.1'] });
    m = await sharedMariadb();
    tlsMaria = await startMariadb({ ssl: { certFile: files.certFile, keyFile: files.keyFile } });
  });
  after(async () => {
    await tlsMaria?.dispose();
    dir.remove();
  });

  const opts = (s: Stack, db: string, extra: mysql.ConnectionOptions = {}): mysql.ConnectionOptions => ({ host: '127.0.0.1', port: s.proxyPort, user: m.tcpUser.name, password: m.tcpUser.password, database: db, ...extra });

  test('no certificate: CLIENT_SSL and CLIENT_COMPRESS are cleared from the greeting; TLS-requiring clients refuse, others go plain', async () => {
    const stack = await startStack(`127.0.0.1:${tlsMaria.port}`, { 'collector.protocol': 'mysql' });
    try {
      const direct = await greetingCaps(tlsMaria.port);
      assert.ok(direct & Cap.Ssl && direct & Cap.Compress, 'the server offers TLS and compression');
      const proxied = await greetingCaps(stack.proxyPort);
      assert.equal(proxied & Cap.Ssl, 0);
      assert.equal(proxied & Cap.Compress, 0);
      assert.equal(proxied | Cap.Ssl | Cap.Compress, direct | Cap.Ssl | Cap.Compress, 'nothing else changes');
      const user = await tlsMaria.createUser({ prefix: 'tls', password: 'pw' });
      await assert.rejects(mysql.createConnection({ host: '127.0.0.1', port: stack.proxyPort, user: user.name, password: 'pw', ssl: { ca: readFileSync(files.caFile) } }), /secure connection|SSL/i);
      const c = await mysql.createConnection({ host: '127.0.0.1', port: stack.proxyPort, user: user.name, password: 'pw', compress: true });
      const [rows] = await c.query("SHOW SESSION STATUS LIKE 'Compression'");
      assert.deepEqual(rows, [{ Variable_name: 'Compression', Value: 'OFF' }]);
      await c.end();
      const evs = await stack.waitForEvents((e) => e.some((x) => x.kind === 'statement'), { user: user.name });
      assert.equal(evs.filter((e) => e.kind === 'anomaly').length, 0);
      assert.ok(evs.every((e) => !e.tls));
    } finally {
      await stack.close();
    }
  });

  test('TLS terminated at the proxy, plain to the database: the client verifies the certificate, sequence ids are relayed, the session is marked tls', async () => {
    const stack = await startStack(`${m.host}:${m.port}`, { 'collector.protocol': 'mysql', 'collector.tls.cert_file': files.certFile, 'collector.tls.key_file': files.keyFile });
    try {
      assert.ok((await greetingCaps(stack.proxyPort)) & Cap.Ssl, 'TLS offered by the proxy');
      const db = await m.createDatabase('tls');
      const c = await mysql.createConnection(opts(stack, db, { ssl: { ca: readFileSync(files.caFile), rejectUnauthorized: true } }));
      const [rows] = await c.query("SHOW SESSION STATUS LIKE 'Ssl_version'");
      assert.deepEqual(rows, [{ Variable_name: 'Ssl_version', Value: '' }], 'the database hop is plain');
      await c.end();
      // The mariadb client too, verifying the server certificate.
      const out = await m.mysql('SELECT 41 + 1', { host: '127.0.0.1', port: stack.proxyPort, user: m.tcpUser.name, password: m.tcpUser.password, db, args: ['--ssl', `--ssl-ca=${files.caFile}`, '--ssl-verify-server-cert'] });
      assert.equal(out.trim(), '42');
      const evs = await stack.waitForEvents((e) => e.filter((x) => x.kind === 'session_end').length === 2, { database: db });
      assert.deepEqual(evs.map((e) => [e.kind, e.tls]), [
        ['session_start', true], ['login_success', true], ['statement', true], ['session_end', true],
        ['session_start', true], ['login_success', true], ['statement', true], ['session_end', true],
      ]);
      assert.deepEqual(brief(evs[6]!), { kind: 'statement', user: m.tcpUser.name, database: db, statement: 'SELECT ? + ?', tag: 'SELECT', rows: 1 });
      // A plain client still works and is marked so.
      const p = await mysql.createConnection(opts(stack, db));
      await p.query('SELECT 1');
      await p.end();
      const plain = await stack.waitForEvents((e) => e.filter((x) => x.kind === 'session_end').length === 3, { database: db });
      assert.equal(plain.filter((e) => e.kind === 'session_start' && !e.tls).length, 1);
    } finally {
      await stack.close();
    }
  });

  test('TLS to the database with verify-full, for plain and TLS clients; a wrong CA is refused with a MySQL error', async () => {
    const user = await tlsMaria.createUser({ prefix: 'up', password: 'pw' });
    const stack = await startStack(`127.0.0.1:${tlsMaria.port}`, {
      'collector.protocol': 'mysql',
      'collector.upstream_tls.mode': 'verify-full',
      'collector.upstream_tls.ca_file': files.caFile,
      'collector.tls.cert_file': files.certFile,
      'collector.tls.key_file': files.keyFile,
    });
    try {
      for (const ssl of [undefined, { ca: readFileSync(files.caFile) }]) {
        const c = await mysql.createConnection({ host: '127.0.0.1', port: stack.proxyPort, user: user.name, password: 'pw', ...(ssl ? { ssl } : {}) });
        const [rows] = await c.query("SHOW SESSION STATUS LIKE 'Ssl_version'");
        assert.match((rows as { Value: string }[])[0]!.Value, /^TLSv1\.[23]$/, 'the database hop is encrypted');
        await c.end();
      }
      const evs = await stack.waitForEvents((e) => e.filter((x) => x.kind === 'session_end').length === 2, { user: user.name });
      assert.deepEqual(evs.filter((e) => e.kind === 'session_start').map((e) => e.tls), [false, true]);
      assert.equal(evs.filter((e) => e.kind === 'statement').length, 2);
      assert.equal(evs.filter((e) => e.kind === 'anomaly').length, 0);
    } finally {
      await stack.close();
    }
    const bad = await startStack(`127.0.0.1:${tlsMaria.port}`, { 'collector.protocol': 'mysql', 'collector.upstream_tls.mode': 'verify-full', 'collector.upstream_tls.ca_file': wrongCa.caFile });
    try {
      await assert.rejects(mysql.createConnection({ host: '127.0.0.1', port: bad.proxyPort, user: user.name, password: 'pw' }), (err: { errno?: number; message: string }) => {
        assert.equal(err.errno, 2013);
        assert.match(err.message, /not reachable/);
        return true;
      });
    } finally {
      await bad.close();
    }
  });
});
