// Interchangeable replicas (docs/contract.md §1): two BUILT proxy processes with one config behind a round-robin
// TCP balancer (test/support/tcp-balancer.ts). A login started on one finishes on the other, the session
// cookie works on both, each re-authorizes (and revokes) the WebSockets it holds on its own, and SSH works
// through either.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { startStack, type Stack } from '../support/proxy-stack';
import { browse, send, CookieJar } from '../support/http-harness';
import { startReplicaSet, type ReplicaSet } from '../support/replicas';
import { startWorkspaceSshd, clientKit, type TestSshd, type ClientKit } from '../support/sshd';
import { testHostKey } from '../support/ssh-harness';

let stack: Stack;
let sshd: TestSshd;
let kit: ClientKit;
let set: ReplicaSet;

before(async () => {
  stack = await startStack({ startInProcess: false, auth: { reauthorize_interval: 1 } });
  sshd = await startWorkspaceSshd();
  kit = clientKit();
  set = await startReplicaSet(stack, ['r1', 'r2'], {
    ssh: { host_key: testHostKey(), backend_port: sshd.port, backend_username: sshd.user.name },
  });
});
after(async () => {
  await set?.close();
  kit?.cleanup();
  await sshd?.stop();
  await stack?.close();
});

async function eventually(what: string, check: () => Promise<boolean> | boolean, ms = 20_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('login, cookie, WebSockets and SSH work across two replicas of one config', async () => {
  const host = stack.addWorkspace('ws-replicas', '21', stack.alice);
  // Both replicas must know the workspace before the balancer may send its requests anywhere.
  for (const r of set.replicas.values()) {
    await eventually(`replica ${r.name} to route ${host}`, async () =>
      (await send(`http://${host}:${r.ports.http}/`)).status !== 400);
  }

  // Login: every hop is a new connection, so the balancer alternates replicas within one login.
  stack.gitlab.autoLoginAs(stack.alice);
  const jar = new CookieJar();
  const before = set.http.assigned.length;
  const { final, hops } = await browse(stack.url(host, '/'), jar);
  assert.equal(final.status, 200, hops.map((h) => `${h.status} ${h.url}`).join('\n'));
  const proxyHops = hops.filter((h) => new URL(h.url).port === String(stack.httpPort));
  const servedBy = set.http.assigned.slice(before);
  assert.equal(servedBy.length, proxyHops.length);
  assert.deepEqual(new Set(servedBy), new Set(['r1', 'r2']), `login hops served by ${servedBy.join(', ')}`);
  // The login starts where the proxy sends the browser to GitLab (state, PKCE verifier, nonce are made
  // there) and finishes at the callback.
  const start = proxyHops.findIndex((h) => (h.headers.location ?? '').startsWith(stack.gitlab.url));
  const callback = proxyHops.findIndex((h) => new URL(h.url).pathname === '/auth/callback');
  assert.ok(start >= 0 && callback > start, hops.map((h) => `${h.status} ${h.url}`).join('\n'));
  assert.notEqual(servedBy[callback], servedBy[start], 'the callback was answered by the replica that started the login');

  // The session cookie works on both.
  const cookieRound = set.http.assigned.length;
  for (let i = 0; i < 4; i++) assert.equal((await send(stack.url(host, '/echo-request'), { jar })).status, 200);
  assert.deepEqual(new Set(set.http.assigned.slice(cookieRound)), new Set(['r1', 'r2']));

  // SSH through either replica with a personal access token.
  const pat = stack.gitlab.createPersonalAccessToken(stack.alice);
  const sshBefore = set.ssh!.assigned.length;
  for (let i = 0; i < 2; i++) {
    const r = await kit.run('ssh', [...kit.commonOptions(), '-p', String(set.ssh!.port), 'ws-replicas@127.0.0.1', 'echo hello from $USER'], { tokens: [pat] });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `hello from ${sshd.user.name}\n`);
  }
  assert.deepEqual(new Set(set.ssh!.assigned.slice(sshBefore)), new Set(['r1', 'r2']));

  // One WebSocket on each replica; each replica re-authorizes its own and closes it once access is gone.
  const cookie = jar.header(host)!;
  const sockets: { ws: WebSocket; replica: string; closed: Promise<[number, string]> }[] = [];
  for (let i = 0; i < 2; i++) {
    const ws = new WebSocket(`ws://127.0.0.1:${stack.httpPort}/echo`, ['echo.v1'], { headers: { host: `${host}:${stack.httpPort}`, cookie } });
    const closed = new Promise<[number, string]>((r) => ws.once('close', (c, why) => r([c, why.toString()])));
    await new Promise((r, j) => (ws.once('open', r), ws.once('error', j)));
    const localPort = (ws as unknown as { _socket: { localPort: number } })._socket.localPort;
    sockets.push({ ws, replica: set.http.backendOf(localPort)!, closed });
  }
  assert.deepEqual(new Set(sockets.map((s) => s.replica)), new Set(['r1', 'r2']));
  // Still open after more than one re-authorization interval (1 s): each replica confirmed it with GitLab.
  const graphqlBefore = stack.gitlab.count('graphql');
  await new Promise((r) => setTimeout(r, 2500));
  // A loaded machine may run the re-checks late; they must still come, and the sockets stay open meanwhile.
  await eventually('both replicas re-authorized', () => stack.gitlab.count('graphql') >= graphqlBefore + 2);
  assert.ok(sockets.every((s) => s.ws.readyState === WebSocket.OPEN));
  stack.gitlab.setWorkspaceOwner('21', stack.bob);
  for (const s of sockets) {
    assert.deepEqual(await s.closed, [1008, 'access to this workspace was revoked'], `WebSocket on ${s.replica}`);
  }
});
