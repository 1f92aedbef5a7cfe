import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSealer } from '../../proxy-image/src/auth/crypto';
import { cookieNames, parseCookies, serializeCookie, stripProxyCookies } from '../../proxy-image/src/auth/cookies';
import { returnPathOf } from '../../proxy-image/src/http/login';
import { createSessionReader, sealSession } from '../../proxy-image/src/auth/session';
import { parseHost, isInternalHost } from '../../proxy-image/src/http/host';

const key = 'unit-test-signing-key-0123456789';

test('sealed values open only with the same key, purpose and before expiry', () => {
  const a = createSealer(key);
  const token = a.seal('session', { x: 1 }, Date.now() + 60_000);
  assert.deepEqual(a.open('session', token), { x: 1 });
  assert.equal(createSealer(`${key}-other`).open('session', token), undefined, 'other key');
  assert.equal(a.open('handoff', token), undefined, 'other purpose');
  assert.equal(a.open('session', token, Date.now() + 120_000), undefined, 'expired');
  const expired = a.seal('session', { x: 1 }, Date.now() - 1);
  assert.equal(a.open('session', expired), undefined);
});

test('a sealed value is confidential and any flipped byte is refused', () => {
  const s = createSealer(key);
  const token = s.seal('session', { secret: 'glpat-very-secret' }, Date.now() + 60_000);
  assert.ok(!Buffer.from(token, 'base64url').toString('latin1').includes('glpat'), 'payload is encrypted');
  const raw = Buffer.from(token, 'base64url');
  for (let i = 0; i < raw.length; i += 7) {
    const copy = Buffer.from(raw);
    copy[i] = copy[i]! ^ 0x01;
    assert.equal(s.open('session', copy.toString('base64url')), undefined, `byte ${i}`);
  }
  for (const junk of ['', 'x', '%%%', 'a'.repeat(10_000), token.slice(0, 20), `${token}AA`]) {
    assert.equal(s.open('session', junk), undefined);
  }
});

test('fingerprints are keyed', () => {
  assert.equal(createSealer(key).fingerprint('v'), createSealer(key).fingerprint('v'));
  assert.notEqual(createSealer(key).fingerprint('v'), createSealer(`${key}x`).fingerprint('v'));
});

test('cookies: host-only attributes, __Host- names on https', () => {
  const https = cookieNames(true);
  assert.equal(https.session, '__Host-wsp-session');
  const line = serializeCookie(https.session, 'v', { secure: true, maxAge: 10 });
  assert.match(line, /; HttpOnly/);
  assert.match(line, /; SameSite=Lax/);
  assert.match(line, /; Secure/);
  assert.match(line, /; Path=\//);
  assert.doesNotMatch(line, /domain/i);
  assert.doesNotMatch(serializeCookie('wsp-session', 'v', { secure: false }), /Secure|domain/i);
});

test('the proxy strips its own cookies and only them', () => {
  const names = cookieNames(false);
  assert.equal(stripProxyCookies('a=1; wsp-session=x; b=2; wsp-login=y; wsp-oauth-abc=z; __Host-wsp-session=q', names), 'a=1; b=2');
  assert.equal(stripProxyCookies('wsp-session=x', names), undefined);
  assert.equal(stripProxyCookies('my-wsp-session=1; x=2', names), 'my-wsp-session=1; x=2');
  assert.equal(stripProxyCookies(undefined, names), undefined);
  const parsed = parseCookies('a=1; ; =x; b="q"; a=2; bad');
  assert.equal(parsed.get('a'), '1');
  assert.equal(parsed.get('b'), 'q');
  assert.equal(parsed.size, 2);
});

test('return paths stay on the same host', () => {
  assert.equal(returnPathOf('/x/y?a=1&b=2'), '/x/y?a=1&b=2');
  assert.equal(returnPathOf('//evil.example/p?q=1'), '/evil.example/p?q=1');
  assert.equal(returnPathOf('http://evil.example/'), '/');
  assert.equal(returnPathOf('/\\evil.example'), '/evil.example');
  assert.equal(returnPathOf(undefined), '/');
});

test('Host parsing', () => {
  assert.deepEqual(parseHost('3000-X.Example.dev:443'), { authority: '3000-x.example.dev:443', hostname: '3000-x.example.dev' });
  assert.deepEqual(parseHost('[::1]:80'), { authority: '[::1]:80', hostname: '::1' });
  for (const bad of ['a b', 'x/y', 'x:port', 'ex ample.com:80', '[::1', 'a..b', '-x.com', 'x'.repeat(400), 'host:123456']) {
    assert.equal(parseHost(bad), 'invalid', bad);
  }
  assert.equal(parseHost(undefined), undefined);
  assert.ok(isInternalHost(undefined));
  assert.ok(isInternalHost(parseHost('10.0.0.5:9876') as never));
  assert.ok(isInternalHost(parseHost('localhost') as never));
  assert.ok(!isInternalHost(parseHost('3000-x.example.dev') as never));
});

test('session reader: binding to host, Service uid and workspace id; expiry checked on every read', () => {
  const sealer = createSealer(key);
  let now = Date.now();
  const read = createSessionReader(sealer, { now: () => now });
  const workspace = { name: 'w', namespace: 'n', uid: 'uid-1', id: '42', backendHost: '10.0.0.1', hosts: ['3000-w.z'] };
  const route = { host: '3000-w.z', workspace, target: { host: '10.0.0.1', port: 3000 } };
  const cookie = sealSession(sealer, { h: '3000-w.z', u: 'uid-1', w: '42', sub: 'u', at: 'tok', exp: now + 1000 });
  assert.equal(read(cookie, route)?.at, 'tok');
  assert.equal(read(cookie, route)?.at, 'tok', 'memoised read');
  assert.equal(read(cookie, { ...route, host: '3001-w.z' }), undefined, 'other host');
  assert.equal(read(cookie, { ...route, workspace: { ...workspace, uid: 'uid-2' } }), undefined, 'Service re-created');
  assert.equal(read(cookie, { ...route, workspace: { ...workspace, id: '43' } }), undefined, 'other workspace id');
  now += 2000;
  assert.equal(read(cookie, route), undefined, 'expired, even though memoised');
});
