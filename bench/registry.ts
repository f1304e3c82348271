import type { Benchmark } from './lib/report.js';
import { eventPipeline } from './macro/event-pipeline.bench.js';
import { memoryBench } from './macro/memory.bench.js';
import { pgbenchBench } from './macro/pgbench.bench.js';
import { sysbenchBench } from './macro/sysbench.bench.js';
import { mysqlParse } from './micro/mysql-parse.bench.js';
import { pgParse } from './micro/pg-parse.bench.js';

/** Every benchmark, in the order `npm run bench` runs them and RESULTS.md lists them. */
export const BENCHMARKS: readonly Benchmark[] = [pgParse, mysqlParse, eventPipeline, memoryBench, pgbenchBench, sysbenchBench];
