// A recording TCP relay: listens on a port, connects each client to the real
// server, forwards bytes both ways unchanged, and records each connection's
// bytes per direction plus the chunk boundaries as they arrived.
//
//   npx tsx scripts/capture.ts --listen 127.0.0.1:7000 --upstream 127.0.0.1:5432 \
//       --out test/fixtures/postgres/psql-session [--record 2] [--exit-after 2]
//
// For recorded connection k the files are <out>.<k>.client.bin (client →
// server), <out>.<k>.server.bin (server → client) and <out>.<k>.chunks.json;
// with --record K only connection K is recorded, as <out>.client.bin,
// <out>.server.bin, <out>.chunks.json. chunks.json lists every chunk in
// arrival order: { dir: "c" | "s", offset, length, t } where offset is into
// that direction's .bin file and t is milliseconds since the connection
// opened. Stops on SIGINT/SIGTERM, or after --exit-after connections closed.
import { writeFileSync, mkdirSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

export interface Chunk {
  readonly dir: 'c' | 's';
  readonly offset: number;
  readonly length: number;
  readonly t: number;
}

export interface ChunksFile {
  readonly name: string;
  readonly connection: number;
  readonly upstream: string;
  readonly startedAt: string;
  readonly clientBytes: number;
  readonly serverBytes: number;
  readonly chunks: readonly Chunk[];
}

export interface CaptureOptions {
  readonly listenHost?: string;
  /** 0 (default): pick a free port. */
  readonly listenPort?: number;
  readonly upstream: { readonly host: string; readonly port: number };
  /** Output path prefix, e.g. test/fixtures/postgres/psql-session. */
  readonly out: string;
  /** Record only the K-th connection (1-based), under the bare prefix. */
  readonly record?: number;
  /** Resolve `finished` (and stop listening) after this many connections closed. */
  readonly exitAfter?: number;
}

export interface Capture {
  readonly port: number;
  /** Files written so far (one entry per recorded connection). */
  readonly written: string[];
  /** Resolves when exitAfter connections have closed (or close() was called). */
  readonly finished: Promise<void>;
  /** Stop listening, wait for open connections to end, write their files. */
  close(): Promise<void>;
}

class Recording {
  readonly client: Buffer[] = [];
  readonly server: Buffer[] = [];
  readonly chunks: Chunk[] = [];
  clientBytes = 0;
  serverBytes = 0;
  readonly started = Date.now();
  readonly startedAt = new Date().toISOString();

  add(dir: 'c' | 's', data: Buffer): void {
    const copy = Buffer.from(data);
    const t = Date.now() - this.started;
    if (dir === 'c') {
      this.chunks.push({ dir, offset: this.clientBytes, length: copy.length, t });
      this.client.push(copy);
      this.clientBytes += copy.length;
    } else {
      this.chunks.push({ dir, offset: this.serverBytes, length: copy.length, t });
      this.server.push(copy);
      this.serverBytes += copy.length;
    }
  }

  write(prefix: string, name: string, connection: number, upstream: string): void {
    mkdirSync(dirname(prefix), { recursive: true });
    writeFileSync(`${prefix}.client.bin`, Buffer.concat(this.client));
    writeFileSync(`${prefix}.server.bin`, Buffer.concat(this.server));
    const file: ChunksFile = {
      name,
      connection,
      upstream,
      startedAt: this.startedAt,
      clientBytes: this.clientBytes,
      serverBytes: this.serverBytes,
      chunks: this.chunks,
    };
    // one chunk per line: diffable, still valid JSON
    const body = JSON.stringify({ ...file, chunks: [] }, null, 2).replace(
      '"chunks": []',
      `"chunks": [\n${this.chunks.map((c) => '    ' + JSON.stringify(c)).join(',\n')}\n  ]`,
    );
    writeFileSync(`${prefix}.chunks.json`, body + '\n');
  }
}

export function startCapture(opts: CaptureOptions): Promise<Capture> {
  const upstream = `${opts.upstream.host}:${opts.upstream.port}`;
  const name = opts.out.split('/').pop() ?? opts.out;
  const written: string[] = [];
  const open = new Set<Promise<void>>();
  let accepted = 0;
  let closed = 0;
  let resolveFinished!: () => void;
  const finished = new Promise<void>((r) => (resolveFinished = r));

  function relay(client: Socket, k: number): Promise<void> {
    const recording = opts.record === undefined || opts.record === k ? new Recording() : undefined;
    const server = connect({ host: opts.upstream.host, port: opts.upstream.port });
    client.setNoDelay(true);
    server.setNoDelay(true);
    return new Promise<void>((done) => {
      let ends = 0;
      const finish = (): void => {
        if (++ends < 2) return;
        if (recording !== undefined) {
          const prefix = opts.record === undefined ? `${opts.out}.${k}` : opts.out;
          recording.write(prefix, name, k, upstream);
          written.push(prefix);
        }
        done();
      };
      const pipe = (from: Socket, to: Socket, dir: 'c' | 's'): void => {
        from.on('data', (data: Buffer) => {
          recording?.add(dir, data);
          if (!to.write(data)) {
            from.pause();
            to.once('drain', () => from.resume());
          }
        });
        from.on('end', () => to.end());
        from.on('close', () => {
          to.destroy();
          finish();
        });
        from.on('error', () => to.destroy());
      };
      pipe(client, server, 'c');
      pipe(server, client, 's');
    });
  }

  const srv: Server = createServer((client) => {
    const k = ++accepted;
    const p = relay(client, k).then(() => {
      open.delete(p);
      closed += 1;
      if (opts.exitAfter !== undefined && closed >= opts.exitAfter) {
        srv.close();
        resolveFinished();
      }
    });
    open.add(p);
  });

  return new Promise((resolveStart, reject) => {
    srv.once('error', reject);
    srv.listen({ host: opts.listenHost ?? '127.0.0.1', port: opts.listenPort ?? 0 }, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      resolveStart({
        port,
        written,
        finished,
        async close() {
          srv.close();
          await Promise.all([...open]);
          resolveFinished();
        },
      });
    });
  });
}

function hostPort(s: string, flag: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  const port = Number(s.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`${flag}: expected HOST:PORT, got ${s}`);
  return { host: s.slice(0, i), port };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      listen: { type: 'string', default: '127.0.0.1:0' },
      upstream: { type: 'string' },
      out: { type: 'string' },
      record: { type: 'string' },
      'exit-after': { type: 'string' },
    },
  });
  if (values.upstream === undefined || values.out === undefined) {
    process.stderr.write('usage: capture.ts --upstream HOST:PORT --out PREFIX [--listen HOST:PORT] [--record K] [--exit-after N]\n');
    process.exit(2);
  }
  const listen = hostPort(values.listen, '--listen');
  const cap = await startCapture({
    listenHost: listen.host,
    listenPort: listen.port,
    upstream: hostPort(values.upstream, '--upstream'),
    out: resolve(values.out),
    record: values.record === undefined ? undefined : Number(values.record),
    exitAfter: values['exit-after'] === undefined ? undefined : Number(values['exit-after']),
  });
  process.stdout.write(`capture: listening on ${listen.host}:${cap.port}, relaying to ${values.upstream}\n`);
  const stop = (): void => {
    void cap.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  await cap.finished;
  await cap.close();
  for (const w of cap.written) process.stdout.write(`capture: wrote ${w}.{client.bin,server.bin,chunks.json}\n`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((e: unknown) => {
    process.stderr.write(`capture: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
