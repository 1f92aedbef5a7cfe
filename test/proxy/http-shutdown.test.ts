// The BUILT proxy (`node proxy-image/dist/main.js -config f -kubeconfig k`) drains on SIGTERM: an in-flight
// streaming response finishes, open WebSockets get "going away", and the process exits 0.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { startStack, type Stack } from '../support/proxy-stack';
import { browse, send, CookieJar } from '../support/http-harness';
import { ensureBuilt } from '../support/spawn-proxy';

const root = join(__dirname, '..', '..');
const mainJs = join(root, 'proxy-image', 'dist', 'main.js');

let stack: Stack;
let child: ChildProcess;
let exited: Promise<number | null>;

before(async () => {
  ensureBuilt(); // never a stale dist/: this test is about the code as it is now
  stack = await startStack({ startInProcess: false });
  child = spawn(process.execPath, [mainJs, '-config', stack.configPath, '-kubeconfig', stack.kubeconfigPath], {
    env: { ...process.env, WORKSPACES_PROXY_LISTEN_HOST: '127.0.0.1' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  exited = new Promise((r) => child.once('exit', (code) => r(code)));
  await eventually('the spawned proxy to be ready', () =>
    fetch(`http://127.0.0.1:${stack.internalPort}/readyz`).then((r) => r.status === 200, () => false));
});

/** Polls `check` every 50 ms; fails after `ms` instead of carrying on (or hanging) when it never holds. */
async function eventually(what: string, check: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (child.exitCode !== null) throw new Error(`the proxy exited with ${child.exitCode} while waiting for ${what}`);
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
after(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await stack?.close();
});

test('SIGTERM lets an in-flight stream finish, closes WebSockets with 1001, and exits 0', async () => {
  const host = stack.addWorkspace('drain-ws', '7', stack.alice);
  await eventually(`discovery of ${host}`, async () => (await send(stack.url(host, '/'))).status !== 400);
  stack.gitlab.autoLoginAs(stack.alice);
  const jar = new CookieJar();
  const { final } = await browse(stack.url(host, '/'), jar);
  assert.equal(final.status, 200);
  const cookie = jar.header(host)!;

  const ws = new WebSocket(`ws://127.0.0.1:${stack.httpPort}/echo`, { headers: { host: `${host}:${stack.httpPort}`, cookie } });
  await new Promise((r, j) => (ws.once('open', r), ws.once('error', j)));
  const wsClosed = new Promise<[number, string]>((r) => ws.once('close', (c, reason) => r([c, reason.toString()])));

  const body = new Promise<string>((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: stack.httpPort, path: '/events?count=4&interval=400', headers: { host: `${host}:${stack.httpPort}`, cookie } },
      (res) => {
        let text = '';
        res.once('data', () => child.kill('SIGTERM')); // the stream is in flight: now stop the proxy
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
  assert.equal(await exited, 0);
});
