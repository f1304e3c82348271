import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classifyMysql, commandOf } from './classify.js';

describe('MySQL statement classes (the PostgreSQL side names)', () => {
  const cases: [string, string][] = [
    ['SELECT 1', 'READ'],
    ['  /* hint */ (SELECT 1) UNION (SELECT 2)', 'READ'],
    ['/*!40001 SELECT */ 1', 'READ'],
    ['WITH x AS (SELECT 1) SELECT * FROM x', 'READ'],
    ['WITH x AS (SELECT 1) UPDATE t JOIN x SET a = 1', 'WRITE'],
    ['TABLE t', 'READ'],
    ['VALUES ROW(1)', 'READ'],
    ['HANDLER t READ FIRST', 'READ'],
    ['INSERT INTO t VALUES (1)', 'WRITE'],
    ['REPLACE INTO t VALUES (1)', 'WRITE'],
    ['UPDATE t SET a = 1', 'WRITE'],
    ['DELETE FROM t', 'WRITE'],
    ['TRUNCATE TABLE t', 'WRITE'],
    ["LOAD DATA LOCAL INFILE 'f' INTO TABLE t", 'WRITE'],
    ['CALL p()', 'FUNCTION'],
    ['DO SLEEP(1)', 'FUNCTION'],
    ['GRANT SELECT ON *.* TO u', 'ROLE'],
    ['REVOKE ALL ON *.* FROM u', 'ROLE'],
    ["CREATE USER 'u'@'%' IDENTIFIED BY 'x'", 'ROLE'],
    ['CREATE USER IF NOT EXISTS u', 'ROLE'],
    ['CREATE OR REPLACE USER u', 'ROLE'],
    ['ALTER USER u ACCOUNT LOCK', 'ROLE'],
    ['DROP USER u', 'ROLE'],
    ['RENAME USER a TO b', 'ROLE'],
    ['CREATE ROLE r', 'ROLE'],
    ["SET PASSWORD FOR u = 'x'", 'ROLE'],
    ['SET DEFAULT ROLE r FOR u', 'ROLE'],
    ['CREATE TABLE t (a INT)', 'DDL'],
    ['CREATE TEMPORARY TABLE t (a INT)', 'DDL'],
    ['CREATE DEFINER=`root`@`localhost` VIEW v AS SELECT 1', 'DDL'],
    ['ALTER TABLE t ADD b INT', 'DDL'],
    ['DROP DATABASE d', 'DDL'],
    ['RENAME TABLE a TO b', 'DDL'],
    ["INSTALL PLUGIN server_audit SONAME 'server_audit'", 'DDL'],
    ['SET NAMES utf8mb4', 'MISC_SET'],
    ['SET autocommit = 0', 'MISC_SET'],
    ['SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED', 'MISC_SET'],
    ['BEGIN', 'MISC'],
    ['START TRANSACTION', 'MISC'],
    ['COMMIT', 'MISC'],
    ['ROLLBACK', 'MISC'],
    ['SHOW TABLES', 'MISC'],
    ['DESCRIBE t', 'MISC'],
    ['EXPLAIN SELECT 1', 'MISC'],
    ['USE d', 'MISC'],
    ['FLUSH PRIVILEGES', 'MISC'],
    ['KILL 5', 'MISC'],
    ['LOCK TABLES t READ', 'MISC'],
    ['', 'MISC'],
    ["'unterminated", 'MISC'],
  ];
  for (const [sql, cls] of cases) it(`${cls}: ${sql || '(empty)'}`, () => assert.equal(classifyMysql(sql), cls));
});

describe('MySQL command tags', () => {
  it('first keyword, plus the object for CREATE/ALTER/DROP/RENAME/SHOW', () => {
    assert.deepEqual(
      ['select 1', 'INSERT INTO t VALUES (1)', 'create table t (a int)', 'CREATE OR REPLACE VIEW v AS SELECT 1', 'DROP TEMPORARY TABLE t', 'SHOW FULL PROCESSLIST', 'show warnings', '/*!40101 SET NAMES utf8 */', ''].map(commandOf),
      ['SELECT', 'INSERT', 'CREATE TABLE', 'CREATE VIEW', 'DROP TABLE', 'SHOW PROCESSLIST', 'SHOW WARNINGS', 'SET', ''],
    );
  });
});
