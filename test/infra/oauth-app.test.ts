// The GitLab OAuth application dynamic provider, run for real against the GitLab stand-in over HTTP.
// The provider is taken the way Pulumi's dynamic provider host takes it: the serialized `__provider`
// text the program registered, loaded with require-from-string, `.handler()`.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGitLabStandIn, type GitLabStandIn } from '../support/gitlab-stand-in';
import { runStack, OAUTH_APP_TYPE, SECRET_FIXTURES } from '../support/stack-fixtures';
import type { OAuthAppOuts, OAuthAppProps } from '../../infra/components/oauth-app';
import type * as pulumi from '@pulumi/pulumi';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const requireFromString = require('require-from-string') as (code: string, filename?: string) => { handler(): pulumi.dynamic.ResourceProvider };

type Provider = Required<Pick<pulumi.dynamic.ResourceProvider, 'check' | 'create' | 'read' | 'diff' | 'update' | 'delete'>>;

describe('GitLab OAuth application dynamic provider', () => {
  let gitlab: GitLabStandIn;
  let adminToken: string;
  let userToken: string;
  let serialized: string;
  let provider: Provider;

  before(async () => {
    gitlab = await startGitLabStandIn();
    adminToken = gitlab.createPersonalAccessToken(gitlab.addUser({ username: 'root', password: 'pw', admin: true }));
    userToken = gitlab.createPersonalAccessToken(gitlab.addUser({ username: 'alice', password: 'pw' }));
    const run = await runStack('dev');
    serialized = String(run.find(OAUTH_APP_TYPE).inputs.__provider);
    provider = requireFromString(serialized).handler() as Provider;
  });
  after(async () => {
    await gitlab.close();
  });

  const inputs = (over: Partial<OAuthAppProps> = {}): OAuthAppProps => ({
    gitlabUrl: gitlab.url,
    token: adminToken,
    name: 'GitLab Workspaces Proxy (test)',
    redirectUri: 'https://workspaces.example.com/auth/callback',
    scopes: 'api read_user openid profile',
    confidential: true,
    ...over,
  });

  it('serializes small, self-contained and without any token', () => {
    assert.ok(serialized.length < 60_000, `serialized provider is ${serialized.length} bytes`);
    assert.match(serialized, /require\(["']@gitbeaker\/rest["']\)/);
    assert.ok(!serialized.includes(SECRET_FIXTURES['gitlab-workspaces:gitlabAdminToken'] as string));
    assert.doesNotMatch(serialized, /this\.#/, 'no private class fields');
    for (const m of ['check', 'diff', 'create', 'read', 'update', 'delete'] as const) assert.equal(typeof provider[m], 'function', m);
  });

  it('check normalizes scopes and reports bad inputs by property', async () => {
    const ok = await provider.check({}, inputs({ scopes: 'profile openid read_user api api' }));
    assert.deepEqual(ok.failures, []);
    assert.equal(ok.inputs.scopes, 'api openid profile read_user');
    const bad = await provider.check({}, inputs({ redirectUri: 'not a url', name: ' ', scopes: '' }));
    assert.deepEqual(bad.failures?.map((f) => f.property).sort(), ['name', 'redirectUri', 'scopes']);
  });

  it('creates the confidential app, reads it back, replaces on change and deletes it', async () => {
    const checked = (await provider.check({}, inputs())).inputs as OAuthAppProps;
    const created = await provider.create(checked);
    const outs = created.outs as OAuthAppOuts;
    const app = gitlab.applications().find((a) => String(a.id) === created.id);
    assert.ok(app, 'the app exists in GitLab');
    assert.equal(app.name, 'GitLab Workspaces Proxy (test)');
    assert.deepEqual(app.redirectUris, ['https://workspaces.example.com/auth/callback']);
    assert.deepEqual([...app.scopes].sort(), ['api', 'openid', 'profile', 'read_user']);
    assert.equal(app.confidential, true);
    assert.equal(outs.clientId, app.clientId);
    assert.equal(outs.clientSecret, app.clientSecret);
    assert.equal(outs.applicationId, created.id);

    const read = await provider.read(created.id, outs);
    assert.equal(read.id, created.id);
    assert.equal((read.props as OAuthAppOuts).clientSecret, outs.clientSecret, 'secret kept (GitLab never shows it again)');
    assert.equal((read.props as OAuthAppOuts).redirectUri, checked.redirectUri);

    assert.equal((await provider.diff(created.id, outs, checked)).changes, false);
    for (const [key, value] of [['name', 'Other'], ['redirectUri', 'https://other.example.com/auth/callback'], ['scopes', 'api openid']] as const) {
      const d = await provider.diff(created.id, outs, { ...checked, [key]: value });
      assert.equal(d.changes, true, key);
      assert.deepEqual(d.replaces, [key]);
      assert.equal(d.deleteBeforeReplace, false, 'new app first, then the old one goes');
    }
    // A rotated admin token updates in place, without touching GitLab.
    const rotated = gitlab.createPersonalAccessToken(gitlab.addUser({ username: 'root2', password: 'pw', admin: true }));
    const tokenDiff = await provider.diff(created.id, outs, { ...checked, token: rotated });
    assert.deepEqual([tokenDiff.changes, tokenDiff.replaces], [true, []]);
    gitlab.resetCounts();
    const updated = await provider.update(created.id, outs, { ...checked, token: rotated });
    assert.equal((updated.outs as OAuthAppOuts).token, rotated);
    assert.equal(gitlab.count('applications'), 0);

    await provider.delete(created.id, updated.outs as OAuthAppOuts);
    assert.equal(gitlab.applications().some((a) => String(a.id) === created.id), false);
    // Deleting what is already gone succeeds (someone removed it by hand).
    await provider.delete(created.id, updated.outs as OAuthAppOuts);
  });

  it('detects an app deleted outside Pulumi (read returns no id, so it is recreated)', async () => {
    const created = await provider.create((await provider.check({}, inputs({ name: 'drift' }))).inputs);
    const res = await fetch(`${gitlab.url}/api/v4/applications/${created.id}`, { method: 'DELETE', headers: { 'PRIVATE-TOKEN': adminToken } });
    assert.equal(res.status, 204);
    const read = await provider.read(created.id, created.outs);
    assert.equal(read.id, undefined);
  });

  it('fails with a clear message, and no token, when the token lacks admin rights', async () => {
    const before = gitlab.applications().length;
    await assert.rejects(provider.create(inputs({ token: userToken })), (err: Error) => {
      assert.match(err.message, /403/);
      assert.match(err.message, /must belong to an administrator/);
      assert.match(err.message, /oauth\.mode: provided/);
      assert.ok(!err.message.includes(userToken));
      return true;
    });
    assert.equal(gitlab.applications().length, before);
    await assert.rejects(provider.read('1', { ...inputs({ token: userToken }), applicationId: '1', clientId: 'x', clientSecret: 'y' }), /administrator/);
  });

  it('fails clearly on a revoked token', async () => {
    const t = gitlab.createPersonalAccessToken(gitlab.addUser({ username: 'root3', password: 'pw', admin: true }));
    gitlab.revokeToken(t);
    await assert.rejects(provider.create(inputs({ token: t })), (err: Error) => /401/.test(err.message) && /revoked or expired/.test(err.message) && !err.message.includes(t));
  });
});
