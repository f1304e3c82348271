import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MASKED_PASSWORD, MASKED_STATEMENT } from './redact.js';
import { MYSQL_NO_BACKSLASH, redactMysql } from './redact-mysql.js';

const lit = (s: string): string => redactMysql(s, 'literals');
const none = (s: string): string => redactMysql(s, 'none');
const P = MASKED_PASSWORD;

describe('redactMysql: MySQL lexical rules', () => {
  it('backslash escapes in both quote styles, doubled quotes, backtick identifiers kept', () => {
    assert.equal(lit("SELECT 'a\\'b', \"c\\\"d\", `e``f` FROM t WHERE x = 'it''s'"), 'SELECT ?, ?, `e``f` FROM t WHERE x = ?');
    assert.equal(lit('SELECT "x" \'y\''), 'SELECT ? ?');
  });

  it('# and "-- " comments are removed (with what they hold); "--" without a space is two minus signs', () => {
    assert.equal(lit("SELECT 1 # comment 'secret'").trimEnd(), 'SELECT ?');
    assert.equal(lit("SELECT 1 -- comment 'x'\n, 2--3"), 'SELECT ? \n, ?-?');
    assert.equal(lit("SELECT 5 /* c 'z' */").trimEnd(), 'SELECT ?');
  });

  it('/*! … */ version comments are SQL: their body is redacted, the markers kept', () => {
    assert.equal(lit("SELECT /*!40101 'v', */ 5"), 'SELECT /*!40101 ?, */ ?');
  });

  it('hex, bit and national literals, numbers in every form, a sign', () => {
    assert.equal(lit("SELECT X'0A1B', x'ff', 0x1F, B'0101', b'1', 0b101, N'nat', 1e3, .5, -7"), 'SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?');
  });

  it('none mode keeps the text as sent', () => {
    const q = "SELECT 'a\\'b' FROM t # c";
    assert.equal(none(q), q);
  });

  it('NO_BACKSLASH_ESCAPES: a backslash is an ordinary character, as the server reads it', () => {
    const sql = "SELECT 'C:\\', 'x' FROM t WHERE p = 'pw'";
    assert.equal(redactMysql(sql, 'literals', true), 'SELECT ?, ? FROM t WHERE p = ?');
    assert.equal(lit(sql), MASKED_STATEMENT, 'read with escapes the first string never ends: masked whole, never leaked');
    assert.equal(redactMysql("CREATE USER u IDENTIFIED BY 'pw\\'", 'none', true), `CREATE USER u IDENTIFIED BY ${P}`);
    assert.equal(MYSQL_NO_BACKSLASH.backslashStrings, false);
  });

  it('an unterminated string is masked whole in literals mode', () => {
    assert.equal(lit("SELECT 'abc"), MASKED_STATEMENT);
  });
});

describe('redactMysql: passwords are never kept, in any mode', () => {
  const cases: [string, string][] = [
    ["CREATE USER 'u'@'h' IDENTIFIED BY 'pw1'", `CREATE USER 'u'@'h' IDENTIFIED BY ${P}`],
    ["CREATE USER u IDENTIFIED BY 'pw1', v IDENTIFIED BY 'pw2'", `CREATE USER u IDENTIFIED BY ${P}, v IDENTIFIED BY ${P}`],
    ["ALTER USER u IDENTIFIED BY 'pw2' REPLACE 'old-pw'", `ALTER USER u IDENTIFIED BY ${P} REPLACE ${P}`],
    ["ALTER USER u IDENTIFIED BY \"dq-pw\"", `ALTER USER u IDENTIFIED BY ${P}`],
    ["CREATE USER u IDENTIFIED BY 'a\\'b'", `CREATE USER u IDENTIFIED BY ${P}`],
    ["CREATE USER u IDENTIFIED WITH mysql_native_password BY 'pw3'", `CREATE USER u IDENTIFIED WITH mysql_native_password BY ${P}`],
    ["CREATE USER u IDENTIFIED WITH caching_sha2_password AS '$A$005$hash'", `CREATE USER u IDENTIFIED WITH caching_sha2_password AS ${P}`],
    ["CREATE USER u IDENTIFIED VIA mysql_native_password USING PASSWORD('pw4')", `CREATE USER u IDENTIFIED VIA mysql_native_password USING PASSWORD(${P})`],
    ["SET PASSWORD = 'pw5'", `SET PASSWORD = ${P}`],
    ["SET PASSWORD FOR 'u'@'%' = PASSWORD('pw6')", `SET PASSWORD FOR 'u'@'%' = PASSWORD(${P})`],
    ["SET PASSWORD FOR u = 'pw7'", `SET PASSWORD FOR u = ${P}`],
    ['SET PASSWORD FOR u = PASSWORD("pw9")', `SET PASSWORD FOR u = PASSWORD(${P})`],
    ["GRANT ALL ON *.* TO 'u'@'%' IDENTIFIED BY 'pw8'", `GRANT ALL ON *.* TO 'u'@'%' IDENTIFIED BY ${P}`],
    ["GRANT SELECT ON db.* TO u IDENTIFIED BY PASSWORD '*ABCDEF'", `GRANT SELECT ON db.* TO u IDENTIFIED BY PASSWORD ${P}`],
  ];
  for (const [sql, masked] of cases) {
    it(sql, () => {
      assert.equal(none(sql), masked);
      const l = lit(sql);
      for (const secret of sql.match(/'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"/g) ?? []) {
        if (/pw|hash|ABCDEF|a\\'b/.test(secret)) assert.ok(!l.includes(secret.slice(1, -1)), `${secret} in ${l}`);
      }
    });
  }

  it('REPLACE INTO is not a password clause', () => {
    assert.equal(none("REPLACE INTO t VALUES ('keep')"), "REPLACE INTO t VALUES ('keep')");
  });

  it('an unterminated statement mentioning a password is masked whole in none mode too', () => {
    assert.equal(none("CREATE USER u IDENTIFIED BY 'oops"), MASKED_STATEMENT);
  });
});
