import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { redactSql } from '../../lib/redact.js';
import { MYSQL_CORPUS, POSTGRES_CORPUS } from './corpus.js';

for (const [dialect, corpus] of [
  ['postgres', POSTGRES_CORPUS],
  ['mysql', MYSQL_CORPUS],
] as const) {
  describe(`redaction corpus: ${dialect} (${corpus.length} statements)`, () => {
    test('has at least 60 tricky statements', () => {
      assert.ok(corpus.length >= 60);
    });
    for (const [sql, literals, none] of corpus) {
      test(JSON.stringify(sql).slice(0, 100), () => {
        assert.equal(redactSql(sql, 'literals', dialect), literals);
        assert.equal(redactSql(sql, 'none', dialect), none ?? sql);
      });
    }
    test('no password value survives in either mode', () => {
      const secrets = /pw\d+|s3cr3t|old-pw|Mixed''Quote|SCRAM-SHA-256\$|\$A\$005|'a b'|SecretMarker|secretword/;
      for (const [sql] of corpus) {
        if (!/password|identified/i.test(sql)) continue;
        for (const mode of ['literals', 'none'] as const) {
          const out = redactSql(sql, mode, dialect);
          assert.ok(!secrets.test(out), `${mode}: ${out}`);
        }
      }
    });
  });
}
