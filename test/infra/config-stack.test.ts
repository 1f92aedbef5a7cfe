// Stack config validation: every missing or invalid key stops the program before any resource is
// declared, with a message naming the key.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runStack } from '../support/stack-fixtures';
import { parseStackConfig, StackConfigError } from '../../infra/config';

const K = (k: string) => `gitlab-workspaces:${k}`;

interface Case {
  name: string;
  set?: Record<string, string>;
  drop?: string[];
  /** Keys set in plain text although they are secrets. */
  plainSecrets?: boolean;
  expect: RegExp[];
}

const cases: Case[] = [
  { name: 'missing proxyDomain', drop: [K('proxyDomain')], expect: [/^\s*gitlab-workspaces:proxyDomain: required$/m] },
  { name: 'invalid proxyDomain', set: { [K('proxyDomain')]: 'Workspaces Example' }, expect: [/^\s*gitlab-workspaces:proxyDomain: must be a lower-case DNS name/m] },
  { name: 'missing gitlabUrl', drop: [K('gitlabUrl')], expect: [/^\s*gitlab-workspaces:gitlabUrl: required$/m] },
  { name: 'non-http gitlabUrl', set: { [K('gitlabUrl')]: 'ftp://gitlab.example.com' }, expect: [/^\s*gitlab-workspaces:gitlabUrl: must be an http\(s\) URL/m] },
  { name: 'unknown oauth mode', set: { [K('oauth')]: '{"mode":"magic"}' }, expect: [/^\s*gitlab-workspaces:oauth\.mode: /m] },
  { name: 'provided mode without client id', drop: [K('oauthClientId')], expect: [/^\s*gitlab-workspaces:oauthClientId: required when oauth\.mode is provided$/m] },
  { name: 'provided mode without client secret', drop: [K('oauthClientSecret')], expect: [/^\s*gitlab-workspaces:oauthClientSecret: required when oauth\.mode is provided/m] },
  { name: 'managed mode without admin token', set: { [K('oauth')]: '{"mode":"managed"}' }, expect: [/^\s*gitlab-workspaces:gitlabAdminToken: required when oauth\.mode is managed/m] },
  { name: 'replicas not a number', set: { [K('replicas')]: 'two' }, expect: [/^\s*gitlab-workspaces:replicas: expected number$/m] },
  { name: 'replicas zero', set: { [K('replicas')]: '0' }, expect: [/^\s*gitlab-workspaces:replicas: /m] },
  { name: 'image not pinned', set: { [K('image')]: 'registry.example.com/proxy:latest' }, drop: [K('build')], expect: [/^\s*gitlab-workspaces:image: must be pinned by digest/m] },
  { name: 'neither image nor build', drop: [K('build')], expect: [/^\s*gitlab-workspaces:build: required when no prebuilt image is set/m] },
  { name: 'unknown top-level key', set: { [K('replica')]: '3' }, expect: [/^\s*gitlab-workspaces:replica: unknown config key$/m] },
  { name: 'unknown nested key', set: { [K('ssh')]: '{"hostkey":"x"}' }, expect: [/^\s*gitlab-workspaces:ssh\.hostkey: unknown config key$/m] },
  { name: 'bad key algorithm', set: { [K('ssh')]: '{"keyAlgorithm":"DSA"}' }, expect: [/^\s*gitlab-workspaces:ssh\.keyAlgorithm: /m] },
  { name: 'autoscaling below replicas', set: { [K('replicas')]: '4', [K('autoscaling')]: '{"enabled":true,"maxReplicas":2}' }, expect: [/^\s*gitlab-workspaces:autoscaling\.maxReplicas: must be at least replicas$/m] },
  { name: 'bad resource quantity', set: { [K('resources')]: '{"requests":{"cpu":"lots"}}' }, expect: [/^\s*gitlab-workspaces:resources\.requests\.cpu: must be a Kubernetes quantity/m] },
  // Its own load balancer: under the proxy's name, DNS would round-robin between the two LBs.
  { name: 'ssh host equal to the proxy domain', set: { [K('ssh')]: '{"host":"workspaces.localdev.me"}' }, expect: [/^\s*gitlab-workspaces:ssh\.host: must differ from proxyDomain/m] },
  { name: 'secret set in plain text', plainSecrets: true, expect: [/^\s*gitlab-workspaces:oauthClientSecret: must be set as a secret/m] },
  { name: 'platform section (tls) validated too', set: { [K('tls')]: '{"mode":"acme"}' }, expect: [/^\s*gitlab-workspaces:tls\.acme: required when tls\.mode is acme/m, /^\s*gitlab-workspaces:cloudflareApiToken: required/m] },
  { name: 'several problems reported together', drop: [K('proxyDomain'), K('gitlabUrl')], set: { [K('replicas')]: '-1' }, expect: [/proxyDomain: required/, /gitlabUrl: required/, /replicas: /] },
];

describe('stack config errors (on the local stack)', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const run = await runStack('local', c.set ?? {}, {
        expectError: true,
        dropKeys: c.drop,
        // plainSecrets: feed the secret without marking it secret, as `pulumi config set` without --secret would.
        ...(c.plainSecrets ? { secretKeysFilter: () => false } : {}),
      });
      assert.ok(run.error instanceof StackConfigError, `expected a StackConfigError, got ${run.error?.message}`);
      for (const re of c.expect) assert.match(run.error.message, re);
      // Nothing but the stack itself was registered.
      assert.deepEqual(run.resources.map((r) => r.type), ['pulumi:pulumi:Stack']);
    });
  }
});

describe('parseStackConfig', () => {
  const base = { [K('proxyDomain')]: 'workspaces.example.com', [K('gitlabUrl')]: 'https://gitlab.example.com', [K('gitlabAdminToken')]: 'glpat-x', [K('build')]: '{"repository":"registry.example.com/p/proxy"}' };
  const secret = (k: string) => k === K('gitlabAdminToken');

  it('applies defaults and derives the wildcard domain, DNS zone and app name', () => {
    const c = parseStackConfig(base, { stack: 'dev', isSecret: secret });
    assert.equal(c.namespace, 'gitlab-workspaces');
    assert.equal(c.wildcardDomain, '*.workspaces.example.com');
    assert.equal(c.dnsZone, 'workspaces.example.com');
    assert.equal(c.sshHost, 'ssh.workspaces.example.com');
    assert.equal(c.oauthAppName, 'GitLab Workspaces Proxy (dev)');
    assert.equal(c.oauth.mode, 'managed');
    assert.equal(c.replicas, 2);
    assert.equal(c.ssh.keyAlgorithm, 'ED25519');
    assert.equal(c.tls.mode, 'self-signed');
    assert.equal('gitlabAdminToken' in c, false, 'secrets only under .secrets');
    assert.ok(c.secrets.gitlabAdminToken);
  });

  it('keeps numeric-looking strings as strings and decodes numbers and booleans by schema', () => {
    const c = parseStackConfig({ ...base, [K('oauth')]: '{"mode":"provided"}', [K('oauthClientId')]: '12345', [K('oauthClientSecret')]: 's', [K('replicas')]: '3', [K('protect')]: 'true' }, {
      stack: 's',
      isSecret: (k) => k === K('oauthClientSecret') || secret(k),
    });
    assert.equal(c.oauthClientId, '12345');
    assert.equal(c.replicas, 3);
    assert.equal(c.protect, true);
  });

  it('ignores other namespaces (provider config)', () => {
    assert.doesNotThrow(() => parseStackConfig({ ...base, 'kubernetes:context': 'kind-kind' }, { stack: 's', isSecret: secret }));
  });
});
