// Shared pieces of the fixture recipes (make-fixtures.ts): capture one client
// run through the recording relay and describe it in the manifest.
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { startCapture } from './capture.js';

export interface FixtureEntry {
  readonly name: string;
  readonly protocol: 'postgres' | 'mysql';
  readonly description: string;
  /** The client command line or program that made the traffic. */
  readonly client: string;
  /** Recorded connections: "" for the bare prefix, ".1", ".2" … otherwise. */
  readonly connections: readonly string[];
  readonly clientBytes: number;
  readonly serverBytes: number;
}

export interface Recipe {
  readonly name: string;
  readonly description: string;
  readonly client: string;
  /** Record only this connection (1-based, default 1) under the bare name, or 'all', numbered. */
  readonly record?: number | 'all';
  /** Run the client against the relay's port. */
  readonly run: (port: number) => Promise<void>;
}

/** Record `recipe` through a relay in front of `upstream` into `dir`. */
export async function record(
  protocol: 'postgres' | 'mysql',
  dir: string,
  upstream: { host: string; port: number },
  recipe: Recipe,
): Promise<FixtureEntry> {
  const out = join(dir, recipe.name);
  removeOld(out);
  const cap = await startCapture({ upstream, out, record: recipe.record === 'all' ? undefined : (recipe.record ?? 1) });
  try {
    await recipe.run(cap.port);
  } finally {
    await cap.close();
  }
  const connections = cap.written.map((p) => p.slice(out.length)).sort();
  let clientBytes = 0;
  let serverBytes = 0;
  for (const c of connections) {
    clientBytes += statSync(`${out}${c}.client.bin`).size;
    serverBytes += statSync(`${out}${c}.server.bin`).size;
  }
  process.stdout.write(`  ${protocol}/${recipe.name}: ${connections.length} connection(s), client ${clientBytes} B, server ${serverBytes} B\n`);
  return { name: recipe.name, protocol, description: recipe.description, client: recipe.client, connections, clientBytes, serverBytes };
}

/** Remove files of an earlier recording with the same prefix. */
function removeOld(out: string): void {
  const dir = dirname(out);
  if (!existsSync(dir)) return;
  const base = basename(out);
  const re = new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(\\.\\d+)?\\.(client\\.bin|server\\.bin|chunks\\.json)$`);
  for (const f of readdirSync(dir)) {
    if (re.test(f)) rmSync(join(dir, f), { force: true });
  }
}
