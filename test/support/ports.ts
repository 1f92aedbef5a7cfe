// Loopback ports that tests must know before the server binds them (config schemas without port 0,
// a stand-in that stops and restarts on the same port).
//
// Why not "listen on 0, read the port, close": that port comes from the kernel's ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range, 32768-60999 by default), so between the probe and the
// real bind any other listen(0) in the run can be handed the same port and the test fails with
// EADDRINUSE, or worse, talks to the wrong server. Ports below the ephemeral range are never handed
// out by the kernel, so a port picked there and checked free stays free unless another test takes it
// on purpose. Each process walks its own stretch of the range (by pid) and never repeats a port.
import { createServer } from 'node:net';
import { readFileSync } from 'node:fs';

const LOW = 15_000;

function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > LOW + 1000 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

const HIGH = ephemeralLow(); // exclusive
const SPAN = HIGH - LOW;
let next = (process.pid * 97) % SPAN;
const handedOut = new Set<number>();

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host: '127.0.0.1', exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** A loopback port outside the kernel's ephemeral range that was free a moment ago and is not handed out twice. */
export async function pickPort(): Promise<number> {
  for (let tries = 0; tries < SPAN; tries++) {
    const port = LOW + next;
    next = (next + 1) % SPAN;
    if (handedOut.has(port)) continue;
    if (await canBind(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free loopback port in ${LOW}-${HIGH - 1}`);
}
