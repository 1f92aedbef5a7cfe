// The GitLab stand-in's OAuth/OIDC behaviour, checked with openid-client as the proxy will use it:
// PKCE enforced, codes single-use, refresh tokens rotated, REST and Applications API as GitLab answers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as client from 'openid-client';
import { startGitLabStandIn, type GitLabStandIn, type GitLabUser } from '../support/gitlab-stand-in';

const redirectUri = 'http://workspaces.test:9876/auth/callback';
let gitlab: GitLabStandIn;
let alice: GitLabUser;

before(async () => {
  gitlab = await startGitLabStandIn();
  alice = gitlab.addUser({ username: 'alice', password: 'alice-pw' });
  gitlab.registerOAuthClient({ clientId: 'proxy', clientSecret: 'proxy secret/+=', redirectUris: [redirectUri] });
});
after(() => gitlab.close());

async function config(auth: 'basic' | 'post' = 'basic'): Promise<client.Configuration> {
  const clientAuth = auth === 'basic' ? client.ClientSecretBasic('proxy secret/+=') : client.ClientSecretPost('proxy secret/+=');
  return client.discovery(new URL(gitlab.url), 'proxy', undefined, clientAuth, { execute: [client.allowInsecureRequests] });
}

/** Signs in through the HTML form and follows /oauth/authorize to the redirect back to the client. */
async function loginAndAuthorize(authorizeUrl: URL, username = 'alice', password = 'alice-pw'): Promise<Response> {
  const first = await fetch(authorizeUrl, { redirect: 'manual' });
  assert.equal(first.status, 302);
  const signInUrl = new URL(first.headers.get('location') ?? '', gitlab.url);
  assert.equal(signInUrl.pathname, '/users/sign_in');
  const form = await fetch(signInUrl);
  const page = await form.text();
  assert.match(page, /id="user_login"/);
  assert.match(page, /id="user_password"/);
  const returnTo = /name="return_to" value="([^"]*)"/.exec(page)?.[1]?.replace(/&#38;/g, '&') ?? '';
  const signIn = await fetch(new URL('/users/sign_in', gitlab.url), {
    method: 'POST',
    redirect: 'manual',
    body: new URLSearchParams({ 'user[login]': username, 'user[password]': password, return_to: returnTo }),
  });
  if (signIn.status !== 302) return signIn;
  const cookie = (signIn.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
  const back = await fetch(new URL(signIn.headers.get('location') ?? '', gitlab.url), { redirect: 'manual', headers: { cookie } });
  return back;
}

test('discovery document names GitLab endpoints with the base URL as issuer', async () => {
  const c = await config();
  const meta = c.serverMetadata();
  assert.equal(meta.issuer, gitlab.url);
  assert.equal(meta.authorization_endpoint, `${gitlab.url}/oauth/authorize`);
  assert.equal(meta.token_endpoint, `${gitlab.url}/oauth/token`);
  assert.equal(meta.jwks_uri, `${gitlab.url}/oauth/discovery/keys`);
});

test('full code flow with PKCE, nonce and a signed ID token; userinfo; code is single-use', async () => {
  const c = await config();
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(c, {
    redirect_uri: redirectUri, scope: 'openid profile api read_user', state, nonce,
    code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
  });
  const back = await loginAndAuthorize(url);
  assert.equal(back.status, 302);
  const callback = new URL(back.headers.get('location') ?? '');
  assert.equal(callback.origin + callback.pathname, redirectUri);
  assert.equal(callback.searchParams.get('state'), state);

  const tokens = await client.authorizationCodeGrant(c, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
  const claims = tokens.claims();
  assert.ok(claims);
  assert.equal(claims.sub, String(alice.id));
  assert.equal(claims.nickname, 'alice');
  assert.equal(claims.preferred_username, 'alice');
  assert.equal(claims.nonce, nonce);
  assert.equal(claims.aud, 'proxy');
  assert.ok(tokens.refresh_token);
  assert.equal(tokens.expires_in, 7200);

  const info = await client.fetchUserInfo(c, tokens.access_token, String(alice.id));
  assert.equal(info.preferred_username, 'alice');

  // Replaying the same code fails.
  await assert.rejects(
    client.authorizationCodeGrant(c, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce }),
    (e: unknown) => (e as { error?: string }).error === 'invalid_grant',
  );
});

test('wrong PKCE verifier is refused, and the code is then dead', async () => {
  gitlab.autoLoginAs(alice);
  try {
    const c = await config('post');
    const verifier = client.randomPKCECodeVerifier();
    const url = client.buildAuthorizationUrl(c, {
      redirect_uri: redirectUri, scope: 'openid api', state: 's1',
      code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
    });
    const res = await fetch(url, { redirect: 'manual' });
    assert.equal(res.status, 302);
    const callback = new URL(res.headers.get('location') ?? '');
    await assert.rejects(
      client.authorizationCodeGrant(c, callback, { pkceCodeVerifier: client.randomPKCECodeVerifier(), expectedState: 's1' }),
      (e: unknown) => (e as { error?: string }).error === 'invalid_grant',
    );
    await assert.rejects(
      client.authorizationCodeGrant(c, callback, { pkceCodeVerifier: verifier, expectedState: 's1' }),
      (e: unknown) => (e as { error?: string }).error === 'invalid_grant',
    );
  } finally {
    gitlab.autoLoginAs(null);
  }
});

test('authorize without S256 PKCE, with an unknown client or an unregistered redirect_uri is refused', async () => {
  gitlab.autoLoginAs(alice);
  try {
    const base = new URL('/oauth/authorize', gitlab.url);
    const params = { client_id: 'proxy', redirect_uri: redirectUri, response_type: 'code', scope: 'api', state: 'x' };
    const noPkce = await fetch(`${base}?${new URLSearchParams(params)}`, { redirect: 'manual' });
    assert.equal(noPkce.status, 302);
    const loc = new URL(noPkce.headers.get('location') ?? '');
    assert.equal(loc.searchParams.get('error'), 'invalid_request');
    assert.equal(loc.searchParams.get('state'), 'x');
    assert.equal(loc.searchParams.get('code'), null);

    const plain = await fetch(`${base}?${new URLSearchParams({ ...params, code_challenge: 'abc', code_challenge_method: 'plain' })}`, { redirect: 'manual' });
    assert.equal(new URL(plain.headers.get('location') ?? '').searchParams.get('error'), 'invalid_request');

    const pkce = { code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' };
    const unknownClient = await fetch(`${base}?${new URLSearchParams({ ...params, ...pkce, client_id: 'nope' })}`, { redirect: 'manual' });
    assert.equal(unknownClient.status, 401);
    const badRedirect = await fetch(`${base}?${new URLSearchParams({ ...params, ...pkce, redirect_uri: 'http://evil.test/cb' })}`, { redirect: 'manual' });
    assert.equal(badRedirect.status, 400);
    assert.equal(badRedirect.headers.get('location'), null);
  } finally {
    gitlab.autoLoginAs(null);
  }
});

test('a wrong password shows the form again with an error', async () => {
  const c = await config();
  const url = client.buildAuthorizationUrl(c, {
    redirect_uri: redirectUri, scope: 'api', state: 's',
    code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()), code_challenge_method: 'S256',
  });
  const res = await loginAndAuthorize(url, 'alice', 'wrong');
  assert.equal(res.status, 401);
  assert.match(await res.text(), /Invalid login or password/);
});

test('refresh rotates: new tokens work, the old refresh and access tokens are dead', async () => {
  const c = await config();
  const first = gitlab.issueAccessToken(alice, { clientId: 'proxy' });
  const refreshed = await client.refreshTokenGrant(c, first.refreshToken);
  assert.notEqual(refreshed.access_token, first.accessToken);
  assert.ok(refreshed.refresh_token && refreshed.refresh_token !== first.refreshToken);

  await assert.rejects(client.refreshTokenGrant(c, first.refreshToken), (e: unknown) => (e as { error?: string }).error === 'invalid_grant');
  const oldUse = await fetch(`${gitlab.url}/api/v4/user`, { headers: { authorization: `Bearer ${first.accessToken}` } });
  assert.equal(oldUse.status, 401);
  const newUse = await fetch(`${gitlab.url}/api/v4/user`, { headers: { authorization: `Bearer ${refreshed.access_token}` } });
  assert.equal(newUse.status, 200);
  assert.equal(((await newUse.json()) as { username: string }).username, 'alice');
});

test('short access-token lifetime expires tokens; refresh still works; revoke kills the pair', async () => {
  const c = await config();
  const t = gitlab.issueAccessToken(alice, { clientId: 'proxy' });
  gitlab.expireToken(t.accessToken);
  const expired = await fetch(`${gitlab.url}/api/v4/user`, { headers: { authorization: `Bearer ${t.accessToken}` } });
  assert.equal(expired.status, 401);
  assert.match(await expired.text(), /expired/);

  gitlab.setAccessTokenLifetime(30);
  try {
    const r = await client.refreshTokenGrant(c, t.refreshToken);
    assert.equal(r.expires_in, 30);
    await client.tokenRevocation(c, r.access_token);
    const revoked = await fetch(`${gitlab.url}/api/v4/user`, { headers: { authorization: `Bearer ${r.access_token}` } });
    assert.equal(revoked.status, 401);
    await assert.rejects(client.refreshTokenGrant(c, r.refresh_token ?? ''), (e: unknown) => (e as { error?: string }).error === 'invalid_grant');
  } finally {
    gitlab.setAccessTokenLifetime(7200);
  }
});

test('token endpoint refuses a wrong client secret with 401 invalid_client', async () => {
  const t = gitlab.issueAccessToken(alice, { clientId: 'proxy' });
  const res = await fetch(`${gitlab.url}/oauth/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from('proxy:wrong').toString('base64')}` },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: t.refreshToken }),
  });
  assert.equal(res.status, 401);
  assert.equal(((await res.json()) as { error: string }).error, 'invalid_client');
});

test('consent prompt: Authorize once, then automatic', async () => {
  const g = await startGitLabStandIn({ consent: 'prompt' });
  try {
    const bob = g.addUser({ username: 'bob', password: 'pw' });
    g.registerOAuthClient({ clientId: 'c', clientSecret: 's', redirectUris: [redirectUri] });
    g.autoLoginAs(bob);
    const q = new URLSearchParams({
      client_id: 'c', redirect_uri: redirectUri, response_type: 'code', scope: 'api', state: 'st',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256',
    });
    const page = await fetch(`${g.url}/oauth/authorize?${q}`, { redirect: 'manual' });
    assert.equal(page.status, 200);
    assert.match(await page.text(), /id="authorize"/);
    const approved = await fetch(`${g.url}/oauth/authorize`, { method: 'POST', redirect: 'manual', body: new URLSearchParams([...q, ['decision', 'approve']]) });
    assert.equal(approved.status, 302);
    assert.ok(new URL(approved.headers.get('location') ?? '').searchParams.get('code'));
    const again = await fetch(`${g.url}/oauth/authorize?${q}`, { redirect: 'manual' });
    assert.equal(again.status, 302);
  } finally {
    await g.close();
  }
});

test('Applications API: admin creates, lists and deletes; others get 401/403', async () => {
  const root = gitlab.addUser({ username: 'root', password: 'pw', admin: true });
  const adminToken = gitlab.createPersonalAccessToken(root);
  const userToken = gitlab.createPersonalAccessToken(alice);
  const api = `${gitlab.url}/api/v4/applications`;

  const forbidden = await fetch(api, { method: 'POST', headers: { 'private-token': userToken, 'content-type': 'application/json' }, body: '{}' });
  assert.equal(forbidden.status, 403);
  assert.deepEqual(await forbidden.json(), { message: '403 Forbidden' });
  assert.equal((await fetch(api)).status, 401);

  const created = await fetch(api, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'workspaces', redirect_uri: 'https://ws.example/auth/callback', scopes: 'api read_user openid profile', confidential: true }),
  });
  assert.equal(created.status, 201);
  const app = (await created.json()) as { id: number; application_id: string; secret: string; callback_url: string; confidential: boolean };
  assert.ok(app.application_id && app.secret);
  assert.equal(app.callback_url, 'https://ws.example/auth/callback');
  assert.equal(app.confidential, true);

  const list = (await (await fetch(api, { headers: { 'private-token': adminToken } })).json()) as { id: number; secret?: string }[];
  const listed = list.find((a) => a.id === app.id);
  assert.ok(listed);
  assert.equal(listed.secret, undefined);

  const missing = await fetch(api, { method: 'POST', headers: { 'private-token': adminToken }, body: new URLSearchParams({ name: 'x', scopes: 'api' }) });
  assert.equal(missing.status, 400);

  assert.equal((await fetch(`${api}/${app.id}`, { method: 'DELETE', headers: { 'private-token': adminToken } })).status, 204);
  assert.equal((await fetch(`${api}/${app.id}`, { method: 'DELETE', headers: { 'private-token': adminToken } })).status, 404);
});

test('stop() makes it unreachable, start() serves again on the same port; failWith and counters', async () => {
  const port = gitlab.port;
  await gitlab.stop();
  await assert.rejects(fetch(`${gitlab.url}/.well-known/openid-configuration`));
  await gitlab.start();
  assert.equal(gitlab.port, port);
  assert.equal((await fetch(`${gitlab.url}/.well-known/openid-configuration`)).status, 200);

  gitlab.resetCounts();
  gitlab.failWith(503);
  const failed = await fetch(`${gitlab.url}/api/graphql`, { method: 'POST', body: '{}' });
  assert.equal(failed.status, 503);
  gitlab.failWith(null);
  const ok = await fetch(`${gitlab.url}/api/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ currentUser { id } }' }) });
  assert.deepEqual(await ok.json(), { data: { currentUser: null } });
  assert.equal(gitlab.count('graphql'), 2);
});
