// An agent token (POST/GET/DELETE /projects/:id/cluster_agents/:agent_id/tokens[/:token_id],
// Maintainer). GitLab shows the secret only in the create response, so it lives in the resource's
// secret state from then on. Tokens cannot be edited: any change (a new `generation` rotates)
// replaces the token, new one first, then the old one is revoked: GitLab allows two active tokens per
// agent exactly so that a rotation never leaves agentk without a valid one.
// Serialization rules of dynamic providers: see infra/agent/gitlab-rest.ts.
import * as pulumi from '@pulumi/pulumi';
import { checkTarget, configureFromStack, gitlabError, gitlabMessage, gitlabRest, type GitLabTarget, type GitLabTargetArgs, projectPath, tokenChanged, withToken } from './gitlab-rest';

export interface AgentTokenProps extends GitLabTarget {
  projectId: string;
  agentId: string;
  name: string;
  description: string;
  /** Increase to rotate. */
  generation: number;
}

export interface AgentTokenOuts extends AgentTokenProps {
  tokenId: string;
  /** The secret agentk authenticates with. */
  value: string;
}

const REPLACE_KEYS = ['gitlabUrl', 'projectId', 'agentId', 'name', 'description', 'generation'] as const;

export const gitlabAgentTokenProvider: pulumi.dynamic.ResourceProvider = {
  configure: configureFromStack,

  async check(_olds: AgentTokenProps, news: AgentTokenProps): Promise<pulumi.dynamic.CheckResult> {
    const failures: pulumi.dynamic.CheckFailure[] = [];
    const gitlabUrl = checkTarget(news, failures);
    if (typeof news.name !== 'string' || !news.name || news.name.length > 255) failures.push({ property: 'name', reason: 'must be 1 to 255 characters' });
    if (!Number.isInteger(news.generation) || news.generation < 1) failures.push({ property: 'generation', reason: 'must be a positive integer' });
    return { inputs: { ...news, gitlabUrl, description: news.description ?? '' }, failures };
  },

  async diff(_id: string, olds: AgentTokenOuts, news: AgentTokenProps): Promise<pulumi.dynamic.DiffResult> {
    const replaces = REPLACE_KEYS.filter((k) => String(olds[k]) !== String(news[k]));
        return {
      changes: replaces.length > 0 || tokenChanged(olds, news),
      replaces,
      // New token first, then revoke the old one (the two-token limit allows exactly this).
      deleteBeforeReplace: false,
      stables: replaces.length === 0 ? ['tokenId', 'value'] : [],
    };
  },

  async create(inputs: AgentTokenProps): Promise<pulumi.dynamic.CreateResult> {
    const path = `${projectPath(inputs.projectId)}/cluster_agents/${inputs.agentId}/tokens`;
    const res = await gitlabRest(inputs, 'POST', path, { name: inputs.name, description: inputs.description });
    if (res.status === 400 && /two active tokens/i.test(gitlabMessage(res.body))) {
      throw new Error(
        `Could not create an agent token: the agent already has two active tokens, GitLab's limit (${gitlabMessage(res.body)}). ` +
          'Revoke one that Pulumi does not manage (Operate > Kubernetes clusters > the agent > Access tokens) and run `pulumi up` again.',
      );
    }
    if (res.status !== 201 || typeof res.body?.token !== 'string') {
      throw gitlabError(inputs, 'create an agent token', res, 'the Maintainer role in the agent\'s project');
    }
    const outs: AgentTokenOuts = { ...inputs, tokenId: String(res.body.id), value: res.body.token };
    return { id: outs.tokenId, outs };
  },

  async read(id: string, props: AgentTokenOuts): Promise<pulumi.dynamic.ReadResult> {
    const res = await gitlabRest(props, 'GET', `${projectPath(props.projectId)}/cluster_agents/${props.agentId}/tokens/${id}`);
    // Revoked (GitLab answers 404 for a revoked token) or its agent is gone: recreate on the next `up`.
    if (res.status === 404 || (res.status === 200 && res.body?.status && res.body.status !== 'active')) return {};
    if (res.status !== 200) throw gitlabError(props, 'read the agent token', res, 'the Maintainer role in the agent\'s project');
    // The secret itself is never shown again: keep the one from state.
    return { id, props: { ...props, name: String(res.body.name), description: String(res.body.description ?? '') } };
  },

  async update(_id: string, olds: AgentTokenOuts, news: AgentTokenProps): Promise<pulumi.dynamic.UpdateResult> {
    return { outs: withToken(olds, news) };
  },

  async delete(id: string, props: AgentTokenOuts): Promise<void> {
    const res = await gitlabRest(props, 'DELETE', `${projectPath(props.projectId)}/cluster_agents/${props.agentId}/tokens/${id}`);
    // 404: already revoked, or the agent (and with it its tokens) is gone.
    if (res.status !== 204 && res.status !== 404) throw gitlabError(props, 'revoke the agent token', res, 'the Maintainer role in the agent\'s project');
  },
};

export interface GitLabAgentTokenArgs extends GitLabTargetArgs {
  projectId: pulumi.Input<string>;
  agentId: pulumi.Input<string>;
  name: pulumi.Input<string>;
  description: pulumi.Input<string>;
  generation: pulumi.Input<number>;
}

/** A token agentk connects with; `value` is a secret. */
export class GitLabAgentToken extends pulumi.dynamic.Resource {
  declare readonly tokenId: pulumi.Output<string>;
  declare readonly value: pulumi.Output<string>;

  constructor(name: string, args: GitLabAgentTokenArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      gitlabAgentTokenProvider,
      name,
      { ...args, token: pulumi.secret(args.token), tokenId: undefined, value: undefined },
      { ...opts, additionalSecretOutputs: ['value', 'token'], replaceOnChanges: [...REPLACE_KEYS] },
      'gitlab',
      'ClusterAgentToken',
    );
  }
}
