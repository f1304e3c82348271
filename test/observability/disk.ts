// Making a directory unwritable for a test, as root too (root ignores
// permission bits): a small tmpfs that is then filled (ENOSPC, what a full
// disk does), or `chattr +i` where mounting is not allowed; chmod when not root.
import { execFileSync } from 'node:child_process';
import { chmodSync, closeSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export interface Disk {
  /** Where the test puts the directory to break (inside the tmpfs when there is one). */
  readonly dir: string;
  readonly how: 'tmpfs-full' | 'chattr' | 'chmod';
  /** Writes to `dir` fail from now on. */
  break(): void;
  /** Writes work again. */
  repair(): void;
  /** Unmounts / unlocks; safe to call twice. */
  dispose(): void;
}

const isRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0;

function tryExec(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export function makeDisk(base: string, sizeMb = 16): Disk {
  const mount = join(base, 'fs');
  mkdirSync(mount, { recursive: true });
  if (isRoot() && tryExec('mount', ['-t', 'tmpfs', '-o', `size=${sizeMb}m,mode=0700`, 'tmpfs', mount])) {
    const dir = join(mount, 'data');
    mkdirSync(dir);
    const filler = join(mount, 'filler');
    let mounted = true;
    return {
      dir,
      how: 'tmpfs-full',
      break() {
        const fd = openSync(filler, 'w');
        const chunk = Buffer.alloc(64 * 1024, 0x5a);
        try {
          for (;;) writeSync(fd, chunk);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
        }
        // Fill the last partial chunk too.
        try {
          for (;;) writeSync(fd, chunk, 0, 1);
        } catch {
          // full
        } finally {
          closeSync(fd);
        }
      },
      repair() {
        rmSync(filler, { force: true });
      },
      dispose() {
        if (!mounted) return;
        mounted = false;
        if (!tryExec('umount', [mount])) tryExec('umount', ['-l', mount]);
      },
    };
  }
  const dir = join(base, 'data');
  mkdirSync(dir, { recursive: true });
  if (isRoot()) {
    let locked = false;
    return {
      dir,
      how: 'chattr',
      break() {
        execFileSync('chattr', ['+i', dir]);
        locked = true;
      },
      repair() {
        if (locked) execFileSync('chattr', ['-i', dir]);
        locked = false;
      },
      dispose() {
        this.repair();
      },
    };
  }
  return {
    dir,
    how: 'chmod',
    break() {
      chmodSync(dir, 0o500);
    },
    repair() {
      chmodSync(dir, 0o700);
    },
    dispose() {
      this.repair();
    },
  };
}
