import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BENCHMARKS } from '../../bench/registry.js';
import { checkTable, renderMarkdown, renderText } from '../../bench/lib/report.js';
import { skipUnless, type ServerName } from '../harness/index.js';

/** What each benchmark needs installed; a smoke run proves it still runs end to end and makes well-formed tables. No timing is asserted. */
const NEEDS: Record<string, ServerName[]> = {
  'pg-parse': [],
  'mysql-parse': [],
  'event-pipeline': ['postgres'],
  memory: ['postgres', 'pgbouncer'],
  pgbench: ['postgres', 'pgbench', 'pgbouncer'],
  sysbench: ['mariadb', 'sysbench'],
};

describe('benchmarks (smoke: minimal sizes)', () => {
  it('every registered benchmark has a smoke test entry', () => {
    assert.deepEqual(BENCHMARKS.map((b) => b.name).sort(), Object.keys(NEEDS).sort());
  });

  for (const b of BENCHMARKS) {
    it(`${b.name} runs and produces well-formed tables`, { skip: skipUnless(...(NEEDS[b.name] ?? [])), timeout: 240_000 }, async () => {
      const tables = await b.run({ smoke: true, log: () => undefined });
      assert.ok(tables.length > 0, 'no tables');
      for (const t of tables) {
        assert.deepEqual(checkTable(t), []);
        // every row has at least one measured number
        for (const r of t.rows) assert.ok(r.slice(1).some((c) => typeof c === 'number' && Number.isFinite(c)), `row ${JSON.stringify(r)} has no number`);
        assert.ok(renderText(t).startsWith(`## ${t.title}\n`));
        assert.ok(renderMarkdown(t).includes(`| ${t.columns.join(' | ')} |`));
      }
    });
  }
});
