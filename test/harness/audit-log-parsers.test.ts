// The audit-log parsers on hand-written lines in the exact shapes the servers
// write (see harness.test.ts for the same against live servers).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { makeTempDir, parseCsvRecord, parseServerAuditLine, readPgauditLog, readServerAuditLog } from './index.js';

const P = '2026-12-03 17:18:49.352 UTC [7407] 6b11a479.1cef user=alice db=app client=127.0.0.1(41376)';

test('readPgauditLog: quoted, multi-line (tab-continued) statements, parameters, other lines skipped', () => {
  const tmp = makeTempDir('parse');
  const file = join(tmp.dir, 'pg.log');
  writeFileSync(
    file,
    [
      `${P} LOG:  connection authorized: user=alice database=app`,
      `${P} LOG:  AUDIT: SESSION,1,1,READ,SELECT,,,"select a,`,
      `\t  b -- it's`,
      `\tfrom t where b = 'x,""y""'",<none>`,
      `${P} ERROR:  relation "nope" does not exist at character 15`,
      `${P} STATEMENT:  select * from nope`,
      `${P} LOG:  AUDIT: SESSION,2,1,WRITE,INSERT,,,"insert into t values ($1, $2)","1,""a,b"""`,
      `${P} LOG:  AUDIT: SESSION,3,1,MISC,SET,,,SET x = 1;,<not logged>`,
      `${P} LOG:  AUDIT: SESSION,4,2,READ,SELECT,TABLE,public.t,SELECT 1,<none>`,
      '',
    ].join('\n'),
  );
  const e = readPgauditLog(file);
  tmp.remove();
  assert.deepEqual(
    e.map((x) => [x.statementId, x.substatementId, x.class, x.command, x.objectType, x.objectName, x.statement, x.parameters, x.user, x.database]),
    [
      [1, 1, 'READ', 'SELECT', '', '', `select a,\n  b -- it's\nfrom t where b = 'x,"y"'`, [], 'alice', 'app'],
      [2, 1, 'WRITE', 'INSERT', '', '', 'insert into t values ($1, $2)', ['1', 'a,b'], 'alice', 'app'],
      [3, 1, 'MISC', 'SET', '', '', 'SET x = 1;', null, 'alice', 'app'],
      [4, 2, 'READ', 'SELECT', 'TABLE', 'public.t', 'SELECT 1', [], 'alice', 'app'],
    ],
  );
  assert.equal(e[0]!.client, '127.0.0.1(41376)');
  assert.equal(e[0]!.line, 2);
});

test('parseCsvRecord: empty fields, doubled quotes, quoted commas and newlines', () => {
  assert.deepEqual(parseCsvRecord('a,,"b,c","d""e","f\ng",'), ['a', '', 'b,c', 'd"e', 'f\ng', '']);
});

test('server_audit lines: escapes, commas in the statement, CONNECT and FAILED_CONNECT', () => {
  assert.deepEqual(
    parseServerAuditLine(`20261203 17:20:00,vm,u1,127.0.0.1,5,7,QUERY,d1,'insert into t values (1, \\'it\\'\\'s, a\\', "b" \\\\ x\\ny\\tz\\r')',0`),
    {
      time: '20261203 17:20:00', serverHost: 'vm', user: 'u1', client: '127.0.0.1', connectionId: 5, queryId: 7,
      operation: 'QUERY', database: 'd1', statement: `insert into t values (1, 'it''s, a', "b" \\ x\ny\tz\r')`, errno: 0, line: 1,
    },
  );
  assert.equal(parseServerAuditLine('20261203 17:20:00,vm,u1,127.0.0.1,6,0,FAILED_CONNECT,,,1045').errno, 1045);
  assert.equal(parseServerAuditLine('20261203 17:20:00,vm,u1,127.0.0.1,5,0,CONNECT,d1,,0').statement, '');
  assert.throws(() => parseServerAuditLine('garbage'), /not understood/);
});

test('readServerAuditLog leaves a last line without newline for later', () => {
  const tmp = makeTempDir('parse');
  const file = join(tmp.dir, 'audit.log');
  writeFileSync(file, `20261203 17:20:00,vm,u,localhost,3,0,CONNECT,,,0\n20261203 17:20:00,vm,u,localhost,3,4,QUERY,,'sel`);
  const e = readServerAuditLog(file);
  tmp.remove();
  assert.deepEqual(e.map((x) => x.operation), ['CONNECT']);
});
