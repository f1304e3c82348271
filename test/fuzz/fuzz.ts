/**
 * The fuzzing run: `node --import tsx test/fuzz/fuzz.ts [TARGET …]` with
 * FUZZ_INPUTS (default 1,000,000 per target) and FUZZ_SEED. Prints inputs
 * per second and every failure, saves failing inputs as regressions, and
 * exits non-zero if any input failed. The test suite runs a short version
 * (fuzz.test.ts) and replays every saved regression.
 */
import { ingestSeeds, mutate, Rng, runOne, saveRegression, seeds, TARGETS, type Input, type Target } from './fuzz-lib.js';

export function fuzz(target: Target, inputs: number, seed: number, log: (line: string) => void = () => {}): { failures: { input: Input; why: string; file: string }[]; perSecond: number } {
  const rng = new Rng(seed);
  const pool = target === 'ingest' ? ingestSeeds() : seeds(target);
  const failures: { input: Input; why: string; file: string }[] = [];
  const t0 = performance.now();
  for (let i = 0; i < inputs; i++) {
    const input = mutate(pool[rng.int(pool.length)], rng, target === 'ingest' ? 1 << 20 : 16_384);
    const why = runOne(target, input);
    if (why !== undefined) {
      const file = saveRegression(target, input);
      failures.push({ input, why, file });
      log(`${target}: input ${i} failed (${why.split('\n')[0]}); saved as ${file}`);
    }
    if (i > 0 && i % 100_000 === 0) log(`${target}: ${i} inputs, ${failures.length} failures`);
  }
  const perSecond = inputs / ((performance.now() - t0) / 1000);
  return { failures, perSecond };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const inputs = Number(process.env.FUZZ_INPUTS ?? 1_000_000);
  const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
  const targets = (process.argv.slice(2).length ? process.argv.slice(2) : [...TARGETS]) as Target[];
  let failed = 0;
  for (const target of targets) {
    const r = fuzz(target, inputs, seed, (l) => console.log(l));
    failed += r.failures.length;
    console.log(`${target}: ${inputs} inputs (seed ${seed}), ${r.failures.length} failures, ${Math.round(r.perSecond)} inputs/s`);
  }
  process.exit(failed === 0 ? 0 : 1);
}
