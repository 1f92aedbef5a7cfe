// Hostile input, unit level (issue 13): property-based tests (fast-check) of every parser that reads what a
// client sends before the proxy knows who it is: the Cookie header, sealed values (session cookie, OAuth
// state cookie, login-start and handoff tokens), the Host header, request targets and return paths.
// Properties: the parser never throws, a tampered value is refused, round trips hold, and what a parser
// lets through is safe for the code after it (logs, redirects). The end-to-end fuzz is hostile-http.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import fc from 'fast-check';
import { createSealer, type SealPurpose } from '../../proxy-image/src/auth/crypto';
import { cookieNames, cookieValues, parseCookies, serializeCookie, stripProxyCookies } from '../../proxy-image/src/auth/cookies';
import { createSessionReader, sealSession, type SessionData } from '../../proxy-image/src/auth/session';
import { hostOf, parseHost, toOriginForm } from '../../proxy-image/src/http/host';
import { MAX_RETURN_PATH, requestPathUrl, returnPathOf } from '../../proxy-image/src/http/login';
import type { Route } from '../../proxy-image/src/discovery/types';

/** Runs per property: enough to find the classic mistakes, small enough for a loaded 2-core machine. */
const runs = { numRuns: 500 };
const sealer = createSealer('property-test-signing-key-0123456789');
const purposes: SealPurpose[] = ['login-start', 'oauth-state', 'handoff', 'session'];
const later = () => Date.now() + 60_000;

/** Any text a header can carry once Node has parsed it (latin1 bytes), plus some full unicode. */
const headerText = fc.oneof(fc.string({ unit: 'binary', maxLength: 300 }), fc.string({ maxLength: 300 }));
/** Cookie-ish text: made of the characters that matter to a cookie parser, so the cases are interesting. */
const cookieish = fc.string({ unit: fc.constantFrom(';', '=', ' ', '"', ',', 'a', 'b', 'w', 's', 'p', '-', '_', '\t', 'é'), maxLength: 80 });
const names = [cookieNames(true), cookieNames(false)];
const base64url = fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_');

test('cookie parsing never throws, on strings or repeated headers, and is bounded by the input', () => {
  fc.assert(
    fc.property(fc.oneof(headerText, cookieish, fc.array(fc.oneof(headerText, cookieish), { maxLength: 4 })), (header) => {
      const parsed = parseCookies(header);
      const text = Array.isArray(header) ? header.join('; ') : header;
      for (const [name, value] of parsed) {
        assert.ok(name.length > 0 && !name.includes(';') && !name.includes('='), `name ${JSON.stringify(name)}`);
        assert.ok(!value.includes(';'));
        assert.ok(text.includes(name));
      }
      for (const n of names) {
        for (const v of cookieValues(header, n.session)) assert.ok(!v.includes(';'));
        const stripped = stripProxyCookies(header, n);
        if (stripped !== undefined) assert.ok(stripped.length <= text.length);
      }
    }),
    runs,
  );
});

test("stripping removes every spelling of the proxy's cookies and keeps everything else in order", () => {
  const ours = fc.constantFrom('wsp-session', '__Host-wsp-session', 'wsp-login', '__Host-wsp-login', 'wsp-oauth-abc', '__Host-wsp-oauth-x1');
  const theirName = fc.string({ unit: fc.constantFrom('a', 'b', 'z', '_', '-', '1', '.'), minLength: 1, maxLength: 12 }).filter((n) => !n.includes('wsp-'));
  const value = fc.string({ unit: fc.constantFrom('a', '1', '%', '/', '=', '-', '"'), maxLength: 20 });
  const pair = fc.oneof(fc.tuple(ours, value).map(([n, v]) => ({ ours: true, text: `${n}=${v}` })),
    fc.tuple(theirName, value).map(([n, v]) => ({ ours: false, text: `${n}=${v}` })));
  fc.assert(
    fc.property(fc.array(pair, { maxLength: 12 }), fc.constantFrom(...names), (pairs, n) => {
      const header = pairs.map((p) => p.text).join('; ');
      const kept = pairs.filter((p) => !p.ours).map((p) => p.text);
      // Nothing of ours: the header passes byte for byte (even an empty one).
      const expected = pairs.every((p) => !p.ours) ? header : kept.length ? kept.join('; ') : undefined;
      assert.equal(stripProxyCookies(header, n), expected);
    }),
    runs,
  );
});

test('a cookie the proxy sets reads back as the same value (round trip)', () => {
  const token = fc.string({ unit: base64url, minLength: 1, maxLength: 200 });
  fc.assert(
    fc.property(fc.constantFrom(...names), token, fc.boolean(), fc.array(fc.tuple(fc.constantFrom('a', 'theme', 'x_y'), token), { maxLength: 3 }),
      (n, value, secure, others) => {
        const set = serializeCookie(n.session, value, { secure, maxAge: 60 });
        const pair = set.split(';')[0]!; // what a browser sends back
        const header = [...others.map(([k, v]) => `${k}=${v}`), pair].join('; ');
        assert.equal(parseCookies(header).get(n.session), value);
        assert.deepEqual(cookieValues(header, n.session), [value]);
      }),
    runs,
  );
});

test('opening a sealed value never throws, whatever the input', () => {
  const nearValid = fc.tuple(fc.string({ unit: base64url, maxLength: 400 }), fc.constantFrom('', '=', '==', '.', '%3D', ' ')).map(([a, b]) => a + b);
  fc.assert(
    fc.property(fc.oneof(headerText, nearValid, fc.string({ unit: base64url, minLength: 8000, maxLength: 9000 })), fc.constantFrom(...purposes), (text, purpose) => {
      assert.equal(sealer.open(purpose, text), undefined);
    }),
    { numRuns: 300 },
  );
});

test('seal then open gives the payload back, for its purpose only and only before it expires (round trip)', () => {
  fc.assert(
    fc.property(fc.dictionary(fc.string({ maxLength: 10 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 6 }), fc.constantFrom(...purposes),
      fc.constantFrom(...purposes), (payload, purpose, other) => {
        const exp = later();
        const sealed = sealer.seal(purpose, payload, exp);
        assert.match(sealed, /^[A-Za-z0-9_-]+$/);
        assert.deepEqual(sealer.open(purpose, sealed), JSON.parse(JSON.stringify(payload)));
        if (other !== purpose) assert.equal(sealer.open(other, sealed), undefined);
        assert.equal(sealer.open(purpose, sealed, exp), undefined, 'expired at its expiry time');
      }),
    { numRuns: 300 },
  );
});

test('any change to a sealed value is refused: a character replaced, added or removed, or bytes flipped', () => {
  // Payloads of every length, so the base64url text ends with 0, 2 or 4 spare bits (the last character).
  const sealed = fc.string({ maxLength: 40 }).map((filler) => sealer.seal('session', { h: 'a.workspaces.test', at: `token-${filler}` }, later()));
  const change = fc.oneof(
    // The last character carries spare bits that decoding ignores: a classic way to make a "different" token.
    base64url.map((c) => (s: string) => s.slice(0, -1) + c),
    fc.tuple(fc.nat(), base64url).map(([i, c]) => (s: string) => {
      const at = i % s.length;
      return s.slice(0, at) + c + s.slice(at + 1);
    }),
    fc.tuple(fc.nat(), fc.string({ unit: base64url, minLength: 1, maxLength: 4 })).map(([i, c]) => (s: string) => s.slice(0, i % s.length) + c + s.slice(i % s.length)),
    fc.tuple(fc.nat(), fc.integer({ min: 1, max: 4 })).map(([i, n]) => (s: string) => s.slice(0, i % s.length) + s.slice((i % s.length) + n)),
    fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })).map(([i, x]) => (s: string) => {
      const raw = Buffer.from(s, 'base64url');
      raw[i % raw.length] = raw[i % raw.length]! ^ x;
      return raw.toString('base64url');
    }),
  );
  fc.assert(
    fc.property(sealed, change, (session, f) => {
      const tampered = f(session);
      fc.pre(tampered !== session);
      assert.equal(sealer.open('session', tampered), undefined, tampered);
    }),
    { numRuns: 1000 },
  );
});

test('a session cookie opens only for the route it was issued for, and a tampered one never', () => {
  const route = (host: string, uid: string, id: string) => ({ host, workspace: { uid, id } }) as unknown as Route;
  const read = createSessionReader(sealer);
  fc.assert(
    fc.property(fc.constantFrom('a.ws.test', 'b.ws.test'), fc.constantFrom('u1', 'u2'), fc.constantFrom('41', '42'), fc.nat(), (host, uid, id, i) => {
      const s: SessionData = { h: 'a.ws.test', u: 'u1', w: '42', sub: 'gid://gitlab/User/1', at: 'tok', rt: 'rt', ate: later(), exp: later() };
      const cookie = sealSession(sealer, s);
      const r = route(host, uid, id);
      const same = host === s.h && uid === s.u && id === s.w;
      assert.equal(read(cookie, r) !== undefined, same);
      const at = i % cookie.length;
      const tampered = cookie.slice(0, at) + (cookie[at] === 'A' ? 'B' : 'A') + cookie.slice(at + 1);
      assert.equal(read(tampered, r), undefined);
    }),
    runs,
  );
});

test('Host parsing never throws, and what it accepts is a plain hostname or an IPv6 literal (safe to log and route)', () => {
  const hostish = fc.string({ unit: fc.constantFrom('a', 'Z', '0', '9', '.', '-', ':', '[', ']', '_', ' ', '/', '@', '%', 'é', '\0'), maxLength: 70 });
  fc.assert(
    fc.property(fc.oneof(headerText, hostish, fc.constant(undefined)), (header) => {
      const h = parseHost(header);
      if (h === undefined) return assert.ok(header === undefined || header === '');
      if (h === 'invalid') return;
      assert.equal(h.authority, header!.toLowerCase());
      assert.ok(h.authority.length <= 300);
      assert.ok(/^[a-z0-9.-]+$/.test(h.hostname) || /^[0-9a-f:.]+$/.test(h.hostname), h.hostname);
      assert.ok(!h.hostname.endsWith('.'));
    }),
    { numRuns: 2000 },
  );
});

test('Host parsing round trip: any DNS name with any port reads back as that name, lowercased', () => {
  const label = fc.stringMatching(/^[A-Za-z0-9]([A-Za-z0-9-]{0,20})?$/);
  fc.assert(
    fc.property(fc.array(label, { minLength: 1, maxLength: 5 }), fc.option(fc.integer({ min: 0, max: 65535 })), fc.boolean(), (labels, port, dot) => {
      const name = labels.join('.') + (dot ? '.' : '');
      const h = parseHost(port === null ? name : `${name}:${port}`);
      assert.ok(typeof h === 'object');
      assert.equal(h.hostname, labels.join('.').toLowerCase());
    }),
    runs,
  );
});

const fakeRequest = (url: string, hosts: string[]): IncomingMessage =>
  ({ url, rawHeaders: hosts.flatMap((h) => ['Host', h]), headers: hosts.length ? { host: hosts[0] } : {} }) as unknown as IncomingMessage;

test('two Host headers are refused, whatever they say', () => {
  fc.assert(
    fc.property(fc.array(fc.oneof(headerText, fc.constant('a.workspaces.test')), { minLength: 2, maxLength: 4 }), (hosts) => {
      assert.equal(hostOf(fakeRequest('/', hosts)), 'invalid');
    }),
    runs,
  );
});

test('request targets: never throws; accepted targets end up in origin form (a path); another authority is refused', () => {
  const host = parseHost('3000-ws.workspaces.test:8080') as Exclude<ReturnType<typeof parseHost>, 'invalid' | undefined>;
  const target = fc.oneof(
    headerText,
    fc.webUrl({ withQueryParameters: true, withFragments: true }),
    fc.tuple(fc.constantFrom('http', 'HTTPS', 'http'), fc.constantFrom('3000-ws.workspaces.test:8080', '3000-WS.workspaces.test:8080', 'evil.test:8080',
      '3000-ws.workspaces.test', 'user@3000-ws.workspaces.test:8080', '[::1]:8080', ''), fc.webPath(), fc.string({ maxLength: 20 }))
      .map(([s, a, p, q]) => `${s}://${a}${p}${q}`),
  );
  fc.assert(
    fc.property(target, (url) => {
      const req = fakeRequest(url, ['3000-ws.workspaces.test:8080']);
      const result = toOriginForm(req, host, 'http');
      if (result !== 'ok') return assert.equal(req.url, url, 'a refused target is left as it was');
      assert.ok(req.url!.startsWith('/'), req.url);
      if (!url.startsWith('/') && url !== '*') {
        const authority = /^https?:\/\/([^/?#]*)/i.exec(url)![1]!.toLowerCase();
        assert.equal(authority, '3000-ws.workspaces.test:8080', 'only the Host header authority is taken');
      }
    }),
    { numRuns: 1000 },
  );
});

test('return paths: never throw, always a path on the same host, bounded, and a plain path comes back unchanged', () => {
  fc.assert(
    fc.property(fc.oneof(headerText, fc.webPath(), fc.string({ unit: fc.constantFrom('/', '\\', 'a', '?', '%', '#'), maxLength: 30 }),
      fc.string({ minLength: MAX_RETURN_PATH - 5, maxLength: MAX_RETURN_PATH + 50 }).map((s) => `/${s}`)), (url) => {
      const p = returnPathOf(url);
      assert.ok(p.startsWith('/'));
      assert.ok(p === '/' || (p[1] !== '/' && p[1] !== '\\'), p);
      assert.ok(p.length <= MAX_RETURN_PATH);
      // The redirect target is built as `${protocol}://${authority}${path}`: it must stay on that host.
      assert.equal(new URL(`http://a.workspaces.test${p}`).host, 'a.workspaces.test');
    }),
    { numRuns: 1000 },
  );
  fc.assert(
    fc.property(fc.webPath().filter((p) => p.startsWith('/') && !/^\/[/\\]/.test(p)), (p) => assert.equal(returnPathOf(p), p)),
    runs,
  );
});

test('the path of a request on the proxy domain or a reserved path never throws, and keeps path and query', () => {
  fc.assert(
    fc.property(fc.oneof(headerText, fc.webPath(), fc.string({ unit: fc.constantFrom('/', '\\', '[', ']', '?', '#', '@', ':', 'a'), maxLength: 20 }),
      fc.webPath().map((p) => `/${p}`)), (raw) => {
      const url = requestPathUrl(raw);
      assert.equal(url.host, 'placeholder.invalid');
    }),
    { numRuns: 1000 },
  );
  fc.assert(
    fc.property(fc.webPath(), fc.webQueryParameters(), (p, q) => {
      const raw = `/${p.replace(/^\/+/, '')}?${q}`;
      const url = requestPathUrl(raw);
      assert.equal(url.pathname + url.search, new URL(`http://x${raw}`).pathname + new URL(`http://x${raw}`).search);
    }),
    runs,
  );
});
