// Unit tests of the connection registry with a fake GitLab, a fake directory and a fake clock
// (node:test mock timers): batching, jitter, every close reason, grace, refresh, max duration, stop.
import { test, mock, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { Registry } from 'prom-client';
import { createConnectionRegistry } from '../../proxy-image/src/connections';
import type { CloseReason, ConnectionRegistry, TrackedConnection } from '../../proxy-image/src/connections';
import type { Credential, TokenRefresher } from '../../proxy-image/src/auth/credential';
import { createOwnershipCheck } from '../../proxy-image/src/auth/ownership';
import { GRACE_INTERVALS } from '../../proxy-image/src/auth/policy';
import type { GitLabApi, OwnershipResult } from '../../proxy-image/src/auth/gitlab-api';
import type { Route, Workspace, WorkspaceChange, WorkspaceDirectory } from '../../proxy-image/src/discovery/types';

const I = 1000; // reauthorize_interval in ms (1 s)
const T0 = 1_700_000_000_000;

// ---- fakes

class FakeDirectory implements Pick<WorkspaceDirectory, 'routeForHost' | 'workspaceByName' | 'onChange'> {
  private services = new Map<string, Workspace>(); // namespace/name -> workspace
  private listeners = new Set<(c: WorkspaceChange) => void>();

  put(w: Workspace): void {
    const key = `${w.namespace}/${w.name}`;
    const before = this.services.get(key);
    this.services.set(key, w);
    this.emit(before ? { type: 'updated', before, workspace: w } : { type: 'added', workspace: w });
  }
  remove(namespace: string, name: string): void {
    const w = this.services.get(`${namespace}/${name}`);
    if (!w) return;
    this.services.delete(`${namespace}/${name}`);
    this.emit({ type: 'removed', workspace: w });
  }
  /** Change the index without telling anyone: only the periodic re-check can notice. */
  silentlyRemove(namespace: string, name: string): void {
    this.services.delete(`${namespace}/${name}`);
  }
  routeForHost(host: string): Route | undefined {
    const h = host.toLowerCase().replace(/:\d+$/, '');
    for (const w of this.services.values()) {
      if (w.hosts.includes(h)) return { host: h, workspace: w, target: { host: w.backendHost, port: 3000 } };
    }
    return undefined;
  }
  workspaceByName(name: string): Workspace | 'ambiguous' | undefined {
    const found = [...this.services.values()].filter((w) => w.name === name);
    return found.length > 1 ? 'ambiguous' : found[0];
  }
  onChange(listener: (c: WorkspaceChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  listenerCount(): number {
    return this.listeners.size;
  }
  private emit(c: WorkspaceChange): void {
    for (const l of this.listeners) l(c);
  }
}

function workspace(name: string, over: Partial<Workspace> = {}): Workspace {
  return {
    name, namespace: 'ws-ns', uid: `uid-${name}`, id: '42', backendHost: '10.0.0.1',
    hosts: [`3000-${name}.workspaces.test`], ...over,
  };
}

interface Call { token: string; workspaceId: string; at: number }

class FakeGitLab implements GitLabApi {
  calls: Call[] = [];
  /** token -> user id; a token missing here is invalid. */
  tokens = new Map<string, string>();
  /** workspace id -> owner user id */
  owners = new Map<string, string>();
  mode: 'up' | 'down' | 'hang' = 'up';
  private hanging: (() => void)[] = [];

  async checkOwnership(token: string, workspaceId: string): Promise<OwnershipResult> {
    this.calls.push({ token, workspaceId, at: Date.now() });
    if (this.mode === 'down') return { kind: 'unavailable', error: 'HTTP 503' };
    if (this.mode === 'hang') {
      await new Promise<void>((resolve) => this.hanging.push(resolve));
      return { kind: 'unavailable', error: 'timeout' };
    }
    const userId = this.tokens.get(token);
    if (!userId) return { kind: 'invalid_token' };
    return this.owners.get(workspaceId) === userId ? { kind: 'owner', userId } : { kind: 'not_owner', userId };
  }
  releaseHanging(): void {
    for (const r of this.hanging.splice(0)) r();
  }
}

class FakeRefresher implements TokenRefresher {
  calls: string[] = [];
  behaviour: 'ok' | 'rejected' | 'network' = 'ok';
  constructor(private gitlab: FakeGitLab) {}
  async refresh(refreshToken: string): Promise<{ accessToken: string; refreshToken?: string; expiresAt?: number }> {
    this.calls.push(refreshToken);
    if (this.behaviour === 'rejected') throw Object.assign(new Error('invalid_grant'), { error: 'invalid_grant', status: 400 });
    if (this.behaviour === 'network') throw new TypeError('fetch failed');
    const n = this.calls.length;
    const accessToken = `access-${n}`;
    this.gitlab.tokens.set(accessToken, 'user-1');
    return { accessToken, refreshToken: `refresh-${n}`, expiresAt: Date.now() + 7200_000 };
  }
}

class FakeConn implements TrackedConnection {
  reasons: CloseReason[] = [];
  constructor(
    public kind: TrackedConnection['kind'],
    public workspace: TrackedConnection['workspace'],
    public credential: Credential,
    public host?: string,
    public notAfter?: number,
  ) {}
  close(reason: CloseReason): void {
    this.reasons.push(reason);
  }
  get closedWith(): CloseReason | undefined {
    return this.reasons[0];
  }
}

function wsRef(w: Workspace): TrackedConnection['workspace'] {
  return { name: w.name, namespace: w.namespace, uid: w.uid, id: w.id };
}

// ---- harness

interface Harness {
  directory: FakeDirectory;
  gitlab: FakeGitLab;
  refresher: FakeRefresher;
  connections: ConnectionRegistry;
  metrics: Registry;
  ws: Workspace;
  websocket(cred?: Credential, opts?: { notAfter?: number; w?: Workspace }): FakeConn;
  ssh(cred?: Credential, w?: Workspace): FakeConn;
  advance(ms: number): Promise<void>;
}

const flush = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
};

function setup(t: TestContext, opts: { maxSession?: number; random?: () => number; interval?: number } = {}): Harness {
  mock.timers.enable({ apis: ['setTimeout', 'Date'], now: T0 });
  const directory = new FakeDirectory();
  const gitlab = new FakeGitLab();
  const refresher = new FakeRefresher(gitlab);
  const metrics = new Registry();
  const ws = workspace('alpha');
  directory.put(ws);
  gitlab.tokens.set('pat-1', 'user-1');
  gitlab.owners.set('42', 'user-1');
  const connections = createConnectionRegistry({
    config: { auth: { reauthorize_interval: (opts.interval ?? I) / 1000, max_session_duration: opts.maxSession ?? 0 } },
    directory, ownership: createOwnershipCheck({ gitlab }), refresher, registry: metrics, logger: pino({ level: 'silent' }),
    ...(opts.random ? { random: opts.random } : {}),
  });
  t.after(() => {
    connections.stop();
    mock.timers.reset();
  });
  let clock = T0;
  return {
    directory, gitlab, refresher, connections, metrics, ws,
    websocket(cred = { type: 'token', token: 'pat-1' }, o = {}) {
      const w = o.w ?? ws;
      const c = new FakeConn('websocket', wsRef(w), cred, w.hosts[0], o.notAfter);
      connections.track(c);
      return c;
    },
    ssh(cred = { type: 'token', token: 'pat-1' }, w = ws) {
      const c = new FakeConn('ssh', wsRef(w), cred);
      connections.track(c);
      return c;
    },
    // Small steps: mock timers run a callback with the clock already at the end of the tick.
    async advance(ms) {
      const end = clock + ms;
      while (clock < end) {
        const step = Math.min(10, end - clock);
        mock.timers.tick(step);
        clock += step;
        await flush();
      }
    },
  };
}

// ---- batching and jitter

test('1,000 connections with one credential on one workspace cost one GitLab call per interval', async (t) => {
  const h = setup(t);
  const conns = Array.from({ length: 1000 }, () => h.websocket());
  await h.advance(10 * I);
  // Checks are at most one interval and at least 3/4 of one apart: 10 s gives 10 to 14 checks.
  assert.ok(h.gitlab.calls.length >= 10 && h.gitlab.calls.length <= 14, `calls: ${h.gitlab.calls.length}`);
  assert.ok(conns.every((c) => c.closedWith === undefined));
  assert.equal(h.connections.size('websocket'), 1000);
});

test('different credentials and different workspaces are separate batches', async (t) => {
  const h = setup(t);
  const beta = workspace('beta', { id: '43' });
  h.directory.put(beta);
  h.gitlab.owners.set('43', 'user-1');
  h.gitlab.tokens.set('pat-2', 'user-1');
  for (let i = 0; i < 10; i++) {
    h.websocket();
    h.ssh({ type: 'token', token: 'pat-2' });
    h.websocket(undefined, { w: beta });
  }
  await h.advance(I);
  const keys = new Set(h.gitlab.calls.map((c) => `${c.token}/${c.workspaceId}`));
  assert.deepEqual([...keys].sort(), ['pat-1/42', 'pat-1/43', 'pat-2/42']);
  assert.equal(h.gitlab.calls.length, 3);
});

test('checks are spread: first within [interval/2, interval), then every [3/4, 1) interval', async (t) => {
  const h = setup(t);
  const tokens = Array.from({ length: 40 }, (_, i) => `pat-j${i}`);
  for (const tok of tokens) {
    h.gitlab.tokens.set(tok, 'user-1');
    h.websocket({ type: 'token', token: tok });
  }
  await h.advance(6 * I);
  const firsts: number[] = [];
  for (const tok of tokens) {
    const times = h.gitlab.calls.filter((c) => c.token === tok).map((c) => c.at - T0);
    assert.ok(times.length >= 5, `${tok}: ${times.length} checks`);
    // 10 ms of slack: the fake clock advances in 10 ms steps.
    assert.ok(times[0]! >= 0.5 * I && times[0]! < I + 10, `first check at ${times[0]}`);
    for (let i = 1; i < times.length; i++) {
      const gap = times[i]! - times[i - 1]!;
      assert.ok(gap >= 0.75 * I - 10 && gap < I + 10, `gap ${gap}`);
    }
    firsts.push(times[0]!);
  }
  assert.ok(new Set(firsts).size >= 10, 'first checks of simultaneous batches are spread out');
});

test('jitter source at its extremes stays within the bounds', async (t) => {
  for (const r of [0, 0.999999]) {
    await t.test(`random() = ${r}`, async (st) => {
      const h = setup(st, { random: () => r });
      h.websocket();
      await h.advance(3 * I);
      const times = h.gitlab.calls.map((c) => c.at - T0);
      const first = r === 0 ? 0.5 * I : I;
      const gap = r === 0 ? 0.75 * I : I;
      assert.ok(Math.abs(times[0]! - first) <= 10, `first at ${times[0]}`);
      assert.ok(Math.abs(times[1]! - times[0]! - gap) <= 10, `gap ${times[1]! - times[0]!}`);
    });
  }
});

// ---- close reasons

test('stays open while nothing changes', async (t) => {
  const h = setup(t);
  const a = h.websocket();
  const b = h.ssh();
  await h.advance(20 * I);
  assert.equal(a.closedWith, undefined);
  assert.equal(b.closedWith, undefined);
  assert.equal(h.connections.size(), 2);
});

test('ownership moved to another user: not_owner within two intervals', async (t) => {
  const h = setup(t);
  const a = h.websocket();
  const b = h.ssh();
  await h.advance(1.5 * I);
  h.gitlab.owners.set('42', 'user-2');
  await h.advance(2 * I);
  assert.equal(a.closedWith, 'not_owner');
  assert.equal(b.closedWith, 'not_owner');
  assert.equal(h.connections.size(), 0);
});

test('revoked personal access token: credential_invalid, no refresh attempted', async (t) => {
  const h = setup(t);
  const b = h.ssh();
  await h.advance(1.3 * I);
  h.gitlab.tokens.delete('pat-1');
  await h.advance(2 * I);
  assert.equal(b.closedWith, 'credential_invalid');
  assert.equal(h.refresher.calls.length, 0);
});

test('Service deleted: closed at once on the change event, without a tick', async (t) => {
  const h = setup(t);
  const a = h.websocket();
  const b = h.ssh();
  const callsBefore = h.gitlab.calls.length;
  h.directory.remove('ws-ns', 'alpha');
  assert.equal(a.closedWith, 'workspace_gone');
  assert.equal(b.closedWith, 'workspace_gone');
  await h.advance(3 * I);
  assert.equal(h.gitlab.calls.length, callsBefore, 'no GitLab call for a batch that is gone');
});

test('Service gone without an event: the periodic check closes it within one interval', async (t) => {
  const h = setup(t);
  const a = h.websocket();
  const b = h.ssh();
  h.directory.silentlyRemove('ws-ns', 'alpha');
  await h.advance(I + 10);
  assert.equal(a.closedWith, 'workspace_gone');
  assert.equal(b.closedWith, 'workspace_gone');
});

test('Service re-created with another workspace id or another uid: workspace_gone', async (t) => {
  const h = setup(t);
  const a = h.websocket();
  const b = h.ssh();
  h.directory.put({ ...h.ws, id: '99' });
  assert.equal(a.closedWith, 'workspace_gone');
  assert.equal(b.closedWith, 'workspace_gone');

  // Same registry: connections on the new Service, then only its uid changes.
  const cur = { ...h.ws, id: '99' };
  h.gitlab.owners.set('99', 'user-1');
  const c = h.websocket(undefined, { w: cur });
  const d = h.ssh(undefined, cur);
  h.directory.put({ ...cur, uid: 'uid-new' });
  assert.equal(c.closedWith, 'workspace_gone');
  assert.equal(d.closedWith, 'workspace_gone');
});

test('host-template change: WebSockets on hosts that no longer route close, SSH stays', async (t) => {
  const h = setup(t);
  const two = { ...h.ws, hosts: ['3000-alpha.workspaces.test', '8080-alpha.workspaces.test'] };
  h.directory.put(two);
  const onOld = h.websocket(undefined, { w: two }); // host 3000-alpha
  const on8080 = new FakeConn('websocket', wsRef(two), { type: 'token', token: 'pat-1' }, '8080-alpha.workspaces.test:443');
  h.connections.track(on8080);
  const ssh = h.ssh(undefined, two);
  h.directory.put({ ...two, hosts: ['alpha-3000.workspaces.test', '8080-alpha.workspaces.test'] });
  assert.equal(onOld.closedWith, 'workspace_gone');
  assert.equal(on8080.closedWith, undefined);
  assert.equal(ssh.closedWith, undefined);
  await h.advance(3 * I);
  assert.equal(on8080.closedWith, undefined);
  assert.equal(ssh.closedWith, undefined);
});

test('a same-named Service in another namespace does not cut an SSH session; its own removal does', async (t) => {
  const h = setup(t);
  const b = h.ssh();
  h.directory.put(workspace('alpha', { namespace: 'other-ns', uid: 'uid-other', id: '77' }));
  await h.advance(3 * I);
  assert.equal(b.closedWith, undefined);
  h.directory.remove('ws-ns', 'alpha');
  assert.equal(b.closedWith, 'workspace_gone');
});

test('session cookie expiry (notAfter): session_expired at that moment', async (t) => {
  const h = setup(t);
  const a = h.websocket(undefined, { notAfter: T0 + 2500 });
  const other = h.websocket();
  await h.advance(2400);
  assert.equal(a.closedWith, undefined);
  await h.advance(200);
  assert.equal(a.closedWith, 'session_expired');
  assert.equal(other.closedWith, undefined);
});

test('max_session_duration closes both kinds after that many seconds', async (t) => {
  const h = setup(t, { maxSession: 3 });
  const a = h.websocket();
  const b = h.ssh();
  await h.advance(1000);
  const late = h.websocket(); // opened a second later, so it gets a second more
  await h.advance(1900);
  assert.equal(a.closedWith, undefined);
  await h.advance(200);
  assert.equal(a.closedWith, 'max_duration');
  assert.equal(b.closedWith, 'max_duration');
  assert.equal(late.closedWith, undefined);
  await h.advance(1000);
  assert.equal(late.closedWith, 'max_duration');
});

test('max_session_duration 0 means no limit', async (t) => {
  const h = setup(t, { interval: 3600_000 });
  const a = h.websocket();
  const b = h.ssh();
  mock.timers.tick(30 * 24 * 3600_000);
  await flush();
  assert.equal(a.closedWith, undefined);
  assert.equal(b.closedWith, undefined);
});

// ---- GitLab unreachable

test(`GitLab down for less than the grace (${GRACE_INTERVALS} intervals): connections survive`, async (t) => {
  const h = setup(t);
  const a = h.websocket();
  const b = h.ssh();
  await h.advance(1.2 * I);
  h.gitlab.mode = 'down';
  await h.advance(2.5 * I);
  h.gitlab.mode = 'up';
  await h.advance(2 * I);
  // Down again: the grace starts over after a confirmation.
  h.gitlab.mode = 'down';
  await h.advance(2.5 * I);
  h.gitlab.mode = 'up';
  await h.advance(3 * I);
  assert.equal(a.closedWith, undefined);
  assert.equal(b.closedWith, undefined);
});

test('GitLab down for longer than the grace: gitlab_unreachable, not earlier than the grace', async (t) => {
  const h = setup(t);
  const a = h.websocket();
  const b = h.ssh();
  await h.advance(1.2 * I);
  h.gitlab.mode = 'down';
  const downAt = Date.now();
  await h.advance(GRACE_INTERVALS * I);
  assert.equal(a.closedWith, undefined, 'open for at least the grace');
  // The outage is seen by the next check (within one interval), the grace runs from there, and the
  // first check after it closes: at most grace + 2 intervals after GitLab went away.
  await h.advance(2 * I + 10);
  assert.equal(a.closedWith, 'gitlab_unreachable');
  assert.equal(b.closedWith, 'gitlab_unreachable');
  const failed = h.gitlab.calls.filter((c) => c.at >= downAt);
  assert.ok(failed.length >= 3, 'kept trying during the grace');
});

test('a hanging GitLab call is never overlapped and counts as unreachable', async (t) => {
  const h = setup(t);
  const a = h.websocket();
  h.gitlab.mode = 'hang';
  await h.advance(I);
  assert.equal(h.gitlab.calls.length, 1);
  const startedAt = h.gitlab.calls[0]!.at;
  await h.advance(startedAt + GRACE_INTERVALS * I - 20 - Date.now());
  assert.equal(h.gitlab.calls.length, 1, 'no second call while the first is in flight');
  assert.equal(a.closedWith, undefined);
  await h.advance(I + 30);
  assert.equal(a.closedWith, 'gitlab_unreachable');
  h.gitlab.releaseHanging();
  await flush();
  assert.deepEqual(a.reasons, ['gitlab_unreachable']);
});

// ---- OAuth credentials and refresh

test('expired access token is refreshed once and the batch keeps the new tokens', async (t) => {
  const h = setup(t);
  h.gitlab.tokens.set('access-0', 'user-1');
  const cred: Credential = { type: 'oauth', accessToken: 'access-0', refreshToken: 'refresh-0' };
  const conns = Array.from({ length: 20 }, () => h.websocket(cred));
  await h.advance(1.2 * I);
  h.gitlab.tokens.delete('access-0'); // expired at GitLab
  await h.advance(I);
  assert.deepEqual(h.refresher.calls, ['refresh-0']);
  const after = h.gitlab.calls.at(-1)!;
  assert.equal(after.token, 'access-1');
  await h.advance(3 * I);
  assert.deepEqual(h.refresher.calls, ['refresh-0'], 'no further refresh');
  assert.ok(h.gitlab.calls.slice(-3).every((c) => c.token === 'access-1'));
  assert.ok(conns.every((c) => c.closedWith === undefined));
});

test('one credential on two workspaces is refreshed once (GitLab rotates refresh tokens)', async (t) => {
  const h = setup(t, { random: () => 0 }); // both batches check at the same instant
  const beta = workspace('beta', { id: '43' });
  h.directory.put(beta);
  h.gitlab.owners.set('43', 'user-1');
  const cred: Credential = { type: 'oauth', accessToken: 'access-0', refreshToken: 'refresh-0' };
  const a = h.websocket(cred);
  const b = h.websocket(cred, { w: beta });
  await h.advance(I);
  assert.deepEqual(h.refresher.calls, ['refresh-0']);
  assert.equal(a.closedWith, undefined);
  assert.equal(b.closedWith, undefined);
});

test('token close to expiresAt is refreshed before the check', async (t) => {
  const h = setup(t);
  h.gitlab.tokens.set('access-0', 'user-1');
  const a = h.websocket({ type: 'oauth', accessToken: 'access-0', refreshToken: 'refresh-0', expiresAt: T0 + 1500 });
  await h.advance(I);
  assert.deepEqual(h.refresher.calls, ['refresh-0']);
  assert.ok(h.gitlab.calls.every((c) => c.token === 'access-1'), 'the check already used the new token');
  assert.equal(a.closedWith, undefined);
});

test('a refused refresh token is not sent again while the access token still works', async (t) => {
  const h = setup(t);
  h.refresher.behaviour = 'rejected';
  h.gitlab.tokens.set('access-0', 'user-1');
  const a = h.websocket({ type: 'oauth', accessToken: 'access-0', refreshToken: 'refresh-0', expiresAt: T0 + 1000 });
  await h.advance(4 * I);
  assert.equal(a.closedWith, undefined, 'GitLab still accepts the access token');
  assert.equal(h.refresher.calls.length, 1);
  h.gitlab.tokens.delete('access-0');
  await h.advance(I);
  assert.equal(a.closedWith, 'credential_invalid');
  assert.equal(h.refresher.calls.length, 1);
});

test('refresh refused by GitLab: credential_invalid', async (t) => {
  const h = setup(t);
  h.refresher.behaviour = 'rejected';
  const a = h.websocket({ type: 'oauth', accessToken: 'access-0', refreshToken: 'refresh-0' });
  await h.advance(I);
  assert.equal(a.closedWith, 'credential_invalid');
  assert.equal(h.refresher.calls.length, 1);
});

test('OAuth session without a refresh token: credential_invalid when the token is rejected', async (t) => {
  const h = setup(t);
  const a = h.websocket({ type: 'oauth', accessToken: 'access-0' });
  await h.advance(I);
  assert.equal(a.closedWith, 'credential_invalid');
  assert.equal(h.refresher.calls.length, 0);
});

test('refresh failing on the network is an outage: grace, then gitlab_unreachable', async (t) => {
  const h = setup(t);
  h.refresher.behaviour = 'network';
  const a = h.websocket({ type: 'oauth', accessToken: 'access-0', refreshToken: 'refresh-0' });
  await h.advance(GRACE_INTERVALS * I);
  assert.equal(a.closedWith, undefined);
  await h.advance(2 * I + 10);
  assert.equal(a.closedWith, 'gitlab_unreachable');
});

// ---- lifecycle

test('a connection that ends by itself stops costing GitLab calls', async (t) => {
  const h = setup(t);
  const c = new FakeConn('websocket', wsRef(h.ws), { type: 'token', token: 'pat-1' }, h.ws.hosts[0]);
  const done = h.connections.track(c);
  await h.advance(2 * I);
  const n = h.gitlab.calls.length;
  done();
  done(); // idempotent
  assert.equal(h.connections.size(), 0);
  await h.advance(3 * I);
  assert.equal(h.gitlab.calls.length, n);
  assert.equal(c.closedWith, undefined);
});

test('closeAll closes everything with the reason; stop() ends all calls and timers', async (t) => {
  const h = setup(t, { maxSession: 100 });
  const a = h.websocket(undefined, { notAfter: T0 + 50_000 });
  const b = h.ssh();
  h.connections.closeAll('shutdown');
  assert.deepEqual(a.reasons, ['shutdown']);
  assert.deepEqual(b.reasons, ['shutdown']);
  const c = h.websocket();
  h.connections.stop();
  assert.deepEqual(c.reasons, ['shutdown'], 'stop() does not leave connections unsupervised');
  assert.equal(h.directory.listenerCount(), 0);
  const n = h.gitlab.calls.length;
  const late = h.websocket();
  await h.advance(5 * I);
  assert.equal(h.gitlab.calls.length, n, 'no calls after stop');
  assert.deepEqual(late.reasons, ['shutdown'], 'tracked after stop: closed');
  assert.deepEqual(a.reasons, ['shutdown'], 'close is called once per connection');
});

test('an in-flight call returning after stop() changes nothing', async (t) => {
  const h = setup(t);
  h.gitlab.mode = 'hang';
  const a = h.websocket();
  await h.advance(I);
  h.connections.stop();
  h.gitlab.releaseHanging();
  await flush();
  await h.advance(2 * I);
  assert.deepEqual(a.reasons, ['shutdown']);
  assert.equal(h.gitlab.calls.length, 1);
});

test('metrics: open connections by kind, closures by reason, re-authorizations and latency', async (t) => {
  const h = setup(t);
  h.websocket();
  h.websocket();
  const b = h.ssh();
  await h.advance(1.5 * I);
  let text = await h.metrics.metrics();
  assert.match(text, /workspaces_proxy_open_connections\{kind="websocket"\} 2/);
  assert.match(text, /workspaces_proxy_open_connections\{kind="ssh"\} 1/);
  assert.match(text, /workspaces_proxy_reauthorizations_total\{outcome="owner"\} [1-9]/);
  assert.match(text, /workspaces_proxy_reauthorization_duration_seconds_count [1-9]/);
  h.directory.remove('ws-ns', 'alpha');
  assert.equal(b.closedWith, 'workspace_gone');
  text = await h.metrics.metrics();
  assert.match(text, /workspaces_proxy_open_connections\{kind="websocket"\} 0/);
  assert.match(text, /workspaces_proxy_connection_closures_total\{kind="websocket",reason="workspace_gone"\} 2/);
  assert.match(text, /workspaces_proxy_connection_closures_total\{kind="ssh",reason="workspace_gone"\} 1/);
  assert.doesNotMatch(text, /pat-1/);
});

test('a connection whose close() throws is still dropped and others are closed', async (t) => {
  const h = setup(t);
  const bad = new FakeConn('websocket', wsRef(h.ws), { type: 'token', token: 'pat-1' }, h.ws.hosts[0]);
  bad.close = () => { throw new Error('socket already destroyed'); };
  h.connections.track(bad);
  const good = h.ssh();
  h.gitlab.owners.set('42', 'user-2');
  await h.advance(1.1 * I);
  assert.equal(good.closedWith, 'not_owner');
  assert.equal(h.connections.size(), 0);
});
