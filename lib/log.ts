import pino from 'pino';

export type Logger = pino.Logger;

/**
 * The root logger: JSON lines on stdout (or the stream given), level from
 * config (`--log-level`). Redaction paths are a safety net; the rule is that
 * secrets, SQL text and parameters are never passed to a log call in the
 * first place.
 */
export function createLogger(level: string = process.env.DBAUDIT_LOG_LEVEL ?? 'info', dest?: pino.DestinationStream): Logger {
  const logger = pino(
    {
      level,
      base: { pid: process.pid },
      redact: {
        paths: ['password', '*.password', 'passwd', '*.passwd', 'token', '*.token', 'key', '*.key', 'secret', '*.secret', 'sql', '*.sql', 'statement', '*.statement', 'params', '*.params', 'parameters', '*.parameters'],
        censor: '[redacted]',
      },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    dest ?? pino.destination({ fd: 1, sync: false }),
  );
  roots.add(logger);
  return logger;
}

/**
 * A child logger for one component: `{ component }` bound once. pino
 * appends a child's bindings to its parent's and never replaces one, so
 * `log.child({ component })` under a logger that already has a component
 * (the gateway's replication, the demo's proxy and cache) wrote the key
 * twice in every line. Here such a child is made from the root with the
 * parent's other bindings and level, and the new component.
 */
export function componentLogger(log: Logger, component: string): Logger {
  const bindings = log.bindings();
  if (!('component' in bindings)) return log.child({ component });
  const root = rootOf(log) as Logger;
  if (root === log || 'component' in root.bindings()) return log.child({ component }); // no clean root to start from
  const { component: _replaced, ...rest } = bindings;
  return root.child({ ...rest, component }, { level: log.level });
}

/** A logger that drops everything, for tests and library use. */
export const silentLogger: Logger = pino({ level: 'silent' });

// ---------------------------------------------------------------------------
// One line per incident, not per event.

/** How often a repeating incident is summarised (and how long it must stay quiet to count as over). */
export const INCIDENT_INTERVAL_MS = 10_000;

type IncidentLevel = 'warn' | 'error' | 'info';

interface Incident {
  level: IncidentLevel;
  msg: string;
  /** Occurrences since the last line written. */
  suppressed: number;
  total: number;
  firstMs: number;
  timer: NodeJS.Timeout;
}

const roots = new WeakSet<object>([silentLogger]);
const incidentsByRoot = new WeakMap<object, Map<string, Incident>>();

/**
 * The logger incidents are grouped under: the root created by createLogger
 * (pino children are prototype descendants of their parent), or the logger
 * itself when it was made elsewhere.
 */
function rootOf(log: Logger): object {
  let p: object | null = log;
  for (let i = 0; i < 32 && p !== null; i++) {
    if (roots.has(p)) return p;
    p = Object.getPrototypeOf(p) as object | null;
  }
  return log;
}

/**
 * Logs a failure that may repeat in a flood (every client of a database
 * that is down, every batch of a misbehaving collector) as one incident:
 * the first occurrence is written at once, through `log` with its bindings
 * and `fields`; later ones with the same `key` are counted, and while they
 * keep coming one summary line (`repeated`, `total`) is written every
 * INCIDENT_INTERVAL_MS. An interval with none ends the incident; the next
 * occurrence is a new first line. Incidents are shared by every child of
 * one root logger, so a thousand sessions failing together write one line.
 */
export function logIncident(log: Logger, level: IncidentLevel, key: string, fields: Record<string, unknown>, msg: string, intervalMs: number = INCIDENT_INTERVAL_MS): void {
  if (!log.isLevelEnabled(level)) return;
  const root = rootOf(log);
  let open = incidentsByRoot.get(root);
  if (!open) {
    open = new Map();
    incidentsByRoot.set(root, open);
  }
  const current = open.get(key);
  if (current) {
    current.suppressed++;
    current.total++;
    return;
  }
  log[level]({ ...fields, incident: key }, msg);
  const incident: Incident = {
    level,
    msg,
    suppressed: 0,
    total: 1,
    firstMs: Date.now(),
    timer: setInterval(() => {
      if (incident.suppressed === 0) {
        clearInterval(incident.timer);
        open.delete(key);
        return;
      }
      (root as Logger)[incident.level]({ incident: key, repeated: incident.suppressed, total: incident.total, sinceMs: Date.now() - incident.firstMs }, `${incident.msg} (repeated)`);
      incident.suppressed = 0;
    }, intervalMs),
  };
  incident.timer.unref();
  open.set(key, incident);
}

/** Ends every open incident of `log`'s root without writing (tests, shutdown). */
export function clearIncidents(log: Logger): void {
  const open = incidentsByRoot.get(rootOf(log));
  if (!open) return;
  for (const inc of open.values()) clearInterval(inc.timer);
  open.clear();
}
