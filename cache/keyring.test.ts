import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { loadConfig } from '../lib/config.js';
import { parseKey } from '../lib/keys.js';
import { keyIdOf, loadKeyring } from './keyring.js';
import { newKey, tempDir } from './testing.js';

const t = tempDir('dbaudit-keys-');
after(() => t.cleanup());

function fails(fn: () => unknown, secret: string, re: RegExp): void {
  assert.throws(fn, (e: Error & { code?: string }) => {
    assert.equal(e.code, 'DBA_CONFIG');
    assert.match(e.message, re);
    assert.equal(e.message.includes(secret), false, 'message must not contain the key text');
    return true;
  });
}

describe('key loading', () => {
  test('hex, base64 and base64url of 32 bytes decode to the same key', () => {
    const k = newKey();
    assert.deepEqual(parseKey(k.toString('hex'), 'x'), k);
    assert.deepEqual(parseKey(k.toString('hex').toUpperCase() + '\n', 'x'), k);
    assert.deepEqual(parseKey(k.toString('base64'), 'x'), k);
    assert.deepEqual(parseKey(k.toString('base64url'), 'x'), k);
  });

  test('wrong lengths and junk are refused without echoing the text', () => {
    const short = newKey().subarray(0, 16);
    fails(() => parseKey(short.toString('hex'), 'env X'), short.toString('hex'), /env X: key is 32 hex digits/);
    fails(() => parseKey(short.toString('base64'), 'env X'), short.toString('base64'), /16 bytes/);
    fails(() => parseKey('not a key at all!', 'file f'), 'not a key', /file f: key is not 32 bytes/);
  });

  test('loadKeyring: key_file wins, then key_env; read_key_files add read keys', () => {
    const [k1, k2, k3] = [newKey(), newKey(), newKey()];
    const f1 = join(t.dir, 'k1');
    const f3 = join(t.dir, 'k3');
    writeFileSync(f1, k1.toString('base64') + '\n');
    writeFileSync(f3, k3.toString('hex'));
    const env = { DBAUDIT_CACHE_KEY: k2.toString('hex') };
    const fromEnv = loadKeyring(loadConfig({ env }).config, env);
    assert.equal(fromEnv.writeKeyId, keyIdOf(k2));
    const withFile = loadKeyring(loadConfig({ argv: ['--collector.cache.encryption.key_file', f1, '--collector.cache.encryption.read_key_files', f3], env }).config, env);
    assert.equal(withFile.writeKeyId, keyIdOf(k1));
    assert.deepEqual(withFile.keyIds.sort(), [keyIdOf(k1), keyIdOf(k3)].sort());
  });

  test('loadKeyring: no key is a config error naming the keys; a bad file names the file', () => {
    const env = {};
    fails(() => loadKeyring(loadConfig({ env }).config, env), '\0', /key_file.*DBAUDIT_CACHE_KEY/);
    assert.equal(loadKeyring(loadConfig({ env }).config, env, { readOnly: true }).writeKeyId, undefined);
    const bad = join(t.dir, 'bad');
    writeFileSync(bad, 'secretsecretsecret');
    fails(() => loadKeyring(loadConfig({ argv: ['--collector.cache.encryption.key_file', bad], env }).config, env), 'secretsecret', /key_file .*bad: key is not 32 bytes/);
    fails(() => loadKeyring(loadConfig({ argv: ['--collector.cache.encryption.key_file', join(t.dir, 'missing')], env }).config, env), '\0', /cannot be read \(ENOENT\)/);
  });
});
