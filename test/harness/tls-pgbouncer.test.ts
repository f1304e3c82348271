// Harness tests: TLS certificates accepted and verified by both servers, and
// pgbouncer in session mode in front of PostgreSQL.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { makeTempDir, makeTlsFiles, needMariadb, needPgbouncer, needPostgres, needServer, sharedPostgres, startMariadb, startPgbouncer, startPostgres } from './index.js';

test('makeTlsFiles: PostgreSQL serves the certificate and the client verifies it', async (t) => {
  if (!needServer(t, 'openssl') || !needPostgres(t)) return;
  const tmp = makeTempDir('tls');
  const tls = await makeTlsFiles(join(tmp.dir, 'certs'), { cn: 'localhost', san: ['localhost', '127.0.0.1'] });
  const server = await startPostgres({ ssl: { certFile: tls.certFile, keyFile: tls.keyFile } });
  try {
    const client = new pg.Client({
      connectionString: server.url(),
      ssl: { ca: readFileSync(tls.caFile, 'utf8'), servername: 'localhost', rejectUnauthorized: true },
    });
    await client.connect();
    try {
      const r = await client.query('select ssl from pg_stat_ssl where pid = pg_backend_pid()');
      assert.deepEqual(r.rows, [{ ssl: true }]);
    } finally {
      await client.end();
    }
    // a client that trusts another CA refuses the server
    const other = await makeTlsFiles(join(tmp.dir, 'other'));
    const bad = new pg.Client({ connectionString: server.url(), ssl: { ca: readFileSync(other.caFile, 'utf8'), rejectUnauthorized: true } });
    await assert.rejects(bad.connect(), /self[- ]signed|unable to verify|certificate/i);
    // psql: sslmode=verify-full with the CA
    const out = await server.psql('select ssl from pg_stat_ssl where pid = pg_backend_pid()', {
      sslmode: 'verify-full',
      host: 'localhost',
      env: { PGSSLROOTCERT: tls.caFile },
    });
    assert.equal(out.trim(), 't');
  } finally {
    await server.dispose();
    tmp.remove();
  }
});

test('makeTlsFiles: MariaDB serves the certificate and mysql2 verifies it', async (t) => {
  if (!needServer(t, 'openssl') || !needMariadb(t)) return;
  const tmp = makeTempDir('tls');
  const tls = await makeTlsFiles(tmp.dir);
  const server = await startMariadb({ ssl: { certFile: tls.certFile, keyFile: tls.keyFile, caFile: tls.caFile } });
  try {
    const conn = await mysql.createConnection({
      host: '127.0.0.1',
      port: server.port,
      user: server.tcpUser.name,
      password: server.tcpUser.password,
      ssl: { ca: readFileSync(tls.caFile, 'utf8'), rejectUnauthorized: true },
    });
    try {
      const [rows] = await conn.query("SHOW SESSION STATUS LIKE 'Ssl_cipher'");
      const cipher = (rows as Array<{ Value: string }>)[0]?.Value ?? '';
      assert.notEqual(cipher, '');
    } finally {
      await conn.end();
    }
  } finally {
    await server.dispose();
    tmp.remove();
  }
});

test('startPgbouncer: session mode in front of the shared PostgreSQL', async (t) => {
  if (!needPgbouncer(t)) return;
  const pgServer = await sharedPostgres();
  const bouncer = await startPgbouncer(pgServer);
  try {
    const out = await pgServer.psql('select current_user, inet_server_port()', { port: bouncer.port });
    assert.equal(out.trim(), `postgres|${pgServer.port}`);
    const client = new pg.Client({ connectionString: bouncer.url('postgres') });
    await client.connect();
    try {
      const r = await client.query('select $1::int * 2 as n', [21]);
      assert.deepEqual(r.rows, [{ n: 42 }]);
    } finally {
      await client.end();
    }
  } finally {
    await bouncer.dispose();
  }
});
