// The project-access-token dynamic provider (the proxy's SSH service token), run for real against the GitLab
// stand-in over HTTP: the provider is declared by a program under mocks, taken as Pulumi's dynamic provider
// host takes it (the serialized `__provider` text, loaded with require-from-string) and driven through
// check/create/read/diff/update/delete. The token it makes must be able to ask the workspace owner query.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type * as pulumi from '@pulumi/pulumi';
import { AccessLevel, startGitLabStandIn, type GitLabProject, type GitLabStandIn } from '../support/gitlab-stand-in';
import { runPulumiProgram } from '../support/pulumi-mocks';
import { makePrivateCa, type PrivateCa } from '../support/private-ca';
import {
  GitLabProjectAccessToken, type ProjectAccessTokenOuts, type ProjectAccessTokenProps,
} from '../../infra/components/project-access-token';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const requireFromString = require('require-from-string') as (code: string, filename?: string) => { handler(): pulumi.dynamic.ResourceProvider };
// The Config class the dynamic provider host builds from the engine's Configure request.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Config } = require('@pulumi/pulumi/cmd/dynamic-provider/config.js') as {
  Config: new (raw: Record<string, string>, project: string) => pulumi.dynamic.Config;
};
type Provider = Required<Pick<pulumi.dynamic.ResourceProvider, 'check' | 'create' | 'read' | 'diff' | 'update' | 'delete'>>;

const TYPE = 'pulumi-nodejs:dynamic/gitlab:ProjectAccessToken';
const FIXTURE_TOKEN = 'glpat-fixture-maintainer-token-0009';
const day = (n: number) => new Date(Date.now() + n * 86_400_000).toISOString().slice(0, 10);

describe('GitLab project access token dynamic provider', () => {
  let gitlab: GitLabStandIn;
  let project: GitLabProject;
  let maintainerToken: string;
  let developerToken: string;
  let serialized: string;
  let provider: Provider;

  before(async () => {
    gitlab = await startGitLabStandIn();
    project = gitlab.addProject({ path: 'platform/workspaces-agent' });
    const maintainer = gitlab.addUser({ username: 'mia', password: 'pw' });
    const developer = gitlab.addUser({ username: 'dev', password: 'pw' });
    gitlab.setMember(project, maintainer, AccessLevel.maintainer);
    gitlab.setMember(project, developer, AccessLevel.developer);
    maintainerToken = gitlab.createPersonalAccessToken(maintainer, { scopes: ['api'] });
    developerToken = gitlab.createPersonalAccessToken(developer, { scopes: ['api'] });
    const run = await runPulumiProgram(() => {
      const t = new GitLabProjectAccessToken('ssh-service-token', {
        gitlabUrl: 'https://gitlab.example.com', token: FIXTURE_TOKEN, project: 'platform/workspaces-agent', name: 'workspaces-proxy',
      });
      return { expiresAt: t.expiresAt };
    }, { stack: 'test' });
    const declared = run.find(TYPE);
    serialized = String(declared.inputs.__provider);
    provider = requireFromString(serialized).handler() as Provider;
    assert.deepEqual([...(declared.options.additionalSecretOutputs ?? [])].sort(), ['token', 'value']);
    assert.ok(declared.secretPaths.includes('token'), 'the API token is a secret input');
  });
  after(async () => {
    await gitlab.close();
  });

  const inputs = (over: Partial<ProjectAccessTokenProps> = {}): ProjectAccessTokenProps => ({
    gitlabUrl: gitlab.url, token: maintainerToken, project: project.path, name: 'workspaces-proxy', scopes: 'read_api',
    accessLevel: 40, lifetimeDays: 365, rotateBeforeDays: 30, ...over,
  });
  const checked = async (over: Partial<ProjectAccessTokenProps> = {}) => (await provider.check({}, inputs(over))).inputs as ProjectAccessTokenProps;

  it('serializes small and without the token', () => {
    assert.ok(serialized.length < 60_000, `serialized provider is ${serialized.length} bytes`);
    assert.match(serialized, /require\(["']@gitbeaker\/rest["']\)/);
    assert.ok(!serialized.includes(FIXTURE_TOKEN));
    assert.doesNotMatch(serialized, /this\.#/);
  });

  it('check names every bad input', async () => {
    const bad = await provider.check({}, inputs({ gitlabUrl: 'nope', token: '', project: ' ', name: '', scopes: '', accessLevel: 45, lifetimeDays: 400, rotateBeforeDays: 0 }));
    assert.deepEqual(bad.failures?.map((f) => f.property).sort(),
      ['accessLevel', 'gitlabUrl', 'lifetimeDays', 'name', 'project', 'rotateBeforeDays', 'scopes', 'token']);
    assert.deepEqual((await provider.check({}, inputs({ rotateBeforeDays: 365 }))).failures?.map((f) => f.property), ['rotateBeforeDays']);
  });

  it('creates a Maintainer read_api token that may ask who owns the agent\'s workspaces; reads, diffs, deletes it', async () => {
    const owner = gitlab.addUser({ username: 'alice', password: 'pw' });
    gitlab.setWorkspaceOwner(77, owner, { agentProject: project });
    const created = await provider.create(await checked());
    const outs = created.outs as ProjectAccessTokenOuts;
    assert.match(outs.value, /^glpat-/);
    assert.equal(outs.expiresAt, day(365));
    const inGitLab = gitlab.projectAccessTokens(project).find((t) => String(t.id) === created.id);
    assert.deepEqual([inGitLab?.accessLevel, inGitLab?.scopes, inGitLab?.revoked], [40, ['read_api'], false]);

    // What the proxy will do with it: the owner query of docs/contract.md §5.
    const res = await fetch(`${gitlab.url}/api/graphql`, {
      method: 'POST',
      headers: { authorization: `Bearer ${outs.value}`, 'content-type': 'application/json' },
      body: JSON.stringify({ query: 'query { workspace(id: "gid://gitlab/RemoteDevelopment::Workspace/77") { user { id } } }' }),
    });
    assert.equal(((await res.json()) as { data: { workspace: { user: { id: string } } } }).data.workspace.user.id, owner.gid);

    const read = await provider.read(created.id, outs);
    assert.equal(read.id, created.id);
    assert.equal((read.props as ProjectAccessTokenOuts).value, outs.value, 'the secret is kept (GitLab never shows it again)');

    const same = await provider.diff(created.id, outs, await checked());
    assert.equal(same.changes, false);
    for (const [key, value] of [['name', 'other'], ['scopes', 'api'], ['accessLevel', 30], ['project', 'x/y']] as const) {
      const d = await provider.diff(created.id, outs, await checked({ [key]: value }));
      assert.deepEqual([d.changes, d.replaces, d.deleteBeforeReplace], [true, [key], false], key);
    }
    // A new API token or rotation settings update in place, without GitLab.
    gitlab.resetCounts();
    const d = await provider.diff(created.id, outs, await checked({ rotateBeforeDays: 10 }));
    assert.deepEqual([d.changes, d.replaces], [true, []]);
    const updated = await provider.update(created.id, outs, await checked({ rotateBeforeDays: 10 }));
    assert.equal((updated.outs as ProjectAccessTokenOuts).rotateBeforeDays, 10);
    assert.equal(gitlab.count('project_access_tokens'), 0);

    await provider.delete(created.id, outs);
    assert.equal(gitlab.projectAccessTokens(project).find((t) => String(t.id) === created.id)?.revoked, true);
    await provider.delete('99999', outs); // already gone: fine
  });

  it('rotation: inside the window before expiry the token is replaced new-first; the old one keeps working until deleted', async () => {
    const created = await provider.create(await checked({ lifetimeDays: 40 }));
    const outs = created.outs as ProjectAccessTokenOuts;
    assert.equal((await provider.diff(created.id, outs, await checked({ lifetimeDays: 40 }))).changes, false, '40 days left, window is 30');
    // The same token 15 days later: 25 days left, inside the 30-day window.
    const later = { ...outs, expiresAt: day(25) };
    const due = await provider.diff(created.id, later, await checked({ lifetimeDays: 40 }));
    assert.deepEqual([due.changes, due.replaces, due.deleteBeforeReplace], [true, ['expiresAt'], false]);
    // Pulumi's order for a create-before-delete replacement: create the new one, then delete the old one.
    const next = await provider.create(await checked({ lifetimeDays: 40 }));
    const nextOuts = next.outs as ProjectAccessTokenOuts;
    for (const value of [outs.value, nextOuts.value]) {
      const me = await fetch(`${gitlab.url}/api/v4/user`, { headers: { authorization: `Bearer ${value}` } });
      assert.equal(me.status, 200, 'both tokens valid while the proxy switches over');
    }
    await provider.delete(created.id, outs);
    assert.equal((await fetch(`${gitlab.url}/api/v4/user`, { headers: { authorization: `Bearer ${outs.value}` } })).status, 401);
    assert.equal((await fetch(`${gitlab.url}/api/v4/user`, { headers: { authorization: `Bearer ${nextOuts.value}` } })).status, 200);
    await provider.delete(next.id, nextOuts);
  });

  it('a token revoked in GitLab reads as gone (recreated by the next up)', async () => {
    const created = await provider.create(await checked());
    const res = await fetch(`${gitlab.url}/api/v4/projects/${project.id}/access_tokens/${created.id}`, {
      method: 'DELETE', headers: { authorization: `Bearer ${maintainerToken}` },
    });
    assert.equal(res.status, 204);
    assert.equal((await provider.read(created.id, created.outs)).id, undefined);
  });

  it('fails clearly, without the token, for a Developer or a revoked token', async () => {
    await assert.rejects(provider.create(await checked({ token: developerToken })), (err: Error) => {
      assert.match(err.message, /does not have permission to create project access token/);
      assert.ok(!err.message.includes(developerToken));
      return true;
    });
    const revoked = gitlab.createPersonalAccessToken(gitlab.addUser({ username: 'gone', password: 'pw' }), { scopes: ['api'] });
    gitlab.revokeToken(revoked);
    await assert.rejects(provider.create(await checked({ token: revoked })), (err: Error) => /401/.test(err.message) && !err.message.includes(revoked));
  });
});

describe('project access token provider: the stack\'s current token and a GitLab behind an internal CA', () => {
  // configure() hands the provider the stack config, as Pulumi's dynamic provider host does: the current
  // API token (by tokenConfigKey) and gitlabCaBundle win over the ones saved in the state.
  const KEY = 'gitlab-workspaces:gitlabApiToken';
  let ca: PrivateCa;
  let gitlab: GitLabStandIn;
  let project: GitLabProject;
  let token: string;
  let serialized: string;
  const provider = async (config: Record<string, string> | undefined): Promise<Provider> => {
    const p = requireFromString(serialized).handler() as Provider & Required<Pick<pulumi.dynamic.ResourceProvider, 'configure'>>;
    if (config) await p.configure({ config: new Config(config, 'gitlab-workspaces') } as never);
    return p;
  };
  before(async () => {
    ca = makePrivateCa();
    gitlab = await startGitLabStandIn({ tls: { key: ca.keyPem, cert: ca.certPem } });
    project = gitlab.addProject({ path: 'platform/workspaces-agent' });
    const maintainer = gitlab.addUser({ username: 'mia', password: 'pw' });
    gitlab.setMember(project, maintainer, AccessLevel.maintainer);
    token = gitlab.createPersonalAccessToken(maintainer, { scopes: ['api'] });
    const run = await runPulumiProgram(() => {
      new GitLabProjectAccessToken('t', { gitlabUrl: 'https://gitlab.example.com', token: FIXTURE_TOKEN, project: 'p', name: 'n' });
    }, { stack: 'test' });
    serialized = String(run.find(TYPE).inputs.__provider);
  });
  after(async () => {
    await gitlab.close();
    ca.cleanup();
  });
  const props = (over: Partial<ProjectAccessTokenProps> = {}): ProjectAccessTokenProps => ({
    gitlabUrl: gitlab.url, token, tokenConfigKey: KEY, project: project.path, name: 'workspaces-proxy', scopes: 'read_api',
    accessLevel: 40, lifetimeDays: 365, rotateBeforeDays: 30, ...over,
  });

  it('without the bundle: a clear error naming gitlabCaBundle, without the token', async () => {
    await assert.rejects((await provider({ [KEY]: token })).create(props()), (err: Error) => {
      assert.match(err.message, /TLS certificate is not trusted.*gitlab-workspaces:gitlabCaBundle/);
      assert.ok(!err.message.includes(token));
      return true;
    });
  });

  it('creates with the configured bundle, and reads and revokes with the configured token after the saved one is revoked', async () => {
    const p = await provider({ [KEY]: token, 'gitlab-workspaces:gitlabCaBundle': ca.caPem });
    const stale = gitlab.createPersonalAccessToken(gitlab.addUser({ username: 'old', password: 'pw', admin: true }), { scopes: ['api'] });
    const created = await p.create(props({ token: stale }));
    gitlab.revokeToken(stale);
    const outs = created.outs as ProjectAccessTokenOuts;
    assert.equal((await p.read(created.id, outs)).id, created.id);
    await p.delete(created.id, outs);
    assert.equal(gitlab.projectAccessTokens(project).find((x) => String(x.id) === created.id)?.revoked, true);
  });

  it('uses the bundle saved as an input when the config has none', async () => {
    const p = await provider({});
    const created = await p.create(props({ caBundle: ca.caPem }));
    await p.delete(created.id, created.outs as ProjectAccessTokenOuts);
    assert.equal(gitlab.projectAccessTokens(project).find((x) => String(x.id) === created.id)?.revoked, true);
  });
});
