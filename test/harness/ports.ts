// Free TCP ports on 127.0.0.1.
//
// The kernel picks a free port (listen on 0), the socket is closed and the
// number handed out. Another process could take it before our server binds
// it, so server starters retry on "address in use"; within this process a
// port is never handed out twice.
import { createServer } from 'node:net';

const given = new Set<number>();

function probe(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** A port on 127.0.0.1 that was free a moment ago and not given out before. */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = await probe();
    if (port > 0 && !given.has(port)) {
      given.add(port);
      return port;
    }
  }
  throw new Error('freePort: no free port on 127.0.0.1 after 50 tries');
}

/** True when a server's start failure says the port was taken. */
export function isAddressInUse(text: string): boolean {
  return /address already in use|could not bind|EADDRINUSE|Do you already have another/i.test(text);
}
