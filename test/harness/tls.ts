// Test certificates made with the openssl CLI: a self-signed CA, a server
// certificate signed by it (with subjectAltName), and a client certificate
// for mutual-TLS tests. Valid for two days; RSA 2048.
import { mkdirSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { binary } from './binaries.js';
import { run } from './exec.js';

export interface TlsFiles {
  readonly dir: string;
  readonly caFile: string;
  readonly caKeyFile: string;
  readonly certFile: string;
  readonly keyFile: string;
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
}

export interface TlsOptions {
  /** Server certificate common name. Default 'localhost'. */
  readonly cn?: string;
  /** subjectAltName entries: names or IP addresses ('DNS:'/'IP:' prefixes optional). Default localhost, 127.0.0.1. */
  readonly san?: readonly string[];
  /** Client certificate common name. Default 'dbaudit-client'. */
  readonly clientCn?: string;
}

function sanEntry(s: string): string {
  if (/^(DNS|IP|URI|email):/.test(s)) return s;
  return isIP(s) !== 0 ? `IP:${s}` : `DNS:${s}`;
}

/** Write ca.crt/ca.key, server.crt/server.key and client.crt/client.key into `dir` (created if needed). */
export async function makeTlsFiles(dir: string, opts: TlsOptions = {}): Promise<TlsFiles> {
  mkdirSync(dir, { recursive: true });
  const openssl = binary('openssl');
  const f = (name: string): string => join(dir, name);
  const days = '2';
  await run(openssl, [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', days,
    '-keyout', f('ca.key'), '-out', f('ca.crt'), '-subj', '/CN=dbaudit test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  const san = (opts.san ?? ['localhost', '127.0.0.1']).map(sanEntry).join(',');
  writeFileSync(
    f('server.ext'),
    `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=${san}\n`,
  );
  writeFileSync(f('client.ext'), 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n');
  for (const [who, cn] of [['server', opts.cn ?? 'localhost'], ['client', opts.clientCn ?? 'dbaudit-client']] as const) {
    await run(openssl, ['req', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-keyout', f(`${who}.key`), '-out', f(`${who}.csr`), '-subj', `/CN=${cn}`]);
    await run(openssl, [
      'x509', '-req', '-sha256', '-days', days, '-in', f(`${who}.csr`), '-CA', f('ca.crt'), '-CAkey', f('ca.key'),
      '-CAcreateserial', '-out', f(`${who}.crt`), '-extfile', f(`${who}.ext`),
    ]);
  }
  return {
    dir,
    caFile: f('ca.crt'),
    caKeyFile: f('ca.key'),
    certFile: f('server.crt'),
    keyFile: f('server.key'),
    clientCertFile: f('client.crt'),
    clientKeyFile: f('client.key'),
  };
}
