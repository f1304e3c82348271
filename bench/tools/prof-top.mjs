#!/usr/bin/env node
// Summarises a V8 .cpuprofile (node --cpu-prof, or BENCH_CPU_PROF=DIR in the
// macro benchmarks): self time per function and inclusive time of the
// functions under a name filter. Usage:
//   node bench/tools/prof-top.mjs FILE.cpuprofile [TOP=30] [FILTER]
import { readFileSync } from 'node:fs';

const [file, topArg, filter] = process.argv.slice(2);
if (!file) {
  console.error('usage: prof-top.mjs FILE.cpuprofile [TOP] [FILTER]');
  process.exit(2);
}
const top = Number(topArg ?? 30);
const prof = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

// sample counts per node, weighted by the time deltas
const selfUs = new Map();
for (let i = 0; i < prof.samples.length; i++) {
  const id = prof.samples[i];
  selfUs.set(id, (selfUs.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0));
}
const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
const label = (n) => {
  const cf = n.callFrame;
  const where = cf.url ? cf.url.replace(/^.*\/(work\/main|node_modules)\//, '$1/').replace(/^file:\/\//, '') : '';
  return `${cf.functionName || '(anonymous)'} ${where}${cf.url ? ':' + (cf.lineNumber + 1) : ''}`;
};

const self = new Map();
const incl = new Map();
for (const [id, us] of selfUs) {
  const l = label(byId.get(id));
  self.set(l, (self.get(l) ?? 0) + us);
  const seen = new Set();
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const lc = label(byId.get(cur));
    if (seen.has(lc)) continue;
    seen.add(lc);
    incl.set(lc, (incl.get(lc) ?? 0) + us);
  }
}
const pct = (us) => ((100 * us) / total).toFixed(1).padStart(5) + '%';
console.log(`total ${(total / 1e6).toFixed(2)} s sampled`);
console.log('\nself time');
for (const [l, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(pct(us), l);
console.log('\ninclusive time' + (filter ? ` (matching ${filter})` : ''));
for (const [l, us] of [...incl].sort((a, b) => b[1] - a[1]).filter(([l]) => !filter || l.includes(filter)).slice(0, top)) console.log(pct(us), l);
