// The SSH service token (issue 11): a stack may give one as the secret `sshServiceToken`; without it, a
// managed agent (agent.mode managed) has the program create it (a project access token of the agent's
// project, Maintainer, read_api). Either way it reaches the pod only inside the config Secret (auth.service_token),
// never a plain input, an output or an argument, and the sshEndpoint output tells users how to log in.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from '../../proxy-image/src/config';
import { plainText } from '../support/pulumi-mocks';
import { runStack, SECRET_FIXTURES, MOCK_AGENT, MOCK_PROXY_TOKEN, PROXY_TOKEN_TYPE } from '../support/stack-fixtures';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- manifests are navigated field by field
type Obj = Record<string, any>;
const KEY = 'gitlab-workspaces:sshServiceToken';
const TOKEN = SECRET_FIXTURES[KEY] as string;
const configOf = (run: Awaited<ReturnType<typeof runStack>>) =>
  parseConfigText((run.find('kubernetes:core/v1:Secret', 'proxy-config').inputs.stringData as Obj)['config.yaml'] as string).config;

/** The shipped stacks manage the agent; these run with an agent the team already has. */
const EXISTING_AGENT = { 'gitlab-workspaces:agent': JSON.stringify({ mode: 'existing' }) };

describe('the service token of a managed agent', () => {
  it('is a project access token of the agent\'s project (Maintainer, read_api, expiring, rotated new-first), only in the config Secret', async () => {
    const run = await runStack('dev');
    const t = run.find(PROXY_TOKEN_TYPE);
    assert.equal(run.parentOf(t)?.type, 'gitlab-workspaces:agent:Agent');
    const i = t.inputs as Obj;
    assert.equal(i.project, MOCK_AGENT.projectId, 'the agent\'s project');
    assert.deepEqual([i.scopes, i.accessLevel], ['read_api', 40]);
    assert.ok(i.lifetimeDays <= 365 && i.rotateBeforeDays >= 1 && i.rotateBeforeDays < i.lifetimeDays);
    assert.equal(i.tokenConfigKey, 'gitlab-workspaces:gitlabAdminToken', 'dev manages the agent with gitlabAdminToken');
    assert.ok(t.secretPaths.includes('token'));
    // Rotation: the new token first; the config Secret is auto-named, so the new token means a new
    // Secret and a rollout before the old token is revoked.
    assert.ok(!t.options.deleteBeforeReplace, 'the new token first');
    const secret = run.find('kubernetes:core/v1:Secret', 'proxy-config');
    assert.equal((secret.inputs.metadata as Obj).name, undefined);
    assert.ok(secret.dependencies.includes(t.urn));
    assert.equal(configOf(run).auth.service_token, MOCK_PROXY_TOKEN.value);
    for (const r of run.resources) assert.ok(!plainText(r).includes(MOCK_PROXY_TOKEN.value), `${r.type}/${r.name} carries the service token in a plain input`);
    assert.ok(!JSON.stringify(run.outputs).includes(MOCK_PROXY_TOKEN.value));
    assert.match(String(run.outputs.sshEndpoint), /log in with an SSH key from your GitLab profile/);
  });

  it('uses gitlabApiToken when the stack has one; none is made without SSH keys', async () => {
    const local = await runStack('local');
    assert.equal(local.find(PROXY_TOKEN_TYPE).inputs.tokenConfigKey, 'gitlab-workspaces:gitlabApiToken');
    for (const ssh of [{ publicKeyAuth: false }, { enabled: false }]) {
      const run = await runStack('dev', { 'gitlab-workspaces:ssh': JSON.stringify(ssh) });
      assert.equal(run.ofType(PROXY_TOKEN_TYPE).length, 0, JSON.stringify(ssh));
      assert.equal(configOf(run).auth.service_token, undefined);
    }
  });

  it('a stack\'s own sshServiceToken wins: none is made', async () => {
    const run = await runStack('dev', { [KEY]: TOKEN }, { extraSecretKeys: [KEY] });
    assert.equal(run.ofType(PROXY_TOKEN_TYPE).length, 0);
    assert.equal(configOf(run).auth.service_token, TOKEN);
  });
});

describe('sshServiceToken (agent not managed)', () => {
  it('is rendered into the config Secret only, and the endpoint leads with keys', async () => {
    const run = await runStack('local', { [KEY]: TOKEN, ...EXISTING_AGENT }, { extraSecretKeys: [KEY] });
    const config = configOf(run);
    assert.equal(config.auth.service_token, TOKEN);
    assert.equal(config.ssh.public_key_auth, true);
    assert.deepEqual(run.find('kubernetes:core/v1:Secret', 'proxy-config').secretPaths, ['stringData']);
    for (const r of run.resources) assert.ok(!plainText(r).includes(TOKEN), `${r.type}/${r.name} carries the service token in a plain input`);
    assert.ok(!JSON.stringify(run.outputs).includes(TOKEN), 'an output carries the service token');
    const container = (run.find('kubernetes:apps/v1:Deployment').inputs.spec as Obj).template.spec.containers[0];
    assert.ok(!JSON.stringify([container.args, container.command, container.env]).includes(TOKEN));
    assert.match(String(run.outputs.sshEndpoint), /host key SHA256:[^;]+; log in with an SSH key from your GitLab profile, or a personal access token/);
  });

  it('without it: no service_token in the file, and the endpoint asks for a personal access token', async () => {
    const run = await runStack('local', EXISTING_AGENT);
    assert.equal(configOf(run).auth.service_token, undefined);
    assert.match(String(run.outputs.sshEndpoint), /; password: a GitLab personal access token\)$/);
  });

  it('ssh.publicKeyAuth: false turns keys off even with a token', async () => {
    const run = await runStack('local', { [KEY]: TOKEN, ...EXISTING_AGENT, 'gitlab-workspaces:ssh': JSON.stringify({ publicKeyAuth: false }) }, { extraSecretKeys: [KEY] });
    assert.equal(configOf(run).ssh.public_key_auth, false);
    assert.match(String(run.outputs.sshEndpoint), /password: a GitLab personal access token/);
  });

  it('must be set as a secret', async () => {
    const run = await runStack('local', { [KEY]: TOKEN, ...EXISTING_AGENT }, { expectError: true });
    assert.match(String(run.error?.message), /gitlab-workspaces:sshServiceToken: must be set as a secret/);
    assert.ok(!String(run.error?.message).includes(TOKEN));
  });
});
