import pino from 'pino';

export type Logger = pino.Logger;

/**
 * The root logger: JSON lines on stdout (or fd given), level from config.
 * Redaction paths are a safety net; the rule is that secrets, SQL text
 * and parameters are never passed to a log call in the first place.
 */
export function createLogger(level: string = process.env.DBAUDIT_LOG_LEVEL ?? 'info', dest?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid },
      redact: { paths: ['password', '*.password', 'token', '*.token', 'key', '*.key', 'sql', '*.sql', 'params'], censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    dest ?? pino.destination({ fd: 1, sync: false }),
  );
}

/** A logger that drops everything, for tests and library use. */
export const silentLogger: Logger = pino({ level: 'silent' });
