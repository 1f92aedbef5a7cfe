// One file on a project's branch, owned by the stack (the agent's `.gitlab/agents/<name>/config.yaml`):
// GET/POST/PUT/DELETE /projects/:id/repository/files/:path (path URL-encoded; writing to the protected
// default branch takes Maintainer). GitLab answers 400 to a PUT that changes nothing (an empty commit),
// so every write compares with what is there first; `read` returns the file as it is in GitLab, so a
// hand edit or a deletion shows up in `pulumi refresh` and the next `up` restores the file.
// Serialization rules of dynamic providers: see infra/agent/gitlab-rest.ts.
import * as pulumi from '@pulumi/pulumi';
import { checkTarget, configureFromStack, gitlabError, type GitLabResponse, gitlabRest, type GitLabTarget, type GitLabTargetArgs, projectPath, tokenChanged } from './gitlab-rest';

export interface RepositoryFileProps extends GitLabTarget {
  projectId: string;
  branch: string;
  path: string;
  content: string;
  commitMessage: string;
}

/** Outputs are the inputs (content as found in GitLab after a read). */
export type RepositoryFileOuts = RepositoryFileProps;

const ROLE = "the Maintainer role in the agent's project (the default branch is protected)";

export const gitlabRepositoryFileProvider: pulumi.dynamic.ResourceProvider = {
  configure: configureFromStack,

  async check(_olds: RepositoryFileProps, news: RepositoryFileProps): Promise<pulumi.dynamic.CheckResult> {
    const failures: pulumi.dynamic.CheckFailure[] = [];
    const gitlabUrl = checkTarget(news, failures);
    for (const k of ['projectId', 'branch', 'path', 'commitMessage'] as const) {
      if (typeof news[k] !== 'string' || !news[k]) failures.push({ property: k, reason: 'required' });
    }
    if (typeof news.content !== 'string') failures.push({ property: 'content', reason: 'must be text' });
    return { inputs: { ...news, gitlabUrl }, failures };
  },

  async diff(_id: string, olds: RepositoryFileOuts, news: RepositoryFileProps): Promise<pulumi.dynamic.DiffResult> {
    const replaces = (['gitlabUrl', 'projectId', 'branch', 'path'] as const).filter((k) => olds[k] !== news[k]);
    const changed = replaces.length > 0 || olds.content !== news.content || olds.commitMessage !== news.commitMessage ||
      tokenChanged(olds, news);
    return {
      changes: changed,
      replaces,
      // The same file in the same place (only the URL's spelling changed): delete first, or the
      // delete of the old one would remove the new one.
      deleteBeforeReplace: olds.projectId === news.projectId && olds.branch === news.branch && olds.path === news.path,
    };
  },

  async create(inputs: RepositoryFileProps): Promise<pulumi.dynamic.CreateResult> {
    await writeFile(inputs);
    return { id: `${inputs.projectId}:${inputs.branch}:${inputs.path}`, outs: inputs };
  },

  async read(id: string, props: RepositoryFileOuts): Promise<pulumi.dynamic.ReadResult> {
    const found = await fileContent(props);
    if (found === undefined) return {};
    return { id, props: { ...props, content: found } };
  },

  async update(_id: string, _olds: RepositoryFileOuts, news: RepositoryFileProps): Promise<pulumi.dynamic.UpdateResult> {
    await writeFile(news);
    return { outs: news };
  },

  async delete(_id: string, props: RepositoryFileOuts): Promise<void> {
    if ((await fileContent(props)) === undefined) return;
    const res = await gitlabRest(props, 'DELETE', fileUrl(props), { branch: props.branch, commit_message: `Remove ${props.path} (${props.commitMessage})` });
    if (res.status !== 204 && res.status !== 200) throw gitlabError(props, `delete ${props.path}`, res, ROLE);
  },
};

function fileUrl(p: RepositoryFileProps): string {
  return `${projectPath(p.projectId)}/repository/files/${encodeURIComponent(p.path)}`;
}

/** The file's text on the branch, or undefined when it (or the project) is not there. */
async function fileContent(p: RepositoryFileProps): Promise<string | undefined> {
  const res: GitLabResponse = await gitlabRest(p, 'GET', `${fileUrl(p)}?ref=${encodeURIComponent(p.branch)}`);
  if (res.status === 404) return undefined;
  if (res.status !== 200) throw gitlabError(p, `read ${p.path}`, res, ROLE);
  return Buffer.from(String(res.body.content ?? ''), res.body.encoding === 'base64' ? 'base64' : 'utf8').toString('utf8');
}

/** Creates or updates the file; no commit when it already has this content. */
async function writeFile(p: RepositoryFileProps): Promise<void> {
  const current = await fileContent(p);
  if (current === p.content) return;
  const res = await gitlabRest(p, current === undefined ? 'POST' : 'PUT', fileUrl(p), {
    branch: p.branch,
    content: p.content,
    commit_message: p.commitMessage,
  });
  if (res.status !== 201 && res.status !== 200) throw gitlabError(p, `write ${p.path} on ${p.branch}`, res, ROLE);
}

export interface GitLabRepositoryFileArgs extends GitLabTargetArgs {
  projectId: pulumi.Input<string>;
  branch: pulumi.Input<string>;
  path: pulumi.Input<string>;
  content: pulumi.Input<string>;
  commitMessage: pulumi.Input<string>;
}

export class GitLabRepositoryFile extends pulumi.dynamic.Resource {
  declare readonly content: pulumi.Output<string>;
  declare readonly path: pulumi.Output<string>;

  constructor(name: string, args: GitLabRepositoryFileArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      gitlabRepositoryFileProvider,
      name,
      { ...args, token: pulumi.secret(args.token) },
      { ...opts, additionalSecretOutputs: ['token'] },
      'gitlab',
      'RepositoryFile',
    );
  }
}
