import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import ts from 'typescript';
import { Keyring } from './keyring.js';
import { EventCache } from './wal.js';
import { newKey, payloadOf, tempDir } from './testing.js';

const ROUNDS = Number(process.env.CACHE_CRASH_ROUNDS ?? 50);
/** The second half of the rounds runs with a cache small enough to evict: losses must then be reported, across crashes too. */
const SMALL_BYTES = 150_000;
const maxBytesOf = (round: number): number => (round < ROUNDS / 2 ? 1 << 30 : SMALL_BYTES);
const here = dirname(fileURLToPath(import.meta.url));
const root = dirname(here);
const t = tempDir('dbaudit-crash-');
/** The writer is transpiled once to plain JS (inside the repo, so node_modules resolve): a tsx start costs ~0.6 s a round. */
const build = join(root, 'tmp', `crash-build-${process.pid}`);
let child = '';
before(() => {
  for (const sub of ['cache', 'lib']) {
    mkdirSync(join(build, sub), { recursive: true });
    for (const f of readdirSync(join(root, sub))) {
      if (!f.endsWith('.ts') || f.endsWith('.test.ts') || f.endsWith('.d.ts')) continue;
      const out = ts.transpileModule(readFileSync(join(root, sub, f), 'utf8'), {
        compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true },
      });
      writeFileSync(join(build, sub, f.replace(/\.ts$/, '.js')), out.outputText);
    }
  }
  writeFileSync(join(build, 'package.json'), '{"type":"module"}');
  child = join(build, 'cache', 'crash-child.js');
});
after(() => {
  t.cleanup();
  rmSync(build, { recursive: true, force: true });
});

interface RoundLog {
  durable: bigint[];
  losses: [bigint, bigint][];
  acksIssued: [bigint, bigint][];
  acksDone: [bigint, bigint][];
  epoch: string;
}

/** Runs the writer until a random moment after it is ready, then kills it with SIGKILL. */
function round(dir: string, key: Buffer, killAfterMs: number, maxBytes: number, durability: 'fsync' | 'write'): Promise<RoundLog> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, CRASH_KEY: key.toString('hex'), CRASH_MAX_BYTES: String(maxBytes), CRASH_DURABILITY: durability };
    const p = spawn(process.execPath, [child, dir], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const log: RoundLog = { durable: [], losses: [], acksIssued: [], acksDone: [], epoch: '' };
    let buf = '';
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const [kind, a, b] = buf.slice(0, nl).split(' ');
        buf = buf.slice(nl + 1);
        if (kind === 'd') log.durable.push(BigInt(a));
        else if (kind === 'a') log.acksIssued.push([BigInt(a), BigInt(b)]);
        else if (kind === 'A') log.acksDone.push([BigInt(a), BigInt(b)]);
        else if (kind === 'l') log.losses.push([BigInt(a), BigInt(b)]);
        else if (kind === 'ready') {
          log.epoch = a;
          setTimeout(() => p.kill('SIGKILL'), killAfterMs);
        }
      }
    });
    p.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve(log);
      else reject(new Error(`writer exited by itself (code ${code}): ${err.slice(-2000)}`));
    });
  });
}

test(`kill -9 at random moments, ${ROUNDS} rounds: every record reported durable (fsync or write durability, alternating) is readable exactly once or reported lost`, { timeout: 120_000 }, async () => {
  const key = newKey();
  const keyring = new Keyring(key);
  const reported = new Set<bigint>();
  const issued: [bigint, bigint][] = [];
  const done: [bigint, bigint][] = [];
  let epoch = '';
  let totalDurable = 0;
  const issuedSet = new Set<bigint>();
  const lostSet = new Set<bigint>();
  let lossReports = 0;
  let redelivered = 0;
  const doneSet = new Set<bigint>();
  const addRanges = (set: Set<bigint>, rs: [bigint, bigint][]) => {
    for (const [a, b] of rs) for (let s = a; s <= b; s++) set.add(s);
  };
  let childMs = 0;
  let checkMs = 0;
  for (let r = 0; r < ROUNDS; r++) {
    // The last round (small cache) runs long enough to fill it, so loss reporting is always exercised.
    const killAfter = r === ROUNDS - 1 ? 1_500 : Math.floor(Math.random() * 250);
    const t0 = Date.now();
    const log = await round(t.dir, key, killAfter, maxBytesOf(r), r % 2 === 1 ? 'write' : 'fsync');
    const t1 = Date.now();
    childMs += t1 - t0;
    if (r === 0) epoch = log.epoch;
    assert.equal(log.epoch, epoch, `round ${r}: epoch changed`);
    for (const s of log.durable) reported.add(s);
    issued.push(...log.acksIssued);
    done.push(...log.acksDone);
    addRanges(issuedSet, log.acksIssued);
    addRanges(doneSet, log.acksDone);
    addRanges(lostSet, log.losses);
    lossReports += log.losses.length;
    totalDurable += log.durable.length;

    // losses the writer had not reported before it died are delivered to whoever opens next: here, this check
    const cache = await EventCache.open({
      path: t.dir,
      maxBytes: maxBytesOf(r),
      maxAgeMs: 0,
      keyring,
      commitIntervalMs: 1,
      onLoss: (l) => {
        addRanges(lostSet, [[l.fromSeq, l.toSeq]]);
        lossReports++;
        redelivered++;
      },
    });
    await new Promise((r) => setImmediate(r));
    try {
      assert.equal(cache.epoch, epoch);
      const seen = new Map<bigint, number>();
      let after: bigint | undefined;
      for (;;) {
        const page = await cache.scan({ order: 'oldest_first', afterSeq: after, limit: 5000 });
        if (page.length === 0) break;
        for (const rec of page) {
          seen.set(rec.seq, (seen.get(rec.seq) ?? 0) + 1);
          assert.deepEqual(Buffer.from(rec.payload), payloadOf(rec.seq, 64 + Number(rec.seq % 200n)), `round ${r}: payload of ${rec.seq}`);
        }
        after = page[page.length - 1].seq;
      }
      for (const [s, n] of seen) assert.equal(n, 1, `round ${r}: seq ${s} read ${n} times`);
      for (const s of reported) {
        if (issuedSet.has(s) || lostSet.has(s)) continue; // an ack was issued, or it was reported lost: may be gone
        assert.ok(seen.has(s), `round ${r} (killed after ${killAfter} ms): seq ${s} was reported durable but is missing`);
      }
      for (const s of seen.keys()) assert.ok(!doneSet.has(s), `round ${r}: seq ${s} was acknowledged durably but came back`);
      // gap-free: every seq up to durableSeq is held unless an ack for it was issued or a loss reported
      for (let s = 1n; s <= cache.durableSeq; s++) {
        if (!seen.has(s)) assert.ok(issuedSet.has(s) || lostSet.has(s), `round ${r}: seq ${s} missing without an ack or a loss report (gap)`);
      }
      // the counters in the meta record are exact after a crash
      assert.equal(cache.stats().events, seen.size, `round ${r}: events counter`);
      assert.ok(cache.durableSeq >= [...reported].reduce((m, s) => (s > m ? s : m), 0n));
    } finally {
      await cache.close();
    }
    checkMs += Date.now() - t1;
  }
  assert.ok(totalDurable > ROUNDS, `too few records made durable (${totalDurable}) for the test to mean anything`);
  assert.ok(lossReports > 0, 'no eviction happened: the test did not exercise loss reporting');
  console.log(
    `# crash test: ${ROUNDS} rounds, ${totalDurable} records reported durable, ${done.length} acks completed, ${lossReports} loss reports (${lostSet.size} seqs, ${redelivered} delivered only after the crash); ${childMs} ms in writers, ${checkMs} ms checking`,
  );
});
