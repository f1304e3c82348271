// PostgreSQL fixture recipes: each one is a real client run against a real
// PostgreSQL through the recording relay (see test/fixtures/README.md).
import { serialize } from 'pg-protocol';
import pg from 'pg';
import { binary } from '../test/harness/binaries.js';
import { run } from '../test/harness/exec.js';
import type { PgServer } from '../test/harness/postgres.js';
import { functionCall, RawPgClient } from './raw-pg-client.js';
import type { Recipe } from './fixture-lib.js';

const PLAIN = { PGSSLMODE: 'disable', PGAPPNAME: 'dbaudit-fixture', PGTZ: 'UTC' } as const;

export const PSQL_SESSION = `\\set ON_ERROR_STOP 0
CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric(12,2), note text);
INSERT INTO accounts VALUES (1, 'alice', 100.00, 'first, "quoted" and it''s'), (2, 'bob', 50.50, NULL);
SELECT id, owner, balance
  FROM accounts
 ORDER BY id;
UPDATE accounts SET balance = balance + 10 WHERE id = 2;
BEGIN;
DELETE FROM accounts WHERE id = 1;
ROLLBACK;
SELECT * FROM no_such_table;
SELECT 1 / (id - id) FROM accounts;
DROP TABLE IF EXISTS not_there;
CREATE ROLE fixture_reader LOGIN PASSWORD 'hunter2-secret';
ALTER ROLE fixture_reader PASSWORD 'another-secret';
LISTEN fixture_channel;
NOTIFY fixture_channel, 'hello';
SELECT count(*) FROM accounts;
`;

function psqlArgs(port: number, db: string, user = 'postgres'): string[] {
  return ['-X', '-h', '127.0.0.1', '-p', String(port), '-U', user, '-d', db];
}

function psql(port: number, db: string, args: string[], input = '', env: Record<string, string> = {}, allowFail = false): Promise<unknown> {
  return run(binary('psql'), [...psqlArgs(port, db), ...args], { input, env: { ...process.env, ...PLAIN, ...env }, allowFail });
}

export function postgresRecipes(server: PgServer, db: string, scram: { name: string; password: string }, md5: { name: string; password: string }): Recipe[] {
  const copyRows = Array.from({ length: 200 }, (_, i) => `${i + 1}\titem ${i + 1}\t${((i * 37) % 1000) / 10}`).join('\n');
  return [
    {
      name: 'psql-session',
      description: 'psql -f - : DDL, INSERT, multi-line SELECT, UPDATE, BEGIN/DELETE/ROLLBACK, two errors (undefined table, runtime division by zero), NOTICE, CREATE/ALTER ROLE … PASSWORD, LISTEN/NOTIFY (NotificationResponse), count',
      client: `psql -X -h 127.0.0.1 -p PORT -U postgres -d ${db} -f - < (the PSQL_SESSION script in scripts/fixtures-postgres.ts)`,
      run: async (port) => {
        await psql(port, db, ['-f', '-'], PSQL_SESSION, {}, true);
      },
    },
    {
      name: 'psql-multi-statement',
      description: 'one simple Query holding three statements with an error in the middle: the third never runs',
      client: `psql -X … -c "SELECT 1 AS a; SELECT * FROM no_such_table; SELECT 3 AS c"`,
      run: async (port) => {
        await psql(port, db, ['-c', 'SELECT 1 AS a; SELECT * FROM no_such_table; SELECT 3 AS c'], '', {}, true);
      },
    },
    {
      name: 'login-scram',
      description: 'SCRAM-SHA-256 login (SASL, SASLContinue, SASLFinal) as a non-superuser, then one SELECT',
      client: `PGPASSWORD=… psql -X -h 127.0.0.1 -p PORT -U ${scram.name} -d ${db} -c "SELECT current_user"`,
      run: async (port) => {
        await run(binary('psql'), [...psqlArgs(port, db, scram.name), '-c', 'SELECT current_user'], {
          env: { ...process.env, ...PLAIN, PGPASSWORD: scram.password },
        });
      },
    },
    {
      name: 'login-md5',
      description: 'md5 password login (AuthenticationMD5Password, PasswordMessage), then one SELECT',
      client: `PGPASSWORD=… psql -X -h 127.0.0.1 -p PORT -U ${md5.name} -d ${db} -c "SELECT current_user"`,
      run: async (port) => {
        await run(binary('psql'), [...psqlArgs(port, db, md5.name), '-c', 'SELECT current_user'], {
          env: { ...process.env, ...PLAIN, PGPASSWORD: md5.password },
        });
      },
    },
    {
      name: 'login-failure',
      description: 'SCRAM login with a wrong password: ErrorResponse 28P01 during authentication',
      client: `PGPASSWORD=wrong psql -X -h 127.0.0.1 -p PORT -U ${scram.name} -d ${db} -c "SELECT 1"`,
      run: async (port) => {
        await run(binary('psql'), [...psqlArgs(port, db, scram.name), '-c', 'SELECT 1'], {
          env: { ...process.env, ...PLAIN, PGPASSWORD: 'wrong-password' },
          allowFail: true,
        });
      },
    },
    {
      name: 'ssl-refused',
      description: "PGSSLMODE=prefer against a server without TLS: SSLRequest answered 'N', then the StartupMessage in plain text",
      client: `PGSSLMODE=prefer psql -X … -c "SELECT 1"`,
      run: async (port) => {
        await psql(port, db, ['-c', 'SELECT 1'], '', { PGSSLMODE: 'prefer' });
      },
    },
    {
      name: 'node-pg-extended',
      description:
        'node-postgres: extended protocol with parameters (text, bytea, timestamptz, NULL), a named prepared statement used twice, an invalid parameter (error in extended mode), rowMode array, an empty simple query (EmptyQueryResponse)',
      client: 'node scripts/make-fixtures.ts (pg.Client, see fixtures-postgres.ts "node-pg-extended")',
      run: async (port) => {
        const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: db, ssl: false, application_name: 'dbaudit-fixture' });
        await c.connect();
        try {
          await c.query('CREATE TEMP TABLE t (id int, name text, data bytea, at timestamptz)');
          await c.query('INSERT INTO t VALUES ($1, $2, $3, $4)', [1, 'a, "b"', Buffer.from([0, 1, 2, 255]), new Date(0)]);
          await c.query('INSERT INTO t VALUES ($1, $2, $3, $4)', [2, null, null, null]);
          await c.query({ name: 'by-id', text: 'SELECT * FROM t WHERE id = $1', values: [1] });
          await c.query({ name: 'by-id', text: 'SELECT * FROM t WHERE id = $1', values: [2] });
          await c.query('SELECT $1::int AS n', ['not-an-int']).catch(() => undefined);
          await c.query({ text: 'SELECT generate_series(1, $1::int) AS n', values: [5], rowMode: 'array' });
          await c.query('');
          await c.query('UPDATE t SET name = $1 WHERE id = $2', ['renamed', 2]);
        } finally {
          await c.end();
        }
      },
    },
    {
      name: 'raw-extended',
      description:
        'scripted with pg-protocol serialize: Execute with row limit 3 (PortalSuspended) until done; five Bind/Execute pipelined before one Sync; a Parse error that makes the server discard until Sync; Describe S/P + Flush; Close; COPY FROM STDIN ended by CopyFail; FunctionCall int4pl(2, 3); Terminate',
      client: 'node scripts/make-fixtures.ts (RawPgClient, see fixtures-postgres.ts "raw-extended")',
      run: async (port) => {
        const c = await RawPgClient.open(port);
        c.send(serialize.startup({ user: 'postgres', database: db, application_name: 'dbaudit-fixture' }));
        await c.ready();
        c.send(
          serialize.parse({ name: 's1', text: 'SELECT n, repeat($2::text, n) FROM generate_series(1, $1::int) AS n' }),
          serialize.bind({ portal: 'p1', statement: 's1', values: ['7', 'ab'] }),
          serialize.execute({ portal: 'p1', rows: 3 }),
          serialize.execute({ portal: 'p1', rows: 3 }),
          serialize.execute({ portal: 'p1', rows: 3 }),
          serialize.sync(),
        );
        await c.ready();
        const pipelined: Buffer[] = [serialize.parse({ text: 'SELECT $1::int * 10 AS v' })];
        for (let i = 1; i <= 5; i++) pipelined.push(serialize.bind({ values: [String(i)] }), serialize.execute());
        c.send(...pipelined, serialize.sync());
        await c.ready();
        c.send(
          serialize.parse({ text: 'SELEC broken syntax' }),
          serialize.bind({}),
          serialize.execute(),
          serialize.sync(),
        );
        await c.ready();
        c.send(serialize.parse({ name: 's2', text: 'SELECT $1::text AS t, now() AS at' }), serialize.describe({ type: 'S', name: 's2' }), serialize.flush());
        await c.until((t) => t === 'T');
        c.send(serialize.bind({ portal: 'p2', statement: 's2', values: [null] }), serialize.describe({ type: 'P', name: 'p2' }), serialize.execute({ portal: 'p2' }));
        c.send(serialize.close({ type: 'P', name: 'p2' }), serialize.close({ type: 'S', name: 's2' }), serialize.sync());
        await c.ready();
        c.send(serialize.query('CREATE TEMP TABLE c (a int, b text)'));
        await c.ready();
        c.send(serialize.query('COPY c FROM STDIN'));
        await c.until((t) => t === 'G');
        c.send(serialize.copyData(Buffer.from('1\tone\n2\ttwo\n')), serialize.copyFail('client gave up'));
        await c.ready();
        c.send(functionCall(177, ['2', '3'])); // 177 = int4pl
        await c.ready();
        c.send(serialize.end());
        await c.end();
      },
    },
    {
      name: 'cancel',
      description: 'connection 1 runs pg_sleep(30); connection 2 is a CancelRequest with connection 1\'s key: ErrorResponse 57014 on connection 1',
      client: 'node scripts/make-fixtures.ts (RawPgClient, see fixtures-postgres.ts "cancel")',
      record: 'all',
      run: async (port) => {
        const c = await RawPgClient.open(port);
        c.send(serialize.startup({ user: 'postgres', database: db }));
        await c.ready();
        c.send(serialize.query('SELECT pg_sleep(30)'));
        await new Promise((r) => setTimeout(r, 300));
        const k = await RawPgClient.open(port);
        k.send(serialize.cancel(c.backendPid, c.secretKey));
        await k.end();
        await c.ready();
        c.send(serialize.end());
        await c.end();
      },
    },
    {
      name: 'copy',
      description: 'psql: COPY FROM STDIN of 200 text rows, COPY TO STDOUT of them, COPY FROM STDIN (csv) with a bad row (error mid-copy)',
      client: `psql -X … -f - < (CREATE TABLE items …; COPY items FROM STDIN; <200 rows>; \\.; COPY items TO STDOUT; COPY items FROM STDIN WITH (FORMAT csv) with a bad row)`,
      run: async (port) => {
        const script = [
          '\\set ON_ERROR_STOP 0',
          'CREATE TABLE items (id int, name text, price numeric);',
          'COPY items FROM STDIN;',
          copyRows,
          '\\.',
          'COPY items TO STDOUT;',
          'COPY items FROM STDIN WITH (FORMAT csv);',
          '201,fine,1.0',
          'not-a-number,bad,2.0',
          '\\.',
          'DROP TABLE items;',
          '',
        ].join('\n');
        await psql(port, db, ['-q', '-o', '/dev/null', '-f', '-'], script, {}, true);
      },
    },
    {
      name: 'copy-out-large',
      description: 'COPY (30 000 generated rows) TO STDOUT: about 2 MB of CopyData',
      client: `psql -X … -o /dev/null -c "COPY (SELECT i, md5(i::text), i * 1.5, timestamptz '2026-01-01' + i * interval '1 minute' FROM generate_series(1, 30000) i) TO STDOUT"`,
      run: async (port) => {
        await psql(port, db, ['-o', '/dev/null', '-c', "COPY (SELECT i, md5(i::text), i * 1.5, timestamptz '2026-01-01' + i * interval '1 minute' FROM generate_series(1, 30000) i) TO STDOUT"]);
      },
    },
    {
      name: 'wide-rows',
      description: 'one SELECT returning 4 000 rows of about 1.1 kB (4.4 MB of DataRow)',
      client: `psql -X … -o /dev/null -c "SELECT i, repeat(md5(i::text), 16) AS a, repeat('x', 500) AS b, i::numeric / 7 AS c, now() AS d FROM generate_series(1, 4000) i"`,
      run: async (port) => {
        await psql(port, db, ['-o', '/dev/null', '-c', "SELECT i, repeat(md5(i::text), 16) AS a, repeat('x', 500) AS b, i::numeric / 7 AS c, now() AS d FROM generate_series(1, 4000) i"]);
      },
    },
    ...(['simple', 'extended', 'prepared'] as const).map(
      (mode): Recipe => ({
        name: `pgbench-select-${mode}`,
        description: `pgbench -S (select-only), -M ${mode}, one client, 500 transactions (scale 1)`,
        client: `pgbench -n -S -M ${mode} -c 1 -t 500 -h 127.0.0.1 -p PORT -U postgres ${db}`,
        record: 2,
        run: async (port) => {
          await run(binary('pgbench'), ['-n', '-S', '-M', mode, '-c', '1', '-t', '500', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', db], {
            env: { ...process.env, ...PLAIN },
          });
        },
      }),
    ),
    {
      name: 'pgbench-tpcb',
      description: 'pgbench TPC-B-like (default script), -M simple, one client, 300 transactions (scale 1)',
      client: `pgbench -n -M simple -c 1 -t 300 -h 127.0.0.1 -p PORT -U postgres ${db}`,
      record: 2,
      run: async (port) => {
        await run(binary('pgbench'), ['-n', '-M', 'simple', '-c', '1', '-t', '300', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', db], {
          env: { ...process.env, ...PLAIN },
        });
      },
    },
  ];
}

/** Set up what the recipes need, outside the capture: database, users, pgbench tables. */
export async function preparePostgres(server: PgServer): Promise<{ db: string; scram: { name: string; password: string }; md5: { name: string; password: string } }> {
  const db = 'fixtures';
  await server.psql(`DROP DATABASE IF EXISTS ${db}`);
  await server.psql(`CREATE DATABASE ${db}`);
  const scram = { name: 'fixture_scram', password: 'scram-password' };
  const md5 = { name: 'fixture_md5', password: 'md5-password' };
  await server.psql(
    `CREATE ROLE ${scram.name} LOGIN PASSWORD '${scram.password}';
     SET password_encryption = 'md5';
     CREATE ROLE ${md5.name} LOGIN PASSWORD '${md5.password}' IN ROLE md5users;
     GRANT ALL ON DATABASE ${db} TO ${scram.name}, ${md5.name};`,
  );
  await run(binary('pgbench'), ['-i', '-q', '-s', '1', '-h', '127.0.0.1', '-p', String(server.port), '-U', 'postgres', db], {
    env: { ...process.env, ...PLAIN },
  });
  return { db, scram, md5 };
}
