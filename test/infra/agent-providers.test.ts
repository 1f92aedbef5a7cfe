// The GitLab agent's dynamic providers (agent, agent token, repository file, workspaces mapping), run
// for real against the GitLab stand-in over HTTP. Each provider is taken the way Pulumi's dynamic
// provider host takes it: the serialized `__provider` text the program registered (dev stack), loaded
// with require-from-string, `.handler()`, then `configure({ config })` with the stack's config.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGitLabStandIn, type GitLabStandIn, type GitLabUser } from '../support/gitlab-stand-in';
import type { StandInGroup, StandInProject } from '../support/gitlab-stand-in-agents';
import { runStack, AGENT_TYPES, PROXY_TOKEN_TYPE, SECRET_FIXTURES } from '../support/stack-fixtures';
import { makePrivateCa, type PrivateCa } from '../support/private-ca';
import type { AgentOuts, AgentProps } from '../../infra/agent/agent-resource';
import type { ProjectAccessTokenOuts, ProjectAccessTokenProps } from '../../infra/components/project-access-token';
import type { AgentTokenOuts, AgentTokenProps } from '../../infra/agent/agent-token';
import type { RepositoryFileProps } from '../../infra/agent/repository-file';
import type { WorkspacesMappingOuts, WorkspacesMappingProps } from '../../infra/agent/workspaces-mapping';
import type * as pulumi from '@pulumi/pulumi';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const requireFromString = require('require-from-string') as (code: string, filename?: string) => { handler(): pulumi.dynamic.ResourceProvider };

// The Config class the dynamic provider host builds from the engine's Configure request.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Config } = require('@pulumi/pulumi/cmd/dynamic-provider/config.js') as {
  Config: new (raw: Record<string, string>, project: string) => pulumi.dynamic.Config;
};

type Provider = Required<Pick<pulumi.dynamic.ResourceProvider, 'configure' | 'check' | 'create' | 'read' | 'diff' | 'update' | 'delete'>>;

const KEY = 'gitlab-workspaces:gitlabApiToken';

describe('GitLab agent dynamic providers', () => {
  let gitlab: GitLabStandIn;
  let group: StandInGroup;
  let project: StandInProject;
  let maintainer: GitLabUser;
  let owner: GitLabUser;
  let developer: GitLabUser;
  /** Tokens: owner (group Owner), maintainer (project Maintainer only), developer. */
  const t = { owner: '', maintainer: '', developer: '' };
  const serialized: Record<keyof typeof AGENT_TYPES | 'proxyToken', string> = { agent: '', token: '', file: '', mapping: '', proxyToken: '' };
  /** What the stack's config holds now (the host hands it to configure()). */
  const stackConfig = new Map<string, string>();
  const load = (kind: keyof typeof serialized): Provider => {
    const p = requireFromString(serialized[kind]).handler() as Provider;
    void p.configure({ config: { get: (k: string) => stackConfig.get(k.includes(':') ? k : `gitlab-workspaces:${k}`) } } as never);
    return p;
  };
  let agentP: Provider;
  let tokenP: Provider;
  let fileP: Provider;
  let mappingP: Provider;

  before(async () => {
    gitlab = await startGitLabStandIn();
    owner = gitlab.addUser({ username: 'olivia', password: 'pw' });
    maintainer = gitlab.addUser({ username: 'mario', password: 'pw' });
    developer = gitlab.addUser({ username: 'dev', password: 'pw' });
    group = gitlab.agents.addGroup('platform');
    project = gitlab.agents.addProject(group, 'workspaces-agent');
    gitlab.agents.addMember(group, owner, 'owner');
    gitlab.agents.addMember(project, maintainer, 'maintainer');
    gitlab.agents.addMember(project, developer, 'developer');
    t.owner = gitlab.createPersonalAccessToken(owner);
    t.maintainer = gitlab.createPersonalAccessToken(maintainer);
    t.developer = gitlab.createPersonalAccessToken(developer);
    stackConfig.set(KEY, t.owner);
    const run = await runStack('dev');
    for (const kind of Object.keys(AGENT_TYPES) as (keyof typeof AGENT_TYPES)[]) {
      serialized[kind] = String(run.find(AGENT_TYPES[kind]).inputs.__provider);
    }
    serialized.proxyToken = String(run.find(PROXY_TOKEN_TYPE).inputs.__provider);
    [agentP, tokenP, fileP, mappingP] = [load('agent'), load('token'), load('file'), load('mapping')];
  });
  after(async () => {
    await gitlab.close();
  });

  const base = (token = t.owner) => ({ gitlabUrl: gitlab.url, token, tokenConfigKey: KEY });
  const agentInputs = (over: Partial<AgentProps> = {}): AgentProps => ({ ...base(), project: 'platform/workspaces-agent', name: 'workspaces-test', ...over });
  async function newAgent(name: string): Promise<AgentOuts> {
    const created = await agentP.create((await agentP.check({}, agentInputs({ name }))).inputs);
    return created.outs as AgentOuts;
  }
  const noTokenIn = (err: Error) => Object.values(t).every((x) => !err.message.includes(x));

  it('serializes each provider small, self-contained and without any token', () => {
    for (const [kind, text] of Object.entries(serialized)) {
      assert.ok(text.length > 0 && text.length < 60_000, `${kind}: ${text.length} bytes`);
      for (const secret of Object.values(SECRET_FIXTURES)) assert.ok(!text.includes(secret), `${kind} carries no fixture secret`);
      assert.doesNotMatch(text, /this\.#/, 'no private class fields');
      // The proxy's service token is project-access-token.ts's gitbeaker provider (its own tests).
      if (kind !== 'proxyToken') assert.doesNotMatch(text, /@gitbeaker/, 'no client library (Agents.createToken sends GET in 43.8.0)');
    }
  });

  it('agent: registers, reads, replaces only what GitLab cannot change, deletes, and sees deletion by hand', async () => {
    const checked = (await agentP.check({}, agentInputs({ gitlabUrl: `${gitlab.url}/` }))).inputs as AgentProps;
    assert.equal(checked.gitlabUrl, gitlab.url, 'URL normalized');
    const bad = await agentP.check({}, agentInputs({ name: 'Not_A_Label' }));
    assert.deepEqual(bad.failures?.map((f) => f.property), ['name']);

    const created = await agentP.create(checked);
    const outs = created.outs as AgentOuts;
    const [agent] = gitlab.agents.agentsOf(project);
    assert.ok(agent);
    assert.equal(created.id, String(agent.id));
    assert.equal(outs.agentGid, agent.gid);
    assert.equal(outs.projectId, String(project.id));
    assert.equal(outs.defaultBranch, 'main');

    const read = await agentP.read(created.id, outs);
    assert.equal(read.id, created.id);
    assert.equal((read.props as AgentOuts).name, 'workspaces-test');

    assert.equal((await agentP.diff(created.id, outs, checked)).changes, false);
    const renamed = await agentP.diff(created.id, outs, { ...checked, name: 'other' });
    assert.deepEqual([renamed.replaces, renamed.deleteBeforeReplace], [['name'], false]);
    const moved = await agentP.diff(created.id, outs, { ...checked, gitlabUrl: 'https://gitlab.example.com' });
    assert.deepEqual([moved.replaces, moved.deleteBeforeReplace], [['gitlabUrl'], true], 'same name in the same project: old one first');
    // A new token updates in place, without a call to GitLab.
    const tokenDiff = await agentP.diff(created.id, outs, { ...checked, token: t.maintainer });
    assert.deepEqual([tokenDiff.changes, tokenDiff.replaces], [true, []]);
    gitlab.resetCounts();
    const updated = (await agentP.update(created.id, outs, { ...checked, token: t.maintainer })).outs as AgentOuts;
    assert.equal(updated.token, t.maintainer);
    assert.equal(gitlab.count('projects'), 0);

    // A second agent of the same name is refused with a message saying what to do.
    await assert.rejects(agentP.create(checked), /already has an agent named workspaces-test/);

    await agentP.delete(created.id, updated);
    assert.equal(gitlab.agents.agentsOf(project).length, 0);
    await agentP.delete(created.id, updated); // already gone: fine
    assert.deepEqual(await agentP.read(created.id, updated), {}, 'deleted in GitLab: read reports it gone');
  });

  it('agent: a Developer cannot register one, and the error says who can (without the token)', async () => {
    await assert.rejects(agentP.create(agentInputs({ token: t.developer, tokenConfigKey: 'gitlab-workspaces:unset' })), (err: Error) => {
      assert.match(err.message, /403/);
      assert.match(err.message, /Maintainer role in platform\/workspaces-agent/);
      assert.ok(noTokenIn(err));
      return true;
    });
    assert.equal(gitlab.agents.agentsOf(project).length, 0);
  });

  it('reads and deletes with the token the stack is configured with now, not the one in state', async () => {
    const outs = await newAgent('rotated-admin-token');
    const stale = gitlab.createPersonalAccessToken(owner);
    const inState = { ...outs, token: stale };
    gitlab.revokeToken(stale);
    // The stack's current token (configure) wins over the revoked one in state.
    assert.equal((await agentP.read(outs.agentId, inState)).id, outs.agentId);
    await agentP.delete(outs.agentId, inState);
    assert.equal(gitlab.agents.agentsOf(project).length, 0);
    // A provider the host never configured falls back to the state's token: revoked → a clear 401.
    const unconfigured = requireFromString(serialized.agent).handler() as Provider;
    await assert.rejects(unconfigured.read(outs.agentId, inState), (err: Error) => /401/.test(err.message) && /revoked or expired/.test(err.message) && noTokenIn(err) && !err.message.includes(stale));
  });

  it('token: secret only from create, rotation creates the new token before revoking the old, two at most', async () => {
    const agent = await newAgent('tokens');
    const inputs = (await tokenP.check({}, {
      ...base(), projectId: agent.projectId, agentId: agent.agentId, name: 'pulumi-test-1', description: 'test', generation: 1,
    } satisfies AgentTokenProps)).inputs as AgentTokenProps;
    const first = await tokenP.create(inputs);
    const firstOuts = first.outs as AgentTokenOuts;
    const inGitLab = gitlab.agents.tokensOf(Number(agent.agentId));
    assert.equal(inGitLab.length, 1);
    assert.equal(firstOuts.value, inGitLab[0]?.token, 'the secret from the create response');
    const read = await tokenP.read(first.id, firstOuts);
    assert.equal((read.props as AgentTokenOuts).value, firstOuts.value, 'kept from state: GitLab never shows it again');
    const shown = await fetch(`${gitlab.url}/api/v4/projects/${agent.projectId}/cluster_agents/${agent.agentId}/tokens/${first.id}`, { headers: { 'PRIVATE-TOKEN': t.owner } });
    assert.equal(((await shown.json()) as { token?: string }).token, undefined);

    assert.equal((await tokenP.diff(first.id, firstOuts, inputs)).changes, false);
    const rotate = await tokenP.diff(first.id, firstOuts, { ...inputs, generation: 2, name: 'pulumi-test-2' });
    assert.deepEqual([rotate.replaces?.sort(), rotate.deleteBeforeReplace], [['generation', 'name'], false]);
    // What the engine does for create-before-delete: the new token first, then the old one goes.
    const second = await tokenP.create({ ...inputs, generation: 2, name: 'pulumi-test-2' });
    assert.equal(gitlab.agents.tokensOf(Number(agent.agentId)).filter((x) => x.status === 'active').length, 2);
    // A third active token is GitLab's limit: a clear message instead of GitLab's bare 400.
    await assert.rejects(tokenP.create({ ...inputs, generation: 3 }), /two active tokens/);
    await tokenP.delete(first.id, firstOuts);
    const active = gitlab.agents.tokensOf(Number(agent.agentId)).filter((x) => x.status === 'active');
    assert.deepEqual(active.map((x) => String(x.id)), [second.id]);
    assert.deepEqual(await tokenP.read(first.id, firstOuts), {}, 'a revoked token reads as gone');
    await tokenP.delete(first.id, firstOuts); // already revoked: fine

    // Revoked by hand: refresh sees it, the next `up` makes a new one.
    const revoke = await fetch(`${gitlab.url}/api/v4/projects/${agent.projectId}/cluster_agents/${agent.agentId}/tokens/${second.id}`, { method: 'DELETE', headers: { 'PRIVATE-TOKEN': t.owner } });
    assert.equal(revoke.status, 204);
    assert.deepEqual(await tokenP.read(second.id, second.outs), {});
    await agentP.delete(agent.agentId, agent);
  });

  it('config file: creates, adopts identical content, never sends an empty commit, follows edits and deletes', async () => {
    const agent = await newAgent('config-file');
    const path = '.gitlab/agents/config-file/config.yaml';
    const inputs = (await fileP.check({}, {
      ...base(), projectId: agent.projectId, branch: agent.defaultBranch, path, content: 'remote_development:\n  enabled: true\n', commitMessage: 'agent config',
    } satisfies RepositoryFileProps)).inputs as RepositoryFileProps;
    const commits = () => project.commits.length;
    const before = commits();
    const created = await fileP.create(inputs);
    assert.equal(gitlab.agents.file(project, path), inputs.content);
    assert.equal(commits(), before + 1);

    // GitLab's rule the provider works around: a PUT with unchanged content is a 400.
    const put = await fetch(`${gitlab.url}/api/v4/projects/${project.id}/repository/files/${encodeURIComponent(path)}`, {
      method: 'PUT', headers: { 'PRIVATE-TOKEN': t.owner, 'content-type': 'application/json' },
      body: JSON.stringify({ branch: 'main', content: inputs.content, commit_message: 'same' }),
    });
    assert.equal(put.status, 400);
    await fileP.update(created.id, inputs, inputs);
    await fileP.create(inputs); // already there with this content: adopted
    assert.equal(commits(), before + 1, 'no commit for unchanged content');

    const changed = { ...inputs, content: 'remote_development:\n  enabled: true\n  workspaces_quota: 3\n' };
    const d = await fileP.diff(created.id, inputs, changed);
    assert.deepEqual([d.changes, d.replaces], [true, []], 'content changes in place');
    await fileP.update(created.id, inputs, changed);
    assert.equal(gitlab.agents.file(project, path), changed.content);
    assert.equal(commits(), before + 2);
    const moved = await fileP.diff(created.id, inputs, { ...inputs, path: '.gitlab/agents/x/config.yaml' });
    assert.deepEqual([moved.replaces, moved.deleteBeforeReplace], [['path'], false]);

    // Edited by hand: refresh brings GitLab's content, so the next `up` restores the stack's.
    gitlab.agents.writeFile(project, path, 'hand edit\n');
    assert.equal(((await fileP.read(created.id, changed)).props as RepositoryFileProps).content, 'hand edit\n');
    // Deleted by hand: refresh reports it gone; an update puts it back.
    gitlab.agents.writeFile(project, path, undefined);
    assert.deepEqual(await fileP.read(created.id, changed), {});
    await fileP.update(created.id, changed, changed);
    assert.equal(gitlab.agents.file(project, path), changed.content);

    await fileP.delete(created.id, changed);
    assert.equal(gitlab.agents.file(project, path), undefined);
    await fileP.delete(created.id, changed); // already gone: fine

    // Writing the protected default branch takes Maintainer: a Developer gets a clear error.
    await assert.rejects(fileP.create({ ...inputs, token: t.developer, tokenConfigKey: 'gitlab-workspaces:unset' }), (err: Error) =>
      /403/.test(err.message) && /Maintainer/.test(err.message) && noTokenIn(err));
    await agentP.delete(agent.agentId, agent);
  });

  it('mapping: needs group Owner, treats "already exists"/"not found" as done, follows changes made in GitLab', async () => {
    const agent = await newAgent('mapped');
    const inputs = (await mappingP.check({}, { ...base(), groupPath: 'platform', agentGid: agent.agentGid } satisfies WorkspacesMappingProps)).inputs as WorkspacesMappingProps;

    // A project Maintainer who does not own the group is refused, with who can do it.
    await assert.rejects(mappingP.create({ ...inputs, token: t.maintainer, tokenConfigKey: 'gitlab-workspaces:unset' }), (err: Error) =>
      /Owner role in the group/.test(err.message) && noTokenIn(err));
    assert.equal(gitlab.agents.mappingsOf(group).length, 0);

    const created = await mappingP.create(inputs);
    const outs = created.outs as WorkspacesMappingOuts;
    assert.equal(outs.groupGid, group.gid);
    assert.deepEqual(gitlab.agents.mappingsOf(group).map((a) => a.gid), [agent.agentGid]);
    await mappingP.create(inputs); // "already exists": done
    assert.equal((await mappingP.read(created.id, outs)).id, created.id);
    const same = await mappingP.diff(created.id, outs, { ...inputs, token: t.owner });
    assert.equal(same.changes, false);
    const regroup = await mappingP.diff(created.id, outs, { ...inputs, gitlabUrl: 'https://gitlab.example.com' });
    assert.deepEqual([regroup.replaces, regroup.deleteBeforeReplace], [['gitlabUrl'], true]);

    // Removed in GitLab's settings: refresh sees it.
    gitlab.agents.map(group, gitlab.agents.agentsOf(project).find((a) => a.gid === agent.agentGid)!, false);
    assert.deepEqual(await mappingP.read(created.id, outs), {});
    await mappingP.delete(created.id, outs); // "not found": done
    await mappingP.create(inputs);
    await mappingP.delete(created.id, outs);
    assert.equal(gitlab.agents.mappingsOf(group).length, 0);

    // GitLab maps an agent only to a group its project is in.
    const other = gitlab.agents.addGroup('other');
    gitlab.agents.addMember(other, owner, 'owner');
    await assert.rejects(mappingP.create({ ...inputs, groupPath: 'other' }), /must be nested within the namespace/);
    // A group the token cannot see.
    await assert.rejects(mappingP.create({ ...inputs, groupPath: 'nobody-sees-this' }), /does not exist or the token's user cannot see it/);
    await agentP.delete(agent.agentId, agent);
  });

  it('one project: the agent and the proxy\'s service token in it, which may ask who owns the agent\'s workspaces', async () => {
    const agent = await newAgent('with-proxy-token');
    const patP = load('proxyToken');
    const props: ProjectAccessTokenProps = {
      ...base(), project: agent.projectId, name: 'gitlab-workspaces-proxy (dev)', scopes: 'read_api', accessLevel: 40, lifetimeDays: 365, rotateBeforeDays: 30,
    };
    const created = await patP.create((await patP.check({}, props)).inputs);
    const outs = created.outs as ProjectAccessTokenOuts;
    const inGitLab = gitlab.projectAccessTokens(project).find((x) => String(x.id) === created.id);
    assert.deepEqual([inGitLab?.accessLevel, inGitLab?.scopes], [40, ['read_api']], 'made in the agent\'s project');
    gitlab.setWorkspaceOwner(501, developer, { agentProject: project });
    const res = await fetch(`${gitlab.url}/api/graphql`, {
      method: 'POST',
      headers: { authorization: `Bearer ${outs.value}`, 'content-type': 'application/json' },
      body: JSON.stringify({ query: 'query { workspace(id: "gid://gitlab/RemoteDevelopment::Workspace/501") { user { id } } }' }),
    });
    assert.equal(((await res.json()) as { data: { workspace: { user: { id: string } } } }).data.workspace.user.id, developer.gid);
    // The bot is a Maintainer of the project: it sees the agent too (read with its token).
    const agents = await fetch(`${gitlab.url}/api/v4/projects/${agent.projectId}/cluster_agents`, { headers: { 'PRIVATE-TOKEN': outs.value } });
    assert.deepEqual(((await agents.json()) as { name: string }[]).map((a) => a.name), ['with-proxy-token']);
    await patP.delete(created.id, outs);
    assert.equal(gitlab.projectAccessTokens(project).find((x) => String(x.id) === created.id)?.revoked, true);
    await agentP.delete(agent.agentId, agent);
    gitlab.setWorkspaceOwner(501, null);
  });

  it('destroy leaves nothing in GitLab: mapping, file, tokens and agent', async () => {
    const agent = await newAgent('destroyed');
    const token = await tokenP.create({ ...base(), projectId: agent.projectId, agentId: agent.agentId, name: 'n', description: '', generation: 1 });
    const file = { ...base(), projectId: agent.projectId, branch: 'main', path: '.gitlab/agents/destroyed/config.yaml', content: 'x: 1\n', commitMessage: 'm' };
    const f = await fileP.create(file);
    const m = await mappingP.create({ ...base(), groupPath: 'platform', agentGid: agent.agentGid });
    // Dependency order, as `pulumi destroy` runs it.
    await mappingP.delete(m.id, m.outs);
    await fileP.delete(f.id, file);
    await tokenP.delete(token.id, token.outs);
    await agentP.delete(agent.agentId, agent);
    assert.equal(gitlab.agents.mappingsOf(group).length, 0);
    assert.equal(gitlab.agents.file(project, file.path), undefined);
    assert.equal(gitlab.agents.tokensOf(Number(agent.agentId)).filter((x) => x.status === 'active').length, 0);
    assert.equal(gitlab.agents.agentsOf(project).length, 0);
  });
});

describe('GitLab agent dynamic providers: a GitLab behind an internal CA', () => {
  // The same providers over HTTPS signed by a private CA: the bundle comes from the stack config
  // (configure) or, without one, from the resource's saved input, as the OAuth-app provider does.
  let ca: PrivateCa;
  let gitlab: GitLabStandIn;
  let token: string;
  let serializedAgent: string;
  let project: StandInProject;
  const provider = (config: Record<string, string> | undefined): Provider => {
    const p = requireFromString(serializedAgent).handler() as Provider;
    if (config) void p.configure({ config: new Config(config, 'gitlab-workspaces') } as never);
    return p;
  };
  before(async () => {
    ca = makePrivateCa();
    gitlab = await startGitLabStandIn({ tls: { key: ca.keyPem, cert: ca.certPem } });
    const owner = gitlab.addUser({ username: 'olivia', password: 'pw' });
    const group = gitlab.agents.addGroup('platform');
    project = gitlab.agents.addProject(group, 'workspaces-agent');
    gitlab.agents.addMember(group, owner, 'owner');
    token = gitlab.createPersonalAccessToken(owner);
    serializedAgent = String((await runStack('dev')).find(AGENT_TYPES.agent).inputs.__provider);
  });
  after(async () => {
    await gitlab.close();
    ca.cleanup();
  });
  const inputs = (over: Partial<AgentProps> = {}): AgentProps => ({ gitlabUrl: gitlab.url, token, tokenConfigKey: KEY, project: 'platform/workspaces-agent', name: 'behind-ca', ...over });

  it('without the bundle: a clear error naming gitlabCaBundle, nothing created, no token in it', async () => {
    await assert.rejects(provider({ [KEY]: token }).create(inputs()), (err: Error) => {
      assert.match(err.message, /TLS certificate is not trusted/);
      assert.match(err.message, /gitlab-workspaces:gitlabCaBundle/);
      assert.ok(!err.message.includes(token));
      return true;
    });
    assert.equal(gitlab.agents.agentsOf(project).length, 0);
  });

  it('registers, reads and deletes with the bundle from the stack config', async () => {
    const p = provider({ [KEY]: token, 'gitlab-workspaces:gitlabCaBundle': ca.caPem });
    const created = await p.create(inputs());
    assert.equal((await p.read(created.id, created.outs)).id, created.id);
    await p.delete(created.id, created.outs);
    assert.deepEqual(await p.read(created.id, created.outs), {});
  });

  it('uses the bundle saved as an input when the config has none (a destroy without the stack file)', async () => {
    const p = provider({});
    const created = await p.create(inputs({ caBundle: ca.caPem, name: 'saved-bundle' }));
    assert.equal((created.outs as AgentOuts).caBundle, ca.caPem);
    await p.delete(created.id, created.outs);
    assert.deepEqual(await p.read(created.id, created.outs), {});
  });

  it('a new bundle is an in-place update that calls nothing', async () => {
    const p = provider({});
    const olds = { ...inputs({ caBundle: ca.caPem }), agentId: '1', agentGid: 'g', projectId: '1', projectFullPath: 'x', defaultBranch: 'main' } satisfies AgentOuts;
    const d = await p.diff('1', olds, inputs({ caBundle: `${ca.caPem}\n` }));
    assert.deepEqual([d.changes, d.replaces], [true, []]);
    assert.equal((await p.update('1', olds, inputs())).outs.caBundle, undefined);
  });
});
