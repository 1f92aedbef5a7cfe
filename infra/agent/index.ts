// The GitLab agent for Kubernetes that runs the workspaces, in one of three modes (agent.mode):
//   managed   the agent, its token, its config file and the group mapping in GitLab (one dynamic
//             resource each) and agentk installed by Helm;
//   existing  an agent the team already runs: only the `remote_development` config it must carry,
//             and a look at the group mapping when the stack has a token;
//   none      nothing.
// The config file is rendered from the proxy's own values (dns_zone = the proxy's wildcard zone,
// gitlab_workspaces_proxy.namespace = the proxy's namespace), so the two cannot drift apart.
// In managed mode it also makes the proxy's own token for SSH key logins (auth.service_token): a project
// access token of the agent's project, Maintainer, read_api (infra/components/project-access-token.ts).
import * as pulumi from '@pulumi/pulumi';
import { parentPath, type AgentConfig } from './config';
import { agentConfigPath, kasAddress, renderAgentConfig } from './render';
import { GitLabAgentRegistration } from './agent-resource';
import { GitLabAgentToken } from './agent-token';
import { GitLabRepositoryFile } from './repository-file';
import { GitLabWorkspacesAgentMapping, mappedAgents } from './workspaces-mapping';
import type { GitLabTarget } from './gitlab-rest';
import { Agentk, AGENT_RELEASE } from './agentk';
import { GitLabProjectAccessToken } from '../components/project-access-token';
import { nestedComponentAliases } from '../components/aliases';

const AGENT_TYPE = 'gitlab-workspaces:agent:Agent';

export { agentConfigSchema, agentStackShape, refineAgent, AGENT_SECRET_KEYS, defaultAgentName, type AgentConfig } from './config';
export { renderAgentConfig, kasAddress, agentConfigPath, WORKSPACES_PROXY_POD_LABELS } from './render';

export interface WorkspacesAgentArgs {
  config: AgentConfig & { name: string };
  stack: string;
  /** GitLab base URL without trailing slash. */
  gitlabUrl: string;
  /** The proxy's wildcard zone without `*.` (remote_development.dns_zone). */
  dnsZone: string;
  /** The proxy's namespace (remote_development.gitlab_workspaces_proxy.namespace). */
  proxyNamespace: pulumi.Input<string>;
  labels: Record<string, string>;
  /** GitLab token with the api scope (secret): required in managed mode, optional in existing mode. */
  apiToken?: pulumi.Input<string>;
  /** The stack config key apiToken comes from; providers read the current value from it. */
  tokenConfigKey: string;
  /** The stack's gitlabCaBundle (a GitLab behind an internal CA): trusted by the providers' API calls,
   *  and by agentk for KAS (`config.kasCaCert`). */
  gitlabCaBundle?: string;
  /** Protect the agent registration (its deletion takes the workspaces with it). */
  protect?: boolean;
  /** managed mode: also create the proxy's service token (SSH key logins) in the agent's project. */
  proxyServiceToken?: boolean;
}

/** The stack output about the agent (`agent`). */
export interface AgentSummary {
  mode: 'managed' | 'existing';
  name: string;
  project: string | null;
  projectId: string | null;
  group: string | null;
  configFile: string;
  kasAddress: string;
  /** existing mode: what the look at the group mapping found. */
  mapping?: string;
  verification: Record<string, string>;
}

export class WorkspacesAgent extends pulumi.ComponentResource {
  /** The rendered agent config (`remote_development` block); undefined in `none` mode. */
  readonly configText: pulumi.Output<string> | undefined;
  readonly summary: pulumi.Output<AgentSummary> | undefined;
  /** Numeric id of the agent's project (managed mode): where a project access token would be made. */
  readonly projectId: pulumi.Output<string> | undefined;
  readonly registration: GitLabAgentRegistration | undefined;
  readonly token: GitLabAgentToken | undefined;
  readonly configFile: GitLabRepositoryFile | undefined;
  readonly mapping: GitLabWorkspacesAgentMapping | undefined;
  readonly agentk: Agentk | undefined;
  /** The proxy's service token (managed mode with proxyServiceToken); `value` is secret. */
  readonly proxyServiceToken: GitLabProjectAccessToken | undefined;

  constructor(name: string, args: WorkspacesAgentArgs, opts?: pulumi.ComponentResourceOptions) {
    super(AGENT_TYPE, name, {}, opts);
    const c = args.config;
    const kas = kasAddress(args.gitlabUrl);
    const configFilePath = agentConfigPath(c.name);
    const group = c.group ?? (c.project ? parentPath(c.project) : undefined);

    if (c.mode === 'none') {
      this.configText = this.summary = this.projectId = undefined;
      this.registration = this.token = this.configFile = this.mapping = this.agentk = this.proxyServiceToken = undefined;
      this.registerOutputs({});
      return;
    }

    if (c.mode === 'existing') {
      this.registration = this.token = this.configFile = this.mapping = this.agentk = this.proxyServiceToken = undefined;
      this.projectId = undefined;
      this.configText = pulumi.output(args.proxyNamespace).apply((ns) =>
        renderAgentConfig({ dnsZone: args.dnsZone, proxyNamespace: ns, remoteDevelopment: c.remoteDevelopment }),
      );
      const mapping = group && args.apiToken
        ? pulumi.output(args.apiToken).apply((token) => describeMapping({ gitlabUrl: args.gitlabUrl, token, tokenConfigKey: args.tokenConfigKey, caBundle: args.gitlabCaBundle }, group, c.name))
        : pulumi.output(`not checked: set agent.group (or agent.project) and ${args.tokenConfigKey} to check it`);
      mapping.apply((m) => (m.startsWith('NOT MAPPED') ? pulumi.log.warn(m, this) : undefined));
      this.summary = mapping.apply((m): AgentSummary => ({
        mode: 'existing' as const,
        name: c.name,
        project: c.project ?? null,
        projectId: null,
        group: group ?? null,
        configFile: configFilePath,
        kasAddress: kas,
        mapping: m,
        verification: {
          config: `pulumi stack output agentConfig  # must be the remote_development block of ${configFilePath} in ${c.project ?? "the agent's project"} (default branch)`,
          ...(group ? { mapping: `open ${args.gitlabUrl}/groups/${group}/-/settings/workspaces  # the agent ${c.name} is listed as allowed` } : {}),
          workspace: `open ${args.gitlabUrl}/-/remote_development/workspaces/new  # create a workspace in GitLab`,
        },
      }));
      this.registerOutputs({ configText: this.configText, summary: this.summary });
      return;
    }

    // --- managed ---
    if (!c.project || !group || args.apiToken === undefined) throw new Error('WorkspacesAgent: managed mode needs agent.project, a group and apiToken');
    const gitlab = { gitlabUrl: args.gitlabUrl, token: args.apiToken, tokenConfigKey: args.tokenConfigKey, ...(args.gitlabCaBundle ? { caBundle: args.gitlabCaBundle } : {}) };
    const parent = { parent: this };
    // Protected with the stack (prod): GitLab deletes an agent's workspaces with it.
    this.registration = new GitLabAgentRegistration(name, { ...gitlab, project: c.project, name: c.name }, { parent: this, protect: args.protect });
    const reg = this.registration;
    this.projectId = reg.projectId;
    this.token = new GitLabAgentToken(
      name,
      {
        ...gitlab,
        projectId: reg.projectId,
        agentId: reg.agentId,
        name: `pulumi-${args.stack}-${c.tokenGeneration}`.slice(0, 255),
        description: `agentk of Pulumi stack ${args.stack} (gitlab-workspaces); rotate with agent.tokenGeneration`,
        generation: c.tokenGeneration,
      },
      parent,
    );
    this.configText = pulumi.output(args.proxyNamespace).apply((ns) =>
      renderAgentConfig({
        dnsZone: args.dnsZone,
        proxyNamespace: ns,
        remoteDevelopment: c.remoteDevelopment,
        header: `Managed by Pulumi (gitlab-workspaces, stack ${args.stack}): edits here are replaced by the next \`pulumi up\`.\nChange the stack config (agent.remoteDevelopment) instead.`,
      }),
    );
    this.configFile = new GitLabRepositoryFile(
      name,
      {
        ...gitlab,
        projectId: reg.projectId,
        branch: reg.defaultBranch,
        path: configFilePath,
        content: this.configText,
        commitMessage: `Workspaces agent config (Pulumi stack ${args.stack})`,
      },
      parent,
    );
    this.mapping = new GitLabWorkspacesAgentMapping(name, { ...gitlab, groupPath: group, agentGid: reg.agentGid }, parent);
    this.agentk = new Agentk(
      name,
      {
        namespace: c.namespace,
        labels: args.labels,
        chartVersion: c.chartVersion,
        replicas: c.replicas,
        kasAddress: kas,
        token: this.token.value,
        tokenId: this.token.tokenId,
        kasCaCert: args.gitlabCaBundle,
      },
      // GitLab reads the config once agentk connects: have the file in place first.
      { parent: this, dependsOn: [this.configFile], aliases: nestedComponentAliases({ name, type: AGENT_TYPE, aliases: opts?.aliases }, name) },
    );
    // Maintainer + read_api: GitLab lets Maintainers of the agent's project read its workspaces (the
    // owner query) and read_api lists users' keys. Expires after a year; a `pulumi up` in the last 30
    // days makes the next one first, rolls the proxy onto it (a new config Secret), then revokes this one.
    this.proxyServiceToken = args.proxyServiceToken
      ? new GitLabProjectAccessToken(
          `${name}-proxy-service-token`,
          {
            gitlabUrl: args.gitlabUrl,
            token: args.apiToken,
            tokenConfigKey: args.tokenConfigKey,
            caBundle: args.gitlabCaBundle,
            project: reg.projectId,
            name: `gitlab-workspaces-proxy (${args.stack})`,
            scopes: 'read_api',
            accessLevel: 40,
            lifetimeDays: 365,
            rotateBeforeDays: 30,
          },
          parent,
        )
      : undefined;
    const project = c.project;
    this.summary = pulumi.all([reg.projectId, reg.agentId]).apply(([projectId, agentId]): AgentSummary => ({
      mode: 'managed' as const,
      name: c.name,
      project,
      projectId,
      group,
      configFile: configFilePath,
      kasAddress: kas,
      verification: {
        agentk: `kubectl -n ${c.namespace} get pods -l app.kubernetes.io/instance=${AGENT_RELEASE}  # Running and Ready`,
        agentkLogs: `kubectl -n ${c.namespace} logs -l app.kubernetes.io/instance=${AGENT_RELEASE} --tail=20  # no authentication errors`,
        agent: `open ${args.gitlabUrl}/${project}/-/cluster_agents/${c.name}  # Connected (agent id ${agentId})`,
        config: `open ${args.gitlabUrl}/${project}/-/blob/HEAD/${configFilePath}  # the remote_development block of agentConfig`,
        mapping: `open ${args.gitlabUrl}/groups/${group}/-/settings/workspaces  # ${c.name} is listed as allowed`,
        workspace: `open ${args.gitlabUrl}/-/remote_development/workspaces/new  # create a workspace in GitLab (a project in ${group} with a devfile)`,
      },
    }));
    this.registerOutputs({ configText: this.configText, summary: this.summary, projectId: this.projectId });
  }
}

/** existing mode: is an agent of this name directly mapped in the group? Never fails the deployment. */
async function describeMapping(target: GitLabTarget, group: string, agentName: string): Promise<string> {
  try {
    const found = await mappedAgents({ ...target, groupPath: group });
    if (!found) return `not checked: group ${group} is not visible to the token`;
    return found.names.includes(agentName)
      ? `mapped: ${agentName} is allowed for workspaces in ${group}`
      : `NOT MAPPED: ${agentName} is not allowed for workspaces in ${group} (allowed: ${found.names.join(', ') || 'none'}); a group Owner allows it in the group's Settings > Workspaces`;
  } catch (err) {
    return `not checked: ${(err as Error).message}`;
  }
}
