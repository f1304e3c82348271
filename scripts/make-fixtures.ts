// Re-records the wire-traffic fixtures in test/fixtures/ against throwaway
// servers started by the test harness.
//
//   node --import tsx scripts/make-fixtures.ts [--protocol postgres|mysql] [--only NAME]
//
// Each recipe (fixtures-postgres.ts, fixtures-mysql.ts) runs a real client
// through the recording relay (capture.ts). test/fixtures/manifest.json lists
// every fixture with its description, client command, sizes and the versions
// of the server and tools that produced it.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { binary } from '../test/harness/binaries.js';
import { makeTempDir } from '../test/harness/cleanup.js';
import { run } from '../test/harness/exec.js';
import { startMariadb } from '../test/harness/mariadb.js';
import { startPostgres } from '../test/harness/postgres.js';
import { record, type FixtureEntry, type Recipe } from './fixture-lib.js';
import { mysqlRecipes, prepareMariadb } from './fixtures-mysql.js';
import { postgresRecipes, preparePostgres } from './fixtures-postgres.js';

interface Manifest {
  generatedBy: string;
  tools: Record<string, string>;
  fixtures: FixtureEntry[];
}

const root = resolve(new URL('..', import.meta.url).pathname, 'test', 'fixtures');
const { values } = parseArgs({ options: { protocol: { type: 'string' }, only: { type: 'string' } } });

async function version(cmd: string, args: string[]): Promise<string> {
  const r = await run(binary(cmd), args, { allowFail: true });
  return (r.stdout || r.stderr).split('\n')[0]!.trim();
}

function selected(recipes: Recipe[]): Recipe[] {
  return values.only === undefined ? recipes : recipes.filter((r) => r.name === values.only);
}

async function main(): Promise<void> {
  const manifestFile = join(root, 'manifest.json');
  const manifest: Manifest = existsSync(manifestFile)
    ? (JSON.parse(readFileSync(manifestFile, 'utf8')) as Manifest)
    : { generatedBy: '', tools: {}, fixtures: [] };
  manifest.generatedBy = 'node --import tsx scripts/make-fixtures.ts';
  manifest.tools.node = process.version;
  const results: FixtureEntry[] = [];

  if (values.protocol === undefined || values.protocol === 'postgres') {
    const server = await startPostgres({ passwordAuth: true });
    try {
      manifest.tools.postgres = (await server.psql('SELECT version()')).trim();
      manifest.tools.psql = await version('psql', ['--version']);
      manifest.tools.pgbench = await version('pgbench', ['--version']);
      manifest.tools.pg = `node-postgres ${readVersion('pg')}, pg-protocol ${readVersion('pg-protocol')}`;
      const { db, scram, md5 } = await preparePostgres(server);
      process.stdout.write(`PostgreSQL on port ${server.port}\n`);
      for (const recipe of selected(postgresRecipes(server, db, scram, md5))) {
        results.push(await record('postgres', join(root, 'postgres'), server, recipe));
      }
    } finally {
      await server.dispose();
    }
  }

  if (values.protocol === undefined || values.protocol === 'mysql') {
    const server = await startMariadb();
    const tmp = makeTempDir('fixtures');
    try {
      manifest.tools.mariadb = server.version;
      manifest.tools['mariadb client'] = await version('mariadb', ['--version']);
      manifest.tools.sysbench = await version('sysbench', ['--version']);
      manifest.tools.mysql2 = readVersion('mysql2');
      const csv = join(tmp.dir, 'rows.csv');
      const { db } = await prepareMariadb(server, csv);
      process.stdout.write(`MariaDB on port ${server.port}\n`);
      for (const recipe of selected(mysqlRecipes(server, db, csv))) {
        results.push(await record('mysql', join(root, 'mysql'), server, recipe));
      }
    } finally {
      await server.dispose();
      tmp.remove();
    }
  }

  const key = (f: FixtureEntry): string => `${f.protocol}/${f.name}`;
  const fresh = new Set(results.map(key));
  manifest.fixtures = [...manifest.fixtures.filter((f) => !fresh.has(key(f))), ...results].sort((a, b) => key(a).localeCompare(key(b)));
  writeFileSync(manifestFile, JSON.stringify(manifest, null, 2) + '\n');
  process.stdout.write(`wrote ${manifestFile}\n`);
}

function readVersion(pkg: string): string {
  const file = resolve(new URL('..', import.meta.url).pathname, 'node_modules', pkg, 'package.json');
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

main().catch((e: unknown) => {
  process.stderr.write(`make-fixtures: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
