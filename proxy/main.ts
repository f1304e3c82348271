import { randomBytes } from 'node:crypto';
import { describeKeys, loadConfig, type Scope } from '../lib/config.js';
import { AuditError, ErrorCode, isAuditError } from '../lib/errors.js';
import { createLogger, type Logger } from '../lib/log.js';
import { VERSION } from '../lib/version.js';

const USAGE = `dbaudit ${VERSION}: database audit proxy and collector gateway

usage: dbaudit <command> [flags]

commands:
  proxy     run the audit proxy in front of a database
  gateway   run the collector gateway (ingest, store, query)
  events    query events stored at a gateway
  demo      embedded PostgreSQL + gateway + proxy, printing events live
  cache     inspect a local event cache (dbaudit cache inspect --cache-dir DIR)
  verify    check a gateway's stored trail: gaps, loss events, chain breaks (exit 1 on any finding)
  keygen    print a new random 32-byte key (base64): cache, trail or seal key
  inject    add the dbaudit sidecar to Kubernetes YAML (stdin → stdout) by pod annotations
  webhook   Kubernetes mutating admission webhook (HTTPS) that injects the sidecar
  version   print the version

Every command takes --config FILE (YAML). Run 'dbaudit <command> --help' for its keys,
flags and environment variables.
`;

function wantsHelp(argv: readonly string[]): boolean {
  return argv.includes('--help') || argv.includes('-h');
}

function printKeys(scope: Scope, what: string): void {
  process.stdout.write(`dbaudit ${what} [--config FILE] [flags]\n\nEvery key can be set in the YAML file, as a flag, or in the environment:\n${describeKeys(scope)}\n`);
}

function onSignals(logger: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (sig: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal: sig }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal: sig }, 'shutting down');
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err: (err as Error).message }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
}

function rejectUnknown(rest: readonly string[], cmd: string): void {
  if (rest.length > 0) throw new AuditError(ErrorCode.Config, `dbaudit ${cmd}: unknown argument ${JSON.stringify(rest[0])} (see dbaudit ${cmd} --help)`);
}

async function main(args: string[]): Promise<number> {
  const [cmd, ...argv] = args;
  switch (cmd) {
    case 'proxy': {
      if (wantsHelp(argv)) return printKeys('collector', 'proxy'), 0;
      const { config, rest } = loadConfig({ argv, scope: 'collector' });
      rejectUnknown(rest, 'proxy');
      const logger = createLogger(config.log.level);
      const { startCollector } = await import('./collector.js');
      const handle = await startCollector({ config, logger });
      onSignals(logger, () => handle.shutdown());
      return -1;
    }
    case 'gateway': {
      if (wantsHelp(argv)) return printKeys('gateway', 'gateway'), 0;
      const { config, rest } = loadConfig({ argv, scope: 'gateway' });
      rejectUnknown(rest, 'gateway');
      const logger = createLogger(config.log.level);
      const { runGateway } = await import('../gateway/run.js');
      const handle = await runGateway({ config, logger });
      onSignals(logger, () => handle.close());
      return -1;
    }
    case 'verify': {
      const { runVerifyCommand } = await import('../gateway/verify-command.js');
      return runVerifyCommand(argv, process.env, process.stdout);
    }
    case 'events': {
      const { runEventsCommand } = await import('../gateway/events-command.js');
      return runEventsCommand(argv, process.env, process.stdout);
    }
    case 'demo': {
      const { runDemo } = await import('./demo.js');
      await runDemo(argv);
      return -1;
    }
    case 'cache': {
      const { runCacheCommand } = await import('../cache/inspect.js');
      return runCacheCommand(argv, process.env);
    }
    case 'inject': {
      if (wantsHelp(argv)) {
        process.stdout.write('dbaudit inject [--image IMAGE] < workloads.yaml > injected.yaml\n\nAdds the dbaudit sidecar to Pods, Deployments, StatefulSets (and Lists, multi-document streams)\nwhose pod template is annotated dbaudit.io/inject: "true" (with dbaudit.io/upstream host:port,\ndbaudit.io/protocol postgres|mysql, optional dbaudit.io/config-secret). Idempotent.\n');
        return 0;
      }
      const { runInjectCommand } = await import('./inject.js');
      return runInjectCommand(argv, process.stdin, process.stdout, process.env);
    }
    case 'webhook': {
      const { startWebhook, webhookOptions, WEBHOOK_USAGE } = await import('./webhook.js');
      if (wantsHelp(argv)) return process.stdout.write(WEBHOOK_USAGE), 0;
      const opts = webhookOptions(argv, process.env);
      const logger = createLogger(opts.logLevel);
      const handle = await startWebhook({ ...opts, logger });
      logger.info({ listen: handle.address }, 'dbaudit webhook started');
      onSignals(logger, () => handle.close());
      return -1;
    }
    case 'keygen':
      process.stdout.write(randomBytes(32).toString('base64') + '\n');
      return 0;
    case 'version':
    case '--version':
      process.stdout.write(`${VERSION}\n`);
      return 0;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return cmd === undefined ? 2 : 0;
    default:
      process.stderr.write(`dbaudit: unknown command ${JSON.stringify(cmd)}\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    if (isAuditError(err)) process.stderr.write(`dbaudit: ${err.message}\n`);
    // A Node system error (EADDRINUSE, EACCES, ENOENT … with its syscall) is the environment, not a bug: one line, no stack.
    else if (typeof (err as NodeJS.ErrnoException)?.code === 'string' && typeof (err as NodeJS.ErrnoException).syscall === 'string') process.stderr.write(`dbaudit: ${(err as Error).message}\n`);
    else process.stderr.write(`dbaudit: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
