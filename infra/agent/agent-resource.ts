// The GitLab agent for Kubernetes registered in a project (POST/GET/DELETE
// /projects/:id/cluster_agents[/:agent_id], Maintainer). GitLab cannot rename or move an agent, so a
// new name, project or GitLab replaces it (deleted first when the name stays: names are unique per
// project). Deleting the agent revokes its tokens in GitLab.
// Serialization rules of dynamic providers: see infra/agent/gitlab-rest.ts and docs/testing.md.
import * as pulumi from '@pulumi/pulumi';
import { checkTarget, configureFromStack, gitlabError, gitlabRest, type GitLabTarget, type GitLabTargetArgs, projectPath, tokenChanged, withToken } from './gitlab-rest';

export interface AgentProps extends GitLabTarget {
  /** Full path of the project (or its numeric id). */
  project: string;
  name: string;
}

export interface AgentOuts extends AgentProps {
  agentId: string;
  /** `gid://gitlab/Clusters::Agent/<id>`, as GraphQL names it. */
  agentGid: string;
  projectId: string;
  projectFullPath: string;
  defaultBranch: string;
}

const AGENT_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export const gitlabAgentProvider: pulumi.dynamic.ResourceProvider = {
  configure: configureFromStack,

  async check(_olds: AgentProps, news: AgentProps): Promise<pulumi.dynamic.CheckResult> {
    const failures: pulumi.dynamic.CheckFailure[] = [];
    const gitlabUrl = checkTarget(news, failures);
    if (typeof news.project !== 'string' || !news.project) failures.push({ property: 'project', reason: 'the project full path is required' });
    if (typeof news.name !== 'string' || !AGENT_NAME.test(news.name)) failures.push({ property: 'name', reason: 'must be a DNS label (lower-case letters, digits, "-", max 63)' });
    return { inputs: { ...news, gitlabUrl }, failures };
  },

  async diff(_id: string, olds: AgentOuts, news: AgentProps): Promise<pulumi.dynamic.DiffResult> {
    const replaces = (['gitlabUrl', 'project', 'name'] as const).filter((k) => String(olds[k]) !== String(news[k]));
        return {
      changes: replaces.length > 0 || tokenChanged(olds, news),
      replaces,
      // Same name in the same project: the old one must go first (GitLab: "has already been taken").
      deleteBeforeReplace: olds.name === news.name && olds.project === news.project,
      stables: replaces.length === 0 ? ['agentId', 'agentGid', 'projectId'] : [],
    };
  },

  async create(inputs: AgentProps): Promise<pulumi.dynamic.CreateResult> {
    const project = await gitlabRest(inputs, 'GET', projectPath(inputs.project));
    if (project.status !== 200) throw gitlabError(inputs, `find project ${inputs.project}`, project, 'at least the Maintainer role in it');
    const res = await gitlabRest(inputs, 'POST', `${projectPath(project.body.id)}/cluster_agents`, { name: inputs.name });
    if (res.status === 400 && /taken/.test(JSON.stringify(res.body))) {
      throw new Error(
        `Could not register the agent: project ${inputs.project} already has an agent named ${inputs.name}. ` +
          'Delete it in GitLab (Operate > Kubernetes clusters), set another agent.name, or use agent.mode: existing.',
      );
    }
    if (res.status !== 201) throw gitlabError(inputs, `register agent ${inputs.name} in ${inputs.project}`, res, `the Maintainer role in ${inputs.project}`);
    const outs: AgentOuts = {
      ...inputs,
      agentId: String(res.body.id),
      agentGid: `gid://gitlab/Clusters::Agent/${res.body.id}`,
      projectId: String(project.body.id),
      projectFullPath: String(project.body.path_with_namespace),
      defaultBranch: String(project.body.default_branch),
    };
    return { id: outs.agentId, outs };
  },

  async read(id: string, props: AgentOuts): Promise<pulumi.dynamic.ReadResult> {
    const res = await gitlabRest(props, 'GET', `${projectPath(props.projectId)}/cluster_agents/${id}`);
    // Deleted in GitLab (or its project): no id, so the next `up` registers it again.
    if (res.status === 404) return {};
    if (res.status !== 200) throw gitlabError(props, `read agent ${props.name}`, res, `the Maintainer role in ${props.project}`);
    const project = await gitlabRest(props, 'GET', projectPath(props.projectId));
    return {
      id,
      props: {
        ...props,
        name: String(res.body.name),
        ...(project.status === 200
          ? { projectFullPath: String(project.body.path_with_namespace), defaultBranch: String(project.body.default_branch) }
          : {}),
      },
    };
  },

  async update(_id: string, olds: AgentOuts, news: AgentProps): Promise<pulumi.dynamic.UpdateResult> {
    // Only the token can change in place (everything else replaces); GitLab is not called.
    return { outs: withToken(olds, news) };
  },

  async delete(id: string, props: AgentOuts): Promise<void> {
    const res = await gitlabRest(props, 'DELETE', `${projectPath(props.projectId)}/cluster_agents/${id}`);
    // 404: already gone (by hand, or with its project).
    if (res.status !== 204 && res.status !== 404) throw gitlabError(props, `delete agent ${props.name}`, res, `the Maintainer role in ${props.project}`);
  },
};

export interface GitLabAgentArgs extends GitLabTargetArgs {
  project: pulumi.Input<string>;
  name: pulumi.Input<string>;
}

/** An agent for Kubernetes in a GitLab project. */
export class GitLabAgentRegistration extends pulumi.dynamic.Resource {
  declare readonly agentId: pulumi.Output<string>;
  declare readonly agentGid: pulumi.Output<string>;
  declare readonly projectId: pulumi.Output<string>;
  declare readonly projectFullPath: pulumi.Output<string>;
  declare readonly defaultBranch: pulumi.Output<string>;

  constructor(name: string, args: GitLabAgentArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      gitlabAgentProvider,
      name,
      { ...args, token: pulumi.secret(args.token), agentId: undefined, agentGid: undefined, projectId: undefined, projectFullPath: undefined, defaultBranch: undefined },
      { ...opts, additionalSecretOutputs: ['token'] },
      'gitlab',
      'ClusterAgent',
    );
  }
}
