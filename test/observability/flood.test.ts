import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { freePort } from '../harness/index.js';
import { scrape, startObsStack, until } from './obs-stack.js';

test('a database that is down: 30 clients, 30 counted errors, one warning line', async () => {
  // Nothing listens on this port: every upstream connect is refused.
  const port = await freePort();
  const stack = await startObsStack(`127.0.0.1:${port}`, { logLevel: 'debug' });
  try {
    const n = 30;
    await Promise.all(
      Array.from({ length: n }, async () => {
        const c = new pg.Client({ host: stack.proxyHost, port: stack.proxyPort, user: 'app', database: 'appdb' });
        c.on('error', () => {});
        await assert.rejects(c.connect(), /not reachable/);
      }),
    );
    const s = await until(() => scrape(stack.collector.httpAddress), (x) => x.value('dbaudit_database_connections_errors_total') === n);
    assert.equal(s.value('dbaudit_database_connections_errors_total'), n);
    assert.equal(s.value('dbaudit_database_connection_errors_by_reason_total', { reason: 'connect' }), n);
    const warnings = stack.logs.json().filter((l) => l.msg === 'cannot reach the database');
    assert.equal(warnings.length, 1, JSON.stringify(warnings));
    assert.equal(warnings[0].level, 40);
    assert.equal(warnings[0].incident, 'database-unreachable');
    // Each session still has its debug line: the flood is quiet only at warn.
    assert.equal(stack.logs.json().filter((l) => l.msg === 'session ended').length, n);
  } finally {
    await stack.close();
  }
});
