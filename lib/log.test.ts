import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import pino from 'pino';
import { duplicateKeys } from '../test/observability/json-keys.js';
import { clearIncidents, componentLogger, createLogger, logIncident } from './log.js';

function capture(): { stream: Writable; lines: () => Array<Record<string, unknown>> } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString('utf8'));
      cb();
    },
  });
  return {
    stream,
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('logIncident: a flood from many children of one root is one line, then one count per interval, then it ends', async () => {
  const out = capture();
  const root = createLogger('info', out.stream);
  const sessions = Array.from({ length: 50 }, (_, i) => root.child({ component: 'proxy' }).child({ session: `s${i}` }));
  for (const s of sessions) logIncident(s, 'warn', 'db-unreachable', { err: 'ECONNREFUSED' }, 'cannot reach the database', 100);
  let lines = out.lines();
  assert.equal(lines.length, 1);
  assert.equal(lines[0].msg, 'cannot reach the database');
  assert.equal(lines[0].level, 40);
  assert.equal(lines[0].session, 's0');
  assert.equal(lines[0].incident, 'db-unreachable');
  assert.equal(lines[0].err, 'ECONNREFUSED');

  await sleep(150);
  lines = out.lines();
  assert.equal(lines.length, 2);
  assert.equal(lines[1].msg, 'cannot reach the database (repeated)');
  assert.equal(lines[1].repeated, 49);
  assert.equal(lines[1].total, 50);

  // A quiet interval ends the incident; the next occurrence is a new first line.
  await sleep(250);
  assert.equal(out.lines().length, 2);
  logIncident(sessions[3], 'warn', 'db-unreachable', { err: 'ECONNREFUSED' }, 'cannot reach the database', 100);
  lines = out.lines();
  assert.equal(lines.length, 3);
  assert.equal(lines[2].session, 's3');
  assert.equal(lines[2].repeated, undefined);
  clearIncidents(root);
});

test('logIncident: different keys and different roots are separate incidents; a disabled level writes nothing', () => {
  const a = capture();
  const b = capture();
  const ra = createLogger('info', a.stream);
  const rb = createLogger('info', b.stream);
  logIncident(ra, 'error', 'k1', {}, 'one');
  logIncident(ra, 'error', 'k2', {}, 'two');
  logIncident(ra, 'error', 'k1', {}, 'one');
  logIncident(rb, 'error', 'k1', {}, 'one');
  assert.deepEqual(a.lines().map((l) => l.msg), ['one', 'two']);
  assert.deepEqual(b.lines().map((l) => l.msg), ['one']);
  const quiet = capture();
  const rq = createLogger('error', quiet.stream);
  logIncident(rq, 'warn', 'k', {}, 'not written');
  assert.equal(quiet.lines().length, 0);
  // A logger made outside createLogger is its own root.
  const plain = capture();
  const p = pino({ level: 'info' }, plain.stream);
  logIncident(p.child({ x: 1 }), 'warn', 'k', {}, 'first');
  logIncident(p.child({ x: 2 }), 'warn', 'k', {}, 'first');
  assert.equal(plain.lines().length, 2);
  for (const r of [ra, rb, rq, p]) clearIncidents(r);
});

test('createLogger: JSON lines with ISO time; password, key, token, sql and parameter fields are censored', () => {
  const out = capture();
  const log = createLogger('debug', out.stream);
  log.debug({ password: 'pw1', token: 'tok1', key: 'k1', sql: 'select 1', params: ['p1'], parameters: ['p2'], nested: { password: 'pw2', secret: 's2' } }, 'fields');
  const [line] = out.lines();
  assert.equal(line.msg, 'fields');
  assert.match(String(line.time), /^\d{4}-\d\d-\d\dT/);
  const text = JSON.stringify(line);
  for (const s of ['pw1', 'tok1', 'k1', 'select 1', 'p1', 'p2', 'pw2', 's2']) assert.ok(!text.includes(s), s);
});

test('componentLogger: a component under a component replaces it (one `component` key per line), keeping the other bindings and the level', () => {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString('utf8'));
      cb();
    },
  });
  const root = createLogger('info', stream);
  const gateway = componentLogger(root, 'gateway').child({ peer: 'p1' });
  gateway.level = 'debug';
  const replication = componentLogger(gateway, 'replication');
  replication.debug('ship');
  componentLogger(root, 'proxy').info('plain');
  const lines = chunks.join('').split('\n').filter(Boolean);
  assert.equal(lines.length, 2);
  for (const l of lines) assert.deepEqual(duplicateKeys(l), [], l);
  const [ship, plain] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(ship.component, 'replication');
  assert.equal(ship.peer, 'p1');
  assert.equal(ship.level, 20);
  assert.equal(plain.component, 'proxy');
});
