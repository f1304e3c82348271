/** Tables every benchmark returns: printed to the console and written to bench/RESULTS.md. */
export type Cell = string | number;

export interface Table {
  title: string;
  columns: string[];
  rows: Cell[][];
  /** Lines printed under the table: sizes, what was measured, caveats. */
  notes: string[];
}

export interface BenchOptions {
  /** Minimal sizes: a smoke run that only proves the benchmark works. */
  smoke: boolean;
  /** Progress lines (stderr). */
  log: (line: string) => void;
}

export interface Benchmark {
  name: string;
  description: string;
  run(opts: BenchOptions): Promise<Table[]>;
}

export function fmt(v: Cell, digits = 0): string {
  if (typeof v === 'string') return v;
  if (!Number.isFinite(v)) return String(v);
  if (digits > 0) return v.toFixed(digits);
  if (Math.abs(v) >= 100) return Math.round(v).toLocaleString('en-US');
  if (Math.abs(v) >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

function cells(t: Table): string[][] {
  return t.rows.map((r) => r.map((c) => fmt(c)));
}

export function renderText(t: Table): string {
  const rows = cells(t);
  const w = t.columns.map((c, i) => Math.max(c.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string => r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ');
  return [`## ${t.title}`, line(t.columns), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(line), ...t.notes.map((n) => `  ${n}`)].join('\n');
}

export function renderMarkdown(t: Table): string {
  const rows = cells(t);
  const head = `| ${t.columns.join(' | ')} |`;
  const sep = `|${t.columns.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`;
  return [`### ${t.title}`, '', head, sep, ...rows.map((r) => `| ${r.join(' | ')} |`), '', ...t.notes.map((n) => `- ${n}`), ''].join('\n');
}

/** Checks a table is well formed: named columns, rows of the same width, finite numbers. */
export function checkTable(t: Table): string[] {
  const problems: string[] = [];
  if (!t.title) problems.push('untitled table');
  if (t.columns.length < 2) problems.push(`${t.title}: fewer than two columns`);
  if (t.rows.length === 0) problems.push(`${t.title}: no rows`);
  for (const r of t.rows) {
    if (r.length !== t.columns.length) problems.push(`${t.title}: row ${JSON.stringify(r[0])} has ${r.length} cells, want ${t.columns.length}`);
    for (const c of r) if (typeof c === 'number' && Number.isNaN(c)) problems.push(`${t.title}: NaN in row ${JSON.stringify(r[0])}`);
  }
  return problems;
}
