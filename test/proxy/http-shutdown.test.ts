// The BUILT proxy (`node proxy-image/dist/main.js -config f -kubeconfig k`) drains on SIGTERM: an in-flight
// streaming response finishes, open WebSockets get "going away", and the process exits 0 (docs/contract.md §1).
// Connections with nothing in flight (never used, or idle keep-alive) do not hold the exit up: the drain
// timer of the built proxy is 25 s, and the bounds below are far under it (not speed targets).
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { request } from 'node:http';
import { WebSocket } from 'ws';
import { startStack, type Stack } from '../support/proxy-stack';
import { browse, send, CookieJar } from '../support/http-harness';
import { spawnProxy, type SpawnedProxy } from '../support/spawn-proxy';

/** The built proxy's drain timer (app.ts): an exit this late means something held it up. */
const DRAIN_TIMER_MS = 25_000;
/** Generous bound for "exited without waiting for the drain timer" (the contract says 2 s). */
const EXIT_BOUND_MS = 10_000;

let stack: Stack;
const spawned: SpawnedProxy[] = [];

before(async () => {
  stack = await startStack({ startInProcess: false });
});
// A test that failed half-way must not leave its proxy holding the ports of the next one.
afterEach(async () => {
  for (const p of spawned.splice(0)) await p.cleanup();
});
after(async () => {
  await stack?.close();
});

/** Starts the built proxy on the stack's config and waits until it is ready. */
async function startBuiltProxy(): Promise<SpawnedProxy> {
  const p = spawnProxy({ config: readFileSync(stack.configPath, 'utf8'), kubeconfigPath: stack.kubeconfigPath });
  spawned.push(p);
  // The stack's config logs nothing ('silent'), so readiness is polled rather than read from the log.
  await eventually(p, 'the spawned proxy to be ready', () =>
    fetch(`http://127.0.0.1:${stack.internalPort}/readyz`).then((r) => r.status === 200, () => false));
  return p;
}

/** Polls `check` every 50 ms; fails after `ms` instead of carrying on (or hanging) when it never holds. */
async function eventually(p: SpawnedProxy, what: string, check: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (p.child.exitCode !== null) throw new Error(`the proxy exited with ${p.child.exitCode} while waiting for ${what}`);
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function loggedIn(p: SpawnedProxy, name: string, id: string): Promise<{ host: string; cookie: string }> {
  const host = stack.addWorkspace(name, id, stack.alice);
  await eventually(p, `discovery of ${host}`, async () => (await send(stack.url(host, '/'))).status !== 400);
  stack.gitlab.autoLoginAs(stack.alice);
  const jar = new CookieJar();
  const { final } = await browse(stack.url(host, '/'), jar);
  assert.equal(final.status, 200);
  return { host, cookie: jar.header(host)! };
}

/** A raw connection to the proxy's HTTP port; `closed` resolves when the proxy closes it. */
async function openSocket(): Promise<{ socket: Socket; closed: Promise<void> }> {
  const socket = connect(stack.httpPort, '127.0.0.1');
  socket.on('error', () => {});
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  await new Promise<void>((r, j) => (socket.once('connect', r), socket.once('error', j)));
  return { socket, closed };
}

/** A connection that has had one complete keep-alive exchange and now sits idle. */
async function keepAliveSocket(host: string, cookie: string): Promise<{ socket: Socket; closed: Promise<void> }> {
  const s = await openSocket();
  s.socket.write(`GET /bytes?size=16 HTTP/1.1\r\nHost: ${host}:${stack.httpPort}\r\nCookie: ${cookie}\r\n\r\n`);
  let text = '';
  await new Promise<void>((resolve, reject) => {
    const onData = (d: Buffer) => {
      text += d.toString('latin1');
      const m = /content-length: (\d+)\r\n[\s\S]*?\r\n\r\n([\s\S]*)$/i.exec(text);
      if (m && Buffer.byteLength(m[2]!, 'latin1') >= Number(m[1])) {
        s.socket.off('data', onData);
        resolve();
      }
    };
    s.socket.on('data', onData);
    s.socket.once('close', () => reject(new Error(`keep-alive connection closed early: ${text.slice(0, 200)}`)));
  });
  assert.match(text, /^HTTP\/1\.1 200 /);
  assert.match(text, /connection: keep-alive/i);
  return s;
}

test('SIGTERM lets an in-flight stream finish, closes WebSockets with 1001, and exits 0', async () => {
  const p = await startBuiltProxy();
  const { host, cookie } = await loggedIn(p, 'drain-ws', '7');

  const ws = new WebSocket(`ws://127.0.0.1:${stack.httpPort}/echo`, { headers: { host: `${host}:${stack.httpPort}`, cookie } });
  await new Promise((r, j) => (ws.once('open', r), ws.once('error', j)));
  const wsClosed = new Promise<[number, string]>((r) => ws.once('close', (c, reason) => r([c, reason.toString()])));

  const body = new Promise<string>((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: stack.httpPort, path: '/events?count=4&interval=400', headers: { host: `${host}:${stack.httpPort}`, cookie } },
      (res) => {
        let text = '';
        res.once('data', () => p.child.kill('SIGTERM')); // the stream is in flight: now stop the proxy
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve(text));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });

  assert.equal(await body, 'data: event 0\n\ndata: event 1\n\ndata: event 2\n\ndata: event 3\n\n');
  assert.deepEqual(await wsClosed, [1001, 'proxy going away']);
  assert.equal((await p.exited).code, 0);
});

test('a never-used and an idle keep-alive connection do not hold the exit after the last stream ends', async () => {
  const p = await startBuiltProxy();
  const { host, cookie } = await loggedIn(p, 'drain-idle', '8');
  // What a browser leaves open: a speculative connection that never sends a request, and a keep-alive one.
  const unused = await openSocket();
  const idle = await keepAliveSocket(host, cookie);

  let streamEnded = 0;
  const body = new Promise<string>((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: stack.httpPort, path: '/events?count=5&interval=500', headers: { host: `${host}:${stack.httpPort}`, cookie } },
      (res) => {
        let text = '';
        res.once('data', () => p.child.kill('SIGTERM'));
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => {
          streamEnded = Date.now();
          resolve(text);
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });

  // The idle connections are closed while the stream is still running; the stream itself completes.
  let idleClosedFirst = false;
  void Promise.all([unused.closed, idle.closed]).then(() => (idleClosedFirst = streamEnded === 0));
  assert.equal(await body, [0, 1, 2, 3, 4].map((n) => `data: event ${n}\n\n`).join(''));
  const exit = await p.exited;
  const afterStream = Date.now() - streamEnded;
  await Promise.all([unused.closed, idle.closed]);
  assert.equal(exit.code, 0);
  assert.ok(idleClosedFirst, 'idle connections were closed only after the in-flight stream ended');
  assert.ok(afterStream < EXIT_BOUND_MS, `exited ${afterStream} ms after the last response (drain timer: ${DRAIN_TIMER_MS} ms)`);
});

test('an idle proxy with a never-used and a keep-alive connection exits at once on SIGTERM', async () => {
  const p = await startBuiltProxy();
  const { host, cookie } = await loggedIn(p, 'drain-quiet', '9');
  const unused = await openSocket();
  const idle = await keepAliveSocket(host, cookie);
  const signalled = Date.now();
  const exit = await p.stop('SIGTERM', DRAIN_TIMER_MS + 10_000);
  const took = Date.now() - signalled;
  await Promise.all([unused.closed, idle.closed]);
  assert.equal(exit.code, 0);
  assert.ok(took < EXIT_BOUND_MS, `exited ${took} ms after SIGTERM (drain timer: ${DRAIN_TIMER_MS} ms)`);
});
