// The HTTP side end to end without a browser: login flow, cookies, authorization, proxying, bad input.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { Agent } from 'undici';
import { WebSocket } from 'ws';
import pino from 'pino';
import { Counter, Registry } from 'prom-client';
import { createInternalServer } from '../../proxy-image/src/observability/internal-server';
import { createMemoryDirectory } from '../support/memory-directory';
import { startHarness, loginAs, send, browse, CookieJar, PROXY_DOMAIN, type Harness, rawExchange as raw } from '../support/http-harness';

function wsOpen(url: string, opts: { cookie?: string; origin?: string; protocols?: string[] } = {}): Promise<{ ws?: WebSocket; status?: number }> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${u.port}${u.pathname}`, opts.protocols ?? [], {
      headers: { host: u.host, ...(opts.cookie ? { cookie: opts.cookie } : {}) },
      ...(opts.origin ? { origin: opts.origin } : {}),
    });
    ws.once('open', () => resolve({ ws }));
    ws.once('unexpected-response', (_req, res) => {
      res.resume();
      resolve({ status: res.statusCode });
    });
    ws.once('error', () => resolve({}));
  });
}


describe('HTTP proxy', () => {
  let h: Harness;
  let aliceJar: CookieJar;
  let stoppedJar: CookieJar | undefined;

  before(async () => {
    h = await startHarness();
    aliceJar = (await loginAs(h, h.alice, h.url(h.hostA, '/'))).jar;
    // A workspace whose backend port refuses connections (a stopped workspace).
    h.directory.add({ name: 'stopped-ws', id: '44', routes: { 'stopped.workspaces.test': 1 } });
    h.gitlab.setWorkspaceOwner(44, h.alice);
  });
  after(() => h.close());

  test('unknown host: 400 saying no workspace serves it', async () => {
    const r = await send(h.url('3000-nobody.workspaces.test', '/'));
    assert.equal(r.status, 400);
    assert.match(r.body, /no workspace serves this host/);
  });

  test('owner logs in and lands on the exact path and query first asked for', async () => {
    const { final, hops, jar } = await loginAs(h, h.alice, h.url(h.hostA, '/echo-request?a=1&b=two%20x'));
    assert.equal(final.status, 200);
    assert.equal(final.url, h.url(h.hostA, '/echo-request?a=1&b=two%20x'));
    assert.equal(JSON.parse(final.body).url, '/echo-request?a=1&b=two%20x');
    // Every hop stays on the proxy, the GitLab stand-in or the workspace host.
    const authorize = hops.find((x) => x.headers.location?.includes('/oauth/authorize'));
    const authUrl = new URL(authorize!.headers.location!);
    assert.equal(authUrl.origin, h.gitlab.url);
    assert.equal(authUrl.searchParams.get('scope'), 'openid profile api read_user');
    assert.equal(authUrl.searchParams.get('code_challenge_method'), 'S256');
    assert.ok(authUrl.searchParams.get('state') && authUrl.searchParams.get('nonce'));
    // The session cookie is host-only on the workspace host, HttpOnly, SameSite=Lax; nothing for the zone.
    const setCookies = hops.flatMap((x) => (x.headers['set-cookie'] ?? []).map((c) => ({ host: new URL(x.url).hostname, c })));
    for (const { c } of setCookies) {
      assert.doesNotMatch(c, /domain=/i);
      assert.match(c, /HttpOnly/);
      assert.match(c, /SameSite=Lax/);
    }
    const session = setCookies.find(({ c }) => c.startsWith('wsp-session=') && !/Max-Age=0/.test(c));
    assert.equal(session?.host, h.hostA);
    assert.ok(jar.get(h.hostA, 'wsp-session'));
    assert.equal(jar.get(PROXY_DOMAIN, 'wsp-session'), undefined);
  });

  test('requests reach the workspace intact: Host with port, X-Forwarded-*, own cookies stripped', async () => {
    const jar = aliceJar;
    jar.set(h.hostA, 'app', '1');
    const r = await send(h.url(h.hostA, '/echo-request?q=1'), { jar, method: 'POST', body: 'hello', headers: { 'x-forwarded-for': '203.0.113.9' } });
    assert.equal(r.status, 200);
    const seen = JSON.parse(r.body);
    assert.equal(seen.method, 'POST');
    assert.equal(seen.bodyBytes, 5);
    assert.equal(seen.headers.host, `${h.hostA}:${h.port}`);
    assert.equal(seen.headers['x-forwarded-host'], `${h.hostA}:${h.port}`);
    assert.equal(seen.headers['x-forwarded-proto'], 'http');
    assert.equal(seen.headers['x-forwarded-for'], '203.0.113.9, 127.0.0.1');
    assert.equal(seen.headers.cookie, 'app=1');
  });

  test('/metrics on a workspace host reaches the workspace, not the proxy', async () => {
    const r = await send(h.url(h.hostA, '/metrics'), { jar: aliceJar });
    assert.equal(r.body, 'workspace own metrics\n');
  });

  test('internal endpoints answer only for IP, localhost or missing Host', async () => {
    const ip = await send(`http://127.0.0.1:${h.port}/metrics`);
    assert.equal(ip.status, 200);
    assert.match(ip.body, /workspaces_proxy_http_requests_total/);
    assert.match(ip.body, /workspaces_proxy_logins_total\{outcome="success"\}/);
    assert.equal((await send(`http://localhost:${h.port}/healthz`)).status, 200);
    const noHost = await raw(h.port, 'GET /readyz HTTP/1.0\r\n\r\n');
    assert.match(noHost, /^HTTP\/1\.1 200/);
    h.directory.setReady(false);
    assert.equal((await send(`http://127.0.0.1:${h.port}/readyz`)).status, 503);
    h.directory.setReady(true);
    assert.equal((await send(h.url('unknown.example', '/healthz'))).status, 400);
    assert.equal((await send(`http://${PROXY_DOMAIN}:${h.port}/metrics`)).status, 400);
  });

  test('the proxy domain answers 400 with a page pointing to GitLab on every path but the login flow', async () => {
    for (const path of ['/', '/index.html', '/auth/', '/auth/logout', '/.workspaces-proxy/logout']) {
      for (const method of ['GET', 'HEAD', 'POST']) {
        const r = await send(`http://${PROXY_DOMAIN}:${h.port}${path}`, { method });
        assert.equal(r.status, 400, `${method} ${path}`);
        assert.match(String(r.headers['content-type']), /^text\/html/);
        if (method !== 'HEAD') assert.match(r.body, /Workspaces are opened from GitLab/, `${method} ${path}`);
      }
    }
    // The login flow itself is still served there (a start link without its token is refused as such).
    assert.match((await send(`http://${PROXY_DOMAIN}:${h.port}/auth/login`)).body, /Sign-in did not complete/);
  });

  test('a cookie for workspace A does not open workspace B (or another host of A)', async () => {
    const jar = new CookieJar();
    jar.set(h.hostB, 'wsp-session', aliceJar.get(h.hostA, 'wsp-session')!);
    const r = await send(h.url(h.hostB, '/'), { jar });
    assert.equal(r.status, 302);
    assert.match(r.headers.location!, new RegExp(`^http://${PROXY_DOMAIN.replace(/\./g, '\\.')}:\\d+/auth/login\\?t=`));
    jar.set(h.hostA2, 'wsp-session', aliceJar.get(h.hostA, 'wsp-session')!);
    assert.equal((await send(h.url(h.hostA2, '/'), { jar })).status, 302);
  });

  test('a non-owner gets a 403 page at login and never a session', async () => {
    const { final, jar } = await loginAs(h, h.bob, h.url(h.hostA, '/'));
    assert.equal(final.status, 403);
    assert.match(final.body, /belongs to another user/);
    assert.equal(jar.get(h.hostA, 'wsp-session'), undefined);
  });

  test('a GitLab admin, who can see every workspace, is still not its owner: 403', async () => {
    // GraphQL shows an admin the workspace with its real owner: only the id comparison keeps the admin out.
    const root = h.gitlab.addUser({ username: 'root', password: 'root-password', admin: true });
    const { final, jar } = await loginAs(h, root, h.url(h.hostA, '/'));
    assert.equal(final.status, 403);
    assert.match(final.body, /belongs to another user/);
    assert.equal(jar.get(h.hostA, 'wsp-session'), undefined);
  });

  test("a callback carrying another browser's state is refused before its code is exchanged", async () => {
    // The attacker's browser runs a login up to GitLab's redirect to the callback, and keeps that URL.
    h.gitlab.autoLoginAs(h.bob);
    const attacker = new CookieJar();
    const { hops } = await browse(h.url(h.hostA, '/'), attacker, 3); // workspace → /auth/login → GitLab authorize
    const callbackUrl = new URL(hops.at(-1)!.headers.location!, hops.at(-1)!.url).href;
    assert.match(callbackUrl, /\/auth\/callback\?.*code=/);
    // The victim's browser has a login of its own pending (its own state cookie on the proxy domain).
    const victim = new CookieJar();
    const start = await send(h.url(h.hostA, '/'), { jar: victim });
    await send(start.headers.location!, { jar: victim });
    assert.ok([...(victim.hosts.get(PROXY_DOMAIN)?.keys() ?? [])].some((n) => n.startsWith('wsp-oauth-')));
    const grants = h.gitlab.count('token');
    const planted = await send(callbackUrl, { jar: victim });
    assert.equal(planted.status, 400);
    assert.equal(h.gitlab.count('token'), grants, 'the code was not sent to GitLab');
    assert.equal(victim.get(h.hostA, 'wsp-session'), undefined);
  });

  test('without a session: other methods and WebSocket upgrades get 401 and are never proxied', async () => {
    const before = h.workspace.requests.length;
    const post = await send(h.url(h.hostA, '/echo-request'), { method: 'POST', body: 'x' });
    assert.equal(post.status, 401);
    const ws = await wsOpen(h.url(h.hostA, '/echo'), { protocols: ['echo.v1'] });
    assert.equal(ws.status, 401);
    assert.equal(h.workspace.requests.length, before);
  });

  test('forged, replayed and other-browser state or handoff values are refused', async () => {
    // Forged state with no cookie.
    const forged = await send(`http://${PROXY_DOMAIN}:${h.port}/auth/callback?code=abc&state=forged`);
    assert.equal(forged.status, 400);
    // A real login, recorded hop by hop.
    h.gitlab.autoLoginAs(h.alice);
    const jar = new CookieJar();
    const { hops } = await browse(h.url(h.hostA, '/x'), jar);
    const callback = hops.find((x) => x.url.includes('/auth/callback'))!;
    const handoff = hops.find((x) => x.url.includes('/.workspaces-proxy/handoff'))!;
    assert.equal(callback.status, 302);
    assert.equal(handoff.status, 302);
    // Replayed callback in the same browser: its state cookie is gone.
    assert.equal((await send(callback.url, { jar })).status, 400);
    // Replayed handoff in the same browser: single use (and the binding cookie is gone).
    assert.equal((await send(handoff.url, { jar })).status, 400);
    // Single use even with the login's binding cookie still at hand.
    const binding = hops[0]!.headers['set-cookie']!.find((c) => c.startsWith('wsp-login='))!.split(';')[0]!;
    assert.equal((await send(handoff.url, { headers: { cookie: binding } })).status, 400);
    // A handoff for this login opened in another browser that has its own binding cookie.
    const other = new CookieJar();
    await send(h.url(h.hostA, '/'), { jar: other });
    assert.ok(other.get(h.hostA, 'wsp-login'));
    const jar2 = new CookieJar();
    const { hops: hops2 } = await browse(h.url(h.hostA, '/y'), jar2, 4); // stop before the handoff hop
    const handoffUrl = hops2.at(-1)!.headers.location!;
    assert.match(handoffUrl, /\/\.workspaces-proxy\/handoff\?t=/);
    const stolen = await send(handoffUrl, { jar: other });
    assert.equal(stolen.status, 400);
    assert.equal(other.get(h.hostA, 'wsp-session'), undefined);
    // The same handoff on another host.
    const moved = handoffUrl.replace(h.hostA, h.hostA2);
    jar2.set(h.hostA2, 'wsp-login', jar2.get(h.hostA, 'wsp-login')!);
    assert.equal((await send(moved, { jar: jar2 })).status, 400);
    // Tampered start token.
    const start = hops.find((x) => x.url.includes('/auth/login'))!.url;
    assert.equal((await send(start.replace(/t=.{10}/, 't=AAAAAAAAAA'), { jar })).status, 400);
  });

  test('abandoned logins do not pile up state cookies on the proxy domain', async () => {
    const jar = new CookieJar();
    for (let i = 0; i < 10; i++) {
      const first = await send(h.url(h.hostA, `/tab-${i}`), { jar });
      await send(first.headers.location!, { jar }); // login start: a state cookie, then GitLab (not followed)
    }
    const pending = [...(jar.hosts.get(PROXY_DOMAIN)?.keys() ?? [])].filter((n) => n.startsWith('wsp-oauth-'));
    assert.equal(pending.length, 4);
  });

  test('tampered, malformed or expired session cookies go back through login', async () => {
    const good = aliceJar.get(h.hostA, 'wsp-session')!;
    for (const bad of [`${good.slice(0, -4)}AAAA`, '%%%', '', 'x'.repeat(5000), good.replace(/./, 'B')]) {
      const r = await send(h.url(h.hostA, '/'), { headers: { cookie: `wsp-session=${bad}` } });
      assert.equal(r.status, 302, bad.slice(0, 20));
      assert.ok(r.headers['set-cookie']?.some((c) => c.startsWith('wsp-login=')));
    }
    const weird = await send(h.url(h.hostA, '/'), { headers: { cookie: ';;; =; wsp-session; \u00e9=1' } });
    assert.equal(weird.status, 302);
  });

  test('a zone-wide impostor cookie next to the real one does not lock the owner out', async () => {
    const real = aliceJar.get(h.hostA, 'wsp-session')!;
    const r = await send(h.url(h.hostA, '/echo-request'), { headers: { cookie: `wsp-session=forged-by-a-sibling; wsp-session=${real}` } });
    assert.equal(r.status, 200);
  });

  test('state-changing requests from another workspace origin are refused; same-workspace and non-workspace origins pass', async () => {
    const post = (origin: string) => send(h.url(h.hostA, '/echo-request'), { method: 'POST', jar: aliceJar, body: 'x', headers: { origin } });
    assert.equal((await post(`http://${h.hostB}:${h.port}`)).status, 403);
    assert.equal((await post(`http://${h.hostA2}:${h.port}`)).status, 200);
    assert.equal((await post('null')).status, 200);
    assert.equal((await post('https://vscode-cdn.example')).status, 200);
    const get = await send(h.url(h.hostA, '/echo-request'), { jar: aliceJar, headers: { origin: `http://${h.hostB}:${h.port}` } });
    assert.equal(get.status, 200);
  });

  test('bad input gets 4xx and the proxy keeps serving', async () => {
    assert.equal((await send(`http://${PROXY_DOMAIN}:${h.port}/auth/callback`)).status, 400);
    assert.equal((await send(`http://${PROXY_DOMAIN}:${h.port}/auth/callback?state=`)).status, 400);
    assert.equal((await send(`http://${PROXY_DOMAIN}:${h.port}/auth/login`)).status, 400);
    assert.equal((await send(`http://${PROXY_DOMAIN}:${h.port}/auth/callback?code=x&state=${'s'.repeat(600)}`)).status, 400);
    assert.equal((await send(`http://${PROXY_DOMAIN}:${h.port}/auth/callback?code=x&state=y`, { method: 'POST' })).status, 405);
    assert.equal((await send(h.url(h.hostA, '/.workspaces-proxy/handoff'))).status, 400);
    assert.equal((await send(h.url(h.hostA, '/.workspaces-proxy/handoff?t=%00'))).status, 400);
    assert.match(await raw(h.port, `GET / HTTP/1.1\r\nHost: ${h.hostA}\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`), /^HTTP\/1\.1 431/);
    for (const host of ['bad host', 'a/b', 'x:y', '[::1', '-', 'é.example']) {
      assert.match(await raw(h.port, `GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`), /^HTTP\/1\.1 400/, host);
    }
    assert.match(await raw(h.port, 'NONSENSE\r\n\r\n'), /^HTTP\/1\.1 400/);
    assert.match(await raw(h.port, `GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n`), /^HTTP\/1\.1 400/);
    assert.equal((await send(`http://127.0.0.1:${h.port}/healthz`)).status, 200);
  });

  test('backend refusing connections: 502 page saying the workspace is not reachable', async () => {
    const { final, jar } = await loginAs(h, h.alice, h.url('stopped.workspaces.test', '/'));
    stoppedJar = jar;
    assert.equal(final.status, 502);
    assert.match(final.body, /Workspace not reachable/);
  });

  test('a workspace dying mid-response cuts the client connection instead of leaving it hanging', { timeout: 10_000 }, async () => {
    const cookie = aliceJar.header(h.hostA)!;
    const outcome = await new Promise<string>((resolve) => {
      const req = request({ host: '127.0.0.1', port: h.port, path: '/truncated', headers: { host: `${h.hostA}:${h.port}`, cookie }, agent: false }, (res) => {
        res.resume();
        res.on('error', () => undefined);
        res.on('close', () => resolve(res.complete ? 'complete' : 'cut'));
      });
      req.on('error', () => resolve('cut'));
      req.end();
    });
    assert.equal(outcome, 'cut');
    assert.equal((await send(h.url(h.hostA, '/echo-request'), { jar: aliceJar })).status, 200);
  });

  test('server-sent events pass unbuffered; large uploads stream through', async () => {
    const cookie = aliceJar.header(h.hostA)!;
    const first = await new Promise<{ chunk: string; ended: boolean }>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: h.port, path: '/events?count=2&interval=60000', headers: { host: `${h.hostA}:${h.port}`, cookie } },
        (res) => {
          let ended = false;
          res.on('end', () => (ended = true));
          res.once('data', (d: Buffer) => {
            resolve({ chunk: d.toString(), ended });
            req.destroy();
          });
        },
      );
      req.on('error', (e) => (e.message.includes('socket hang up') ? undefined : reject(e)));
      req.end();
    });
    assert.equal(first.chunk, 'data: event 0\n\n');
    assert.equal(first.ended, false, 'the first event arrived while the stream was still open');

    const size = 32 * 1024 * 1024;
    const up = await send(h.url(h.hostA, '/echo-request'), { method: 'PUT', jar: aliceJar, body: Buffer.alloc(size, 1) });
    assert.equal(JSON.parse(up.body).bodyBytes, size);
  });

  test('WebSocket: subprotocol negotiated end to end, own cookies stripped, echo works, close() sends code and reason', async () => {
    const cookie = `wsp-login=x; app=ws; wsp-session=${aliceJar.get(h.hostA, 'wsp-session')!}`;
    const { ws } = await wsOpen(h.url(h.hostA, '/echo'), { cookie, protocols: ['echo.v1', 'other'], origin: `http://${h.hostA}:${h.port}` });
    assert.ok(ws);
    assert.equal(ws.protocol, 'echo.v1');
    const upgrade = h.workspace.upgrades.at(-1)!;
    assert.equal(upgrade.headers.cookie, 'app=ws', 'the workspace sees its own cookie only');
    assert.equal(upgrade.headers['x-forwarded-host'], `${h.hostA}:${h.port}`);
    const echoed = new Promise<string>((r) => ws.once('message', (d) => r(d.toString())));
    ws.send('ping-1');
    assert.equal(await echoed, 'ping-1');
    assert.equal(h.connections.size('websocket'), 1);
    const closed = new Promise<[number, string]>((r) => ws.once('close', (code, reason) => r([code, reason.toString()])));
    h.connections.closeAll('not_owner');
    assert.deepEqual(await closed, [1008, 'access to this workspace was revoked']);
  });

  test('WebSocket: large binary messages relay intact both ways; a stopped backend is 502', async () => {
    const cookie = aliceJar.header(h.hostA)!;
    const { ws } = await wsOpen(h.url(h.hostA, '/echo'), { cookie, protocols: ['echo.v1'] });
    assert.ok(ws);
    const big = Buffer.alloc(6 * 1024 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
    const got = new Promise<Buffer>((r) => ws.once('message', (d, isBinary) => (assert.ok(isBinary), r(d as Buffer))));
    ws.send(big);
    assert.ok((await got).equals(big));
    ws.close(1000);
    stoppedJar ??= (await loginAs(h, h.alice, h.url('stopped.workspaces.test', '/'))).jar; // when run alone
    const stopped = await wsOpen(h.url('stopped.workspaces.test', '/echo'), { cookie: stoppedJar.header('stopped.workspaces.test') });
    assert.equal(stopped.status, 502);
  });

  test('WebSocket from another workspace origin is refused; another host of the same workspace is fine', async () => {
    const cookie = aliceJar.header(h.hostA)!;
    const evil = await wsOpen(h.url(h.hostA, '/echo'), { cookie, origin: `http://${h.hostB}:${h.port}` });
    assert.equal(evil.status, 403);
    const garbage = await wsOpen(h.url(h.hostA, '/echo'), { cookie, origin: 'null' });
    assert.equal(garbage.status, 403);
    const sibling = await wsOpen(h.url(h.hostA, '/echo'), { cookie, origin: `http://${h.hostA2}:${h.port}` });
    assert.ok(sibling.ws);
    const closed = new Promise<number>((r) => sibling.ws!.once('close', (code) => r(code)));
    h.connections.closeAll('shutdown');
    assert.equal(await closed, 1001);
  });
});

describe('HTTP proxy backend pool', () => {
  let h: Harness;
  const agent = new Agent({ connections: 2 });
  before(async () => {
    h = await startHarness({ backendDispatcher: agent });
  });
  after(() => h.close());

  test('aborted downloads do not leak backend sockets (node-http-proxy#1582)', { timeout: 30_000 }, async () => {
    const { jar } = await loginAs(h, h.alice, h.url(h.hostA, '/'));
    const cookie = jar.header(h.hostA)!;
    for (let i = 0; i < 8; i++) {
      await new Promise<void>((resolve, reject) => {
        const req = request(
          { host: '127.0.0.1', port: h.port, path: '/bytes?size=16777216', headers: { host: `${h.hostA}:${h.port}`, cookie }, agent: false },
          (res) => {
            res.once('data', () => {
              req.destroy();
              resolve();
            });
          },
        );
        req.on('error', (e) => (req.destroyed ? undefined : reject(e)));
        req.end();
      });
    }
    // With maxSockets 2, a leak would leave this request queued forever.
    const r = await send(h.url(h.hostA, '/echo-request'), { jar });
    assert.equal(r.status, 200);
  });
});

describe('HTTP proxy re-authorization', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ auth: { reauthorize_interval: 0.2 } });
  });
  after(() => h.close());

  test('an access token close to expiry is refreshed and the new session cookie rides on the response', async () => {
    h.gitlab.setAccessTokenLifetime(20); // inside the proxy's 30 s refresh-early window
    const { jar } = await loginAs(h, h.alice, h.url(h.hostA, '/'));
    const first = jar.get(h.hostA, 'wsp-session');
    h.gitlab.resetCounts();
    const r = await send(h.url(h.hostA, '/echo-request'), { jar });
    assert.equal(r.status, 200);
    assert.equal(h.gitlab.count('token'), 1, 'one refresh grant');
    assert.ok(r.headers['set-cookie']?.some((c) => c.startsWith('wsp-session=')));
    assert.notEqual(jar.get(h.hostA, 'wsp-session'), first);
    h.gitlab.setAccessTokenLifetime(7200);
  });

  test('a WebSocket upgrade that refreshes the token sends the renewed cookie on the 101', async () => {
    h.gitlab.setAccessTokenLifetime(20);
    try {
      const { jar } = await loginAs(h, h.alice, h.url(h.hostA, '/'));
      const ws = new WebSocket(`ws://127.0.0.1:${h.port}/echo`, ['echo.v1'], { headers: { host: `${h.hostA}:${h.port}`, cookie: jar.header(h.hostA)! } });
      const setCookie = await new Promise<string[] | undefined>((resolve, reject) => {
        ws.once('upgrade', (res) => resolve(res.headers['set-cookie']));
        ws.once('error', reject);
      });
      assert.ok(setCookie?.some((c) => c.startsWith('wsp-session=') && /HttpOnly; SameSite=Lax/.test(c)));
      await new Promise((r) => (ws.once('open', r), ws.readyState === WebSocket.OPEN && r(undefined)));
      ws.close();
    } finally {
      h.gitlab.setAccessTokenLifetime(7200);
    }
  });

  test('ownership taken away or token revoked: later requests are refused, not proxied', async () => {
    const { jar } = await loginAs(h, h.alice, h.url(h.hostA, '/'));
    assert.equal((await send(h.url(h.hostA, '/echo-request'), { jar })).status, 200);
    h.gitlab.setWorkspaceOwner(42, h.bob);
    await new Promise((r) => setTimeout(r, 300)); // past the 0.2 s positive cache
    const r = await send(h.url(h.hostA, '/echo-request'), { jar });
    assert.equal(r.status, 403);
    h.gitlab.setWorkspaceOwner(42, h.alice);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await send(h.url(h.hostA, '/echo-request'), { jar })).status, 200);
    h.gitlab.revokeToken(h.gitlab.graphqlLog.at(-1)!.token!);
    await new Promise((r) => setTimeout(r, 300));
    const after = await send(h.url(h.hostA, '/echo-request'), { jar, method: 'POST' });
    assert.equal(after.status, 401);
  });

  test('GitLab down with no recent confirmation: 503, never proxied', async () => {
    const { jar } = await loginAs(h, h.alice, h.url(h.hostA, '/'));
    h.gitlab.failWith(503);
    try {
      await new Promise((r) => setTimeout(r, 700)); // past the grace of 3 intervals
      const r = await send(h.url(h.hostA, '/echo-request'), { jar });
      assert.equal(r.status, 503);
    } finally {
      h.gitlab.failWith(null);
    }
  });
});

describe('HTTP proxy with auth.protocol https', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ auth: { protocol: 'https' } });
  });
  after(() => h.close());

  test('cookies get the __Host- prefix and Secure; redirects and forwarding use https', async () => {
    const first = await send(h.url(h.hostA, '/p?q=1'));
    assert.equal(first.status, 302);
    const login = first.headers['set-cookie']!.find((c) => c.startsWith('__Host-wsp-login='))!;
    assert.match(login, /; Secure/);
    assert.match(login, /; Path=\//);
    assert.doesNotMatch(login, /domain/i);
    // The test client speaks plain HTTP to loopback whatever the scheme; the proxy builds https URLs.
    h.gitlab.autoLoginAs(h.alice);
    const jar = new CookieJar();
    const { hops, final } = await browse(h.url(h.hostA, '/echo-request?q=1'), jar);
    assert.equal(final.status, 200);
    assert.ok(hops.some((x) => x.headers.location?.startsWith(`https://${h.hostA}:${h.port}/.workspaces-proxy/handoff?t=`)));
    assert.equal(hops.at(-2)!.headers.location, `https://${h.hostA}:${h.port}/echo-request?q=1`);
    const session = hops.flatMap((x) => x.headers['set-cookie'] ?? []).find((c) => c.startsWith('__Host-wsp-session='))!;
    assert.match(session, /HttpOnly; SameSite=Lax; Max-Age=\d+; Secure/);
    const seen = JSON.parse(final.body);
    assert.equal(seen.headers['x-forwarded-proto'], 'https');
    assert.equal(seen.headers.cookie, undefined, 'only proxy cookies were sent, so none reach the workspace');
  });
});

describe('internal server', () => {
  test('health, readiness after the first list, metrics on the configured path; nothing else', async () => {
    const registry = new Registry();
    new Counter({ name: 'probe_total', help: 'x', registers: [registry] }).inc();
    const directory = createMemoryDirectory({ ready: false });
    const config = { metrics_path: '/custom-metrics' } as Parameters<typeof createInternalServer>[0]['config'];
    const server = createInternalServer({ config, directory, registry, logger: pino({ level: 'silent' }) });
    const { port } = await server.listen(0, '127.0.0.1');
    try {
      const get = (path: string, method = 'GET') => send(`http://127.0.0.1:${port}${path}`, { method });
      assert.equal((await get('/healthz')).status, 200);
      assert.equal((await get('/readyz')).status, 503);
      directory.setReady(true);
      assert.equal((await get('/readyz')).status, 200);
      const m = await get('/custom-metrics');
      assert.equal(m.status, 200);
      assert.match(m.body, /probe_total 1/);
      assert.equal((await get('/metrics')).status, 404);
      assert.equal((await get('/healthz', 'POST')).status, 405);
      // Any Host: this port is never routed to workspaces.
      assert.equal((await send(`http://3000-x.workspaces.test:${port}/healthz`)).status, 200);
    } finally {
      await server.shutdown();
    }
  });
});

describe('GitLab unreachable at start', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(() => h.close());

  test('login answers 503 while GitLab is down, and works once it is back (discovery retried)', async () => {
    await h.gitlab.stop();
    const jar = new CookieJar();
    const { final } = await browse(h.url(h.hostA, '/'), jar);
    assert.equal(final.status, 503);
    assert.match(final.body, /GitLab is not reachable/);
    assert.equal((await send(`http://127.0.0.1:${h.port}/healthz`)).status, 200);
    await h.gitlab.start();
    await new Promise((r) => setTimeout(r, 3100)); // discovery is retried at most every 3 s
    const { final: after } = await loginAs(h, h.alice, h.url(h.hostA, '/'), jar);
    assert.equal(after.status, 200);
  });
});
