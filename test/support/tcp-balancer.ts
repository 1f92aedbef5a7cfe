// A small round-robin TCP load balancer on 127.0.0.1, standing in for a Service / cloud load balancer in
// front of several proxy replicas. Each client connection goes to the next backend in rotation; a backend
// that refuses the connection is skipped (as load balancers retry a failed connect), and bytes are piped
// both ways untouched. `remove` takes a backend out of rotation (the endpoint of a terminating pod).
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

export interface Backend {
  name: string;
  port: number;
}

export interface TcpBalancer {
  port: number;
  /** The backend of each accepted connection, in order. */
  assigned: string[];
  /** Backend name by the client's local port (the balancer sees it as the remote port). */
  backendOf(clientPort: number): string | undefined;
  add(b: Backend): void;
  remove(name: string): void;
  close(): Promise<void>;
}

export async function startTcpBalancer(backends: Backend[], opts: { port?: number } = {}): Promise<TcpBalancer> {
  const pool = [...backends];
  const assigned: string[] = [];
  const byClient = new Map<number, string>();
  const sockets = new Set<Socket>();
  let next = 0;

  const server = createServer((client) => {
    sockets.add(client);
    client.once('close', () => sockets.delete(client));
    client.on('error', () => {});
    client.pause();
    const clientPort = client.remotePort ?? 0;
    const attempt = (triesLeft: number): void => {
      if (pool.length === 0 || triesLeft === 0) {
        client.destroy();
        return;
      }
      const b = pool[next++ % pool.length]!;
      const upstream = connect(b.port, '127.0.0.1');
      sockets.add(upstream);
      upstream.once('close', () => sockets.delete(upstream));
      let connected = false;
      upstream.once('connect', () => {
        connected = true;
        assigned.push(b.name);
        byClient.set(clientPort, b.name);
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
      upstream.on('error', () => {
        if (!connected) return attempt(triesLeft - 1);
        client.destroy();
      });
      // Half-closes pass through (pipe ends the other side); a reset or close of one side closes the other.
      upstream.once('close', () => connected && client.destroy());
      client.once('close', () => upstream.destroy());
    };
    attempt(pool.length + 1);
  });
  await new Promise<void>((r) => server.listen(opts.port ?? 0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as AddressInfo).port,
    assigned,
    backendOf: (p) => byClient.get(p),
    add(b) {
      pool.push(b);
    },
    remove(name) {
      const i = pool.findIndex((b) => b.name === name);
      if (i >= 0) pool.splice(i, 1);
    },
    close() {
      return new Promise((r) => {
        server.close(() => r());
        for (const s of sockets) s.destroy();
      });
    },
  };
}
