// docs/contract.md §1 ("Secrets are never passed on a command line or printed in logs"): the BUILT proxy is run
// through a realistic sequence at the most verbose log level — start-up, a browser login, requests with a
// session cookie and an Authorization header, a WebSocket, bad requests, an SSH-enabled start with a host
// key, SSH logins with good and bad tokens, bad configs — and none of the secrets involved may appear in its
// stdout/stderr, its argv (/proc/<pid>/cmdline) or its environment (/proc/<pid>/environ).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'ssh2';
import { WebSocket } from 'ws';
import { startKubeApiStandIn, workspaceService, type KubeApiStandIn } from '../support/kube-api-stand-in';
import { startGitLabStandIn, type GitLabStandIn, type GitLabUser } from '../support/gitlab-stand-in';
import { startSampleWorkspace, type SampleWorkspace } from '../support/sample-workspace';
import { writeKubeconfig } from '../support/kubeconfig';
import { browse, send, CookieJar } from '../support/http-harness';

import { freePorts, runProxyToExit, spawnProxy, testSecrets, validConfig, type ConfigDoc, type Ports, type SpawnedProxy } from '../support/spawn-proxy';
import { pickPort } from '../support/ports';

const ZONE = 'workspaces.test';
const WS_NAME = 'leak-ws';
const WS_ID = '42';

let kube: KubeApiStandIn;
let gitlab: GitLabStandIn;
let workspace: SampleWorkspace;
let alice: GitLabUser;
let dir: string;
let kubeconfigPath: string;
let hostKeyText: string;
/** Every secret the proxy got to see during the run: none may leave it. */
const secrets = new Map<string, string>();

function addSecret(label: string, value: string | undefined): void {
  if (value && value.length >= 8) secrets.set(value, label);
}

before(async () => {
  kube = await startKubeApiStandIn();
  gitlab = await startGitLabStandIn();
  workspace = await startSampleWorkspace();
  dir = mkdtempSync(join(tmpdir(), 'wsp-leaks-'));
  kubeconfigPath = writeKubeconfig(kube.url, dir);
  alice = gitlab.addUser({ username: 'alice', password: 'alice-gitlab-password' });
  gitlab.setWorkspaceOwner(WS_ID, alice);
  kube.addService(workspaceService({ name: WS_NAME, namespace: 'ns1', workspaceId: WS_ID, zone: ZONE, ports: [workspace.port], clusterIP: '127.0.0.1' }));
  execFileSync('ssh-keygen', ['-q', '-t', 'rsa', '-b', '2048', '-N', '', '-C', 'leak-test', '-f', join(dir, 'host_key')]);
  hostKeyText = readFileSync(join(dir, 'host_key'), 'utf8');
  addSecret('auth.client_secret', testSecrets.clientSecret);
  addSecret('auth.signing_key', testSecrets.signingKey);
  addSecret('GitLab password', 'alice-gitlab-password');
});
after(async () => {
  await workspace?.close();
  await kube?.close();
  await gitlab?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Lines of base64 body of a PEM/OpenSSH private key: any one of them printed is a leak. */
function keyBodyLines(pem: string): string[] {
  return pem.split('\n').filter((l) => l.length >= 16 && !l.startsWith('-----'));
}

function procFile(pid: number, name: 'cmdline' | 'environ'): string {
  return readFileSync(`/proc/${pid}/${name}`).toString('utf8').split('\0').join('\n');
}

/** Names the secrets found in `text` (empty when clean). */
function leaked(text: string, extra: [string, string][] = []): string[] {
  const found: string[] = [];
  for (const [value, label] of [...secrets, ...extra]) if (text.includes(value)) found.push(label);
  return found;
}

function assertClean(where: string, text: string, extra: [string, string][] = []): void {
  const found = leaked(text, extra);
  assert.deepEqual(found, [], `${where} contains ${found.join(', ')}:\n${text.slice(0, 4000)}`);
}

async function waitReady(port: number, ms = 30_000): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    const ok = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.status === 200, () => false);
    if (ok) return;
    if (Date.now() > until) throw new Error(`the proxy was not ready within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function sshTry(port: number, username: string, password: string, exec?: string): Promise<string> {
  return new Promise((resolve) => {
    const c = new Client();
    let settled = false;
    const done = (what: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      c.end();
      resolve(what);
    };
    const timer = setTimeout(() => done('timeout'), 10_000);
    c.on('ready', () => {
      if (!exec) return done('ready');
      c.exec(exec, (err, stream) => {
        if (err) return done(`exec error: ${err.message}`);
        stream.on('close', () => done('exec closed'));
        stream.resume();
        stream.stderr.resume();
      });
    });
    c.on('error', (err) => done(`error: ${err.message}`));
    c.on('close', () => done('closed'));
    c.connect({ host: '127.0.0.1', port, username, password, tryKeyboard: false, readyTimeout: 10_000, hostVerifier: () => true });
  });
}

function checkProcess(p: SpawnedProxy): void {
  // argv and environment, read while the process runs.
  const cmdline = procFile(p.pid, 'cmdline');
  const environ = procFile(p.pid, 'environ');
  const keyLines: [string, string][] = keyBodyLines(hostKeyText).map((l) => [l, 'ssh.host_key']);
  assertClean('/proc/<pid>/cmdline', cmdline, keyLines);
  assertClean('/proc/<pid>/environ', environ, keyLines);
  assert.match(cmdline, /dist\/main\.js\n-config\n/, 'looked at the right process');
}

test('HTTP: login, cookie and Authorization requests, WebSocket and bad requests leak nothing', async () => {
  const ports: Ports = await freePorts();
  const config = validConfig({ ports, gitlabUrl: gitlab.url, logLevel: 'trace' });
  gitlab.registerOAuthClient({ clientId: String(config.auth.client_id), clientSecret: testSecrets.clientSecret, redirectUris: [String(config.auth.redirect_uri)] });
  const p = spawnProxy({ config, kubeconfigPath });
  try {
    await p.listening;
    await waitReady(ports.internal);
    checkProcess(p);
    const host = `${workspace.port}-${WS_NAME}.${ZONE}`;
    const url = (path: string) => `http://${host}:${ports.http}${path}`;

    // A browser login through GitLab. The access token lives 20 s, inside the proxy's 30 s refresh-early
    // window, so a later request refreshes it and the refresh path is logged too. (A token of 1 s could expire
    // between the code exchange and the ownership check on a slow machine and fail the login itself.)
    gitlab.setAccessTokenLifetime(20);
    gitlab.autoLoginAs(alice);
    const jar = new CookieJar();
    const { final, hops } = await browse(url('/?x=1'), jar);
    assert.equal(final.status, 200, `login ends on the workspace page: ${hops.map((h) => `${h.status} ${h.url}`).join('\n')}`);
    for (const hop of hops) {
      const location = hop.headers.location ? new URL(hop.headers.location, hop.url) : undefined;
      addSecret('OAuth authorization code', location?.searchParams.get('code') ?? undefined);
      // The one-time hand-off from the proxy domain to the workspace host carries the session.
      if (location?.pathname.includes('handoff')) addSecret('session hand-off token', location.searchParams.get('t') ?? undefined);
      for (const line of hop.headers['set-cookie'] ?? []) {
        const value = line.split(';')[0]!.split('=').slice(1).join('=');
        if (new URL(hop.url).hostname.endsWith(ZONE)) addSecret(`cookie ${line.split('=')[0]}`, value);
      }
    }
    const cookie = jar.header(host);
    assert.ok(cookie, 'a session cookie was set');
    const grants = gitlab.count('token');

    // Requests with the cookie and an Authorization header (the proxy must not log either).
    const pat = gitlab.createPersonalAccessToken(alice);
    addSecret('personal access token', pat);
    const issued = gitlab.issueAccessToken(alice);
    addSecret('OAuth access token', issued.accessToken);
    addSecret('OAuth refresh token', issued.refreshToken);
    assert.equal((await send(url('/echo-request'), { jar, headers: { authorization: `Bearer ${issued.accessToken}` } })).status < 500, true);
    assert.equal((await send(url('/'), { jar, method: 'POST', body: 'a=1', headers: { authorization: `Bearer ${pat}`, 'private-token': pat } })).status < 500, true);
    assert.equal((await send(url('/'), { jar })).status, 200);
    assert.ok(gitlab.count('token') > grants, 'the session access token was refreshed');

    // A WebSocket with the session cookie.
    const ws = new WebSocket(`ws://127.0.0.1:${ports.http}/echo`, ['echo.v1'], { headers: { host: `${host}:${ports.http}`, cookie } });
    await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
    ws.send('hello');
    await new Promise((resolve) => ws.once('message', resolve));
    ws.close();

    // Bad requests: tampered and foreign cookies, no session on POST and on an upgrade, forged callbacks,
    // unknown and malformed hosts.
    const tampered = cookie.replace(/=(.)/, (_m, c: string) => `=${c === 'A' ? 'B' : 'A'}`);
    await send(url('/'), { headers: { cookie: tampered, authorization: `Bearer ${pat}` } });
    await send(url('/'), { method: 'POST', headers: { authorization: `Bearer ${pat}` }, body: 'x' });
    await send(url('/echo'), { headers: { connection: 'upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', authorization: `Bearer ${pat}` } });
    await send(`http://auth.${ZONE}:${ports.http}/auth/callback?code=forged-code-1234567890&state=forged-state`, { headers: { cookie } });
    await send(`http://nobody.${ZONE}:${ports.http}/`, { headers: { cookie, authorization: `Bearer ${pat}` } });
    await send(url('/'), { headers: { host: 'bad host!', cookie } });

    // GitLab failing: the code exchange at the callback gets a 500, and authorization checks a 503.
    const jar2 = new CookieJar();
    let next = url('/?second=1');
    for (let i = 0; i < 10; i++) {
      const hop = await send(next, { jar: jar2 });
      if (!hop.headers.location) break;
      next = new URL(hop.headers.location, next).href;
      if (new URL(next).pathname === '/auth/callback') break;
    }
    assert.equal(new URL(next).pathname, '/auth/callback', 'reached the callback');
    addSecret('OAuth authorization code (failed exchange)', new URL(next).searchParams.get('code') ?? undefined);
    gitlab.failWith(500);
    try {
      assert.ok((await send(next, { jar: jar2 })).status >= 400, 'a failed code exchange is an error page');
      gitlab.failWith(503);
      await send(url('/?gitlab=down'), { jar });
    } finally {
      gitlab.failWith(null);
    }

    // Everything the proxy used against GitLab is a secret too.
    for (const { token } of gitlab.graphqlLog) addSecret('token sent to GitLab GraphQL', token);
    assert.ok(gitlab.graphqlLog.length > 0, 'the proxy asked GitLab');
    const labels = new Set(secrets.values());
    for (const label of ['OAuth authorization code', 'session hand-off token', 'token sent to GitLab GraphQL']) {
      assert.ok(labels.has(label), `the run saw a ${label} to look for: ${[...labels].join(', ')}`);
    }
    assert.ok([...labels].some((l) => l.startsWith('cookie ')), 'the run saw cookie values to look for');

    checkProcess(p);
    const exit = await p.stop('SIGTERM');
    assert.equal(exit.code, 0);
    assert.ok(p.logs().length > 5, 'the proxy logged at trace level');
    assertClean('stdout', p.stdout());
    assertClean('stderr', p.stderr());
  } finally {
    gitlab.setAccessTokenLifetime(7200);
    await p.cleanup();
  }
});

test('SSH: start with a host key, logins with good and bad tokens leak nothing', async () => {
  const ports = await freePorts();
  const config = validConfig({ ports, gitlabUrl: gitlab.url, logLevel: 'trace' });
  config.ssh = { enabled: true, port: ports.ssh, host_key: hostKeyText, backend_port: await pickPort() };
  const keyLines: [string, string][] = keyBodyLines(hostKeyText).map((l) => [l, 'ssh.host_key']);
  const p = spawnProxy({ config, kubeconfigPath });
  try {
    await p.listening;
    await waitReady(ports.internal);
    checkProcess(p);
    const pat = gitlab.createPersonalAccessToken(alice);
    addSecret('personal access token (SSH password)', pat);
    const wrong = ['glpat-wrong-password-aaaaaaaa', 'glpat-wrong-password-bbbbbbbb', 'glpat-wrong-password-cccccccc', 'glpat-wrong-password-dddddddd'];
    wrong.forEach((w) => addSecret('wrong SSH password', w));
    // The good token: auth passes, the backend (a closed port) does not answer.
    const good = await sshTry(ports.ssh, WS_NAME, pat, 'true');
    assert.ok(!/authentication/i.test(good) && good !== 'timeout', `the good token gets past auth: ${good}`);
    for (const [user, password] of [[WS_NAME, wrong[0]!], ['no-such-workspace', wrong[1]!], [WS_NAME, wrong[2]!]] as const) {
      assert.match(await sshTry(ports.ssh, user, password), /authentication/i);
    }
    // GitLab answering 503 while a token is checked: the error is logged, the token must not be.
    const pat2 = gitlab.createPersonalAccessToken(alice);
    addSecret('personal access token (SSH password, GitLab down)', pat2);
    const calls = gitlab.count('graphql');
    gitlab.failWith(503);
    try {
      await sshTry(ports.ssh, WS_NAME, pat2);
    } finally {
      gitlab.failWith(null);
    }
    assert.ok(gitlab.count('graphql') > calls, 'the proxy asked GitLab about the token while it was failing');
    for (const { token } of gitlab.graphqlLog) addSecret('token sent to GitLab GraphQL', token);

    checkProcess(p);
    const exit = await p.stop('SIGTERM');
    assert.equal(exit.code, 0);
    assertClean('stdout', p.stdout(), keyLines);
    assertClean('stderr', p.stderr(), keyLines);
  } finally {
    await p.cleanup();
  }
});

test('bad configs: the error names the key, never its secret value', async () => {
  const ports = await freePorts();
  const keyLines: [string, string][] = keyBodyLines(hostKeyText).map((l) => [l, 'ssh.host_key']);
  const cases: ConfigDoc[] = [];
  // signing_key too short (the value is a secret even when rejected).
  const short = validConfig({ ports });
  short.auth.signing_key = 'tooShortSecret1';
  cases.push(short);
  // client_secret of the wrong type.
  const wrongType = validConfig({ ports });
  wrongType.auth.client_secret = { nested: testSecrets.clientSecret };
  cases.push(wrongType);
  // A host key that is damaged (one line dropped), so it cannot be read.
  const damaged = validConfig({ ports });
  const lines = hostKeyText.split('\n');
  damaged.ssh = { enabled: true, host_key: [...lines.slice(0, 3), ...lines.slice(4)].join('\n') };
  cases.push(damaged);
  // An invalid URL whose userinfo carries a password.
  const urlSecret = validConfig({ ports });
  urlSecret.auth.host = `not a url ${testSecrets.clientSecret}`;
  cases.push(urlSecret);
  const results = [];
  for (const config of cases) results.push(await runProxyToExit({ config, kubeconfigPath }));
  // YAML that does not parse, with the error on the secret's line.
  results.push(await runProxyToExit({ config: `auth:\n  client_secret: "${testSecrets.clientSecret}\n  signing_key: [${testSecrets.signingKey}\n`, kubeconfigPath }));
  for (const r of results) {
    assert.ok(r.code !== 0 && r.code !== null, `bad config exits non-zero: ${r.stderr}`);
    assertClean('stderr of a rejected config', r.stderr, [...keyLines, ['tooShortSecret1', 'short auth.signing_key']]);
    assertClean('stdout of a rejected config', r.stdout, [...keyLines, ['tooShortSecret1', 'short auth.signing_key']]);
  }
});
