import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import pg from 'pg';
import { sharedPostgres, skipUnless } from '../harness/index.js';
import { startStack } from './stack.js';

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

describe('no plaintext event bytes on disk', { skip: skipUnless('postgres') }, () => {
  test('statements carrying a marker through the proxy leave no trace of it in any cache file', async () => {
    const pgServer = await sharedPostgres({ pgaudit: true, passwordAuth: true });
    // Redaction off and parameters on, so the marker is in the events themselves (as text, as a parameter, as an identifier).
    const stack = await startStack(`${pgServer.host}:${pgServer.port}`, { 'audit.redact': 'none', 'audit.log_parameters': true });
    const marker = `MarkerZq${Date.now().toString(36)}`;
    try {
      const c = new pg.Client({ host: stack.proxyHost, port: stack.proxyPort, user: 'postgres', database: 'postgres', application_name: marker });
      await c.connect();
      for (let i = 0; i < 200; i++) {
        await c.query(`select '${marker}-${i}' as ${marker}_col`);
        await c.query('select $1::text as v', [`${marker}-param-${i}`]);
      }
      await c.end();
      const evs = await stack.waitForEvents((e) => e.filter((x) => x.kind === 'statement' && x.applicationName === marker).length === 400);
      assert.ok(evs.some((e) => e.statement.includes(marker)), 'the marker is in the events');
    } finally {
      // Stop the collector first so RocksDB flushes and closes everything it writes.
      await stack.collector.shutdown(500);
    }
    const files = filesUnder(stack.cacheDir);
    assert.ok(files.length > 0);
    const needles = [Buffer.from(marker), Buffer.from(marker, 'utf16le')];
    for (const f of files) {
      const bytes = readFileSync(f);
      for (const n of needles) assert.equal(bytes.indexOf(n), -1, `marker found in ${f}`);
    }
    await stack.close();
  });
});
