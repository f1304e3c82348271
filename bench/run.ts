/**
 * `npm run bench` runs every benchmark; `npm run bench -- NAME…` runs some.
 * Prints a table per benchmark and rewrites that benchmark's section of
 * bench/RESULTS.md (other sections, and the hand-written analysis outside
 * the generated markers, are kept). BENCH_SMOKE=1: minimal sizes, no write.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { BENCHMARKS } from './registry.js';
import { checkTable, renderMarkdown, renderText, type Table } from './lib/report.js';

const ROOT = join(import.meta.dirname, '..');
const RESULTS = join(ROOT, 'bench', 'RESULTS.md');

function machine(): string {
  const c = cpus();
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8' }).trim();
    if (dirty) commit += ' (with uncommitted changes)';
  } catch {
    // not a git checkout
  }
  return `${c.length} × ${c[0]?.model.trim() ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}, ${process.platform} ${process.arch}, commit ${commit}, load average at start ${loadavg()[0].toFixed(1)}`;
}

function section(name: string, body: string): string {
  return `<!-- bench:${name} -->\n${body}\n<!-- /bench:${name} -->`;
}

function updateResults(name: string, description: string, tables: Table[], command: string, seconds: number): void {
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const body = [`## ${name}`, '', `${description}.`, '', `\`${command}\` — ${now}, ${seconds.toFixed(0)} s — ${machine()}`, '', ...tables.map(renderMarkdown)].join('\n');
  let text = existsSync(RESULTS) ? readFileSync(RESULTS, 'utf8') : '# Benchmark results\n\nWritten by `npm run bench` (bench/run.ts): each section below is replaced when its benchmark runs. Text outside the generated sections is kept.\n';
  const re = new RegExp(`<!-- bench:${name} -->[\\s\\S]*?<!-- /bench:${name} -->`);
  if (re.test(text)) text = text.replace(re, section(name, body));
  else {
    // keep registry order: insert before the first later benchmark's section, else before the analysis, else at the end
    const order = BENCHMARKS.map((b) => b.name);
    const later = order.slice(order.indexOf(name) + 1).find((n) => text.includes(`<!-- bench:${n} -->`));
    const at = later ? text.indexOf(`<!-- bench:${later} -->`) : text.indexOf('<!-- analysis -->');
    text = at >= 0 ? `${text.slice(0, at)}${section(name, body)}\n\n${text.slice(at)}` : `${text.trimEnd()}\n\n${section(name, body)}\n`;
  }
  writeFileSync(RESULTS, text);
}

async function main(argv: string[]): Promise<number> {
  const smoke = process.env.BENCH_SMOKE === '1';
  const unknown = argv.filter((a) => !BENCHMARKS.some((b) => b.name === a));
  if (unknown.length > 0) {
    process.stderr.write(`unknown benchmark ${unknown.join(', ')}; known: ${BENCHMARKS.map((b) => b.name).join(', ')}\n`);
    return 2;
  }
  const chosen = argv.length > 0 ? BENCHMARKS.filter((b) => argv.includes(b.name)) : BENCHMARKS;
  process.stderr.write(`${machine()}\n`);
  let failed = 0;
  for (const b of chosen) {
    const t0 = performance.now();
    let tables: Table[];
    try {
      tables = await b.run({ smoke, log: (l) => process.stderr.write(`  [${b.name}] ${l}\n`) });
    } catch (err) {
      failed++;
      process.stderr.write(`${b.name} failed: ${(err as Error).stack ?? String(err)}\n`);
      continue;
    }
    const secs = (performance.now() - t0) / 1000;
    for (const t of tables) {
      process.stdout.write(`\n${renderText(t)}\n`);
      const problems = checkTable(t);
      if (problems.length > 0) process.stderr.write(`malformed table: ${problems.join('; ')}\n`);
    }
    if (!smoke) updateResults(b.name, b.description, tables, argv.length > 0 ? `npm run bench -- ${argv.join(' ')}` : 'npm run bench', secs);
  }
  return failed > 0 ? 1 : 0;
}

process.exitCode = await main(process.argv.slice(2));
