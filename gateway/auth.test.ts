import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import { EventBatchSchema, type BatchAck, type EventBatch } from '../proto/gen/audit/v1/ingest_pb.js';
import { SearchRequestSchema, type SearchResponse } from '../proto/gen/audit/v1/query_pb.js';
import { IngestClient, QueryClient } from '../lib/grpc.js';
import { isAuditError, ErrorCode } from '../lib/errors.js';
import { startGateway } from './server.js';
import { runEventsCommand } from './events-command.js';
import { Writable } from 'node:stream';
import { batchOf, gatewayConfig, makeTestEvent, tempDir } from './testing.js';

type Ingest = grpc.Client & { stream(md?: grpc.Metadata): grpc.ClientDuplexStream<EventBatch, BatchAck> };
type Query = grpc.Client & { search(r: unknown, md: grpc.Metadata, cb: (e: grpc.ServiceError | null, r?: SearchResponse) => void): void };

/** Sends one batch; resolves with the ack, or rejects with the stream's error status. */
function sendOne(client: Ingest, batch: EventBatch, md = new grpc.Metadata()): Promise<BatchAck> {
  return new Promise((resolve, reject) => {
    const call = client.stream(md);
    call.on('data', (ack: BatchAck) => {
      resolve(ack);
      call.end();
    });
    call.on('error', reject);
    call.write(batch);
  });
}

function searchAll(client: Query, md = new grpc.Metadata()): Promise<SearchResponse> {
  return new Promise((resolve, reject) => client.search(create(SearchRequestSchema, {}), md, (e, r) => (e ? reject(e) : resolve(r as SearchResponse))));
}

function sink(): Writable & { text(): string } {
  let buf = '';
  const w = new Writable({ write(chunk: Buffer, _enc, cb) { buf += chunk.toString(); cb(); } });
  return Object.assign(w, { text: () => buf });
}

function bearer(token: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${token}`);
  return md;
}

test('with gateway.token_file, callers without the bearer token are refused and counted', async () => {
  const tmp = tempDir();
  const tokenFile = join(tmp.dir, 'token');
  const token = 'k3y-0123456789abcdef';
  writeFileSync(tokenFile, token + '\n');
  const gw = await startGateway({ config: gatewayConfig(join(tmp.dir, 'data'), ['--gateway.token_file', tokenFile]) });
  const ingest = new IngestClient(gw.address, grpc.credentials.createInsecure()) as unknown as Ingest;
  const query = new QueryClient(gw.address, grpc.credentials.createInsecure()) as unknown as Query;
  try {
    await assert.rejects(sendOne(ingest, batchOf(1, [makeTestEvent()])), (e: grpc.ServiceError) => {
      assert.equal(e.code, grpc.status.UNAUTHENTICATED);
      assert.equal(e.details, 'missing bearer token (authorization: Bearer <token>)');
      return true;
    });
    await assert.rejects(sendOne(ingest, batchOf(1, [makeTestEvent()]), bearer('wrong-token-xxxxxxxx')), (e: grpc.ServiceError) => e.code === grpc.status.UNAUTHENTICATED && e.details === 'invalid bearer token');
    await assert.rejects(searchAll(query), (e: grpc.ServiceError) => e.code === grpc.status.UNAUTHENTICATED);
    assert.equal(await gw.store.count(), 0);
    const ack = await sendOne(ingest, batchOf(2, [makeTestEvent()]), bearer(token));
    assert.equal(ack.stored, 1);
    assert.equal((await searchAll(query, bearer(token))).events.length, 1);
    const out = sink();
    const err = sink();
    assert.equal(await runEventsCommand(['--gateway', gw.address, '--json'], {}, out, err), 1);
    assert.equal(err.text(), `dbaudit events: the gateway at ${gw.address} refused the credentials: missing bearer token (authorization: Bearer <token>)\n`);
    assert.equal(await runEventsCommand(['--gateway', gw.address, '--json', '--token-file', tokenFile], {}, out, err), 0);
    assert.equal(out.text().split('\n').filter(Boolean).length, 1);
    assert.equal(await runEventsCommand(['--gateway', gw.address, '--token-file', join(tmp.dir, 'missing')], {}, sink(), sink()), 2);
    const json = await gw.metrics.registry.getMetricsAsJSON();
    assert.equal(json.find((m) => m.name === 'dbaudit_gateway_auth_failures_total')?.values[0].value, 4);
    const req = json.find((m) => m.name === 'dbaudit_api_requests_total')?.values ?? [];
    assert.equal(req.find((v) => v.labels.endpoint === 'events' && v.labels.status === '401')?.value, 2);
    assert.equal(req.find((v) => v.labels.endpoint === 'query' && v.labels.status === '401')?.value, 2);
  } finally {
    ingest.close();
    query.close();
    await gw.close();
    tmp.remove();
  }
});

test('a token file that is missing or too short stops the gateway at start', async () => {
  const tmp = tempDir();
  const short = join(tmp.dir, 'short');
  writeFileSync(short, 'abc');
  await assert.rejects(startGateway({ config: gatewayConfig(join(tmp.dir, 'd1'), ['--gateway.token_file', join(tmp.dir, 'nope')]) }), (e) => isAuditError(e, ErrorCode.Config));
  await assert.rejects(startGateway({ config: gatewayConfig(join(tmp.dir, 'd2'), ['--gateway.token_file', short]) }), /at least 16 characters/);
  tmp.remove();
});

function makeCerts(dir: string): void {
  const ossl = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  };
  const key = (name: string): void => ossl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`);
  key('ca');
  ossl('req', '-x509', '-new', '-key', 'ca.key', '-subj', '/CN=dbaudit test CA', '-days', '2', '-out', 'ca.crt');
  for (const [name, cn, ext] of [
    ['server', 'localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth'],
    ['client', 'collector-7', 'extendedKeyUsage=clientAuth'],
  ] as const) {
    key(name);
    ossl('req', '-new', '-key', `${name}.key`, '-subj', `/CN=${cn}`, '-out', `${name}.csr`);
    writeFileSync(join(dir, `${name}.ext`), ext + '\n');
    ossl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.crt`);
  }
}

test('TLS, and mutual TLS naming the collector by its certificate', async () => {
  const tmp = tempDir();
  makeCerts(tmp.dir);
  const f = (n: string): string => join(tmp.dir, n);
  const pem = (n: string): Buffer => readFileSync(f(n));

  const tls = await startGateway({ config: gatewayConfig(f('tls-data'), ['--gateway.tls.cert_file', f('server.crt'), '--gateway.tls.key_file', f('server.key')]) });
  try {
    const ok = new IngestClient(tls.address, grpc.credentials.createSsl(pem('ca.crt'))) as unknown as Ingest;
    assert.equal((await sendOne(ok, batchOf(1, [makeTestEvent()]))).stored, 1);
    ok.close();
    const plain = new IngestClient(tls.address, grpc.credentials.createInsecure()) as unknown as Ingest;
    await assert.rejects(sendOne(plain, batchOf(1, [makeTestEvent()])), (e: grpc.ServiceError) => e.code === grpc.status.UNAVAILABLE);
    plain.close();
  } finally {
    await tls.close();
  }

  const mtls = await startGateway({
    config: gatewayConfig(f('mtls-data'), ['--gateway.tls.cert_file', f('server.crt'), '--gateway.tls.key_file', f('server.key'), '--gateway.tls.client_ca_file', f('ca.crt')]),
  });
  try {
    const noCert = new IngestClient(mtls.address, grpc.credentials.createSsl(pem('ca.crt'))) as unknown as Ingest;
    await assert.rejects(sendOne(noCert, batchOf(1, [makeTestEvent()])), (e: grpc.ServiceError) => e.code === grpc.status.UNAVAILABLE);
    noCert.close();
    const ca = f('ca.crt');
    const out = sink();
    assert.equal(await runEventsCommand(['--gateway', mtls.address, '--tls-ca', ca], {}, sink(), sink()), 1);
    assert.equal(await runEventsCommand(['--gateway', mtls.address, '--tls-ca', ca, '--tls-cert', f('client.crt'), '--tls-key', f('client.key')], {}, out, sink()), 0);
    assert.equal(out.text(), '');
    const withCert = new IngestClient(mtls.address, grpc.credentials.createSsl(pem('ca.crt'), pem('client.key'), pem('client.crt'))) as unknown as Ingest;
    const ev = makeTestEvent();
    assert.equal((await sendOne(withCert, create(EventBatchSchema, { ...batchOf(1, [ev]), collectorId: 'claims-to-be-someone-else' }))).stored, 1);
    withCert.close();
    assert.equal((await mtls.store.get(ev.eventId))?.event.deliveredBy, 'collector-7');
  } finally {
    await mtls.close();
    tmp.remove();
  }
});
