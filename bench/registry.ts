import type { Benchmark } from './lib/report.js';
import { pgbenchBench } from './macro/pgbench.bench.js';
import { pgParse } from './micro/pg-parse.bench.js';

/** Every benchmark, in the order `npm run bench` runs them and RESULTS.md lists them. */
export const BENCHMARKS: readonly Benchmark[] = [pgParse, pgbenchBench];
