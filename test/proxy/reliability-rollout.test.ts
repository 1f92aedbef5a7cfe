// Rolling restart with zero failed requests (docs/contract.md §1): steady keep-alive HTTP load and open WebSockets
// through a round-robin balancer in front of two BUILT proxy processes; a third replica starts, then one of
// the first two is taken out of rotation and gets SIGTERM (what Kubernetes does: the endpoint goes, the pod
// is signalled). No request fails. A client may retry an idempotent request once when a reused connection
// closes before any response byte, as browsers do (RFC 9110 §9.2.2). WebSockets on the stopped replica are
// closed with 1001; the others stay open.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { WebSocket } from 'ws';
import { startStack, type Stack } from '../support/proxy-stack';
import { browse, send, CookieJar } from '../support/http-harness';
import { startReplicaSet, type ReplicaSet } from '../support/replicas';

let stack: Stack;
let set: ReplicaSet;

before(async () => {
  stack = await startStack({ startInProcess: false });
  set = await startReplicaSet(stack, ['r1', 'r2']);
});
after(async () => {
  await set?.close();
  await stack?.close();
});

interface LoadFigures {
  ok: number;
  failed: string[];
  retried: number;
}

/** One GET on a keep-alive agent; retried once only when a reused connection closed before any response byte. */
function get(agent: Agent, host: string, cookie: string, figures: LoadFigures, retry = true): Promise<void> {
  return new Promise((resolve) => {
    let responded = false;
    const req = request(
      { host: '127.0.0.1', port: stack.httpPort, path: '/bytes?size=1024', agent, headers: { host: `${host}:${stack.httpPort}`, cookie } },
      (res) => {
        responded = true;
        let n = 0;
        res.on('data', (d: Buffer) => (n += d.length));
        res.on('end', () => {
          if (res.statusCode === 200 && n === 1024) figures.ok++;
          else figures.failed.push(`status ${res.statusCode}, ${n} bytes`);
          resolve();
        });
        res.on('error', (err) => {
          figures.failed.push(`response error ${err.message}`);
          resolve();
        });
      },
    );
    req.on('error', (err) => {
      if (!responded && retry && req.reusedSocket) {
        figures.retried++;
        void get(agent, host, cookie, figures, false).then(resolve);
        return;
      }
      if (!responded) figures.failed.push(`request error ${err.message} (reused: ${req.reusedSocket})`);
      resolve();
    });
    req.end();
  });
}

test('a rolling restart under keep-alive load fails no request and closes the stopped replica\'s WebSockets with 1001', async () => {
  const host = stack.addWorkspace('ws-rollout', '31', stack.alice);
  for (const r of set.replicas.values()) {
    const until = Date.now() + 20_000;
    while ((await send(`http://${host}:${r.ports.http}/`)).status === 400) {
      if (Date.now() > until) throw new Error(`replica ${r.name} never routed ${host}`);
      await new Promise((res) => setTimeout(res, 50));
    }
  }
  stack.gitlab.autoLoginAs(stack.alice);
  const jar = new CookieJar();
  assert.equal((await browse(stack.url(host, '/'), jar)).final.status, 200);
  const cookie = jar.header(host)!;

  const sockets: { ws: WebSocket; replica: string; closed: Promise<[number, string]> }[] = [];
  for (let i = 0; i < 4; i++) {
    const ws = new WebSocket(`ws://127.0.0.1:${stack.httpPort}/echo`, ['echo.v1'], { headers: { host: `${host}:${stack.httpPort}`, cookie } });
    ws.on('error', () => {});
    const closed = new Promise<[number, string]>((r) => ws.once('close', (c, why) => r([c, why.toString()])));
    await new Promise((r, j) => (ws.once('open', r), ws.once('error', j)));
    const localPort = (ws as unknown as { _socket: { localPort: number } })._socket.localPort;
    sockets.push({ ws, replica: set.http.backendOf(localPort)!, closed });
  }
  assert.deepEqual(new Set(sockets.map((s) => s.replica)), new Set(['r1', 'r2']));

  // Steady load: 6 clients, each on its own keep-alive connection, back to back.
  const figures: LoadFigures = { ok: 0, failed: [], retried: 0 };
  let running = true;
  const agents = Array.from({ length: 6 }, () => new Agent({ keepAlive: true, maxSockets: 1 }));
  const workers = agents.map(async (agent) => {
    while (running) await get(agent, host, cookie, figures);
  });
  try {
    await new Promise((r) => setTimeout(r, 1000));
    await set.start('r3');
    const okBeforeStop = figures.ok;
    const exit = await set.stop('r1');
    assert.equal(exit.code, 0);
    // Load keeps flowing on the remaining replicas after the stop.
    const afterStop = figures.ok;
    await new Promise((r) => setTimeout(r, 1000));
    running = false;
    await Promise.all(workers);
    console.log(`rollout: ${figures.ok} requests ok (${okBeforeStop} before the stop, ${figures.ok - afterStop} after it), ` +
      `${figures.retried} retried once on a reused connection, ${figures.failed.length} failed`);
    assert.deepEqual(figures.failed, []);
    assert.ok(figures.ok > afterStop, 'requests were served after the stop');
  } finally {
    running = false;
    for (const a of agents) a.destroy();
  }

  for (const s of sockets.filter((x) => x.replica === 'r1')) assert.deepEqual(await s.closed, [1001, 'proxy going away']);
  for (const s of sockets.filter((x) => x.replica !== 'r1')) {
    assert.equal(s.ws.readyState, WebSocket.OPEN, `the WebSocket on ${s.replica} stays open`);
    const echoed = new Promise<string>((r) => s.ws.once('message', (d: Buffer) => r(d.toString())));
    s.ws.send('still here');
    assert.equal(await echoed, 'still here');
    s.ws.close();
  }
});
