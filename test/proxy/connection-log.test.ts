// The connection log (proxy-image/src/observability/connection-log.ts): one JSON line per WebSocket and SSH
// connection when it ends, with user, workspace, kind, auth method, duration, bytes each way and close
// reason, and never a secret. Driven through the real HTTP proxy (with `ws`) and the real SSH proxy (OpenSSH).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { WebSocket } from 'ws';
import { createLogger } from '../../proxy-image/src/observability/logger';
import { createConnectionLog } from '../../proxy-image/src/observability/connection-log';
import { startHarness, loginAs, type Harness } from '../support/http-harness';
import { startSshHarness } from '../support/ssh-harness';

type Line = Record<string, unknown>;

function captureLogger(): { logger: ReturnType<typeof createLogger>; lines: () => Line[] } {
  const text: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text.push(...chunk.toString().split('\n').filter(Boolean));
      cb();
    },
  });
  return { logger: createLogger('info', sink), lines: () => text.map((l) => JSON.parse(l) as Line) };
}

const ended = (lines: Line[]): Line[] => lines.filter((l) => l.event === 'connection_end');

async function waitFor<T>(what: string, get: () => T | undefined, ms = 15_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = get();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

test('a record is written once, with the first reason given, duration and byte counts', () => {
  const { logger, lines } = captureLogger();
  let clock = 1_000_000;
  const log = createConnectionLog(logger, () => clock);
  const r = log.open({ kind: 'ssh', userId: '7', workspace: { name: 'ws', namespace: 'ns', id: '42' }, auth: 'personal_access_token', client: '127.0.0.1:5000' });
  r.toWorkspace(10);
  r.fromWorkspace(25);
  r.toWorkspace(5);
  clock += 1234;
  r.reason('not_owner');
  r.reason('client_closed');
  r.end();
  r.end();
  const got = ended(lines());
  assert.equal(got.length, 1);
  assert.deepEqual(
    { ...got[0], time: undefined, pid: undefined, hostname: undefined },
    {
      level: 30, service: 'gitlab-workspaces-proxy', msg: 'connection ended', event: 'connection_end',
      kind: 'ssh', userId: '7', workspace: 'ns/ws', workspaceId: '42', auth: 'personal_access_token', client: '127.0.0.1:5000',
      startedAt: new Date(1_000_000).toISOString(), durationMs: 1234, bytesToWorkspace: 15, bytesFromWorkspace: 25,
      closeReason: 'not_owner', time: undefined, pid: undefined, hostname: undefined,
    },
  );
});

async function openWebSocket(h: Harness, cookie: string): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${h.port}/echo`, ['echo.v1'], { headers: { host: `${h.hostA}:${h.port}`, cookie } });
  await new Promise((r, j) => (ws.once('open', r), ws.once('error', j)));
  return ws;
}

test('WebSockets: one line when each ends, closed by the client or by the proxy, without a secret', async () => {
  const { logger, lines } = captureLogger();
  const h = await startHarness({ logger });
  try {
    const { jar, final } = await loginAs(h, h.alice, h.url(h.hostA, '/'));
    assert.equal(final.status, 200);
    const cookie = jar.header(h.hostA)!;

    const ws = await openWebSocket(h, cookie);
    const echoed = new Promise<Buffer>((r) => ws.once('message', (d: Buffer) => r(d)));
    ws.send('hello world'); // 11 bytes each way
    assert.equal((await echoed).toString(), 'hello world');
    ws.close(1000);
    const first = await waitFor('the line of the client-closed WebSocket', () => ended(lines())[0]);
    assert.equal(first.kind, 'websocket');
    assert.equal(first.userId, h.alice.gid);
    assert.equal(first.workspace, `default/alice-ws`);
    assert.equal(first.workspaceId, '42');
    assert.equal(first.host, h.hostA);
    assert.equal(first.auth, 'oauth_session');
    assert.equal(first.bytesToWorkspace, 11);
    assert.equal(first.bytesFromWorkspace, 11);
    assert.equal(first.closeReason, 'client_closed');
    assert.equal(typeof first.durationMs, 'number');

    const revoked = await openWebSocket(h, cookie);
    const closed = new Promise<number>((r) => revoked.once('close', (code) => r(code)));
    h.connections.closeAll('not_owner');
    assert.equal(await closed, 1008);
    const second = await waitFor('the line of the revoked WebSocket', () => ended(lines())[1]);
    assert.equal(second.closeReason, 'not_owner');
    assert.equal(second.bytesToWorkspace, 0);

    // Nothing of the session cookie (or any token) is in any line.
    const sessionValue = cookie.split(';').map((c) => c.trim().split('=')[1]!).join('|');
    for (const line of ended(lines())) {
      const text = JSON.stringify(line);
      for (const v of sessionValue.split('|')) assert.ok(!text.includes(v), 'a cookie value reached the connection log');
      assert.doesNotMatch(text, /token|cookie|secret/i);
    }
  } finally {
    await h.close();
  }
});

test('SSH: one line when a session ends, with the bytes each way, and never the token', async () => {
  const h = await startSshHarness();
  try {
    const r = await h.ssh({ tokens: [h.aliceToken], command: ['cat; echo -n done'], input: 'twelve bytes' });
    assert.equal(r.code, 0);
    assert.equal(r.stdout, 'twelve bytesdone');
    const line = await waitFor('the SSH connection line', () => h.logs().find((l) => l.event === 'connection_end'));
    assert.equal(line.kind, 'ssh');
    assert.equal(line.userId, h.alice.gid);
    assert.equal(line.workspace, 'ns-alice/ws-alice');
    assert.equal(line.workspaceId, '42');
    assert.equal(line.auth, 'personal_access_token');
    assert.match(String(line.client), /^127\.0\.0\.1:\d+$/);
    assert.equal(line.bytesToWorkspace, 12);
    assert.equal(line.bytesFromWorkspace, 16);
    assert.equal(line.closeReason, 'client_closed');
    assert.ok(!JSON.stringify(line).includes(h.aliceToken));

    const started = h.marker('revoked');
    const open = h.ssh({ tokens: [h.aliceToken], command: [`${started.touch}; sleep 30`] });
    await started.wait();
    h.connections.closeAll('not_owner');
    await open;
    const revoked = await waitFor('the revoked SSH line', () => h.logs().filter((l) => l.event === 'connection_end')[1]);
    assert.equal(revoked.closeReason, 'not_owner');
  } finally {
    await h.close();
  }
});
