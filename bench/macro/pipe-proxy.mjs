/**
 * The baseline Node proxy: a bare TCP pipe, no parsing. Separate process,
 * so its CPU can be read from /proc.
 *   node bench/macro/pipe-proxy.mjs LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT
 * Plain JavaScript, started without tsx, so that its memory and CPU are a
 * bare Node process's (tsx's loader adds a second V8 isolate, ~30 MB).
 */
import net from 'node:net';

const [listenPort, upHost, upPort] = process.argv.slice(2);
const server = net.createServer({ noDelay: true, allowHalfOpen: false }, (client) => {
  const upstream = net.connect({ host: upHost, port: Number(upPort), noDelay: true });
  const kill = () => {
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
