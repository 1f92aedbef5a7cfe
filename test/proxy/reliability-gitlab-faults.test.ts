// GitLab faults (issue 13): GitLab hanging, answering 5xx, or resetting connections. Logins answer with the
// readable "GitLab is not reachable" page within the GitLab call timeout (policy.ts GITLAB_TIMEOUT_MS, plus
// a margin for this loaded machine), never later; sessions GitLab confirmed keep working within the outage
// grace (3 × auth.reauthorize_interval, docs/contract.md §6): the cookie, an open WebSocket and an SSH
// session; and other hosts are served meanwhile. The proxy runs in-process (startStack) against the GitLab
// stand-in's fault switch (failWith).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { startStack, type Stack } from '../support/proxy-stack';
import { browse, send, CookieJar, type Reply } from '../support/http-harness';
import { openEchoWebSocket, openSshSession } from '../support/session-clients';
import type { GitLabFault } from '../support/gitlab-stand-in';
import { GITLAB_TIMEOUT_MS, GRACE_INTERVALS } from '../../proxy-image/src/auth/policy';
import { answers } from '../../proxy-image/src/http/pages';

const INTERVAL_S = 10;
/** A login or check answers within one GitLab call timeout; the margin is for a loaded 2-core machine. */
const ANSWER_BOUND_MS = GITLAB_TIMEOUT_MS + 5_000;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function eventually(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(100);
  }
}

function assertGitLabPage(r: Reply): void {
  assert.equal(r.status, answers.gitlabUnreachable.status, r.body);
  assert.match(String(r.headers['content-type']), /^text\/html/);
  assert.ok(r.body.includes(`<h1>${answers.gitlabUnreachable.title}</h1>`), r.body);
}

describe(`GitLab faults, auth.reauthorize_interval: ${INTERVAL_S} (grace ${GRACE_INTERVALS * INTERVAL_S} s)`, () => {
  let stack: Stack;
  let pat: string;
  let n = 0;

  before(async () => {
    stack = await startStack({ ssh: true, auth: { reauthorize_interval: INTERVAL_S } });
    pat = stack.ssh!.alicePat;
    stack.gitlab.autoLoginAs(stack.alice);
  });
  after(async () => {
    stack?.gitlab.failWith(null);
    await stack?.close();
  });

  async function workspace(): Promise<{ name: string; host: string }> {
    n += 1;
    const name = `gf-ws-${n}`;
    const host = stack.addWorkspace(name, String(700 + n), stack.alice);
    await eventually(`discovery of ${name}`, async () => (await send(stack.url(host, '/'))).status !== 400);
    return { name, host };
  }

  /** Follows a login until the proxy's callback URL (GitLab's redirect back), without requesting it. */
  async function callbackUrl(host: string, jar: CookieJar): Promise<string> {
    let next = stack.url(host, '/');
    for (let i = 0; i < 12; i++) {
      const r = await send(next, { jar });
      const location = r.headers.location;
      assert.ok(r.status === 302 && location, `hop ${i}: ${r.status} ${r.body}`);
      next = new URL(location, next).href;
      if (new URL(next).pathname === '/auth/callback') return next;
    }
    throw new Error('no callback URL');
  }

  test('GitLab hangs before the proxy has loaded its OpenID configuration: the login answers the page in bounded time', async () => {
    const { host } = await workspace();
    stack.gitlab.failWith('hang', { discovery: true });
    try {
      const started = performance.now();
      const { final } = await browse(stack.url(host, '/'), new CookieJar());
      const took = performance.now() - started;
      assertGitLabPage(final);
      assert.ok(took <= ANSWER_BOUND_MS, `answered after ${Math.round(took)} ms`);
    } finally {
      stack.gitlab.failWith(null);
    }
    // Discovery is retried on a later login once GitLab answers again.
    await eventually('a login once GitLab is back', async () => (await browse(stack.url(host, '/'), new CookieJar())).final.status === 200);
  });

  const faults: [GitLabFault, string][] = [['hang', 'hangs'], [503, 'answers 503'], ['reset', 'resets connections']];
  for (const [fault, what] of faults) {
    test(`GitLab ${what}: logins get the page in bounded time, the cookie, a WebSocket and SSH keep working within the grace, other hosts are served`, async () => {
      const a = await workspace();
      const b = await workspace();
      const jarA = new CookieJar();
      const loginStarted = performance.now();
      assert.equal((await browse(stack.url(a.host, '/'), jarA)).final.status, 200);
      const cookie = jarA.header(a.host)!;
      const graceEnds = loginStarted + GRACE_INTERVALS * INTERVAL_S * 1000;
      const ws = await openEchoWebSocket({ port: stack.httpPort, host: `${a.host}:${stack.httpPort}`, cookie });
      const ssh = await openSshSession({ port: stack.ssh!.port, username: a.name, password: pat });
      const jarB = new CookieJar();
      const callback = await callbackUrl(b.host, jarB);
      const callsBefore = stack.gitlab.count('graphql') + stack.gitlab.count('token');

      stack.gitlab.failWith(fault);
      try {
        // A login finishing now: GitLab cannot exchange the code.
        const started = performance.now();
        let callbackDone = false;
        const pending = send(callback, { jar: jarB }).finally(() => (callbackDone = true));
        // Meanwhile the signed-in host is served (its answer is fresh), whatever the login waits for.
        const other = await send(stack.url(a.host, '/echo-request'), { jar: jarA });
        assert.equal(other.status, 200);
        if (fault === 'hang') assert.equal(callbackDone, false, 'the other host was answered while the login waited for GitLab');
        const login = await pending;
        const took = performance.now() - started;
        assertGitLabPage(login);
        assert.ok(took <= ANSWER_BOUND_MS, `the login answered after ${Math.round(took)} ms`);

        // Once GitLab's answer is older than one interval, requests ask GitLab again and meet the fault.
        await sleep(Math.max(0, loginStarted + INTERVAL_S * 1000 + 500 - performance.now()));
        const first = performance.now();
        assert.equal((await send(stack.url(a.host, '/echo-request'), { jar: jarA })).status, 200, 'the cookie within the grace');
        assert.ok(performance.now() - first <= ANSWER_BOUND_MS, `the first request after the interval took ${Math.round(performance.now() - first)} ms`);
        // The outage is known now: later requests do not wait for GitLab again.
        const burst = performance.now();
        for (let i = 0; i < 10; i++) assert.equal((await send(stack.url(a.host, '/echo-request'), { jar: jarA })).status, 200);
        const burstMs = performance.now() - burst;
        assert.ok(burstMs < GITLAB_TIMEOUT_MS, `10 requests took ${Math.round(burstMs)} ms: one of them waited for GitLab`);
        assert.ok(stack.gitlab.count('graphql') + stack.gitlab.count('token') > callsBefore, 'the proxy did try GitLab');

        // Open connections were re-checked at least once against the failing GitLab, and carry on.
        await ws.echo('websocket during the outage');
        await ssh.echo('ssh during the outage');
        assert.ok(performance.now() < graceEnds, 'all of the above happened within the grace (else the test proves nothing)');
        assert.equal(ws.isClosed(), false);
        assert.equal(ssh.isClosed(), false);
      } finally {
        stack.gitlab.failWith(null);
      }
      // GitLab back: everything goes on.
      await ws.echo('websocket after the outage');
      await ssh.echo('ssh after the outage');
      assert.equal((await send(stack.url(a.host, '/echo-request'), { jar: jarA })).status, 200);
      ws.end();
      await ssh.end();
    });
  }
});
