// What the agent part derives from the stack config: the agent config file GitLab reads, where it
// lives, and the KAS address agentk dials. Pure functions, shared by the managed and existing modes.
import { stringify } from 'yaml';
import type { RemoteDevelopmentConfig } from './config';

/**
 * Labels GitLab's workspace NetworkPolicy admits ingress from, in the namespace named by
 * `gitlab_workspaces_proxy.namespace` (gitlabhq ee/lib/remote_development/workspace_operations/
 * reconcile/output: `proxy_pod_selector` matches `app.kubernetes.io/name: gitlab-workspaces-proxy`,
 * `proxy_namespace_selector` matches `kubernetes.io/metadata.name: <that namespace>`).
 * The proxy's pods must carry them (test/infra/agent-stacks.test.ts holds the two together).
 */
export const WORKSPACES_PROXY_POD_LABELS = { 'app.kubernetes.io/name': 'gitlab-workspaces-proxy' } as const;

/** Where GitLab looks for an agent's config: `.gitlab/agents/<name>/config.yaml` on the default branch. */
export function agentConfigPath(agentName: string): string {
  return `.gitlab/agents/${agentName}/config.yaml`;
}

/**
 * KAS address for agentk: GitLab.com's own KAS, else the one behind the instance's URL
 * (docs: administration/clusters/kas, `wss://<host>/-/kubernetes-agent/`; `ws://` for plain http).
 */
export function kasAddress(gitlabUrl: string): string {
  const u = new URL(gitlabUrl);
  if (u.hostname === 'gitlab.com') return 'wss://kas.gitlab.com';
  const scheme = u.protocol === 'http:' ? 'ws' : 'wss';
  return `${scheme}://${u.host}${u.pathname.replace(/\/+$/, '')}/-/kubernetes-agent/`;
}

export interface AgentConfigInput {
  /** The proxy's wildcard zone without `*.`. */
  dnsZone: string;
  /** The proxy's namespace. */
  proxyNamespace: string;
  remoteDevelopment?: RemoteDevelopmentConfig;
  /** First-line comment (managed mode: who owns the file). */
  header?: string;
}

const resources = (r: { requests: { cpu: string; memory: string }; limits: { cpu: string; memory: string } }) => ({
  requests: { cpu: r.requests.cpu, memory: r.requests.memory },
  limits: { cpu: r.limits.cpu, memory: r.limits.memory },
});

/** The `remote_development` block as GitLab's agent config expects it (docs: user/workspace/settings). */
export function remoteDevelopmentBlock(c: AgentConfigInput): Record<string, unknown> {
  const rd = c.remoteDevelopment ?? {};
  const out: Record<string, unknown> = {
    enabled: true,
    dns_zone: c.dnsZone,
    gitlab_workspaces_proxy: { namespace: c.proxyNamespace },
  };
  if (rd.networkPolicy) {
    const np: Record<string, unknown> = {};
    if (rd.networkPolicy.enabled !== undefined) np.enabled = rd.networkPolicy.enabled;
    if (rd.networkPolicy.egress) np.egress = rd.networkPolicy.egress.map((e) => (e.except ? { allow: e.allow, except: e.except } : { allow: e.allow }));
    out.network_policy = np;
  }
  if (rd.defaultResourcesPerWorkspaceContainer) out.default_resources_per_workspace_container = resources(rd.defaultResourcesPerWorkspaceContainer);
  if (rd.maxResourcesPerWorkspace) out.max_resources_per_workspace = resources(rd.maxResourcesPerWorkspace);
  if (rd.workspacesQuota !== undefined) out.workspaces_quota = rd.workspacesQuota;
  if (rd.workspacesPerUserQuota !== undefined) out.workspaces_per_user_quota = rd.workspacesPerUserQuota;
  if (rd.maxActiveHoursBeforeStop !== undefined) out.max_active_hours_before_stop = rd.maxActiveHoursBeforeStop;
  if (rd.maxStoppedHoursBeforeTermination !== undefined) out.max_stopped_hours_before_termination = rd.maxStoppedHoursBeforeTermination;
  if (rd.imagePullSecrets) out.image_pull_secrets = rd.imagePullSecrets.map((s) => ({ name: s.name, namespace: s.namespace }));
  if (rd.annotations) out.annotations = { ...rd.annotations };
  if (rd.labels) out.labels = { ...rd.labels };
  if (rd.sharedNamespace) out.shared_namespace = rd.sharedNamespace;
  return out;
}

/** The agent config file's text (deterministic: same input, same bytes, so no needless commit). */
export function renderAgentConfig(c: AgentConfigInput): string {
  const body = stringify(
    { remote_development: remoteDevelopmentBlock(c) },
    { defaultStringType: 'QUOTE_DOUBLE', defaultKeyType: 'PLAIN', lineWidth: 0, indent: 2 },
  );
  return c.header ? `${c.header.split('\n').map((l) => `# ${l}`).join('\n')}\n${body}` : body;
}
