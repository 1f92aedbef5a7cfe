// Security and correctness review of the HTTP side: each test pins down a problem found in review
// (return URLs, planted cookies, parallel logins, hop-by-hop headers, logging, GitLab load).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { DestinationStream } from 'pino';
import { createLogger } from '../../proxy-image/src/observability/logger';
import { createSealer } from '../../proxy-image/src/auth/crypto';
import type { SessionData } from '../../proxy-image/src/auth/session';
import { createAccessControl } from '../../proxy-image/src/auth/access';
import { createOwnershipCheck } from '../../proxy-image/src/auth/ownership';
import type { GitLabApi, OwnershipResult } from '../../proxy-image/src/auth/gitlab-api';
import { shareRefreshes } from '../../proxy-image/src/auth/shared-refresher';
import { createLogGate } from '../../proxy-image/src/observability/log-limit';
import { returnPathOf, MAX_RETURN_PATH } from '../../proxy-image/src/http/login';
import type { TokenRefresher } from '../../proxy-image/src/auth/credential';
import { startHarness, loginAs, send, CookieJar, PROXY_DOMAIN, type Harness, type Reply, rawExchange as raw } from '../support/http-harness';

interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}


/** Follows redirects with `jar` until the next hop would be the workspace handoff; returns that URL. */
async function untilHandoff(url: string, jar: CookieJar, extraCookie?: (host: string) => string | undefined): Promise<string> {
  let next = url;
  for (let i = 0; i < 8; i++) {
    const r = await sendWith(next, jar, extraCookie);
    const location = r.headers.location;
    assert.ok(location, `hop ${i} of ${next} answered ${r.status}`);
    const abs = new URL(location, next).href;
    if (abs.includes('/.workspaces-proxy/handoff')) return abs;
    next = abs;
  }
  throw new Error('no handoff');
}

/** send() with the jar, optionally putting a planted cookie in front of the jar's own (as a zone cookie created earlier is). */
async function sendWith(url: string, jar: CookieJar, extraCookie?: (host: string) => string | undefined): Promise<Reply> {
  const host = new URL(url).hostname;
  const planted = extraCookie?.(host);
  if (!planted) return send(url, { jar });
  const own = jar.header(host);
  const r = await send(url, { headers: { cookie: own ? `${planted}; ${own}` : planted } });
  jar.store(host, r.headers['set-cookie']);
  return r;
}

describe('HTTP proxy review', () => {
  let h: Harness;
  const logs: LogLine[] = [];
  let aliceJar: CookieJar;

  before(async () => {
    const dest: DestinationStream = { write: (s: string) => void logs.push(JSON.parse(s) as LogLine) };
    h = await startHarness({ logger: createLogger('debug', dest) });
    aliceJar = (await loginAs(h, h.alice, h.url(h.hostA, '/'))).jar;
  });
  after(() => h.close());

  test('a very long URL still signs in: exact path and query up to 4 KiB, else the path alone', async () => {
    const medium = `/echo-request?q=${'m'.repeat(3000)}`;
    const a = await loginAs(h, h.alice, h.url(h.hostA, medium));
    assert.equal(a.final.status, 200);
    assert.equal(JSON.parse(a.final.body).url, medium);
    const long = `/echo-request?q=${'a'.repeat(6500)}`;
    const b = await loginAs(h, h.alice, h.url(h.hostA, long));
    assert.equal(b.final.status, 200, b.hops.map((x) => `${x.status} ${x.url.slice(0, 60)}`).join('\n'));
    assert.equal(JSON.parse(b.final.body).url, '/echo-request');
    // Every token in a URL stays below the 8 KiB request-line limit of common ingresses.
    for (const hop of b.hops) assert.ok(hop.url.length < 8000, `${hop.url.length} chars: ${hop.url.slice(0, 60)}`);
  });

  test('a garbage binding cookie planted for the whole zone does not break login (http setups)', async () => {
    h.gitlab.autoLoginAs(h.alice);
    const jar = new CookieJar();
    // Another workspace's page can set `wsp-login` with Domain=<zone>; browsers send it first when it is older.
    const plant = (host: string) => (host.endsWith('.workspaces.test') && host !== PROXY_DOMAIN ? 'wsp-login=planted-by-a-sibling' : undefined);
    const handoff = await untilHandoff(h.url(h.hostA, '/echo-request?planted=1'), jar, plant);
    const r = await sendWith(handoff, jar, plant);
    assert.equal(r.status, 302, r.body);
    assert.equal(r.headers.location, h.url(h.hostA, '/echo-request?planted=1'));
    assert.ok(jar.get(h.hostA, 'wsp-session'));
  });

  test('two tabs signing in to the same host at once both land on their own page', async () => {
    h.gitlab.autoLoginAs(h.alice);
    const jar = new CookieJar();
    const first = await send(h.url(h.hostA, '/tab-1'), { jar });
    const second = await send(h.url(h.hostA, '/tab-2'), { jar });
    const h1 = await untilHandoff(first.headers.location!, jar);
    const h2 = await untilHandoff(second.headers.location!, jar);
    const r1 = await send(h1, { jar });
    assert.equal(r1.status, 302);
    assert.equal(r1.headers.location, h.url(h.hostA, '/tab-1'));
    const r2 = await send(h2, { jar });
    assert.equal(r2.status, 302, r2.body);
    assert.equal(r2.headers.location, h.url(h.hostA, '/tab-2'));
    // The second tab rides on the session the first one set; nothing new is issued from a stale binding.
    assert.equal((await send(h.url(h.hostA, '/echo-request'), { jar })).status, 200);
  });

  test('a leaked handoff opened in another browser issues nothing there and does not burn the real one', async () => {
    h.gitlab.autoLoginAs(h.alice);
    const victim = new CookieJar();
    const start = await send(h.url(h.hostA, '/mine'), { jar: victim });
    const handoff = await untilHandoff(start.headers.location!, victim);
    const issued = (r: Reply) => r.headers['set-cookie']?.some((c) => c.startsWith('wsp-session=') && !/Max-Age=0/.test(c)) ?? false;
    // A browser without a session is refused; one with its own session (Alice elsewhere) is only sent to the page.
    const stranger = await send(handoff, { jar: new CookieJar() });
    assert.equal(stranger.status, 400);
    assert.equal(issued(stranger), false);
    const signedIn = await send(handoff, { jar: aliceJar });
    assert.equal(issued(signedIn), false);
    assert.equal(signedIn.status, 302);
    assert.equal(signedIn.headers.location, h.url(h.hostA, '/mine'));
    const real = await send(handoff, { jar: victim });
    assert.equal(real.status, 302);
    assert.equal(issued(real), true);
  });

  test('hop-by-hop and proxy-only headers stop at the proxy; Authorization and app headers go through', async () => {
    const cookie = aliceJar.header(h.hostA)!;
    const reply = await raw(
      h.port,
      `GET /echo-request HTTP/1.1\r\nHost: ${h.hostA}:${h.port}\r\nCookie: ${cookie}\r\n` +
        'Connection: close, X-Hop-Secret\r\nX-Hop-Secret: 1\r\nTE: trailers\r\nTrailer: X-T\r\nUpgrade: h2c\r\n' +
        'Proxy-Authorization: Basic eDp5\r\nAuthorization: Basic YXBwOnB3\r\nX-App: kept\r\n' +
        'X-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Port: 1\r\n\r\n',
    );
    const seen = JSON.parse(reply.slice(reply.indexOf('{'), reply.lastIndexOf('}') + 1)) as { headers: Record<string, string> };
    for (const name of ['x-hop-secret', 'te', 'trailer', 'upgrade', 'proxy-authorization']) assert.equal(seen.headers[name], undefined, name);
    assert.equal(seen.headers.authorization, 'Basic YXBwOnB3');
    assert.equal(seen.headers['x-app'], 'kept');
    assert.equal(seen.headers['x-forwarded-host'], `${h.hostA}:${h.port}`);
    assert.equal(seen.headers['x-forwarded-proto'], 'http');
    assert.equal(seen.headers['x-forwarded-port'], String(h.port));
    // Routing never follows X-Forwarded-Host: an unknown Host stays unknown.
    const r = await send(h.url('3000-nobody.workspaces.test', '/'), { headers: { 'x-forwarded-host': `${h.hostA}:${h.port}` } });
    assert.equal(r.status, 400);
  });

  test("a client's Connection: close is honoured; the workspace's own keep-alive terms are not passed on", async () => {
    const cookie = aliceJar.header(h.hostA)!;
    const reply = await raw(h.port, `GET /echo-request HTTP/1.1\r\nHost: ${h.hostA}:${h.port}\r\nCookie: ${cookie}\r\nConnection: close\r\n\r\n`);
    const head = reply.slice(0, reply.indexOf('\r\n\r\n')).toLowerCase();
    assert.match(head, /^http\/1\.1 200/);
    assert.match(head, /\r\nconnection: close/);
    assert.doesNotMatch(head, /keep-alive: timeout=30/);
  });

  test('absolute-form request targets: same authority as Host is routed like a path, another one is refused', async () => {
    const cookie = aliceJar.header(h.hostA)!;
    // The reserved logout path is answered by the proxy however the target is spelled; it never reaches the workspace.
    const before = h.workspace.requests.length;
    const same = await raw(h.port, `GET http://${h.hostA}:${h.port}/.workspaces-proxy/logout HTTP/1.1\r\nHost: ${h.hostA}:${h.port}\r\nCookie: ${cookie}\r\nConnection: close\r\n\r\n`);
    assert.match(same, /^HTTP\/1\.1 200/);
    assert.match(same, /Signed out/);
    assert.equal(h.workspace.requests.length, before);
    const other = await raw(h.port, `GET http://${h.hostB}:${h.port}/echo-request HTTP/1.1\r\nHost: ${h.hostA}:${h.port}\r\nCookie: ${cookie}\r\nConnection: close\r\n\r\n`);
    assert.match(other, /^HTTP\/1\.1 400/);
    assert.equal(h.workspace.requests.length, before);
    // Non-ASCII bytes in a path are carried through login without a crash.
    const odd = await raw(h.port, `GET /caf\u00e9?x=\u00ff HTTP/1.1\r\nHost: ${h.hostA}:${h.port}\r\nConnection: close\r\n\r\n`);
    assert.match(odd, /^HTTP\/1\.1 (302|400)/);
  });

  test('an answer the proxy gives itself while a request body is still arriving closes the connection', async () => {
    // Without a session nothing is proxied; a client must not be able to hold the socket open by trickling
    // the body of a refused request (uploads have no time limit, so nothing else would cut it).
    const reply = await raw(h.port, `POST /upload HTTP/1.1\r\nHost: ${h.hostA}:${h.port}\r\nContent-Length: 1000000\r\n\r\nabc`);
    assert.match(reply, /^HTTP\/1\.1 401/);
    assert.match(reply, /\r\nconnection: close\r\n/i);
    const chunked = await raw(h.port, `PUT /x HTTP/1.1\r\nHost: 3000-nobody.workspaces.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab`);
    assert.match(chunked, /^HTTP\/1\.1 400/);
  });

  test('error answers are not sniffed as HTML and never echo the Host', async () => {
    const r = await send(h.url('3000-nobody-xss.workspaces.test', '/<script>'));
    assert.equal(r.status, 400);
    assert.equal(r.headers['x-content-type-options'], 'nosniff');
    assert.doesNotMatch(r.body, /nobody-xss|script/);
  });

  test('unknown hosts are logged at info (sanitised, rate-limited); every request at debug without query or secrets', async () => {
    logs.length = 0;
    for (let i = 0; i < 40; i++) await send(h.url(`3000-scan-${i}.workspaces.test`, '/?probe=1'));
    const unknown = logs.filter((l) => l.level === 30 && /could not find upstream workspace/.test(l.msg));
    assert.ok(unknown.length >= 1, 'an unknown host is logged');
    assert.ok(unknown.length <= 10, `${unknown.length} lines for 40 scans`);
    assert.equal(unknown[0]!.host, '3000-scan-0.workspaces.test');

    logs.length = 0;
    const r = await send(h.url(h.hostA, '/echo-request?secret-query=1'), { jar: aliceJar, headers: { authorization: 'Bearer app-secret' } });
    assert.equal(r.status, 200);
    await new Promise((resolve) => setImmediate(resolve));
    const line = logs.find((l) => l.level === 20 && l.msg === 'request' && l.path === '/echo-request');
    assert.ok(line, JSON.stringify(logs));
    assert.equal(line.method, 'GET');
    assert.equal(line.host, `${h.hostA}:${h.port}`);
    assert.equal(line.status, 200);
    assert.equal(typeof line.durationMs, 'number');
    const text = JSON.stringify(logs);
    assert.doesNotMatch(text, /secret-query|app-secret/);
    assert.ok(!text.includes(aliceJar.get(h.hostA, 'wsp-session')!));
  });
});

describe('access control under load', () => {
  const sealer = createSealer('review-signing-key-0123456789abcdef');
  const logger = createLogger('silent');
  const session: SessionData = { h: 'h', u: 'u', w: '42', sub: 'gid://gitlab/User/1', at: 'access-1', rt: 'refresh-1', exp: Date.now() + 3_600_000 };

  test('concurrent requests whose verdict expired share one GitLab check', async () => {
    let calls = 0;
    const gitlab: GitLabApi = {
      async checkOwnership(): Promise<OwnershipResult> {
        calls++;
        await new Promise((r) => setTimeout(r, 20));
        return { kind: 'owner', userId: 'gid://gitlab/User/1' };
      },
    };
    let t = Date.now();
    const refresher: TokenRefresher = { refresh: () => Promise.reject(new Error('unused')) };
    const access = createAccessControl({
      ownership: createOwnershipCheck({ gitlab, fingerprint: sealer.fingerprint, now: () => t }), refresher, logger, reauthorizeIntervalSeconds: 60, now: () => t,
    });
    const first = await Promise.all(Array.from({ length: 10 }, () => access.decide(session)));
    assert.ok(first.every((d) => d.kind === 'allow'));
    assert.equal(calls, 1);
    t += 61_000;
    await Promise.all(Array.from({ length: 10 }, () => access.decide(session)));
    assert.equal(calls, 2);
  });

  test('a token near expiry is refreshed once for many concurrent requests, and later ones reuse it', async () => {
    let grants = 0;
    const refresher = shareRefreshes<TokenRefresher>({
      async refresh(rt) {
        grants++;
        await new Promise((r) => setTimeout(r, 20));
        return { accessToken: `access-of-${rt}`, refreshToken: `next-of-${rt}`, expiresAt: Date.now() + 7_200_000 };
      },
    });
    const gitlab: GitLabApi = { checkOwnership: async () => ({ kind: 'owner', userId: 'gid://gitlab/User/1' }) };
    const access = createAccessControl({ ownership: createOwnershipCheck({ gitlab, fingerprint: sealer.fingerprint }), refresher, logger, reauthorizeIntervalSeconds: 60 });
    const expiring = { ...session, ate: Date.now() + 1000 };
    const decisions = await Promise.all(Array.from({ length: 5 }, () => access.decide(expiring)));
    const late = await access.decide(expiring); // an old cookie still in flight after the refresh
    for (const d of [...decisions, late]) {
      assert.equal(d.kind, 'allow');
      assert.ok(d.kind === 'allow' && d.renewed && d.session.at === 'access-of-refresh-1' && d.session.rt === 'next-of-refresh-1');
    }
    assert.equal(grants, 1);
  });

  test('the synchronous cached decision answers only what decide would answer without waiting', async () => {
    let owner = true;
    let up = true;
    let calls = 0;
    const gitlab: GitLabApi = {
      async checkOwnership(): Promise<OwnershipResult> {
        calls++;
        if (!up) return { kind: 'unavailable', error: 'down' };
        return owner ? { kind: 'owner', userId: 'gid://gitlab/User/1' } : { kind: 'not_owner', userId: 'gid://gitlab/User/1' };
      },
    };
    let t = Date.now();
    const refresher: TokenRefresher = { refresh: () => Promise.reject(new Error('unused')) };
    const access = createAccessControl({
      ownership: createOwnershipCheck({ gitlab, fingerprint: sealer.fingerprint, now: () => t }), refresher, logger, reauthorizeIntervalSeconds: 60, now: () => t,
    });
    assert.equal(access.decideCached(session), undefined, 'nothing known yet: GitLab must be asked');
    assert.equal((await access.decide(session)).kind, 'allow');
    assert.deepEqual(access.decideCached(session), { kind: 'allow', session, renewed: false });
    assert.equal(calls, 1);
    // A token inside the refresh-early window is refreshed first, whatever the cache holds.
    assert.equal(access.decideCached({ ...session, ate: t + 1000 }), undefined);
    // Past the interval the answer is stale: asked again, and a "not the owner" is then reused briefly.
    t += 61_000;
    assert.equal(access.decideCached(session), undefined);
    owner = false;
    assert.equal((await access.decide(session)).kind, 'forbidden');
    assert.deepEqual(access.decideCached(session), { kind: 'forbidden' });
    t += 5_001;
    assert.equal(access.decideCached(session), undefined);
    // An outage within the grace after a confirmation: allowed without waiting, and one check goes out.
    owner = true;
    assert.equal((await access.decide(session)).kind, 'allow');
    t += 61_000;
    up = false;
    assert.equal((await access.decide(session)).kind, 'allow');
    const before = calls;
    assert.equal(access.decideCached(session)?.kind, 'allow');
    assert.equal(calls, before + 1, 'the cached answer during an outage still sends one check');
    t += 3 * 61_000;
    assert.equal(access.decideCached(session), undefined, 'past the grace nothing vouches for the session');
  });
});

describe('renewed sessions are never dropped', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ auth: { reauthorize_interval: 0.2 } });
  });
  after(() => h.close());

  test('a refresh made for a request whose workspace is down still sends the new cookie with the 502', async () => {
    h.directory.add({ name: 'down-ws', id: '45', routes: { 'down.workspaces.test': 1 } });
    h.gitlab.setWorkspaceOwner(45, h.alice);
    h.gitlab.setAccessTokenLifetime(20); // inside the proxy's 30 s refresh-early window
    try {
      const { jar } = await loginAs(h, h.alice, h.url('down.workspaces.test', '/'));
      const first = jar.get('down.workspaces.test', 'wsp-session');
      assert.ok(first);
      h.gitlab.resetCounts();
      const r = await send(h.url('down.workspaces.test', '/x'), { jar });
      assert.equal(r.status, 502);
      assert.equal(h.gitlab.count('token'), 1, 'one refresh grant');
      assert.notEqual(jar.get('down.workspaces.test', 'wsp-session'), first);
    } finally {
      h.gitlab.setAccessTokenLifetime(7200);
    }
  });
});

test('log gate: a few lines per window, then a count of what was dropped', () => {
  let t = 0;
  const gate = createLogGate({ max: 2, windowMs: 1000, now: () => t });
  assert.deepEqual([gate(), gate(), gate(), gate()].map((g) => g.allowed), [true, true, false, false]);
  t = 1000;
  assert.deepEqual(gate(), { allowed: true, suppressed: 2 });
  assert.deepEqual(gate(), { allowed: true, suppressed: 0 });
});

test('return paths: kept up to the limit, then the path alone, then /', () => {
  const q = `/p?${'x'.repeat(MAX_RETURN_PATH)}`;
  assert.equal(returnPathOf(q), '/p');
  assert.equal(returnPathOf(`/${'y'.repeat(MAX_RETURN_PATH)}`), '/');
  const fits = `/p?${'x'.repeat(MAX_RETURN_PATH - 3)}`;
  assert.equal(returnPathOf(fits), fits);
  assert.equal(returnPathOf('//evil.example/?next=//evil'), '/evil.example/?next=//evil');
  assert.equal(returnPathOf('/\\\\evil.example'), '/evil.example');
});
