import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import type { Config } from '../lib/config.js';
import { AuditError, ErrorCode } from '../lib/errors.js';

/**
 * Transport credentials of the gateway from `gateway.tls.*`: insecure when
 * no certificate is configured, TLS with cert_file + key_file, mutual TLS
 * when client_ca_file is also set (clients without a certificate signed by
 * that CA are refused during the handshake).
 */

function readPem(key: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw AuditError.from(err, ErrorCode.Config, `config ${key}: cannot read ${JSON.stringify(path)}`);
  }
}

export function serverCredentials(config: Config): grpc.ServerCredentials {
  const { cert_file: certFile, key_file: keyFile, client_ca_file: caFile } = config.gateway.tls;
  if (!certFile && !keyFile && !caFile) return grpc.ServerCredentials.createInsecure();
  if (!certFile || !keyFile) {
    throw new AuditError(ErrorCode.Config, `config gateway.tls: cert_file and key_file must be set together (client_ca_file needs both)`);
  }
  const cert = readPem('gateway.tls.cert_file', certFile);
  const key = readPem('gateway.tls.key_file', keyFile);
  const ca = caFile ? readPem('gateway.tls.client_ca_file', caFile) : null;
  return grpc.ServerCredentials.createSsl(ca, [{ cert_chain: cert, private_key: key }], ca !== null);
}
