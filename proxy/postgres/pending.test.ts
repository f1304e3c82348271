import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { renderValue } from './messages.js';
import { BoundedMap, RingQueue, type Weighed } from './pending.js';
import * as B from './test-builders.js';
import { TestSession, type Step } from './test-session.js';
import { DEFAULT_TRACKER_LIMITS } from './tracker.js';

class Item implements Weighed {
  readonly name: string;
  readonly weight: number;
  constructor(name: string, weight: number) {
    this.name = name;
    this.weight = weight;
  }
}

describe('pending-state containers', () => {
  it('RingQueue is FIFO across wrap-around and growth, and refuses past its limit', () => {
    const q = new RingQueue<number>(40, 4);
    for (let i = 0; i < 3; i++) q.push(i);
    assert.equal(q.shift(), 0);
    for (let i = 3; i < 40; i++) assert.ok(q.push(i));
    assert.equal(q.size, 39);
    assert.ok(q.push(40));
    assert.equal(q.push(41), false);
    assert.equal(q.at(0), 1);
    assert.equal(q.at(39), 40);
    assert.equal(q.at(40), undefined);
    for (let i = 1; i <= 40; i++) assert.equal(q.shift(), i);
    assert.equal(q.shift(), undefined);
    assert.equal(q.peek(), undefined);
  });

  it('BoundedMap forgets the oldest by count and by weight, keeps the newest, reports drops', () => {
    const dropped: string[] = [];
    const m = new BoundedMap<Item>(3, 100, (v) => dropped.push(v.name));
    m.set('a', new Item('a', 10));
    m.set('b', new Item('b', 10));
    m.set('c', new Item('c', 10));
    m.set('d', new Item('d', 10));
    assert.deepEqual(dropped, ['a']);
    m.set('b', new Item('b2', 10));
    assert.deepEqual(dropped, ['a', 'b']);
    m.set('huge', new Item('huge', 500));
    assert.deepEqual(dropped, ['a', 'b', 'c', 'd', 'b2']);
    assert.equal(m.size, 1);
    assert.equal(m.weight, 500);
    assert.equal(m.delete('huge')!.name, 'huge');
    assert.equal(m.weight, 0);
  });

  it('renderValue never splits a UTF-8 character when cutting', () => {
    const b = Buffer.from('aé€');
    assert.equal(renderValue(b, 0, b.length, 0, 2), 'a');
    assert.equal(renderValue(b, 0, b.length, 0, 3), 'aé');
    assert.equal(renderValue(b, 0, b.length, 0, 5), 'aé');
    assert.equal(renderValue(b, 0, b.length, 0, 6), 'aé€');
  });

  it('portals_with_huge_parameters_stay_within_the_portal_byte_bound', () => {
    const login: Step[] = [['c', B.startup({ user: 'u' })], ['s', B.loginOk()]];
    const limits = { ...DEFAULT_TRACKER_LIMITS, portalBytes: 1024 * 1024 };
    const s = new TestSession({ logParameters: true, maxStatementBytes: 1 << 20 }, limits).run([...login, ['c', cat([B.parse('s', 'select $1'), B.sync()])], ['s', cat([B.parseComplete(), B.readyForQuery('T')])]]);
    const big = 'x'.repeat(300_000);
    for (let i = 0; i < 20; i++) s.run([['c', cat([B.bind(`p${i}`, 's', [big]), B.sync()])], ['s', cat([B.bindComplete(), B.readyForQuery('T')])]]);
    assert.deepEqual(s.anomalies, []);
    // the named portals of the open transaction: at most ~1 MiB of values kept
    s.run([['c', cat([B.execute('p19'), B.sync()])], ['s', cat([B.dataRow(['x']), B.commandComplete('SELECT 1'), B.readyForQuery('T')])]]);
    assert.deepEqual(s.summary().at(-1)!.params, [big]);
    s.run([['c', cat([B.execute('p0'), B.sync()])], ['s', cat([B.commandComplete('SELECT 1'), B.readyForQuery('T')])]]);
    assert.equal(s.summary().at(-1)!.prepared, undefined, 'p0 was forgotten: its statement is unknown');
  });
});

function cat(parts: Buffer[]): Buffer {
  return Buffer.concat(parts);
}
