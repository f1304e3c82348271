// Running external programs (initdb, psql, mariadb …) for the test harness.
//
// Servers refuse to run as root, so when this process is root a command can be
// run as another OS user through `runuser`; when it is not root the command
// runs as the current user (a developer machine), which those servers accept.
import { spawn, spawnSync } from 'node:child_process';

export interface RunOptions {
  /** OS user to run as when this process is root (ignored otherwise). */
  readonly user?: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Written to the child's stdin, then stdin is closed. */
  readonly input?: string | Buffer;
  /** Kill the child (SIGKILL) after this many milliseconds. Default 120 s. */
  readonly timeoutMs?: number;
  /** Resolve with a non-zero exit code instead of rejecting. */
  readonly allowFail?: boolean;
}

export interface RunResult {
  readonly code: number;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export class CommandError extends Error {
  readonly result: RunResult;
  readonly command: string;

  constructor(command: string, result: RunResult) {
    const tail = (result.stderr.trim() || result.stdout.trim()).split('\n').slice(-20).join('\n');
    super(`${command} exited with ${result.signal ?? result.code}:\n${tail}`);
    this.name = 'CommandError';
    this.command = command;
    this.result = result;
  }
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** The argv that runs `cmd args` as `user` (through runuser when root). */
export function asUser(user: string | undefined, cmd: string, args: readonly string[]): [string, string[]] {
  if (user !== undefined && user !== 'root' && isRoot()) {
    return ['runuser', ['-u', user, '--', cmd, ...args]];
  }
  return [cmd, [...args]];
}

function describe(cmd: string, args: readonly string[]): string {
  return [cmd, ...args].map((a) => (/^[\w./:=@%+-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
}

export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const [file, argv] = asUser(opts.user, cmd, args);
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${describe(cmd, args)}: ${e.message}`, { cause: e }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const result: RunResult = {
        code: code ?? -1,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      };
      if (result.code !== 0 && opts.allowFail !== true) {
        reject(new CommandError(describe(file === cmd ? cmd : `${file} … ${cmd}`, args), result));
      } else {
        resolve(result);
      }
    });
    child.stdin.on('error', () => {
      /* child exited before reading its input: reported by 'close' */
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** Synchronous variant for process-exit hooks; never throws. */
export function runSyncQuiet(cmd: string, args: readonly string[], user?: string, timeoutMs = 15_000): number {
  const [file, argv] = asUser(user, cmd, args);
  try {
    const r = spawnSync(file, argv, { stdio: 'ignore', timeout: timeoutMs });
    return r.status ?? -1;
  } catch {
    return -1;
  }
}
