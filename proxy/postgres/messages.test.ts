import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WireReader } from '../wire/reader.js';
import { parseBind, parseCommandTag, parseErrorFields, parseParse, parseStartupParams, renderValue } from './messages.js';
import * as B from './test-builders.js';

const body = (m: Buffer): WireReader => new WireReader().reset(m, 5, m.length);

describe('postgres messages', () => {
  const tags: [string, string, number, boolean][] = [
    ['INSERT 0 5', 'INSERT', 5, true],
    ['SELECT 3', 'SELECT', 3, true],
    ['UPDATE 12', 'UPDATE', 12, true],
    ['DELETE 0', 'DELETE', 0, true],
    ['MERGE 2', 'MERGE', 2, true],
    ['COPY 1000000', 'COPY', 1000000, true],
    ['MOVE 4', 'MOVE', 4, true],
    ['FETCH 7', 'FETCH', 7, true],
    ['CREATE TABLE', 'CREATE TABLE', 0, false],
    ['BEGIN', 'BEGIN', 0, false],
    ['SELECT x', 'SELECT x', 0, false],
    ['', '', 0, false],
  ];
  for (const [tag, command, rows, has] of tags) {
    it(`command tag ${JSON.stringify(tag)}`, () => {
      const t = parseCommandTag(tag);
      assert.deepEqual([t.command, t.rows, t.hasRows], [command, rows, has]);
    });
  }

  it('ErrorResponse: severity V preferred over localized S, SQLSTATE and message', () => {
    const e = parseErrorFields(body(B.raw('E', Buffer.from('SFEHLER\0VERROR\0C42P01\0Mrelation "t" does not exist\0P15\0\0'))))!;
    assert.deepEqual([e.severity, e.code, e.message], ['ERROR', '42P01', 'relation "t" does not exist']);
    assert.equal(parseErrorFields(body(B.raw('E', Buffer.from('SERROR\0C4')))), null);
  });

  it('Bind renders text, binary as hex, NULL, and cuts long values', () => {
    const m = parseBind(body(B.bind('p', 's', ['abc', Buffer.from([0, 255]), null, 'x'.repeat(50)])), true, 10)!;
    assert.deepEqual([m.portal, m.statement, m.params], ['p', 's', ['abc', '\\x00ff', 'NULL', 'x'.repeat(10)]]);
    assert.equal(parseBind(body(B.bind('p', 's', ['abc'])), false, 10)!.params, null);
    assert.equal(renderValue(Buffer.alloc(100), 0, 100, 1, 10), '\\x' + '00'.repeat(4));
  });

  it('Bind with one format code for all values', () => {
    const raw = Buffer.concat([Buffer.from('\0\0'), Buffer.from([0, 1, 0, 1, 0, 2, 0, 0, 0, 1, 0xab, 0, 0, 0, 1, 0xcd, 0, 0])]);
    assert.deepEqual(parseBind(new WireReader().reset(raw, 0, raw.length), true, 100)!.params, ['\\xab', '\\xcd']);
  });

  it('Parse keeps the byte length of the query as sent', () => {
    const m = parseParse(body(B.parse('n', 'select ’é’', [25, 23])))!;
    assert.deepEqual([m.name, m.query, m.queryBytes], ['n', 'select ’é’', Buffer.byteLength('select ’é’')]);
  });

  it('StartupMessage parameters', () => {
    const m = B.startup({ user: 'u', database: 'd', application_name: 'a', options: '-c x=1' });
    const s = parseStartupParams(new WireReader().reset(m, 8, m.length))!;
    assert.deepEqual([s.user, s.database, s.applicationName], ['u', 'd', 'a']);
  });
});
