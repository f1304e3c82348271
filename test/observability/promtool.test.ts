import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import { CollectorMetrics, GatewayMetrics } from '../../lib/metrics.js';
import { binary, makeTempDir, needServer, run } from '../harness/index.js';

const DIR = new URL('../../k8s/monitoring/', import.meta.url).pathname;
const RULES = join(DIR, 'dbaudit-rules.yaml');
const RULE_TESTS = join(DIR, 'dbaudit-rules.test.yaml');

interface Rule {
  alert: string;
  expr: string;
  for: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}
interface Group {
  name: string;
  rules: Rule[];
}

/** The brief's "HA Monitoring Alerts", verbatim. */
const BRIEF_ALERTS: Rule[] = [
  {
    alert: 'collector-down',
    expr: 'absent(up{job="dbaudit-collector"})',
    for: '5m',
    labels: { severity: 'critical' },
    annotations: { summary: 'DB Audit collector is down', description: 'Collector {{ $labels.instance }} has been down for 5 minutes' },
  },
  {
    alert: 'high-cache-utilization',
    expr: 'dbaudit_cache_size_bytes / dbaudit_cache_max_bytes > 0.9',
    for: '10m',
    labels: { severity: 'warning' },
    annotations: { summary: 'DB Audit cache nearly full', description: 'Cache utilization is {{ $value | humanizePercentage }}' },
  },
  {
    alert: 'event-lag',
    expr: 'dbaudit_event_lag_seconds > 60',
    for: '5m',
    labels: { severity: 'warning' },
    annotations: { summary: 'DB Audit event processing lag', description: 'Events are {{ $value }}s behind real-time' },
  },
  {
    alert: 'api-errors',
    expr: 'rate(dbaudit_api_requests_total{status=~"5.."}[5m]) > 0.1',
    for: '5m',
    labels: { severity: 'warning' },
    annotations: { summary: 'DB Audit API errors', description: 'API error rate is {{ $value | humanizePercentage }}' },
  },
];

function groups(): Group[] {
  return (parse(readFileSync(RULES, 'utf8')) as { groups: Group[] }).groups;
}

async function promtool(args: string[]): Promise<{ code: number; out: string }> {
  const r = await run(binary('promtool'), args, { allowFail: true, timeoutMs: 60_000 });
  return { code: r.code, out: r.stdout + r.stderr };
}

/** Every dbaudit_* metric name the two registries export (histograms with their series suffixes). */
async function exportedNames(): Promise<Set<string>> {
  const names = new Set<string>();
  for (const m of [new CollectorMetrics({ defaultMetrics: false }), new GatewayMetrics({ defaultMetrics: false })]) {
    for (const x of await m.registry.getMetricsAsJSON()) {
      names.add(x.name);
      if (String(x.type) === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(x.name + s);
    }
  }
  return names;
}

describe('alert rules (k8s/monitoring)', () => {
  test('the rule file holds the brief\'s four alerts exactly, and the trail alerts in their own group', () => {
    const g = groups();
    assert.deepEqual(g.map((x) => x.name), ['dbaudit-ha', 'dbaudit-trail']);
    assert.deepEqual(g[0].rules, BRIEF_ALERTS);
    assert.deepEqual(g[1].rules.map((r) => r.alert), ['audit-trail-gap', 'audit-trail-chain-break']);
  });

  test('the PrometheusRule resource carries the same groups as the plain rule file', () => {
    const crd = parse(readFileSync(join(DIR, 'prometheus-rule.yaml'), 'utf8')) as { apiVersion: string; kind: string; spec: { groups: Group[] } };
    assert.equal(crd.apiVersion, 'monitoring.coreos.com/v1');
    assert.equal(crd.kind, 'PrometheusRule');
    assert.deepEqual(crd.spec.groups, groups());
  });

  test('every metric the rules and the dashboard use is one the collector or the gateway exports', async () => {
    const names = await exportedNames();
    const used = new Set<string>();
    const collect = (text: string): void => {
      for (const m of text.matchAll(/\bdbaudit_[a-z_]+/g)) used.add(m[0]);
    };
    for (const g of groups()) for (const r of g.rules) collect(r.expr);
    const dash = JSON.parse(readFileSync(join(DIR, 'grafana-dashboard.json'), 'utf8')) as { panels: Array<{ title: string; targets: Array<{ expr: string }> }> };
    for (const p of dash.panels) for (const t of p.targets) collect(t.expr);
    assert.ok(used.size >= 12, `only ${used.size} metrics used`);
    for (const n of used) assert.ok(names.has(n), `${n} is not exported`);
    const titles = dash.panels.map((p) => p.title);
    for (const want of ['Events per second by status', 'Event latency histogram', 'Cache size against its maximum', 'Sync pending and lag', 'API errors (5xx) and latency', 'Database sessions']) {
      assert.ok(titles.includes(want), `dashboard panel ${want}`);
    }
  });

  test('the PodMonitor scrapes collectors under job="dbaudit-collector", the ServiceMonitor the gateways', () => {
    const pods = parseAllDocuments(readFileSync(join(DIR, 'pod-monitor.yaml'), 'utf8')).map((d) => d.toJS() as { kind: string; spec: { podMetricsEndpoints: Array<{ path: string; relabelings: Array<{ targetLabel: string; replacement: string }> }> } });
    assert.ok(pods.length >= 1);
    for (const p of pods) {
      assert.equal(p.kind, 'PodMonitor');
      for (const e of p.spec.podMetricsEndpoints) {
        assert.equal(e.path, '/metrics');
        assert.deepEqual(e.relabelings.find((r) => r.targetLabel === 'job')?.replacement, 'dbaudit-collector');
      }
    }
    const svc = parse(readFileSync(join(DIR, 'service-monitor.yaml'), 'utf8')) as { kind: string; spec: { endpoints: Array<{ path: string }> } };
    assert.equal(svc.kind, 'ServiceMonitor');
    assert.equal(svc.spec.endpoints[0].path, '/metrics');
  });

  test('promtool check rules accepts both the plain file and the rules of the PrometheusRule', async (t) => {
    if (!needServer(t, 'promtool')) return;
    const plain = await promtool(['check', 'rules', RULES]);
    assert.equal(plain.code, 0, plain.out);
    assert.match(plain.out, /SUCCESS: 6 rules found/);
    const tmp = makeTempDir('promtool');
    try {
      const crd = parse(readFileSync(join(DIR, 'prometheus-rule.yaml'), 'utf8')) as { spec: unknown };
      const extracted = join(tmp.dir, 'crd-rules.json');
      writeFileSync(extracted, JSON.stringify(crd.spec));
      const fromCrd = await promtool(['check', 'rules', extracted]);
      assert.equal(fromCrd.code, 0, fromCrd.out);
    } finally {
      tmp.remove();
    }
  });

  test('promtool test rules: each alert fires on its series after its for: and stays quiet otherwise', async (t) => {
    if (!needServer(t, 'promtool')) return;
    const r = await promtool(['test', 'rules', RULE_TESTS]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /SUCCESS/);
    // Each alert has both a firing and a quiet expectation.
    const spec = parse(readFileSync(RULE_TESTS, 'utf8')) as { tests: Array<{ alert_rule_test: Array<{ alertname: string; exp_alerts: unknown[] }> }> };
    for (const a of [...BRIEF_ALERTS, { alert: 'audit-trail-gap' }, { alert: 'audit-trail-chain-break' }]) {
      const cases = spec.tests.flatMap((x) => x.alert_rule_test).filter((c) => c.alertname === a.alert);
      assert.ok(cases.some((c) => c.exp_alerts.length > 0), `${a.alert} never expected to fire`);
      assert.ok(cases.some((c) => c.exp_alerts.length === 0), `${a.alert} never expected to stay quiet`);
    }
  });

  test('the unit tests catch a changed threshold or for: (they are not vacuous)', async (t) => {
    if (!needServer(t, 'promtool')) return;
    const mutations: Array<[string, string]> = [
      ['> 0.9', '> 0.96'],
      ['for: 10m', 'for: 20m'],
      ['dbaudit_event_lag_seconds > 60', 'dbaudit_event_lag_seconds > 600'],
      ['[5m]) > 0.1', '[5m]) > 1'],
      ['absent(up{job="dbaudit-collector"})', 'absent(up{job="dbaudit-collectors"})'],
      ['dbaudit_trail_gaps > 0', 'dbaudit_trail_gaps > 2'],
      ['for: 30m', 'for: 45m'],
      ['[15m]) > 0', '[15m]) > 1'],
    ];
    const original = readFileSync(RULES, 'utf8');
    for (const [from, to] of mutations) {
      const tmp = makeTempDir('promtool');
      try {
        assert.ok(original.includes(from), from);
        writeFileSync(join(tmp.dir, 'dbaudit-rules.yaml'), original.replace(from, to));
        copyFileSync(RULE_TESTS, join(tmp.dir, 'dbaudit-rules.test.yaml'));
        const r = await promtool(['test', 'rules', join(tmp.dir, 'dbaudit-rules.test.yaml')]);
        assert.notEqual(r.code, 0, `promtool test passed with ${JSON.stringify(from)} → ${JSON.stringify(to)}`);
      } finally {
        tmp.remove();
      }
    }
  });
});
