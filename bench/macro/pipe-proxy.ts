/**
 * The baseline Node proxy: a bare TCP pipe, no parsing. Separate process,
 * so its CPU can be read from /proc.
 *   node bench/macro/pipe-proxy.ts LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT
 */
import net from 'node:net';

const [listenPort, upHost, upPort] = process.argv.slice(2);
const server = net.createServer({ noDelay: true, allowHalfOpen: false }, (client) => {
  const upstream = net.connect({ host: upHost, port: Number(upPort), noDelay: true });
  const kill = (): void => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', kill);
  upstream.on('error', kill);
  client.on('close', kill);
  upstream.on('close', kill);
  client.pipe(upstream);
  upstream.pipe(client);
});
server.listen(Number(listenPort), '127.0.0.1', () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => process.exit(0));
