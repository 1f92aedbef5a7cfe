// Binds a listener and resolves with its address. A bind error (port in use) rejects the promise, so
// start-up fails with a message instead of an unhandled 'error' event.
import type { AddressInfo } from 'node:net';

/** What node:net, node:http and ssh2 servers have in common. */
export interface Listenable {
  once(event: 'error', listener: (err: Error) => void): unknown;
  removeListener(event: 'error', listener: (err: Error) => void): unknown;
  listen(port: number, host: string | undefined, callback: () => void): unknown;
  address(): unknown;
}

export function listenOn(server: Listenable, port: number, host?: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.removeListener('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}
