// The config.yaml infra writes into the config Secret is read back by the proxy's own loader
// (parseConfigText), for every shipped stack: one source of truth for the file's shape.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText, renderConfigYaml, ConfigError } from 'gitlab-workspaces-proxy/config';
import { proxyConfigObject } from '../../infra/components/proxy-config';
import { runStack, STACKS, MOCK_OAUTH, SECRET_FIXTURES } from '../support/stack-fixtures';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- manifests are navigated field by field
type Obj = Record<string, any>;

describe('rendered config.yaml', () => {
  for (const stack of STACKS) {
    it(`${stack}: parses with the proxy's loader and matches the workload`, async () => {
      const run = await runStack(stack);
      const secret = run.find('kubernetes:core/v1:Secret', 'proxy-config');
      const text = (secret.inputs.stringData as Obj)['config.yaml'] as string;
      const { config, unknownKeys } = parseConfigText(text);
      assert.deepEqual(unknownKeys, []);
      const domain = run.outputs.proxyUrl as string;
      assert.equal(config.auth.redirect_uri, `${domain}/auth/callback`);
      assert.equal(config.auth.redirect_uri, run.outputs.oauthRedirectUri);
      if (run.outputs.oauthMode === 'managed') {
        assert.equal(config.auth.client_id, MOCK_OAUTH.clientId);
        assert.equal(config.auth.client_secret, MOCK_OAUTH.clientSecret);
      } else {
        assert.equal(config.auth.client_secret, SECRET_FIXTURES['gitlab-workspaces:oauthClientSecret']);
      }
      assert.equal(Buffer.from(config.auth.signing_key, 'base64').length, 32);
      assert.equal(config.ssh.enabled, true);
      assert.match(config.ssh.host_key ?? '', /^-----BEGIN OPENSSH PRIVATE KEY-----/);
      // Ports in the file are the container ports the Deployment declares and probes.
      const c = (run.find('kubernetes:apps/v1:Deployment').inputs.spec as Obj).template.spec.containers[0];
      const port = (name: string) => c.ports.find((p: Obj) => p.name === name)?.containerPort;
      assert.equal(config.http.port, port('http'));
      assert.equal(config.http.internal_port, port('internal'));
      assert.equal(config.ssh.port, port('ssh'));
      assert.equal(config.metrics_path, '/metrics');
    });
  }

  it('is rejected by the proxy schema when infra would write something invalid', () => {
    const base = {
      gitlabUrl: 'https://gitlab.example.com', redirectUri: 'https://w.example.com/auth/callback', clientId: 'id', clientSecret: 's',
      signingKey: 'x'.repeat(44), protocol: 'https' as const, reauthorizeInterval: 60, maxSessionDuration: 0, logLevel: 'info' as const,
    };
    assert.throws(
      () => renderConfigYaml(proxyConfigObject({ ...base, ssh: { enabled: true, hostKey: 'not a key', backendPort: 22, backendUsername: 'u' } })),
      (e: unknown) => e instanceof ConfigError && /ssh\.host_key/.test(e.message),
    );
    assert.throws(
      () => renderConfigYaml(proxyConfigObject({ ...base, signingKey: 'short', ssh: { enabled: false, hostKey: '', backendPort: 22, backendUsername: 'u' } })),
      (e: unknown) => e instanceof ConfigError && /auth\.signing_key/.test(e.message),
    );
  });
});
