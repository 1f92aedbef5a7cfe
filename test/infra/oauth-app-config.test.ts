// The OAuth-app dynamic provider with the stack config of the running operation, as Pulumi's dynamic
// provider host hands it over (`configure` with the whole stack config, pulumi/pulumi#17229/#17697):
// a rotated admin token for refresh and destroy, and a GitLab behind an internal CA. Run for real
// against the GitLab stand-in over HTTP and over HTTPS signed by a private CA.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGitLabStandIn, type GitLabStandIn } from '../support/gitlab-stand-in';
import { makePrivateCa, type PrivateCa } from '../support/private-ca';
import { runStack, OAUTH_APP_TYPE } from '../support/stack-fixtures';
import type { OAuthAppOuts, OAuthAppProps } from '../../infra/components/oauth-app';
import type * as pulumi from '@pulumi/pulumi';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const requireFromString = require('require-from-string') as (code: string) => { handler(): pulumi.dynamic.ResourceProvider };
// The Config class the dynamic provider host builds from the engine's Configure request.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Config } = require('@pulumi/pulumi/cmd/dynamic-provider/config.js') as {
  Config: new (raw: Record<string, string>, project: string) => pulumi.dynamic.Config;
};

type Provider = Required<Pick<pulumi.dynamic.ResourceProvider, 'configure' | 'check' | 'create' | 'read' | 'delete'>>;

let serialized: string;
/** A fresh provider, as a new `pulumi` process deserializes it, configured with this stack config. */
async function providerWith(config: Record<string, string> | undefined): Promise<Provider> {
  const p = requireFromString(serialized).handler() as Provider;
  if (config) await p.configure({ config: new Config(config, 'gitlab-workspaces') });
  return p;
}

before(async () => {
  serialized = String((await runStack('dev')).find(OAUTH_APP_TYPE).inputs.__provider);
});

describe('OAuth app provider: a rotated admin token', () => {
  let gitlab: GitLabStandIn;
  before(async () => {
    gitlab = await startGitLabStandIn();
  });
  after(() => gitlab.close());

  it('refresh (read) and destroy (delete) use the token configured now, not the revoked one in the state', async () => {
    const root = gitlab.addUser({ username: 'root', password: 'pw', admin: true });
    const oldToken = gitlab.createPersonalAccessToken(root);
    const creator = await providerWith({ 'gitlab-workspaces:gitlabAdminToken': oldToken });
    const inputs = (await creator.check({}, {
      gitlabUrl: gitlab.url, token: oldToken, name: 'rotation', redirectUri: 'https://w.example.com/auth/callback', scopes: 'api', confidential: true,
    } satisfies OAuthAppProps)).inputs as OAuthAppProps;
    const created = await creator.create(inputs);
    const state = created.outs as OAuthAppOuts;
    assert.equal(state.token, oldToken);

    // The admin rotates the token: the old one is revoked, the stack config holds the new one.
    gitlab.revokeToken(oldToken);
    const newToken = gitlab.createPersonalAccessToken(root);

    // What happened before: only the saved state's token, so refresh and destroy fail with 401.
    const stale = await providerWith(undefined);
    await assert.rejects(stale.read(created.id, state), /401/);

    const current = await providerWith({ 'gitlab-workspaces:gitlabAdminToken': newToken });
    const read = await current.read(created.id, state);
    assert.equal(read.id, created.id);
    await current.delete(created.id, state);
    assert.equal(gitlab.applications().some((a) => String(a.id) === created.id), false, 'the app did not leak');
  });
});

describe('OAuth app provider: GitLab behind an internal CA', () => {
  let ca: PrivateCa;
  let other: PrivateCa;
  let gitlab: GitLabStandIn;
  let token: string;
  before(async () => {
    ca = makePrivateCa('GitLab Internal CA');
    other = makePrivateCa('Some Other CA');
    gitlab = await startGitLabStandIn({ tls: { key: ca.keyPem, cert: ca.certPem } });
    token = gitlab.createPersonalAccessToken(gitlab.addUser({ username: 'root', password: 'pw', admin: true }));
  });
  after(async () => {
    await gitlab.close();
    ca.cleanup();
    other.cleanup();
  });

  const props = (over: Partial<OAuthAppProps> = {}): OAuthAppProps => ({
    gitlabUrl: gitlab.url, token, name: 'ca', redirectUri: 'https://w.example.com/auth/callback', scopes: 'api', confidential: true, ...over,
  });

  it('fails with a message naming gitlabCaBundle when GitLab\'s CA is not trusted (nothing is created)', async () => {
    assert.match(gitlab.url, /^https:/);
    const before = gitlab.applications().length;
    for (const bundle of [undefined, other.caPem]) {
      const p = await providerWith(bundle ? { 'gitlab-workspaces:gitlabCaBundle': bundle } : {});
      await assert.rejects(p.create(props()), (err: Error) => {
        assert.match(err.message, /TLS certificate is not trusted/);
        assert.match(err.message, /gitlab-workspaces:gitlabCaBundle/);
        assert.ok(!err.message.includes(token));
        return true;
      });
    }
    assert.equal(gitlab.applications().length, before);
  });

  it('creates, reads and deletes with the bundle from the stack config', async () => {
    const p = await providerWith({ 'gitlab-workspaces:gitlabCaBundle': ca.caPem, 'gitlab-workspaces:gitlabAdminToken': token });
    const created = await p.create(props());
    assert.ok(gitlab.applications().some((a) => String(a.id) === created.id));
    assert.equal((await p.read(created.id, created.outs)).id, created.id);
    await p.delete(created.id, created.outs);
    assert.equal(gitlab.applications().some((a) => String(a.id) === created.id), false);
  });

  it('uses the bundle saved as an input when the config has none (a destroy without the stack file)', async () => {
    const p = await providerWith({});
    const created = await p.create(props({ caBundle: ca.caPem }));
    await p.delete(created.id, created.outs as OAuthAppOuts);
    assert.equal(gitlab.applications().some((a) => String(a.id) === created.id), false);
  });
});
