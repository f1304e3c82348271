import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { AuditError, ErrorCode } from './errors.js';

/**
 * Client side of the gateway's security: TLS (a CA bundle), mutual TLS (a
 * client certificate and key) and a bearer token, all read from files so
 * no secret is ever a command-line value.
 */

export interface ClientSecurity {
  tokenFile?: string;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

export interface ClientAuth {
  credentials: grpc.ChannelCredentials;
  /** Sent with every call (the bearer token, when there is one). */
  metadata: grpc.Metadata;
}

function read(what: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw AuditError.from(err, ErrorCode.Config, `cannot read the ${what} ${JSON.stringify(path)}`);
  }
}

export function clientAuth(sec: ClientSecurity): ClientAuth {
  const metadata = new grpc.Metadata();
  if (sec.tokenFile) {
    const token = read('token file', sec.tokenFile).toString('utf8').trim();
    if (!/^\S+$/.test(token)) throw new AuditError(ErrorCode.Config, `the token file ${JSON.stringify(sec.tokenFile)} holds no token`);
    metadata.set('authorization', `Bearer ${token}`);
  }
  if (Boolean(sec.certFile) !== Boolean(sec.keyFile)) {
    throw new AuditError(ErrorCode.Config, 'a client certificate and its key must be given together');
  }
  if (!sec.caFile && !sec.certFile) return { credentials: grpc.credentials.createInsecure(), metadata };
  const ca = sec.caFile ? read('CA file', sec.caFile) : null;
  const key = sec.keyFile ? read('client key file', sec.keyFile) : null;
  const cert = sec.certFile ? read('client certificate file', sec.certFile) : null;
  return { credentials: grpc.credentials.createSsl(ca, key, cert), metadata };
}
