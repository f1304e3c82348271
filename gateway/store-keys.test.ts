import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { TAG, epochPrefix, idBytes, indexPrefix } from './store-keys.js';

test('idBytes decodes canonical UUIDs in one pass and anything else as hex without dashes', () => {
  const reference = (s: string): Buffer => Buffer.from(s.replace(/-/g, ''), 'hex');
  const u = randomUUID();
  const cases = [
    u,
    u.toUpperCase(),
    '0'.repeat(36),
    'zz' + u.slice(2), // bad hex at the start: hex decoding stops there
    u.slice(0, 35) + 'g',
    u.replace(/-/g, '_'),
    u.replace('-', '') + '0', // 36 characters, a dash missing
    u.slice(0, 35) + 'é',
    '',
    'abc',
    u.replace(/-/g, ''),
  ];
  for (const c of cases) assert.deepEqual(idBytes(c), reference(c), JSON.stringify(c));
  assert.equal(idBytes(u).toString('hex'), u.replace(/-/g, ''));
});

test('memoized key prefixes: the same bytes as built fresh, and distinct names never share one', () => {
  const a = epochPrefix(TAG.Trail, 'a\u0000', 'b');
  const b = epochPrefix(TAG.Trail, 'a', '\u0000b');
  assert.notDeepEqual(a, b);
  assert.deepEqual(epochPrefix(TAG.Trail, 'a\u0000', 'b'), a);
  assert.deepEqual(indexPrefix(TAG.User, 'alice'), Buffer.concat([Buffer.of(TAG.User), Buffer.from('alice'), Buffer.of(0)]));
  assert.notDeepEqual(indexPrefix(TAG.User, 'x'), indexPrefix(TAG.Database, 'x'));
  // past the memo's bound it starts over and still answers right
  for (let i = 0; i < 5000; i++) indexPrefix(TAG.Session, `s${i}`);
  assert.deepEqual(indexPrefix(TAG.Session, 's1'), Buffer.concat([Buffer.of(TAG.Session), Buffer.from('s1'), Buffer.of(0)]));
});
