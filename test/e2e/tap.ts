import net from 'node:net';

/**
 * A recording TCP relay for tests: listens on a loopback port, relays each
 * connection to `target`, and records every byte in both directions, so a
 * test can compare what one side sent with what the other side received.
 */
export class Tap {
  readonly #server: net.Server;
  readonly toTarget: Buffer[] = [];
  readonly fromTarget: Buffer[] = [];
  readonly #sockets = new Set<net.Socket>();
  port = 0;

  constructor(targetHost: string, targetPort: number) {
    this.#server = net.createServer({ allowHalfOpen: true }, (client) => {
      const upstream = net.connect({ host: targetHost, port: targetPort, allowHalfOpen: true });
      this.#sockets.add(client).add(upstream);
      client.on('data', (b: Buffer) => {
        this.toTarget.push(Buffer.from(b));
        upstream.write(b);
      });
      upstream.on('data', (b: Buffer) => {
        this.fromTarget.push(Buffer.from(b));
        client.write(b);
      });
      client.on('end', () => upstream.end());
      upstream.on('end', () => client.end());
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
    });
  }

  async start(): Promise<number> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.port = (this.#server.address() as net.AddressInfo).port;
    return this.port;
  }

  sent(): Buffer {
    return Buffer.concat(this.toTarget);
  }

  received(): Buffer {
    return Buffer.concat(this.fromTarget);
  }

  /** Cuts every relayed connection at once (both sides see a reset). */
  cutAll(): void {
    for (const s of this.#sockets) s.resetAndDestroy();
    this.#sockets.clear();
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}
