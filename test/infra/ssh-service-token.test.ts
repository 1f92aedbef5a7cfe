// The SSH service token (issue 11): a stack may give the proxy a GitLab project access token as the secret
// `sshServiceToken`; it reaches the pod only inside the config Secret (auth.service_token), never a plain
// input, an output or an argument, and the sshEndpoint output tells users how they can log in.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from '../../proxy-image/src/config';
import { plainText } from '../support/pulumi-mocks';
import { runStack, SECRET_FIXTURES } from '../support/stack-fixtures';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- manifests are navigated field by field
type Obj = Record<string, any>;
const KEY = 'gitlab-workspaces:sshServiceToken';
const TOKEN = SECRET_FIXTURES[KEY] as string;
const configOf = (run: Awaited<ReturnType<typeof runStack>>) =>
  parseConfigText((run.find('kubernetes:core/v1:Secret', 'proxy-config').inputs.stringData as Obj)['config.yaml'] as string).config;

describe('sshServiceToken', () => {
  it('is rendered into the config Secret only, and the endpoint leads with keys', async () => {
    const run = await runStack('local', { [KEY]: TOKEN }, { extraSecretKeys: [KEY] });
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
    const run = await runStack('local');
    assert.equal(configOf(run).auth.service_token, undefined);
    assert.match(String(run.outputs.sshEndpoint), /; password: a GitLab personal access token\)$/);
  });

  it('ssh.publicKeyAuth: false turns keys off even with a token', async () => {
    const run = await runStack('local', { [KEY]: TOKEN, 'gitlab-workspaces:ssh': JSON.stringify({ publicKeyAuth: false }) }, { extraSecretKeys: [KEY] });
    assert.equal(configOf(run).ssh.public_key_auth, false);
    assert.match(String(run.outputs.sshEndpoint), /password: a GitLab personal access token/);
  });

  it('must be set as a secret', async () => {
    const run = await runStack('local', { [KEY]: TOKEN }, { expectError: true });
    assert.match(String(run.error?.message), /gitlab-workspaces:sshServiceToken: must be set as a secret/);
    assert.ok(!String(run.error?.message).includes(TOKEN));
  });
});
