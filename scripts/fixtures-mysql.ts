// MariaDB fixture recipes: each one is a real client run against a real
// MariaDB through the recording relay (see test/fixtures/README.md).
import { writeFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import mysql from 'mysql2/promise';
import { binary } from '../test/harness/binaries.js';
import { run } from '../test/harness/exec.js';
import type { MariaServer } from '../test/harness/mariadb.js';
import type { Recipe } from './fixture-lib.js';

export const MARIADB_SESSION = `CREATE TABLE accounts (id INT PRIMARY KEY, owner VARCHAR(40) NOT NULL, balance DECIMAL(12,2), note TEXT);
INSERT INTO accounts VALUES (1, 'alice', 100.00, 'first, "quoted" and it\\'s a \\\\ backslash'), (2, "bob", 50.50, NULL);
SELECT id, owner, balance
  FROM accounts # a hash comment
 ORDER BY id; -- a dash comment
UPDATE accounts SET balance = balance + 10 WHERE id = 2;
BEGIN;
DELETE FROM accounts WHERE id = 1;
ROLLBACK;
SELECT * FROM no_such_table;
SELECT /*! 100000 'version comment', */ \`owner\` FROM accounts WHERE id = 1;
CREATE USER 'fixture_reader'@'%' IDENTIFIED BY 'hunter2-secret';
ALTER USER 'fixture_reader'@'%' IDENTIFIED BY 'another-secret';
SET PASSWORD FOR 'fixture_reader'@'%' = PASSWORD('third-secret');
DROP USER 'fixture_reader'@'%';
USE fixtures_other;
SELECT DATABASE();
SHOW WARNINGS;
SELECT COUNT(*) FROM fixtures.accounts;
`;

function clientArgs(port: number, user: { name: string; password: string }, db: string): string[] {
  return ['--no-defaults', '-h', '127.0.0.1', '-P', String(port), '--protocol=TCP', '-u', user.name, '--skip-ssl', db];
}

export function mysqlRecipes(server: MariaServer, db: string, csvFile: string): Recipe[] {
  const user = server.tcpUser;
  const env = { ...process.env, MYSQL_PWD: user.password };
  const sysbench = (name: string, mode: 'auto' | 'disable', events: number): Recipe => ({
    name,
    description: `sysbench oltp_read_write, one thread, ${events} events, --db-ps-mode=${mode} (${mode === 'auto' ? 'server-side prepared statements: COM_STMT_PREPARE/EXECUTE' : 'COM_QUERY text protocol'}), 1 table × 1 000 rows`,
    client: `sysbench oltp_read_write --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port=PORT --mysql-user=${user.name} --mysql-password=… --mysql-db=${db} --mysql-ssl=off --tables=1 --table-size=1000 --threads=1 --events=${events} --time=0 --db-ps-mode=${mode} run`,
    run: async (port) => {
      await run(binary('sysbench'), [
        'oltp_read_write', '--db-driver=mysql', '--mysql-host=127.0.0.1', `--mysql-port=${port}`, `--mysql-user=${user.name}`,
        `--mysql-password=${user.password}`, `--mysql-db=${db}`, '--mysql-ssl=off', '--tables=1', '--table-size=1000',
        '--threads=1', `--events=${events}`, '--time=0', `--db-ps-mode=${mode}`, 'run',
      ]);
    },
  });
  return [
    {
      name: 'mariadb-session',
      description:
        'mariadb client: DDL, INSERT with both quote styles and backslash escapes, multi-line SELECT with # and -- comments, UPDATE, BEGIN/DELETE/ROLLBACK, an error (1146), a /*! */ version comment, CREATE USER / ALTER USER IDENTIFIED BY and SET PASSWORD, USE (COM_INIT_DB), SHOW WARNINGS',
      client: `MYSQL_PWD=… mariadb --no-defaults -h 127.0.0.1 -P PORT --protocol=TCP -u ${user.name} --skip-ssl --force --comments ${db} < (the MARIADB_SESSION script in scripts/fixtures-mysql.ts)`,
      run: async (port) => {
        await run(binary('mariadb'), [...clientArgs(port, user, db), '--force', '--comments'], { input: MARIADB_SESSION, env, allowFail: true });
      },
    },
    {
      name: 'mysql2-prepared',
      description:
        'mysql2: execute() (COM_STMT_PREPARE/EXECUTE) with INT, DOUBLE, VARCHAR, NULL, DATETIME, BLOB parameters, a statement re-executed with new values, prepare()+close() (COM_STMT_CLOSE), query() with multipleStatements including an error part way, ping (COM_PING), changeUser (COM_CHANGE_USER), quit',
      client: 'node scripts/make-fixtures.ts (mysql2/promise, see fixtures-mysql.ts "mysql2-prepared")',
      run: async (port) => {
        const c = await mysql.createConnection({ host: '127.0.0.1', port, user: user.name, password: user.password, database: db, multipleStatements: true });
        try {
          await c.query('CREATE TEMPORARY TABLE t (id INT, score DOUBLE, name VARCHAR(40), note TEXT, at DATETIME, data BLOB)');
          const ins = 'INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)';
          await c.execute(ins, [1, 1.5, 'a, "b"', null, new Date(Date.UTC(2026, 0, 2, 3, 4, 5)), Buffer.from([0, 1, 2, 255])]);
          await c.execute(ins, [2, -0.25, "it's", 'note', null, null]);
          await c.execute('SELECT * FROM t WHERE id = ?', [1]);
          await c.execute('SELECT * FROM t WHERE id = ?', [2]);
          const stmt = await c.prepare('SELECT COUNT(*) AS n FROM t WHERE score > ?');
          await stmt.execute([0]);
          stmt.close();
          await c.query('SELECT 1 AS a; SELECT * FROM no_such_table; SELECT 3 AS c').catch(() => undefined);
          await c.query('SELECT 1 AS a; SELECT 2 AS b');
          await c.ping();
          await c.changeUser({ user: user.name, password: user.password, database: db });
          await c.query('SELECT CURRENT_USER() AS u, DATABASE() AS d');
        } finally {
          await c.end();
        }
      },
    },
    {
      name: 'load-data-local',
      description: 'mysql2: LOAD DATA LOCAL INFILE of a 100-line CSV (the file content streamed by the client after the server asks for it)',
      client: 'node scripts/make-fixtures.ts (mysql2 infileStreamFactory, see fixtures-mysql.ts "load-data-local")',
      run: async (port) => {
        const c = await mysql.createConnection({
          host: '127.0.0.1', port, user: user.name, password: user.password, database: db,
          infileStreamFactory: () => Readable.from([Buffer.from(Array.from({ length: 100 }, (_, i) => `${i + 1},row ${i + 1}\n`).join(''))]),
        });
        try {
          await c.query('CREATE TEMPORARY TABLE l (id INT, name VARCHAR(40))');
          await c.query(`LOAD DATA LOCAL INFILE '${csvFile}' INTO TABLE l FIELDS TERMINATED BY ','`);
          await c.query('SELECT COUNT(*) FROM l');
        } finally {
          await c.end();
        }
      },
    },
    {
      name: 'login-failure',
      description: 'mariadb client with a wrong password: ERR 1045 (28000) in the connection phase',
      client: `MYSQL_PWD=wrong mariadb --no-defaults -h 127.0.0.1 -P PORT --protocol=TCP -u ${user.name} --skip-ssl ${db} -e "SELECT 1"`,
      run: async (port) => {
        await run(binary('mariadb'), [...clientArgs(port, user, db), '-e', 'SELECT 1'], { env: { ...process.env, MYSQL_PWD: 'wrong' }, allowFail: true });
      },
    },
    sysbench('sysbench-rw-ps', 'auto', 50),
    sysbench('sysbench-rw-text', 'disable', 30),
    {
      name: 'large-result',
      description: 'mariadb client: one SELECT returning 4 000 rows of about 1.1 kB from the sequence engine (4.4 MB of row packets)',
      client: `mariadb --no-defaults … --skip-ssl -e "SELECT seq, REPEAT(MD5(seq), 16) AS a, REPEAT('x', 500) AS b, seq / 7 AS c, NOW() AS d FROM seq_1_to_4000" > /dev/null`,
      run: async (port) => {
        await run(binary('mariadb'), [...clientArgs(port, user, db), '-e', "SELECT seq, REPEAT(MD5(seq), 16) AS a, REPEAT('x', 500) AS b, seq / 7 AS c, NOW() AS d FROM seq_1_to_4000"], { env });
      },
    },
  ];
}

/** Set up what the recipes need, outside the capture. */
export async function prepareMariadb(server: MariaServer, csvFile: string): Promise<{ db: string }> {
  const db = 'fixtures';
  await server.mysql(`DROP DATABASE IF EXISTS ${db}; CREATE DATABASE ${db}; DROP DATABASE IF EXISTS fixtures_other; CREATE DATABASE fixtures_other;`);
  writeFileSync(csvFile, '');
  const u = server.tcpUser;
  await run(binary('sysbench'), [
    'oltp_read_write', '--db-driver=mysql', '--mysql-host=127.0.0.1', `--mysql-port=${server.port}`, `--mysql-user=${u.name}`,
    `--mysql-password=${u.password}`, `--mysql-db=${db}`, '--mysql-ssl=off', '--tables=1', '--table-size=1000', 'prepare',
  ]);
  return { db };
}
