/** A minimal PostgreSQL client on a raw socket (trust auth), for memory benchmarks that need many cheap sessions. */
import { connect, type Socket } from 'node:net';

function startup(user: string, db: string): Buffer {
  const params = Buffer.from(`user\0${user}\0database\0${db}\0\0`);
  const b = Buffer.alloc(8 + params.length);
  b.writeInt32BE(b.length, 0);
  b.writeInt32BE(196608, 4);
  params.copy(b, 8);
  return b;
}

export function query(sql: string): Buffer {
  const s = Buffer.from(`${sql}\0`);
  const b = Buffer.alloc(5 + s.length);
  b[0] = 0x51; // 'Q'
  b.writeInt32BE(4 + s.length, 1);
  s.copy(b, 5);
  return b;
}

/** Connects and waits for the first ReadyForQuery. */
export function openSession(port: number, user: string, db: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port });
    let seen = Buffer.alloc(0);
    const onData = (b: Buffer): void => {
      seen = Buffer.concat([seen, b]);
      // scan messages for 'Z' (ReadyForQuery) or 'E' (error)
      let at = 0;
      while (seen.length - at >= 5) {
        const type = seen[at];
        const len = seen.readInt32BE(at + 1);
        if (seen.length - at < 1 + len) break;
        if (type === 0x45) {
          s.destroy();
          reject(new Error(`server error: ${seen.subarray(at + 5, at + 1 + len).toString('latin1').replace(/\0/g, ' ')}`));
          return;
        }
        if (type === 0x5a) {
          s.off('data', onData);
          resolve(s);
          return;
        }
        at += 1 + len;
      }
    };
    s.on('data', onData);
    s.once('error', reject);
    s.once('connect', () => s.write(startup(user, db)));
  });
}
