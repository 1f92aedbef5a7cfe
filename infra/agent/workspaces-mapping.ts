// The mapping that allows an agent for workspaces in a group (GraphQL
// namespaceCreate/DeleteRemoteDevelopmentClusterAgentMapping; group Owner; the agent's project must be
// inside the group). GitLab reports "already exists" / "not found" in the mutation's `errors`: for
// create and delete those mean the goal is reached. Read: group(fullPath){ workspacesClusterAgents(
// filter: DIRECTLY_MAPPED) } lists the mapped agents.
// Serialization rules of dynamic providers: see infra/agent/gitlab-rest.ts.
import * as pulumi from '@pulumi/pulumi';
import { checkTarget, configureFromStack, gitlabGraphql, type GitLabTarget, type GitLabTargetArgs, tokenChanged, withToken } from './gitlab-rest';

export interface WorkspacesMappingProps extends GitLabTarget {
  groupPath: string;
  /** `gid://gitlab/Clusters::Agent/<id>`. */
  agentGid: string;
}

export interface WorkspacesMappingOuts extends WorkspacesMappingProps {
  groupGid: string;
}

const OWNER = 'the Owner role in the group (and to see the agent\'s project)';

export const gitlabWorkspacesMappingProvider: pulumi.dynamic.ResourceProvider = {
  configure: configureFromStack,

  async check(_olds: WorkspacesMappingProps, news: WorkspacesMappingProps): Promise<pulumi.dynamic.CheckResult> {
    const failures: pulumi.dynamic.CheckFailure[] = [];
    const gitlabUrl = checkTarget(news, failures);
    if (typeof news.groupPath !== 'string' || !news.groupPath) failures.push({ property: 'groupPath', reason: 'required' });
    if (!/^gid:\/\/gitlab\/Clusters::Agent\/\d+$/.test(String(news.agentGid))) failures.push({ property: 'agentGid', reason: 'must be gid://gitlab/Clusters::Agent/<id>' });
    return { inputs: { ...news, gitlabUrl }, failures };
  },

  async diff(_id: string, olds: WorkspacesMappingOuts, news: WorkspacesMappingProps): Promise<pulumi.dynamic.DiffResult> {
    const replaces = (['gitlabUrl', 'groupPath', 'agentGid'] as const).filter((k) => olds[k] !== news[k]);
    return {
      changes: replaces.length > 0 || tokenChanged(olds, news),
      replaces,
      // Same group and agent: create-then-delete would delete the mapping just "created".
      deleteBeforeReplace: olds.groupPath === news.groupPath && olds.agentGid === news.agentGid,
    };
  },

  async create(inputs: WorkspacesMappingProps): Promise<pulumi.dynamic.CreateResult> {
    const group = await mappedAgents(inputs);
    if (!group) throw new Error(`Could not allow the agent in group ${inputs.groupPath}: the group does not exist or the token's user cannot see it (needs ${OWNER}); the token is ${inputs.tokenConfigKey}.`);
    await mutate(inputs, 'Create', group.gid, /already exists/i);
    const outs: WorkspacesMappingOuts = { ...inputs, groupGid: group.gid };
    return { id: `${group.gid}:${inputs.agentGid}`, outs };
  },

  async read(id: string, props: WorkspacesMappingOuts): Promise<pulumi.dynamic.ReadResult> {
    const group = await mappedAgents(props);
    // Group gone or the mapping removed in GitLab: recreate on the next `up`.
    if (!group || !group.agents.includes(props.agentGid)) return {};
    return { id, props: { ...props, groupGid: group.gid } };
  },

  async update(_id: string, olds: WorkspacesMappingOuts, news: WorkspacesMappingProps): Promise<pulumi.dynamic.UpdateResult> {
    return { outs: withToken(olds, news) };
  },

  async delete(_id: string, props: WorkspacesMappingOuts): Promise<void> {
    const group = await mappedAgents(props);
    // Group or agent gone, or the mapping removed by hand: nothing is left behind.
    if (!group || !group.agents.includes(props.agentGid)) return;
    await mutate(props, 'Delete', group.gid, /not found/i);
  },
};

/** The group's id and its directly mapped agents (ids, names), or undefined when the token cannot see the group. */
export async function mappedAgents(p: GitLabTarget & { groupPath: string }): Promise<{ gid: string; agents: string[]; names: string[] } | undefined> {
  const query = 'query($fullPath: ID!) { group(fullPath: $fullPath) { id workspacesClusterAgents(filter: DIRECTLY_MAPPED) { nodes { id name } } } }';
  const { data, errors } = await gitlabGraphql(p, query, { fullPath: p.groupPath }, `read the workspaces agents of group ${p.groupPath}`);
  if (errors.length > 0 && !data?.group) throw new Error(`Could not read the workspaces agents of group ${p.groupPath}: ${errors.join('; ')}`);
  if (!data?.group) return undefined;
  const nodes = (data.group.workspacesClusterAgents?.nodes ?? []) as { id: string; name: string }[];
  return { gid: String(data.group.id), agents: nodes.map((n) => String(n.id)), names: nodes.map((n) => String(n.name)) };
}

async function mutate(p: WorkspacesMappingProps, op: 'Create' | 'Delete', groupGid: string, alreadyDone: RegExp): Promise<void> {
  const field = `namespace${op}RemoteDevelopmentClusterAgentMapping`;
  const query = `mutation($input: Namespace${op}RemoteDevelopmentClusterAgentMappingInput!) { ${field}(input: $input) { errors } }`;
  const action = `${op === 'Create' ? 'allow' : 'disallow'} the agent for workspaces in group ${p.groupPath}`;
  const { data, errors } = await gitlabGraphql(p, query, { input: { clusterAgentId: p.agentGid, namespaceId: groupGid } }, action);
  if (errors.length > 0 || !data?.[field]) {
    throw new Error(`Could not ${action}: ${errors.join('; ') || 'no answer'}. The token's user needs ${OWNER}; the token is ${p.tokenConfigKey}.`);
  }
  const problems = ((data[field].errors ?? []) as string[]).filter((e) => !alreadyDone.test(e));
  if (problems.length > 0) throw new Error(`Could not ${action}: ${problems.join('; ')}`);
}

export interface GitLabWorkspacesMappingArgs extends GitLabTargetArgs {
  groupPath: pulumi.Input<string>;
  agentGid: pulumi.Input<string>;
}

/** The agent allowed for workspaces in a group. */
export class GitLabWorkspacesAgentMapping extends pulumi.dynamic.Resource {
  declare readonly groupGid: pulumi.Output<string>;

  constructor(name: string, args: GitLabWorkspacesMappingArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      gitlabWorkspacesMappingProvider,
      name,
      { ...args, token: pulumi.secret(args.token), groupGid: undefined },
      { ...opts, additionalSecretOutputs: ['token'] },
      'gitlab',
      'WorkspacesAgentMapping',
    );
  }
}
