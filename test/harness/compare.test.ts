import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareAudit, formatComparison, statementKey } from './compare.js';

test('compareAudit matches occurrences one to one and names missing and extra', () => {
  const logged = ['a', 'b', 'b', 'c'];
  const stored = ['b', 'a', 'd', 'b', 'b'];
  const c = compareAudit(logged, stored, (x) => x, (x) => x);
  assert.equal(c.matched, 3);
  assert.deepEqual(c.missing, ['c']);
  assert.deepEqual([...c.extra].sort(), ['b', 'd']);
  assert.equal(formatComparison('t', c), 't: logged 4, stored 5, missing 1, extra 2');
});

test('statementKey ignores surrounding whitespace and a final semicolon', () => {
  assert.equal(statementKey('u', 'd', ' select 1; '), statementKey('u', 'd', 'select 1'));
  assert.notEqual(statementKey('u', 'd', 'select 1'), statementKey('u', 'e', 'select 1'));
});
