import assert from 'node:assert/strict';
import { copyFileSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import { after, describe, test } from 'node:test';
import pg from 'pg';
import { makeTempDir, makeTlsFiles, sharedPostgres, skipUnless } from '../harness/index.js';
import { startStack } from '../e2e/stack.js';

/** The SHA-256 fingerprint of the certificate the proxy presents after an SSLRequest. */
function presented(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port }, () => sock.write(Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])));
    sock.once('error', reject);
    sock.once('data', (b: Buffer) => {
      if (b[0] !== 0x53) return reject(new Error(`SSLRequest answered ${b[0]}`));
      const t = tls.connect({ socket: sock, rejectUnauthorized: false }, () => {
        const fp = t.getPeerCertificate().fingerprint256;
        t.destroy();
        resolve(fp);
      });
      t.once('error', reject);
    });
  });
}

describe('TLS certificate rotation', { skip: skipUnless('postgres', 'openssl') }, () => {
  const dir = makeTempDir('tls-rotate');
  after(() => dir.remove());

  test('new certificate files are picked up without dropping a live TLS session', async () => {
    const a = await makeTlsFiles(join(dir.dir, 'a'), { cn: 'localhost' });
    const b = await makeTlsFiles(join(dir.dir, 'b'), { cn: 'localhost' });
    const certFile = join(dir.dir, 'tls.crt');
    const keyFile = join(dir.dir, 'tls.key');
    copyFileSync(a.certFile, certFile);
    copyFileSync(a.keyFile, keyFile);
    const pgServer = await sharedPostgres({ pgaudit: true, passwordAuth: true });
    const stack = await startStack(`${pgServer.host}:${pgServer.port}`, { 'collector.tls.cert_file': certFile, 'collector.tls.key_file': keyFile });
    try {
      const fpA = new X509Certificate(readFileSync(a.certFile)).fingerprint256;
      const fpB = new X509Certificate(readFileSync(b.certFile)).fingerprint256;
      assert.equal(await presented(stack.proxyPort), fpA);
      const live = new pg.Client({ host: 'localhost', port: stack.proxyPort, user: 'postgres', database: 'postgres', ssl: { ca: readFileSync(a.caFile) } });
      await live.connect();
      assert.equal((await live.query('select 1 as one')).rows[0].one, 1);

      // Rotate: key first, then certificate, as a renewal would land.
      copyFileSync(b.keyFile, keyFile);
      copyFileSync(b.certFile, certFile);
      const deadline = Date.now() + 15_000;
      let now = fpA;
      while (now !== fpB && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 200));
        now = await presented(stack.proxyPort);
      }
      assert.equal(now, fpB, 'the proxy presents the new certificate');
      assert.equal((await live.query('select 2 as two')).rows[0].two, 2, 'the session opened before the rotation still works');
      await live.end();
      const fresh = new pg.Client({ host: 'localhost', port: stack.proxyPort, user: 'postgres', database: 'postgres', ssl: { ca: readFileSync(b.caFile) } });
      await fresh.connect();
      await fresh.end();
    } finally {
      await stack.close();
    }
  });
});
