import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { loadConfig } from '../lib/config.js';
import { formatEventLine } from '../lib/format.js';
import { componentLogger, createLogger } from '../lib/log.js';
import { runGateway } from '../gateway/run.js';
import { startCollector } from './collector.js';

/** A port to try first, or any free one if it is taken. */
async function portOr0(host: string, port: number): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(0));
    s.listen(port, host, () => s.close(() => resolve(port)));
  });
}

/**
 * `npm start`: an embedded PostgreSQL (PGlite over its socket server), a
 * gateway and the proxy, all in this process. Each event is printed as
 * one line when the gateway stores it. Ctrl-C stops everything.
 */
export async function runDemo(argv: string[]): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'dbaudit-demo-'));
  const host = '127.0.0.1';
  const out = process.stdout;
  const logLevel = process.env.DBAUDIT_LOG_LEVEL ?? 'warn';
  const logger = createLogger(logLevel, undefined);

  const db = await PGlite.create();
  const dbServer = new PGLiteSocketServer({ db, host, port: 0, maxConnections: 20 });
  await dbServer.start();
  const dbAddress = dbServer.getServerConn();

  const gatewayLoaded = loadConfig({
    argv: [],
    scope: 'gateway',
    defaults: { 'gateway.listen': `${host}:0`, 'gateway.data_dir': join(dir, 'gateway'), 'gateway.http.listen': `${host}:0`, 'log.level': logLevel },
  });
  const gateway = await runGateway({
    config: gatewayLoaded.config,
    logger: componentLogger(logger, 'gateway'),
    onStored: (events) => {
      for (const ev of events) out.write(formatEventLine(ev) + '\n');
    },
  });

  const listenPort = await portOr0(host, 6432);
  const httpPort = await portOr0(host, 8080);
  const { config, rest } = loadConfig({
    argv,
    scope: 'collector',
    defaults: {
      'collector.id': 'demo',
      'collector.listen': `${host}:${listenPort}`,
      'collector.upstream': dbAddress,
      'collector.http.listen': `${host}:${httpPort}`,
      'collector.gateway.endpoints': [gateway.address],
      'collector.cache.path': join(dir, 'cache'),
      'collector.cache.max_size': '256MB',
      'collector.retry.initial_delay': '200ms',
      'collector.retry.max_delay': '5s',
      'log.level': logLevel,
    },
  });
  if (rest.length > 0) throw new Error(`dbaudit demo: unknown argument ${rest[0]}`);
  // The demo makes a throwaway key; a real deployment reads it from a file or the environment.
  const env = { ...process.env, DBAUDIT_CACHE_KEY: process.env.DBAUDIT_CACHE_KEY ?? randomBytes(32).toString('base64') };
  const collector = await startCollector({ config, logger: componentLogger(logger, 'proxy'), env });

  const port = collector.address.split(':').pop();
  out.write(
    [
      '',
      'dbaudit demo: embedded PostgreSQL (PGlite) → dbaudit proxy → gateway',
      '',
      `  connect:  psql "postgresql://postgres@${host}:${port}/postgres?sslmode=disable"`,
      `  metrics:  http://${collector.httpAddress}/metrics   health: http://${collector.httpAddress}/health/detailed`,
      `  query:    npx dbaudit events --gateway ${gateway.address} --limit 20`,
      '',
      'Audit events appear below as the gateway stores them. Ctrl-C stops everything.',
      '',
    ].join('\n'),
  );

  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) process.exit(1);
    stopping = true;
    out.write('\nstopping…\n');
    await collector.shutdown(2_000);
    await gateway.close();
    await dbServer.stop();
    await db.close();
    rmSync(dir, { recursive: true, force: true });
    out.write('stopped\n');
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}
