// Stack config of the GitLab agent part (`gitlab-workspaces:agent` and the secret `gitlabApiToken`).
// infra/config.ts merges this schema into the one stack schema; the component takes the parsed values.
//
// `agent.remoteDevelopment` holds the `remote_development` settings a platform team sets in the agent
// config (GitLab docs: user/workspace/settings). Only what is set is rendered, so GitLab's own defaults
// apply to the rest; `enabled`, `dns_zone` and `gitlab_workspaces_proxy.namespace` always come from the
// proxy's config and cannot be set here.
import { z } from 'zod';

/**
 * gitlab-agent chart pinned so that `pulumi up` is reproducible: 2.23.0 ships agentk v18.8.0
 * (charts.gitlab.io). Keep agentk within a minor version of your GitLab (docs: clusters/agent/install).
 */
export const AGENT_CHART_VERSION = '2.23.0';

export const AGENT_SECRET_KEYS = ['gitlabApiToken'] as const;

const k8sName = z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be a Kubernetes name (RFC 1123 label)');
const projectPath = z
  .string()
  .regex(/^[A-Za-z0-9_.][A-Za-z0-9_.-]*(\/[A-Za-z0-9_.][A-Za-z0-9_.-]*)+$/, 'must be the full path of a GitLab project, e.g. platform/workspaces-agent');
const groupPath = z.string().regex(/^[A-Za-z0-9_.][A-Za-z0-9_.-]*(\/[A-Za-z0-9_.][A-Za-z0-9_.-]*)*$/, 'must be the full path of a GitLab group, e.g. platform');
const quantity = z.string().regex(/^\d+(\.\d+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$/, 'must be a Kubernetes quantity such as 500m or 1Gi');
const cidr = z.string().regex(/^(\d{1,3}\.){3}\d{1,3}\/\d{1,2}$|^[0-9a-fA-F:]+\/\d{1,3}$/, 'must be a CIDR such as 10.0.0.0/8');
const cpuMemory = z.strictObject({ cpu: quantity, memory: quantity });
const resources = z.strictObject({ requests: cpuMemory, limits: cpuMemory });
/** GitLab: -1 = no limit, 0 = none allowed. */
const quota = z.number().int().min(-1);

export const remoteDevelopmentSchema = z.strictObject({
  networkPolicy: z
    .strictObject({
      enabled: z.boolean().optional(),
      egress: z.array(z.strictObject({ allow: cidr, except: z.array(cidr).optional() })).optional(),
    })
    .optional(),
  defaultResourcesPerWorkspaceContainer: resources.optional(),
  maxResourcesPerWorkspace: resources.optional(),
  workspacesQuota: quota.optional(),
  workspacesPerUserQuota: quota.optional(),
  // GitLab terminates any workspace 8760 h (one year) after creation, whatever these say.
  maxActiveHoursBeforeStop: z.number().int().min(1).max(8760).optional(),
  maxStoppedHoursBeforeTermination: z.number().int().min(1).max(8760).optional(),
  imagePullSecrets: z.array(z.strictObject({ name: k8sName, namespace: k8sName })).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  labels: z.record(z.string(), z.string()).optional(),
  /** GitLab 18.0+: every workspace in this one namespace. */
  sharedNamespace: k8sName.optional(),
});

/**
 * `agent.mode`: `managed` registers the agent, its token, its config file and the group mapping in
 * GitLab and installs agentk; `existing` only outputs the config snippet an agent the team already runs
 * must carry (and checks the mapping when it can); `none` does nothing about the agent.
 */
export const agentConfigSchema = z.strictObject({
  mode: z.enum(['managed', 'existing', 'none']).default('existing'),
  /** Agent name in GitLab (a DNS label); default `workspaces-<stack>`. */
  name: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be lower-case letters, digits and "-" (max 63), e.g. workspaces-dev')
    .optional(),
  /** Full path of the project holding the agent and its config file (Maintainer needed). */
  project: projectPath.optional(),
  /** Group whose projects may create workspaces with the agent (Owner needed); default: the project's parent group. */
  group: groupPath.optional(),
  /** Namespace agentk runs in. */
  namespace: k8sName.default('gitlab-agent'),
  chartVersion: z.string().min(1).default(AGENT_CHART_VERSION),
  replicas: z.number().int().min(1).max(10).default(2),
  /** Increase to rotate the agent token: the new token is created before the old one is revoked. */
  tokenGeneration: z.number().int().min(1).default(1),
  remoteDevelopment: remoteDevelopmentSchema.prefault({}),
});

export type AgentConfig = z.output<typeof agentConfigSchema>;
export type RemoteDevelopmentConfig = z.output<typeof remoteDevelopmentSchema>;

/** The keys infra/config.ts spreads into the stack schema. */
export const agentStackShape = {
  agent: agentConfigSchema.prefault({}),
  /** A GitLab token (api scope) of a Maintainer of agent.project and Owner of agent.group; default gitlabAdminToken. */
  gitlabApiToken: z.string().min(1, 'must not be empty (a GitLab token with the api scope)').optional(),
};

/** Cross-key rules; issue paths are top-level config keys. */
export function refineAgent(
  c: { agent: AgentConfig; gitlabApiToken?: string; gitlabAdminToken?: string },
  ctx: z.RefinementCtx,
): void {
  if (c.agent.mode !== 'managed') return;
  if (!c.agent.project) ctx.addIssue({ code: 'custom', path: ['agent', 'project'], message: 'required when agent.mode is managed (full path of the project holding the agent)' });
  if (!c.gitlabApiToken && !c.gitlabAdminToken) {
    ctx.addIssue({ code: 'custom', path: ['gitlabApiToken'], message: 'required (secret) when agent.mode is managed and gitlabAdminToken is not set' });
  }
  const project = c.agent.project;
  const group = c.agent.group ?? (project ? parentPath(project) : undefined);
  if (project && group && !project.startsWith(`${group}/`)) {
    ctx.addIssue({ code: 'custom', path: ['agent', 'group'], message: `must contain agent.project (${project}): GitLab maps an agent only to a group its project is in` });
  }
}

/** `a/b/c` → `a/b`. */
export function parentPath(path: string): string {
  return path.split('/').slice(0, -1).join('/');
}

/** Default agent name for a stack: `workspaces-<stack>` made a DNS label. */
export function defaultAgentName(stack: string): string {
  const cleaned = `workspaces-${stack.toLowerCase().replace(/[^a-z0-9-]+/g, '-')}`.slice(0, 63).replace(/-+$/, '');
  return cleaned;
}
