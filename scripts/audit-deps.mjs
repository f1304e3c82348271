// Runs `npm audit --omit=dev` and fails on any high or critical finding in
// the production dependencies. When the registry's advisory endpoint cannot
// be reached or refuses the request (some mirrors and proxies allow only
// GET), it says so plainly and exits 0: no answer is not a clean bill, and
// the message says that too.
import { spawnSync } from 'node:child_process';

const r = spawnSync('npm', ['audit', '--omit=dev', '--json'], { encoding: 'utf8', timeout: 120_000 });
let report;
try {
  report = JSON.parse(r.stdout);
} catch {
  console.log(`npm audit: no report (exit ${r.status}); the advisory check did not run`);
  process.exit(0);
}
const counts = report.metadata?.vulnerabilities;
if (!counts) {
  const why = report.message ?? report.error?.summary ?? 'no vulnerability counts in the answer';
  console.log(`npm audit: the advisory endpoint gave no answer (${why}); the advisory check did not run`);
  process.exit(0);
}
const serious = (counts.high ?? 0) + (counts.critical ?? 0);
console.log(`npm audit --omit=dev: ${counts.critical ?? 0} critical, ${counts.high ?? 0} high, ${counts.moderate ?? 0} moderate, ${counts.low ?? 0} low`);
if (serious > 0) {
  for (const [name, v] of Object.entries(report.vulnerabilities ?? {})) if (v.severity === 'high' || v.severity === 'critical') console.log(`  ${v.severity}: ${name} ${v.range ?? ''}`);
  process.exit(1);
}
