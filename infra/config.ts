// The one typed schema of the stack config (`gitlab-workspaces:*` keys in Pulumi.<stack>.yaml).
// loadStackConfig() validates everything before the program declares a single resource, and every
// problem names its config key, e.g. `gitlab-workspaces:proxyDomain: required`.
// The platform part's sections (controller, tls, dns, ttl, protect and their secrets) come from
// infra/platform/config.ts and are merged here, so there is exactly one schema for a stack.
import * as pulumi from '@pulumi/pulumi';
import { z } from 'zod';
import { DEFAULTS, LOG_LEVELS } from 'gitlab-workspaces-proxy/config';
import { platformConfigSchema, refinePlatform, PLATFORM_SECRET_KEYS } from './platform/config';
import { imagePullSchema, refineImagePull } from './components/image-pull';
import { caBundleSchema } from './components/gitlab-ca';
import { refineBuild } from './components/image';
import { agentStackShape, refineAgent, defaultAgentName, AGENT_SECRET_KEYS } from './agent/config';

export const PROJECT = 'gitlab-workspaces';

const dnsName = z
  .string()
  .regex(/^(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)+$/, 'must be a lower-case DNS name such as workspaces.example.com');
const k8sName = z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be a Kubernetes name (RFC 1123 label)');
const port = z.number().int().min(1).max(65535);
const cidr = z.string().regex(/^(\d{1,3}\.){3}\d{1,3}\/\d{1,2}$|^[0-9a-fA-F:]+\/\d{1,3}$/, 'must be a CIDR such as 10.0.0.0/8');
const quantity = z.string().regex(/^\d+(\.\d+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$/, 'must be a Kubernetes quantity such as 100m or 256Mi');

/** Secret keys of the proxy part: they must be set with `pulumi config set --secret`. */
export const PROXY_SECRET_KEYS = ['gitlabAdminToken', 'oauthClientSecret', 'registryPassword', 'imagePullPassword', 'sshServiceToken'] as const;
export const SECRET_KEYS: readonly string[] = [...PROXY_SECRET_KEYS, ...PLATFORM_SECRET_KEYS, ...AGENT_SECRET_KEYS];
const oauthSchema = z
  .object({
    /** managed: created with the admin API (needs gitlabAdminToken); provided: oauthClientId/Secret. */
    mode: z.enum(['managed', 'provided']).default('managed'),
    /** Name of the managed application in GitLab (default: `GitLab Workspaces Proxy (<stack>)`). */
    appName: z.string().min(1).max(255).optional(),
  })
  .strict();

const buildSchema = z
  .object({
    /** Image repository without tag, e.g. registry.example.com/group/gitlab-workspaces-proxy. */
    repository: z.string().regex(/^[a-z0-9.-]+(:\d+)?(\/[a-z0-9._-]+)+$/, 'must be an image repository without tag, e.g. registry.example.com/group/proxy'),
    tag: z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/, 'must be an image tag').default('latest'),
    platforms: z.array(z.enum(['linux/amd64', 'linux/arm64'])).min(1).default(['linux/amd64']),
    /** Registry user; the password comes from the secret key registryPassword. Unset: no login. */
    username: z.string().min(1).optional(),
    /** Name of an existing buildx builder (docker-container, kubernetes or remote driver). */
    builder: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'must be a buildx builder name').optional(),
    /** Build (never push) during `pulumi preview` too; off so that a preview is quick and side-effect free. */
    buildOnPreview: z.boolean().default(false),
  })
  .strict();

const sshSchema = z
  .object({
    enabled: z.boolean().default(true),
    /** DNS name users ssh to (its own load balancer); default ssh.<proxyDomain>. */
    host: dnsName.optional(),
    keyAlgorithm: z.enum(['ED25519', 'RSA', 'ECDSA']).default('ED25519'),
    rsaBits: z.union([z.literal(3072), z.literal(4096)]).default(4096),
    ecdsaCurve: z.enum(['P256', 'P384', 'P521']).default('P256'),
    /** Port of the SSH LoadBalancer Service (what users pass to `ssh -p`). */
    servicePort: port.default(22),
    /** Port of the workspace's sshd (the upstream chart uses 60022). */
    backendPort: port.default(22),
    backendUsername: z.string().min(1).default('gitlab-workspaces'),
    /** Accept the workspace owner's GitLab SSH keys (needs the secret sshServiceToken). */
    publicKeyAuth: z.boolean().default(true),
    serviceAnnotations: z.record(z.string(), z.string()).default({}),
    loadBalancerSourceRanges: z.array(cidr).default([]),
  })
  .strict();

const resourcesSchema = z
  .object({
    requests: z.object({ cpu: quantity.default('100m'), memory: quantity.default('128Mi') }).strict().prefault({}),
    limits: z.object({ cpu: quantity.optional(), memory: quantity.default('512Mi') }).strict().prefault({}),
  })
  .strict();

const autoscalingSchema = z
  .object({
    enabled: z.boolean().default(true),
    maxReplicas: z.number().int().min(1).max(100).default(5),
    targetCpuUtilization: z.number().int().min(10).max(100).default(70),
  })
  .strict();

const proxySchema = z
  .object({
    // The proxy's own levels and defaults; `silent` is left out on purpose: a deployed proxy always logs.
    logLevel: z.enum(LOG_LEVELS).exclude(['silent']).default(DEFAULTS.logLevel),
    /** Scheme of workspace URLs; `http` only for local clusters without TLS. */
    protocol: z.enum(['https', 'http']).default(DEFAULTS.protocol),
    reauthorizeInterval: z.number().positive().default(DEFAULTS.reauthorizeInterval),
    maxSessionDuration: z.number().min(0).default(DEFAULTS.maxSessionDuration),
  })
  .strict();

const networkPolicySchema = z
  .object({
    enabled: z.boolean().default(true),
    /** Where the Kubernetes API server is reachable (pod egress); narrow it to the control plane. */
    /** Unset: allowed by port alone (Cilium matches no ipBlock against a host-network API server). */
    apiServerCidrs: z.array(cidr).min(1).optional(),
    apiServerPorts: z.array(port).min(1).default([443, 6443]),
    /** Where GitLab is reachable (OAuth token exchange, GraphQL). */
    gitlabCidrs: z.array(cidr).min(1).default(['0.0.0.0/0']),
    /** Labels of the namespaces workspaces run in; empty = every namespace. */
    workspaceNamespaceLabels: z.record(z.string(), z.string()).default({}),
  })
  .strict();

const secretString = (what: string) => z.string().min(1, `must not be empty (${what})`);

export const stackConfigSchema = z
  .strictObject({
    // --- proxy part ---
    proxyDomain: dnsName,
    wildcardDomain: z
      .string()
      .regex(/^\*\.[a-z0-9.-]+$/, 'must be *.<domain>, e.g. *.workspaces.example.com')
      .optional(),
    gitlabUrl: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL such as https://gitlab.example.com' }),
    /** PEM CA certificate(s) GitLab's TLS certificate chains to, when it is not a public CA. */
    gitlabCaBundle: caBundleSchema.optional(),
    namespace: k8sName.default('gitlab-workspaces'),
    oauth: oauthSchema.prefault({}),
    gitlabAdminToken: secretString('a GitLab admin personal access token with the api scope').optional(),
    oauthClientId: z.string().min(1).optional(),
    oauthClientSecret: secretString('the OAuth application secret').optional(),
    /** Prebuilt image pinned by digest; when unset the image is built from proxy-image/. */
    image: z.string().regex(/^[^\s@]+@sha256:[0-9a-f]{64}$/, 'must be pinned by digest: <repository>@sha256:<64 hex>').optional(),
    build: buildSchema.optional(),
    registryPassword: secretString('the registry password or token').optional(),
    imagePull: imagePullSchema.prefault({}),
    imagePullPassword: secretString('a registry token with read access, e.g. a GitLab deploy token with read_registry').optional(),
    /** The proxy's own GitLab token for SSH key logins: a project access token (Maintainer, read_api)
     *  of the agent's project. Unset with agent.mode managed: the program creates one; unset otherwise:
     *  SSH takes personal access tokens only. */
    sshServiceToken: secretString('a project access token with read_api on the agent project').optional(),
    replicas: z.number().int().min(1).max(50).default(2),
    autoscaling: autoscalingSchema.prefault({}),
    resources: resourcesSchema.prefault({}),
    ssh: sshSchema.prefault({}),
    proxy: proxySchema.prefault({}),
    networkPolicy: networkPolicySchema.prefault({}),
    // --- platform part (infra/platform/config.ts): controller, tls, dns, ttl, protect and its
    // secrets; taken from its schema's shape so a key added there is known here at once. Its
    // cross-section rules are applied below with refinePlatform. ---
    ...platformConfigSchema.shape,
    // --- agent part (infra/agent/config.ts): agent.* and the secret gitlabApiToken ---
    ...agentStackShape,
  })
  .superRefine((c, ctx) => {
    const need = (key: string, why: string) => ctx.addIssue({ code: 'custom', path: [key], message: `required when ${why}` });
    if (c.oauth.mode === 'managed' && !c.gitlabAdminToken) need('gitlabAdminToken', 'oauth.mode is managed (secret)');
    if (c.oauth.mode === 'provided') {
      if (!c.oauthClientId) need('oauthClientId', 'oauth.mode is provided');
      if (!c.oauthClientSecret) need('oauthClientSecret', 'oauth.mode is provided (secret)');
    }
    if (!c.image && !c.build) need('build', 'no prebuilt image is set (set build.repository, or image)');
    if (c.image && c.build) ctx.addIssue({ code: 'custom', path: ['image'], message: 'set either image or build, not both' });
    if (c.build?.username && !c.registryPassword) need('registryPassword', 'build.username is set (secret)');
    refineBuild(c.build, ctx);
    refineImagePull(c, ctx);
    // SSH has its own load balancer: one name for both would need two DNS records with two targets.
    if (c.ssh.enabled && c.ssh.host === c.proxyDomain) {
      ctx.addIssue({ code: 'custom', path: ['ssh', 'host'], message: 'must differ from proxyDomain (SSH has its own load balancer)' });
    }
    if (c.autoscaling.enabled && c.autoscaling.maxReplicas < c.replicas) {
      ctx.addIssue({ code: 'custom', path: ['autoscaling', 'maxReplicas'], message: 'must be at least replicas' });
    }
    refinePlatform(c, ctx);
    refineAgent(c, ctx);
  });

export type StackConfigInput = z.input<typeof stackConfigSchema>;
export type ParsedStackConfig = z.output<typeof stackConfigSchema>;

/** The validated config plus what is derived from it; secrets are Pulumi secrets from here on. */
export interface StackConfig extends Omit<ParsedStackConfig, SecretKey> {
  stack: string;
  wildcardDomain: string;
  /** DNS name of the SSH endpoint. */
  sshHost: string;
  /** The wildcard domain without `*.`: the agent's `remote_development.dns_zone`. */
  dnsZone: string;
  oauthAppName: string;
  /** agent.name, or `workspaces-<stack>`. */
  agentName: string;
  secrets: Partial<Record<SecretKey, pulumi.Output<string>>>;
}

export class StackConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid stack configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'StackConfigError';
  }
}

/**
 * Turns the raw `project:key` → string map (what the CLI hands the program) into typed values.
 * Structured values arrive as JSON text; scalars as strings, so numbers and booleans are decoded
 * by looking at what the schema expects rather than guessing from the text (a numeric client id
 * stays a string).
 */
export function rawConfigObject(all: Record<string, string>, project = PROJECT): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const prefix = `${project}:`;
  const shape = stackConfigSchema.shape as Record<string, z.ZodType>;
  for (const [fullKey, text] of Object.entries(all)) {
    if (!fullKey.startsWith(prefix)) continue;
    const key = fullKey.slice(prefix.length);
    const expected = shape[key] ? scalarKind(shape[key]) : 'unknown';
    out[key] = decode(text, expected);
  }
  return out;
}

function scalarKind(schema: z.ZodType): 'string' | 'number' | 'boolean' | 'object' | 'unknown' {
  let s: z.ZodType = schema;
  // Unwrap defaults/optionals/prefaults to the underlying type.
  for (let i = 0; i < 5; i++) {
    const def = (s as unknown as { def: { type: string; innerType?: z.ZodType } }).def;
    if (def.innerType && ['default', 'optional', 'prefault', 'nullable'].includes(def.type)) s = def.innerType;
    else break;
  }
  const type = (s as unknown as { def: { type: string } }).def.type;
  if (type === 'string') return 'string';
  if (type === 'number') return 'number';
  if (type === 'boolean') return 'boolean';
  if (type === 'object' || type === 'array' || type === 'record') return 'object';
  return 'unknown';
}

function decode(text: string, expected: ReturnType<typeof scalarKind>): unknown {
  if (expected === 'string') return text;
  if (expected === 'number') return /^-?\d+(\.\d+)?$/.test(text.trim()) ? Number(text) : text;
  if (expected === 'boolean') return text === 'true' ? true : text === 'false' ? false : text;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function valueAt(raw: unknown, path: PropertyKey[]): unknown {
  let v = raw;
  for (const p of path) v = v && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[p] : undefined;
  return v;
}

/** One line per problem, naming the key as `<prefix><dotted.path>` (prefix `gitlab-workspaces:` for stack config). */
function describe(issue: z.core.$ZodIssue, prefix: string, raw: unknown): string {
  const key = `${prefix}${issue.path.map(String).join('.')}`;
  if (issue.code === 'invalid_type' && valueAt(raw, issue.path) === undefined) return `${key}: required`;
  if (issue.code === 'unrecognized_keys') {
    const parent = issue.path.length ? `${key}.` : prefix;
    return issue.keys.map((k) => `${parent}${k}: unknown config key`).join('\n  ');
  }
  if (issue.code === 'invalid_type') return `${key}: expected ${issue.expected}`;
  return `${key}: ${issue.message}`;
}

/**
 * Validates the stack config. Throws StackConfigError listing every problem by its key; nothing is
 * declared before this returns. `isSecret` reports whether a key was set with --secret.
 */
export function parseStackConfig(
  all: Record<string, string>,
  opts: { stack: string; project?: string; isSecret: (fullKey: string) => boolean },
): StackConfig {
  const project = opts.project ?? PROJECT;
  const raw = rawConfigObject(all, project);
  const result = stackConfigSchema.safeParse(raw);
  const problems: string[] = [];
  if (!result.success) problems.push(...result.error.issues.map((i) => describe(i, `${project}:`, raw)));
  for (const key of SECRET_KEYS) {
    if (raw[key] !== undefined && !opts.isSecret(`${project}:${key}`)) {
      problems.push(`${project}:${key}: must be set as a secret (pulumi config set --secret ${key} ...)`);
    }
  }
  if (problems.length > 0 || !result.success) throw new StackConfigError(problems);
  const secrets: StackConfig['secrets'] = {};
  for (const key of SECRET_KEYS) {
    const value = (result.data as Record<string, unknown>)[key];
    if (typeof value === 'string') secrets[key as SecretKey] = pulumi.secret(value);
  }
  return withDerived(result.data, opts.stack, secrets);
}

/** The parsed config without its secret keys, plus what is derived from it. */
function withDerived(c: ParsedStackConfig, stack: string, secrets: StackConfig['secrets']): StackConfig {
  const plain: Record<string, unknown> = { ...c };
  for (const key of SECRET_KEYS) delete plain[key];
  const wildcardDomain = c.wildcardDomain ?? `*.${c.proxyDomain}`;
  return {
    ...(plain as Omit<StackConfig, 'stack' | 'wildcardDomain' | 'sshHost' | 'dnsZone' | 'oauthAppName' | 'agentName' | 'secrets'>),
    stack: stack,
    wildcardDomain,
    sshHost: c.ssh.host ?? `ssh.${c.proxyDomain}`,
    dnsZone: wildcardDomain.slice(2),
    oauthAppName: c.oauth.appName ?? `GitLab Workspaces Proxy (${stack})`,
    agentName: c.agent.name ?? defaultAgentName(stack),
    secrets,
  };
}

export type SecretKey = (typeof PROXY_SECRET_KEYS)[number] | (typeof PLATFORM_SECRET_KEYS)[number] | (typeof AGENT_SECRET_KEYS)[number];

/**
 * The same settings as a stack's config, as a program passes them to the GitLabWorkspaces component:
 * the keys of {@link stackConfigSchema} (same names, defaults and rules), with the secrets as Pulumi
 * inputs under `secrets` (e.g. `config.requireSecret(...)`, or an output of another resource).
 */
export type WorkspacesSettings = Omit<StackConfigInput, SecretKey> & {
  secrets?: Partial<Record<SecretKey, pulumi.Input<string>>>;
};

/** Stand-ins of the right shape for secrets known only as outputs: presence is what the rules check. */
const SECRET_SHAPES: Record<SecretKey, string> = {
  gitlabAdminToken: 'output',
  oauthClientSecret: 'output',
  registryPassword: 'output',
  imagePullPassword: 'output',
  sshServiceToken: 'output',
  gitlabApiToken: 'output',
  cloudflareApiToken: 'output-of-a-cloudflare-api-token',
  tlsProxyCert: '-----BEGIN CERTIFICATE-----',
  tlsProxyKey: '-----BEGIN PRIVATE KEY-----',
  tlsWildcardCert: '-----BEGIN CERTIFICATE-----',
  tlsWildcardKey: '-----BEGIN PRIVATE KEY-----',
};

/**
 * Validates component settings with the stack's schema; throws StackConfigError naming each problem
 * as `<label>.<key>` before any resource is declared. Secrets given as plain strings are checked like
 * stack config; secrets given as outputs are checked for presence (their values come later).
 * `instance` plays the stack's part: the `app.kubernetes.io/instance` label and the OAuth app's name.
 */
export function parseSettings(settings: WorkspacesSettings, opts: { instance: string; label: string }): StackConfig {
  const { secrets: given = {}, ...plain } = settings;
  const raw: Record<string, unknown> = { ...plain };
  for (const [key, value] of Object.entries(given) as [SecretKey, pulumi.Input<string> | undefined][]) {
    if (!(SECRET_KEYS as readonly string[]).includes(key)) continue;
    if (value !== undefined) raw[key] = typeof value === 'string' ? value : SECRET_SHAPES[key];
  }
  const result = stackConfigSchema.safeParse(raw);
  const problems = result.success ? [] : result.error.issues.map((i) => describe(i, `${opts.label}.`, raw));
  for (const key of Object.keys(given)) if (!(SECRET_KEYS as readonly string[]).includes(key)) problems.push(`${opts.label}.secrets.${key}: not a secret setting`);
  if (problems.length > 0 || !result.success) throw new StackConfigError(problems);
  const secrets: StackConfig['secrets'] = {};
  for (const [key, value] of Object.entries(given) as [SecretKey, pulumi.Input<string> | undefined][]) {
    if (value !== undefined) secrets[key] = pulumi.secret(value);
  }
  return withDerived(result.data, opts.instance, secrets);
}

/** Reads and validates the current stack's config from the Pulumi runtime. */
export function loadStackConfig(): StackConfig {
  return parseStackConfig(pulumi.runtime.allConfig(), {
    stack: pulumi.getStack(),
    project: pulumi.getProject(),
    // isConfigSecret is exported by the runtime but missing from its type declarations.
    isSecret: (k) => (pulumi.runtime as unknown as { isConfigSecret(key: string): boolean }).isConfigSecret(k),
  });
}
