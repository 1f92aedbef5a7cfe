// Which client connections of an HTTP server have a request in flight, so a shutdown can close every other
// one at once and each busy one as soon as its last response is out (docs/contract.md §1: the process exits within
// 2 s of its last in-flight response).
// Node's own `closeIdleConnections()` is not enough: a connection that never sent a request (browsers open
// speculative ones) is not "idle" to Node (its header timer is running), so it survived until the drain
// timer and every rollout waited the full drain.
import type { Server } from 'node:http';
import type { Socket } from 'node:net';

export interface ConnectionDrain {
  /** From now on: close connections with nothing in flight, now and whenever one becomes so. */
  start(): void;
  /** Connections the server still owns (upgraded ones are handed over and not counted). */
  readonly size: number;
}

export function trackConnections(server: Server): ConnectionDrain {
  /** Requests whose response has not ended yet, per connection. */
  const inFlight = new Map<Socket, number>();
  let draining = false;

  server.on('connection', (socket: Socket) => {
    if (draining) {
      socket.destroy();
      return;
    }
    inFlight.set(socket, 0);
    socket.once('close', () => inFlight.delete(socket));
  });
  server.on('request', (req, res) => {
    const socket = req.socket;
    const n = inFlight.get(socket);
    if (n === undefined) return;
    inFlight.set(socket, n + 1);
    res.once('close', () => {
      const left = (inFlight.get(socket) ?? 1) - 1;
      if (!inFlight.has(socket)) return;
      inFlight.set(socket, left);
      // The response's last bytes are written to the kernel when 'close' follows 'finish': a destroy now
      // still sends them, then FIN.
      if (draining && left === 0) socket.destroy();
    });
  });
  // An upgraded connection belongs to the WebSocket relay from here on; the relay closes it with 1001.
  server.on('upgrade', (req) => inFlight.delete(req.socket));

  return {
    start() {
      if (draining) return;
      draining = true;
      for (const [socket, n] of inFlight) if (n === 0) socket.destroy();
    },
    get size() {
      return inFlight.size;
    },
  };
}
