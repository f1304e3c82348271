import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { regressions, runOne, TARGETS } from './fuzz-lib.js';
import { fuzz } from './fuzz.js';

/** A short fuzzing run per target (the long one is `npm run fuzz`), plus every input that ever failed. */
const INPUTS = Number(process.env.FUZZ_TEST_INPUTS ?? 5_000);

for (const target of TARGETS) {
  describe(`fuzz: ${target}`, () => {
    test(`${INPUTS} mutated real-traffic inputs in random chunkings: no throw, bounded buffers, no hang`, () => {
      const r = fuzz(target, INPUTS, 20261203);
      assert.deepEqual(r.failures.map((f) => `${f.why.split('\n')[0]} (${f.file})`), []);
    });
    for (const { file, input } of regressions(target)) {
      test(`regression ${file.split('/').pop()}`, () => {
        assert.equal(runOne(target, input), undefined);
      });
    }
  });
}
