/**
 * Fixtures for running the real program (infra/program.ts) under mocks for a shipped stack.
 *
 *   const run = await runStack('dev');                       // Pulumi.dev.yaml + documented secrets
 *   const run = await runStack('dev', { 'gitlab-workspaces:replicas': '4' }, { expectError: true });
 *   STACKS                                                   // names of every shipped Pulumi.<stack>.yaml
 *   SECRET_FIXTURES                                          // the value each secret key gets in tests
 */
import { readdirSync } from 'node:fs';
import * as path from 'node:path';
import { loadStackConfig, runPulumiProgram, secretValue, type RunOptions, type RunResult } from './pulumi-mocks';
import { main } from '../../infra/program';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');

export const STACKS = readdirSync(REPO_ROOT)
  .map((f) => /^Pulumi\.([\w-]+)\.yaml$/.exec(f)?.[1])
  .filter((s): s is string => Boolean(s))
  .sort();

const fakePem = (kind: string) => `-----BEGIN ${kind}-----\nMIIBfixture${kind.replace(/\W/g, '')}\n-----END ${kind}-----\n`;

export const SECRET_FIXTURES: Record<string, string> = {
  'gitlab-workspaces:gitlabAdminToken': 'glpat-fixture-admin-token-0001',
  'gitlab-workspaces:oauthClientSecret': 'gloas-fixture-client-secret-0002',
  'gitlab-workspaces:registryPassword': 'fixture-registry-password-0003',
  'gitlab-workspaces:imagePullPassword': 'fixture-image-pull-password-0005',
  'gitlab-workspaces:sshServiceToken': 'glpat-fixture-ssh-service-token-0006',
  'gitlab-workspaces:gitlabApiToken': 'glpat-fixture-api-token-0007',
  'gitlab-workspaces:cloudflareApiToken': 'fixture-cloudflare-api-token-00000000004',
  'gitlab-workspaces:tlsProxyCert': fakePem('CERTIFICATE'),
  'gitlab-workspaces:tlsProxyKey': fakePem('PRIVATE KEY'),
  'gitlab-workspaces:tlsWildcardCert': fakePem('CERTIFICATE'),
  'gitlab-workspaces:tlsWildcardKey': fakePem('PRIVATE KEY'),
};

/** Client id/secret the mocked managed OAuth app "returns". */
export const MOCK_OAUTH = { applicationId: '7', clientId: 'mock-client-id-0123456789', clientSecret: 'gloas-mock-managed-secret' };

/** Mock outputs of the OAuth dynamic resource (a real provider is exercised in oauth-app tests). */
export const OAUTH_APP_TYPE = 'pulumi-nodejs:dynamic/gitlab:OAuthApplication';
export const oauthOverride: NonNullable<RunOptions['overrides']>[string] = () => ({
  ...MOCK_OAUTH,
  // The real resource declares clientSecret (and token) as additionalSecretOutputs.
  clientSecret: secretValue(MOCK_OAUTH.clientSecret),
});

/** Mock outputs of the agent's dynamic resources (the real providers are exercised in agent-providers tests). */
export const AGENT_TYPES = {
  agent: 'pulumi-nodejs:dynamic/gitlab:ClusterAgent',
  token: 'pulumi-nodejs:dynamic/gitlab:ClusterAgentToken',
  file: 'pulumi-nodejs:dynamic/gitlab:RepositoryFile',
  mapping: 'pulumi-nodejs:dynamic/gitlab:WorkspacesAgentMapping',
} as const;
/** The proxy's service token a managed agent creates (infra/components/project-access-token.ts). */
export const PROXY_TOKEN_TYPE = 'pulumi-nodejs:dynamic/gitlab:ProjectAccessToken';
export const MOCK_PROXY_TOKEN = { tokenId: 11, value: 'glpat-mock-proxy-service-token', expiresAt: '2027-12-01', userId: 77 };
export const MOCK_AGENT = { agentId: '42', projectId: '7001', tokenId: '9', tokenValue: 'glagent-mock-agent-token-secret', groupGid: 'gid://gitlab/Group/5' };
export const agentOverrides: NonNullable<RunOptions['overrides']> = {
  [AGENT_TYPES.agent]: (args) => ({
    agentId: MOCK_AGENT.agentId,
    agentGid: `gid://gitlab/Clusters::Agent/${MOCK_AGENT.agentId}`,
    projectId: MOCK_AGENT.projectId,
    projectFullPath: String(args.inputs.project),
    defaultBranch: 'main',
  }),
  // The real resource declares value (and token) as additionalSecretOutputs.
  [AGENT_TYPES.token]: () => ({ tokenId: MOCK_AGENT.tokenId, value: secretValue(MOCK_AGENT.tokenValue) }),
  [AGENT_TYPES.mapping]: () => ({ groupGid: MOCK_AGENT.groupGid }),
  // value (and token) are additionalSecretOutputs of the real resource.
  [PROXY_TOKEN_TYPE]: () => ({ ...MOCK_PROXY_TOKEN, value: secretValue(MOCK_PROXY_TOKEN.value) }),
};

export async function runStack(
  stack: string,
  extraConfig: Record<string, string> = {},
  opts: Omit<RunOptions, 'config' | 'secretKeys' | 'stack'> & {
    extraSecretKeys?: string[];
    dropKeys?: string[];
    /** Which of the file's secret keys stay marked secret (default all): simulates `config set` without --secret. */
    secretKeysFilter?: (key: string) => boolean;
  } = {},
): Promise<RunResult> {
  const { config, secretKeys } = await loadStackConfig(path.join(REPO_ROOT, `Pulumi.${stack}.yaml`), SECRET_FIXTURES);
  for (const k of opts.dropKeys ?? []) delete config[k];
  const { extraSecretKeys: _e, dropKeys: _d, secretKeysFilter: _f, ...runOpts } = opts;
  return runPulumiProgram(main, {
    ...runOpts,
    stack,
    config: { ...config, ...extraConfig },
    secretKeys: [...secretKeys.filter(opts.secretKeysFilter ?? (() => true)), ...(opts.extraSecretKeys ?? [])],
    overrides: { [OAUTH_APP_TYPE]: oauthOverride, ...agentOverrides, ...(opts.overrides ?? {}) },
  });
}
