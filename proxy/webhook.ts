import { readFileSync, statSync } from 'node:fs';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { parseAddress } from '../lib/config.js';
import { listenError } from '../lib/listen.js';
import { AuditError, ErrorCode, isAuditError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { describeObject, planAll, toJsonPatch, type InjectOptions } from './inject.js';

/**
 * `dbaudit webhook`: a Kubernetes mutating admission webhook over HTTPS.
 * POST /mutate takes an AdmissionReview (admission.k8s.io/v1) and answers
 * with the sidecar as a base64 JSONPatch, computed by the same code as
 * `dbaudit inject`. A bad dbaudit annotation denies the object with a message
 * naming the annotation and what is allowed: an annotated pod that cannot be
 * audited must not start unaudited. GET /healthz answers 200.
 */

/** AdmissionReview requests are bounded by the API server (about 3 MiB of object); more is refused. */
const MAX_BODY_BYTES = 8 * 1024 * 1024;
/** How often the certificate files are checked for rotation (cert-manager, a renewed Secret). */
const CERT_RELOAD_INTERVAL_MS = 60_000;

interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  patchType?: 'JSONPatch';
  patch?: string;
  status?: { code: number; message: string };
  warnings?: string[];
}

/** Answers one AdmissionReview object. Throws AuditError(InvalidRequest) for a body that is not one. */
export function review(body: unknown, opts: InjectOptions = {}): { apiVersion: string; kind: 'AdmissionReview'; response: AdmissionResponse } {
  const b = body as { apiVersion?: unknown; kind?: unknown; request?: { uid?: unknown; object?: unknown; operation?: unknown } } | null;
  if (typeof b !== 'object' || b === null || b.kind !== 'AdmissionReview') throw new AuditError(ErrorCode.InvalidRequest, 'expected an AdmissionReview object');
  if (b.apiVersion !== 'admission.k8s.io/v1') throw new AuditError(ErrorCode.InvalidRequest, `AdmissionReview apiVersion ${JSON.stringify(b.apiVersion)} is not supported; use admission.k8s.io/v1`);
  const req = b.request;
  if (typeof req !== 'object' || req === null || typeof req.uid !== 'string' || req.uid === '') throw new AuditError(ErrorCode.InvalidRequest, 'AdmissionReview.request.uid is missing');
  const envelope = { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' as const };
  // DELETE and CONNECT carry no object to mutate.
  if (req.object === undefined || req.object === null) return { ...envelope, response: { uid: req.uid, allowed: true } };
  // Pods made by controllers arrive with generateName and without metadata.namespace: name them as the request does.
  const ns = (req as { namespace?: unknown }).namespace;
  const meta = (req.object as { metadata?: Record<string, unknown> }).metadata;
  const object = typeof ns === 'string' && meta && meta.namespace === undefined ? { ...(req.object as object), metadata: { ...meta, namespace: ns } } : req.object;
  try {
    const patch = toJsonPatch(planAll(object, opts));
    if (patch.length === 0) return { ...envelope, response: { uid: req.uid, allowed: true } };
    return { ...envelope, response: { uid: req.uid, allowed: true, patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') } };
  } catch (err) {
    if (!isAuditError(err, ErrorCode.InvalidRequest)) throw err;
    return { ...envelope, response: { uid: req.uid, allowed: false, status: { code: 400, message: `dbaudit sidecar injection: ${err.message}` } } };
  }
}

function send(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function handle(req: IncomingMessage, res: ServerResponse, opts: InjectOptions, logger: Logger): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (path === '/healthz' || path === '/health/live' || path === '/health/ready') return send(res, 200, { status: 'ok' });
  if (path !== '/mutate') return send(res, 404, { error: 'not found', endpoints: ['/mutate', '/healthz'] });
  if (req.method !== 'POST') return send(res, 405, { error: 'POST an AdmissionReview' });
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return send(res, 413, { error: `request body over ${MAX_BODY_BYTES} bytes` });
    chunks.push(chunk);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    return send(res, 400, { error: 'request body is not JSON' });
  }
  try {
    const out = review(body, opts);
    const obj = (body as { request?: { object?: unknown; namespace?: string } }).request;
    logger.info({ object: describeObject(obj?.object), namespace: obj?.namespace, allowed: out.response.allowed, patched: out.response.patch !== undefined }, 'admission review');
    send(res, 200, out);
  } catch (err) {
    if (!isAuditError(err, ErrorCode.InvalidRequest)) throw err;
    send(res, 400, { error: err.message });
  }
}

export interface WebhookHandle {
  address: string;
  close(): Promise<void>;
}

/** Starts the HTTPS server. The certificate and key are re-read when their files change. */
export async function startWebhook(o: { listen: string; certFile: string; keyFile: string; logger: Logger; reloadIntervalMs?: number } & InjectOptions): Promise<WebhookHandle> {
  const addr = parseAddress(o.listen);
  if (!addr) throw new AuditError(ErrorCode.Config, `dbaudit webhook --listen: invalid value ${JSON.stringify(o.listen)}; expected host:port`);
  const load = (): { cert: Buffer; key: Buffer; stamp: string } => {
    try {
      const stamp = [o.certFile, o.keyFile].map((f) => statSync(f).mtimeMs).join('/');
      return { cert: readFileSync(o.certFile), key: readFileSync(o.keyFile), stamp };
    } catch (err) {
      throw AuditError.from(err, ErrorCode.Config, 'dbaudit webhook: cannot read --tls-cert/--tls-key');
    }
  };
  let current = load();
  const server = https.createServer({ cert: current.cert, key: current.key, minVersion: 'TLSv1.2' }, (req, res) => {
    handle(req, res, { image: o.image }, o.logger).catch((err: unknown) => {
      o.logger.error({ err: err instanceof Error ? err.message : String(err) }, 'admission review failed');
      if (!res.headersSent) send(res, 500, { error: 'internal error' });
      else res.destroy();
    });
  });
  const reload = setInterval(() => {
    try {
      const next = load();
      if (next.stamp === current.stamp) return;
      server.setSecureContext({ cert: next.cert, key: next.key });
      current = next;
      o.logger.info('webhook certificate reloaded');
    } catch (err) {
      o.logger.warn({ err: (err as Error).message }, 'webhook certificate reload failed; keeping the previous one');
    }
  }, o.reloadIntervalMs ?? CERT_RELOAD_INTERVAL_MS);
  reload.unref();
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(listenError(err, 'webhook --listen', o.listen)));
    server.listen(addr.port, addr.host, () => resolve());
  });
  const a = server.address() as AddressInfo;
  return {
    address: `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        clearInterval(reload);
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export const WEBHOOK_USAGE = `dbaudit webhook --listen HOST:PORT --tls-cert FILE --tls-key FILE [--image IMAGE]

A mutating admission webhook (AdmissionReview v1 over HTTPS, POST /mutate) that
adds the dbaudit sidecar to pods annotated dbaudit.io/inject: "true".
Environment: DBAUDIT_WEBHOOK_LISTEN, DBAUDIT_WEBHOOK_TLS_CERT, DBAUDIT_WEBHOOK_TLS_KEY, DBAUDIT_INJECT_IMAGE.
`;

/** Reads `dbaudit webhook` flags (each also from the environment). */
export function webhookOptions(argv: readonly string[], env: NodeJS.ProcessEnv): { listen: string; certFile: string; keyFile: string; image?: string; logLevel: string } {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: { listen: { type: 'string' }, 'tls-cert': { type: 'string' }, 'tls-key': { type: 'string' }, image: { type: 'string' }, 'log-level': { type: 'string' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw AuditError.from(err, ErrorCode.Config, 'dbaudit webhook');
  }
  const str = (v: string | boolean | undefined): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
  const listen = str(values.listen) ?? env.DBAUDIT_WEBHOOK_LISTEN ?? '0.0.0.0:8443';
  const certFile = str(values['tls-cert']) ?? env.DBAUDIT_WEBHOOK_TLS_CERT;
  const keyFile = str(values['tls-key']) ?? env.DBAUDIT_WEBHOOK_TLS_KEY;
  if (!certFile || !keyFile) throw new AuditError(ErrorCode.Config, 'dbaudit webhook: --tls-cert and --tls-key are required (the API server only calls webhooks over HTTPS)');
  return { listen, certFile, keyFile, image: str(values.image) ?? env.DBAUDIT_INJECT_IMAGE, logLevel: str(values['log-level']) ?? env.DBAUDIT_LOG_LEVEL ?? 'info' };
}
