import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { probeDatabase } from '../../lib/db-probe.js';
import { makeTempDir, makeTlsFiles, needServer, sharedMariadb, startPostgres, type PgServer } from '../harness/index.js';

/** Server log lines other than log_connections' "connection received". */
function complaints(logFile: string, from: number): string[] {
  return readFileSync(logFile, 'utf8')
    .slice(from)
    .split('\n')
    .filter((l) => l.trim() !== '' && !/LOG: {2}connection received: /.test(l));
}

describe('database probes against real servers', () => {
  const servers: PgServer[] = [];
  after(async () => {
    for (const s of servers) await s.dispose();
  });

  test('PostgreSQL without and with TLS: reachable, and nothing in the server log but the connection itself', async (t) => {
    if (!needServer(t, 'postgres', 'openssl')) return;
    const tmp = makeTempDir('obs-probe-tls');
    try {
      const files = await makeTlsFiles(join(tmp.dir, 'tls'));
      const plain = await startPostgres();
      servers.push(plain);
      const tls = await startPostgres({ ssl: { certFile: files.certFile, keyFile: files.keyFile } });
      servers.push(tls);
      for (const pg of [plain, tls]) {
        const from = readFileSync(pg.logFile).length;
        for (let i = 0; i < 3; i++) {
          const r = await probeDatabase('postgres', pg.host, pg.port, 2000);
          assert.equal(r.ok, true, r.error);
        }
        await new Promise((r) => setTimeout(r, 300));
        const log = readFileSync(pg.logFile, 'utf8').slice(from);
        assert.equal(log.match(/connection received/g)?.length, 3, log);
        assert.deepEqual(complaints(pg.logFile, from), [], `probe left complaints in ${pg === tls ? 'the TLS' : 'the plain'} server's log`);
      }
      await plain.stop();
      const down = await probeDatabase('postgres', plain.host, plain.port, 2000);
      assert.equal(down.ok, false);
      assert.match(down.error!, /ECONNREFUSED/);
    } finally {
      tmp.remove();
    }
  });

  test('MariaDB: the greeting makes it reachable', async (t) => {
    if (!needServer(t, 'mariadb')) return;
    const m = await sharedMariadb();
    const r = await probeDatabase('mysql', m.host, m.port, 2000);
    assert.equal(r.ok, true, r.error);
    // Not PostgreSQL: the SSLRequest is answered by a MySQL greeting.
    const wrong = await probeDatabase('postgres', m.host, m.port, 2000);
    assert.equal(wrong.ok, false);
    assert.match(wrong.error!, /not a PostgreSQL server/);
  });
});
