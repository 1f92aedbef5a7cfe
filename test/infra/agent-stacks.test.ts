// The GitLab agent part of every shipped stack, run under mocks: its GitLab resources, agentk's Helm
// release reading the token from a Secret, and the rendered agent config tied to the proxy it must
// point at (zone, namespace, pod labels). Then the other modes and the config errors.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { parse } from 'yaml';
import { plainText, type CapturedResource, type RunResult } from '../support/pulumi-mocks';
import { validateAll } from '../support/k8s-validate';
import { runStack, STACKS, SECRET_FIXTURES, AGENT_TYPES, MOCK_AGENT, REPO_ROOT } from '../support/stack-fixtures';
import { startGitLabStandIn, type GitLabStandIn } from '../support/gitlab-stand-in';
import { makePrivateCa } from '../support/private-ca';
import { WORKSPACES_PROXY_POD_LABELS, kasAddress, renderAgentConfig } from '../../infra/agent';
import { AGENT_CHART_VERSION } from '../../infra/agent/config';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- manifests are navigated field by field
type Obj = Record<string, any>;

const T = {
  component: 'gitlab-workspaces:agent:Agent',
  agentk: 'gitlab-workspaces:agent:Agentk',
  release: 'kubernetes:helm.sh/v3:Release',
  secret: 'kubernetes:core/v1:Secret',
  namespace: 'kubernetes:core/v1:Namespace',
  deployment: 'kubernetes:apps/v1:Deployment',
};

const stackFile = (stack: string): Obj => (parse(readFileSync(path.join(REPO_ROOT, `Pulumi.${stack}.yaml`), 'utf8')) as { config: Obj }).config;

for (const stack of STACKS) {
  describe(`agent of stack ${stack}`, () => {
    let run: RunResult;
    let file: Obj;
    let agentCfg: Obj;
    const byParent = (type: string) => (r: CapturedResource) => run.parentOf(r)?.type === type;

    before(async () => {
      run = await runStack(stack);
      file = stackFile(stack);
      agentCfg = file['gitlab-workspaces:agent'] ?? {};
    });

    it('ships the managed mode (dev and prod; local can, with a project of your own)', () => {
      assert.equal(agentCfg.mode, 'managed');
      assert.ok(agentCfg.project, 'agent.project is set');
    });

    it('declares the agent, its token, its config file and the mapping, each its own GitLab resource', () => {
      const component = run.find(T.component);
      assert.equal(run.parentOf(component)?.type, 'gitlab-workspaces:index:GitLabWorkspaces');
      for (const type of Object.values(AGENT_TYPES)) {
        const r = run.find(type);
        assert.equal(run.parentOf(r)?.type, T.component, type);
        // Every GitLab call authenticates with a secret input; the serialized provider holds none.
        assert.ok(r.secretPaths.includes('token'), `${type}: token is a secret input`);
        assert.ok(r.options.additionalSecretOutputs.includes('token'), `${type}: token stays secret in state`);
        for (const secret of Object.values(SECRET_FIXTURES)) assert.ok(!plainText(r).includes(secret), `${type}: no secret in plain inputs`);
        assert.equal(r.inputs.gitlabUrl, file['gitlab-workspaces:gitlabUrl'].replace(/\/+$/, ''));
      }
      const agent = run.find(AGENT_TYPES.agent);
      const name = agentCfg.name ?? `workspaces-${stack}`;
      assert.deepEqual([agent.inputs.project, agent.inputs.name], [agentCfg.project, name]);
      // Read and delete use the stack's current token from this key (the dynamic provider's configure).
      const key = file['gitlab-workspaces:gitlabApiToken'] !== undefined || stack === 'local' ? 'gitlabApiToken' : 'gitlabAdminToken';
      assert.equal(agent.inputs.tokenConfigKey, `gitlab-workspaces:${key}`);
      assert.equal(run.find(AGENT_TYPES.agent).inputs.token, SECRET_FIXTURES[`gitlab-workspaces:${key}`]);

      const token = run.find(AGENT_TYPES.token);
      assert.deepEqual([token.inputs.projectId, token.inputs.agentId], [MOCK_AGENT.projectId, MOCK_AGENT.agentId]);
      assert.ok(token.options.additionalSecretOutputs.includes('value'), 'the agent token is a secret output');
      assert.equal(token.options.deleteBeforeReplace, false, 'rotation: the new token before the old one is revoked');
      assert.equal(token.inputs.generation, agentCfg.tokenGeneration ?? 1);

      const mapping = run.find(AGENT_TYPES.mapping);
      assert.equal(mapping.inputs.groupPath, agentCfg.group ?? String(agentCfg.project).split('/').slice(0, -1).join('/'));
      assert.equal(mapping.inputs.agentGid, `gid://gitlab/Clusters::Agent/${MOCK_AGENT.agentId}`);
      assert.equal(agent.options.protect, file['gitlab-workspaces:protect'] === true, 'the agent (and with it every workspace) is protected in prod');
    });

    it('commits a config whose dns_zone and proxy namespace are the proxy\'s own, on the default branch', () => {
      const f = run.find(AGENT_TYPES.file);
      const name = agentCfg.name ?? `workspaces-${stack}`;
      assert.equal(f.inputs.path, `.gitlab/agents/${name}/config.yaml`);
      assert.equal(f.inputs.branch, 'main', "the agent's project default branch");
      assert.equal(f.inputs.projectId, MOCK_AGENT.projectId);
      const content = String(f.inputs.content);
      assert.equal(content, run.outputs.agentConfig, 'the output is what GitLab gets');
      const rd = (parse(content) as Obj).remote_development;
      const domain = file['gitlab-workspaces:proxyDomain'];
      assert.equal(rd.enabled, true);
      assert.equal(rd.dns_zone, domain, 'the zone of the proxy\'s wildcard domain');
      assert.equal(`*.${rd.dns_zone}`, run.outputs.wildcardDomain);
      const proxyNamespace = (run.find(T.namespace, 'proxy').inputs.metadata as Obj).name;
      assert.equal(rd.gitlab_workspaces_proxy.namespace, proxyNamespace);
      assert.equal((run.find(T.deployment).inputs.metadata as Obj).namespace, proxyNamespace);
      // The knobs of the stack file, in GitLab's spelling.
      const knobs = agentCfg.remoteDevelopment ?? {};
      if (knobs.workspacesPerUserQuota !== undefined) assert.equal(rd.workspaces_per_user_quota, knobs.workspacesPerUserQuota);
      if (knobs.maxActiveHoursBeforeStop !== undefined) assert.equal(rd.max_active_hours_before_stop, knobs.maxActiveHoursBeforeStop);
      if (knobs.networkPolicy?.egress) assert.deepEqual(rd.network_policy.egress, knobs.networkPolicy.egress);
      assert.match(content, /^# Managed by Pulumi/, 'says who owns the file');
    });

    it('keeps the proxy pods labelled as the workspaces\' NetworkPolicy admits them, in the namespace the config names', () => {
      const rd = (parse(String(run.outputs.agentConfig)) as Obj).remote_development;
      const proxy = run.find(T.deployment).inputs as Obj;
      const podLabels = proxy.spec.template.metadata.labels as Obj;
      for (const [k, v] of Object.entries(WORKSPACES_PROXY_POD_LABELS)) assert.equal(podLabels[k], v, k);
      // GitLab selects the namespace by kubernetes.io/metadata.name, which Kubernetes sets to its name.
      assert.equal(proxy.metadata.namespace, rd.gitlab_workspaces_proxy.namespace);
    });

    it('installs agentk with Helm, the token only in a Secret the chart mounts (config.secretName)', async () => {
      const agentk = run.find(T.agentk);
      assert.equal(run.parentOf(agentk)?.type, T.component);
      const release = run.ofType(T.release).find(byParent(T.agentk));
      assert.ok(release);
      const r = release.inputs as Obj;
      assert.equal(r.chart, 'gitlab-agent');
      assert.equal(r.repositoryOpts.repo, 'https://charts.gitlab.io');
      assert.match(r.version, /^\d+\.\d+\.\d+$/, 'pinned');
      assert.equal(r.version, agentCfg.chartVersion ?? AGENT_CHART_VERSION);
      const ns = agentCfg.namespace ?? 'gitlab-agent';
      assert.equal(r.namespace, ns);
      const secret = run.ofType(T.secret).find(byParent(T.agentk));
      assert.ok(secret);
      assert.equal((secret.inputs.metadata as Obj).namespace, ns);
      // The Kubernetes SDK marks the whole stringData secret when a value in it is one.
      assert.deepEqual(secret.secretPaths, ['stringData'], 'the token is a secret in the Secret');
      assert.equal((secret.inputs.stringData as Obj).token, MOCK_AGENT.tokenValue);
      assert.equal(r.values.config.secretName, (secret.state.metadata as Obj).name);
      assert.equal(r.values.config.token, undefined, 'never inline in the values');
      assert.ok(!plainText(release).includes(MOCK_AGENT.tokenValue) && !JSON.stringify(r).includes(MOCK_AGENT.tokenValue));
      assert.equal(r.values.config.kasAddress, kasAddress(file['gitlab-workspaces:gitlabUrl']));
      assert.equal(r.values.podAnnotations['gitlab-workspaces.gitlab.com/agent-token-id'], MOCK_AGENT.tokenId, 'a rotated token rolls agentk');
      assert.equal(r.values.replicas, agentCfg.replicas ?? 2);
      // GitLab reads the config when agentk connects: the file is committed first.
      assert.ok(release.dependencies.includes(run.find(AGENT_TYPES.file).urn));
      assert.deepEqual(await validateAll(run.children(agentk)), {});
    });

    it('outputs the agent\'s name, project and verification commands ending at "create a workspace"', () => {
      const a = run.outputs.agent as Obj;
      assert.equal(a.mode, 'managed');
      assert.equal(a.name, agentCfg.name ?? `workspaces-${stack}`);
      assert.equal(a.project, agentCfg.project);
      assert.equal(a.projectId, MOCK_AGENT.projectId);
      assert.deepEqual(Object.keys(a.verification), ['agentk', 'agentkLogs', 'agent', 'config', 'mapping', 'workspace']);
      assert.match(a.verification.workspace, /create a workspace in GitLab/);
      assert.match(a.verification.agentk, new RegExp(`kubectl -n ${agentCfg.namespace ?? 'gitlab-agent'} get pods`));
    });
  });
}

describe('agent modes and config', () => {
  const managed = (over: Obj = {}) => ({ 'gitlab-workspaces:agent': JSON.stringify({ mode: 'managed', project: 'team/agents/workspaces', ...over }) });

  it('none: nothing about the agent', async () => {
    const run = await runStack('dev', { 'gitlab-workspaces:agent': JSON.stringify({ mode: 'none' }) });
    for (const type of Object.values(AGENT_TYPES)) assert.equal(run.ofType(type).length, 0);
    assert.equal(run.ofType(T.agentk).length, 0);
    assert.equal(run.outputs.agentConfig, null);
    assert.equal(run.outputs.agent, null);
  });

  it('existing: only the snippet to paste (with the configured knobs), no GitLab or cluster resource', async () => {
    const run = await runStack('dev', { 'gitlab-workspaces:agent': JSON.stringify({ mode: 'existing', remoteDevelopment: { workspacesQuota: 10 } }) });
    for (const type of Object.values(AGENT_TYPES)) assert.equal(run.ofType(type).length, 0);
    assert.equal(run.ofType(T.agentk).length, 0);
    assert.equal(run.outputs.agentConfig, renderAgentConfig({ dnsZone: 'workspaces.dev.example.com', proxyNamespace: 'gitlab-workspaces', remoteDevelopment: { workspacesQuota: 10 } }));
    const a = run.outputs.agent as Obj;
    assert.equal(a.mode, 'existing');
    assert.match(a.mapping, /^not checked/);
    assert.match(a.verification.config, /pulumi stack output agentConfig/);
  });

  describe('existing: checks the group mapping when a token allows', () => {
    let gitlab: GitLabStandIn;
    before(async () => {
      gitlab = await startGitLabStandIn();
    });
    after(async () => {
      await gitlab.close();
    });

    it('reports NOT MAPPED, then mapped, as GitLab says', async () => {
      const owner = gitlab.addUser({ username: 'o', password: 'pw' });
      const group = gitlab.agents.addGroup('team');
      const project = gitlab.agents.addProject(group, 'agent-project');
      gitlab.agents.addMember(group, owner, 'owner');
      const token = gitlab.createPersonalAccessToken(owner);
      const res = await fetch(`${gitlab.url}/api/v4/projects/${project.id}/cluster_agents`, {
        method: 'POST', headers: { 'PRIVATE-TOKEN': token, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'team-agent' }),
      });
      assert.equal(res.status, 201);
      const cfg = {
        'gitlab-workspaces:gitlabUrl': gitlab.url,
        'gitlab-workspaces:gitlabApiToken': token,
        'gitlab-workspaces:agent': JSON.stringify({ mode: 'existing', name: 'team-agent', project: 'team/agent-project' }),
      };
      const opts = { extraSecretKeys: ['gitlab-workspaces:gitlabApiToken'] };
      const before = (await runStack('dev', cfg, opts)).outputs.agent as Obj;
      assert.match(before.mapping, /^NOT MAPPED: team-agent is not allowed for workspaces in team/);
      gitlab.agents.map(group, gitlab.agents.agentsOf(project)[0]!, true);
      const after = (await runStack('dev', cfg, opts)).outputs.agent as Obj;
      assert.equal(after.mapping, 'mapped: team-agent is allowed for workspaces in team');
    });
  });

  it('managed: the group defaults to the project\'s parent; a rotation bumps the token generation', async () => {
    const run = await runStack('dev', managed({ tokenGeneration: 2 }));
    assert.equal(run.find(AGENT_TYPES.mapping).inputs.groupPath, 'team/agents');
    assert.equal(run.find(AGENT_TYPES.token).inputs.generation, 2);
    assert.match(String(run.find(AGENT_TYPES.token).inputs.name), /-2$/);
  });

  it('managed: fails before any resource, naming the key, when something is missing or wrong', async () => {
    const cases: [Record<string, string>, RegExp, string[]?][] = [
      [{ 'gitlab-workspaces:agent': JSON.stringify({ mode: 'managed' }) }, /gitlab-workspaces:agent\.project: required when agent\.mode is managed/],
      [managed({ group: 'elsewhere' }), /gitlab-workspaces:agent\.group: must contain agent\.project/],
      [managed({ name: 'Bad_Name' }), /gitlab-workspaces:agent\.name: must be lower-case/],
      [managed({ remoteDevelopment: { workspacesQuota: -2 } }), /gitlab-workspaces:agent\.remoteDevelopment\.workspacesQuota/],
      [managed({ remoteDevelopment: { networkPolicy: { egress: [{ allow: 'everywhere' }] } } }), /agent\.remoteDevelopment\.networkPolicy\.egress\.0\.allow: must be a CIDR/],
      [managed({ mdoe: 'x' }), /gitlab-workspaces:agent\.mdoe: unknown config key/],
      [managed(), /gitlab-workspaces:gitlabApiToken: required \(secret\) when agent\.mode is managed/, ['gitlab-workspaces:gitlabAdminToken']],
    ];
    for (const [extra, message, dropKeys] of cases) {
      const run = await runStack('dev', extra, { expectError: true, dropKeys, overrides: {} });
      assert.match(String(run.error?.message), message);
      assert.equal(run.resources.filter((r) => r.custom).length, 0, `no resource for ${message}`);
    }
    // Set without --secret: refused like every other secret key.
    const plain = await runStack('local', {}, { expectError: true, secretKeysFilter: (k) => k !== 'gitlab-workspaces:gitlabApiToken' });
    assert.match(String(plain.error?.message), /gitlab-workspaces:gitlabApiToken: must be set as a secret/);
  });

  it('a GitLab behind an internal CA: agentk trusts gitlabCaBundle for KAS, every agent resource for the API', async () => {
    const ca = makePrivateCa();
    try {
      const run = await runStack('dev', { 'gitlab-workspaces:gitlabCaBundle': ca.caPem });
      const release = run.ofType(T.release).find((r) => run.parentOf(r)?.type === T.agentk) as CapturedResource;
      assert.equal((release.inputs as Obj).values.config.kasCaCert, ca.caPem);
      for (const type of Object.values(AGENT_TYPES)) assert.equal(run.find(type).inputs.caBundle, ca.caPem, type);
      assert.deepEqual(await validateAll(run.children(run.find(T.agentk))), {});
      const without = await runStack('dev');
      assert.equal((without.ofType(T.release).find((r) => without.parentOf(r)?.type === T.agentk)?.inputs as Obj).values.config.kasCaCert, undefined);
      for (const type of Object.values(AGENT_TYPES)) assert.equal(without.find(type).inputs.caBundle, undefined, type);
    } finally {
      ca.cleanup();
    }
  });

  it('derives the KAS address from the GitLab URL', () => {
    assert.equal(kasAddress('https://gitlab.com'), 'wss://kas.gitlab.com');
    assert.equal(kasAddress('https://gitlab.example.com/'), 'wss://gitlab.example.com/-/kubernetes-agent/');
    assert.equal(kasAddress('https://example.com/gitlab'), 'wss://example.com/gitlab/-/kubernetes-agent/');
    assert.equal(kasAddress('http://gitlab.internal:8080'), 'ws://gitlab.internal:8080/-/kubernetes-agent/');
  });
});
