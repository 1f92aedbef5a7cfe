// The GitLab stand-in's groups, projects, agents for Kubernetes, agent tokens, repository files and
// workspaces agent mappings (REST + GraphQL), with GitLab's rules as the agent's Pulumi providers meet
// them. Mounted by gitlab-stand-in.ts; tests reach it through `gitlab.agents`. Its projects are the
// stand-in's only projects: `gitlab.addProject({ path })` (project access tokens, the workspace's agent
// project) makes one here too, so one test can create the agent's project, its access token and the
// agent in the same project.
//
//   const g = gitlab.agents.addGroup('platform');                     // a top-level group
//   const p = gitlab.agents.addProject(g, 'workspaces-agent');        // default branch `main`
//   gitlab.addProject({ path: 'platform/workspaces-agent' })          // the same, found by full path
//   gitlab.agents.addMember(p, alice, 'maintainer');                  // or a group: inherited by its projects
//   gitlab.agents.agentsOf(p), tokensOf(agent), file(p, path), mappingsOf(g), commits(p)
//
// Rules (GitLab 17.x-18.x docs and gitlabhq source):
// - roles: Guest 10, Reporter 20, Developer 30, Maintainer 40, Owner 50; a project's members include its
//   groups' members (inherited); administrators can do everything. A project or group the user cannot
//   see answers 404, one they see without the role 403.
// - agents (POST/GET/DELETE /projects/:id/cluster_agents[/:agent_id]): Maintainer to create/delete,
//   Developer to read; name is a DNS label (max 63), unique per project. Deleting an agent revokes its tokens.
// - tokens (.../tokens[/:token_id]): Maintainer; at most two active tokens per agent; the secret is
//   only in the create response; GET of a revoked token is 404; DELETE revokes.
// - files (/projects/:id/repository/files/:path, path URL-encoded): Maintainer to write (the default
//   branch is protected), Reporter to read; POST of an existing file and PUT/DELETE of a missing one are
//   400; a PUT with unchanged content is 400 (GitLab refuses an empty commit).
// - GraphQL group(fullPath){ id workspacesClusterAgents(filter: DIRECTLY_MAPPED){ nodes { id name } } }
//   and namespaceCreate/DeleteRemoteDevelopmentClusterAgentMapping(input: $input): group Owner; the
//   agent's project must be inside the group; "already exists" / "not found" come back in `errors`.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createHash, randomBytes } from 'node:crypto';

export type Role = 'guest' | 'reporter' | 'developer' | 'maintainer' | 'owner';
const LEVEL: Record<Role, number> = { guest: 10, reporter: 20, developer: 30, maintainer: 40, owner: 50 };

interface Member {
  id: number;
  admin: boolean;
}

export interface StandInGroup {
  id: number;
  gid: string;
  fullPath: string;
  parent: StandInGroup | undefined;
  members: Map<number, number>;
}

export interface StandInProject {
  id: number;
  /** Full path, e.g. `platform/workspaces-agent`; the API takes it URL-encoded instead of the id. */
  path: string;
  name: string;
  group: StandInGroup | undefined;
  defaultBranch: string;
  members: Map<number, number>;
  /** path → content on the default branch. */
  files: Map<string, string>;
  /** Commit messages, oldest first. */
  commits: string[];
}

export interface StandInAgent {
  id: number;
  gid: string;
  name: string;
  project: StandInProject;
  createdByUserId: number;
}

export interface StandInAgentToken {
  id: number;
  agentId: number;
  name: string;
  description: string;
  status: 'active' | 'revoked';
  token: string;
}

/** What the host stand-in lends this module: its token check and response helpers. */
export interface AgentApiHost {
  authenticate(req: IncomingMessage): { ok: true; user: Member; scopes: string[] } | { ok: false; send(res: ServerResponse): void };
  json(res: ServerResponse, status: number, body: unknown): void;
}

export interface AgentApi {
  addGroup(path: string, parent?: StandInGroup): StandInGroup;
  addProject(group: StandInGroup | undefined, path: string, opts?: { userNamespace?: string; name?: string }): StandInProject;
  /** A project by full path: in the group of that path when there is one, else in a user namespace. */
  addProjectAt(fullPath: string, name?: string): StandInProject;
  /** A project by id or full path. */
  project(idOrPath: string | number): StandInProject | undefined;
  /** The user's role level in the project (groups' memberships inherited; administrators: Owner). */
  levelOf(project: StandInProject, user: Member): number;
  addMember(target: StandInGroup | StandInProject, user: Member, role: Role): void;
  agentsOf(project: StandInProject): StandInAgent[];
  tokensOf(agent: StandInAgent | number): StandInAgentToken[];
  file(project: StandInProject, path: string): string | undefined;
  /** Writes a file as a user would in the UI (a commit on the default branch). */
  writeFile(project: StandInProject, path: string, content: string | undefined): void;
  mappingsOf(group: StandInGroup): StandInAgent[];
  /** Creates a mapping as an Owner would in the UI. */
  map(group: StandInGroup, agent: StandInAgent, mapped: boolean): void;
  /** Handles /api/v4/projects/...; false when the path is not one of its own. */
  handleRest(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams, body: Record<string, unknown>): boolean;
  /** Answers the GraphQL fields of groups and mappings into `data`; returns top-level errors. */
  graphql(query: string, variables: Record<string, unknown>, user: Member | undefined, data: Record<string, unknown>): { message: string }[];
}

const AGENT_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const NO_PERMISSION = "The resource that you are attempting to access does not exist or you don't have permission to perform this action";

export function createAgentApi(host: AgentApiHost): AgentApi {
  const groups: StandInGroup[] = [];
  const projects: StandInProject[] = [];
  const agents: StandInAgent[] = [];
  const tokens: StandInAgentToken[] = [];
  /** `${groupId}:${agentId}` */
  const mappings = new Set<string>();
  let nextGroupId = 100;
  let nextProjectId = 200;
  let nextAgentId = 300;
  let nextTokenId = 400;

  function groupLevel(g: StandInGroup | undefined, user: Member): number {
    let level = 0;
    for (let x = g; x; x = x.parent) level = Math.max(level, x.members.get(user.id) ?? 0);
    return level;
  }
  const projectLevel = (p: StandInProject, user: Member) =>
    user.admin ? LEVEL.owner : Math.max(p.members.get(user.id) ?? 0, groupLevel(p.group, user));
  const levelInGroup = (g: StandInGroup, user: Member) => (user.admin ? LEVEL.owner : groupLevel(g, user));

  function findProject(idOrPath: string): StandInProject | undefined {
    const key = decodeURIComponent(idOrPath);
    return projects.find((p) => String(p.id) === key || p.path === key);
  }

  const agentView = (a: StandInAgent) => ({
    id: a.id,
    name: a.name,
    config_project: { id: a.project.id, path_with_namespace: a.project.path, default_branch: a.project.defaultBranch },
    created_at: '2026-01-01T00:00:00.000Z',
    created_by_user_id: a.createdByUserId,
  });
  const tokenView = (t: StandInAgentToken) => ({
    id: t.id, name: t.name, description: t.description, agent_id: t.agentId, status: t.status,
    created_at: '2026-01-01T00:00:00.000Z', created_by_user_id: 1, last_used_at: null,
  });
  const projectView = (p: StandInProject) => ({
    id: p.id,
    path_with_namespace: p.path,
    default_branch: p.defaultBranch,
    namespace: p.group ? { id: p.group.id, full_path: p.group.fullPath, kind: 'group' } : { full_path: p.path.split('/')[0], kind: 'user' },
  });

  function commit(p: StandInProject, message: string): string {
    p.commits.push(message);
    return createHash('sha1').update(`${p.id}:${p.commits.length}:${message}`).digest('hex');
  }

  function handleRest(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams, body: Record<string, unknown>): boolean {
    const m = /^\/api\/v4\/projects\/([^/]+)(\/.*)?$/.exec(path);
    if (!m) return false;
    const a = host.authenticate(req);
    if (!a.ok) {
      a.send(res);
      return true;
    }
    const user = a.user;
    const method = req.method ?? 'GET';
    const project = findProject(m[1] ?? '');
    const level = project ? projectLevel(project, user) : 0;
    if (!project || level === 0) {
      host.json(res, 404, { message: '404 Project Not Found' });
      return true;
    }
    const writes = method !== 'GET' && method !== 'HEAD';
    if (writes && !a.scopes.includes('api')) {
      host.json(res, 403, { error: 'insufficient_scope', error_description: 'The request requires higher privileges than provided by the access token.', scope: 'api' });
      return true;
    }
    const need = (role: Role) => {
      if (level >= LEVEL[role]) return true;
      host.json(res, 403, { message: '403 Forbidden' });
      return false;
    };
    const rest = m[2] ?? '';
    if (rest === '' && method === 'GET') {
      host.json(res, 200, projectView(project));
      return true;
    }

    // --- agents ---
    const agentPath = /^\/cluster_agents(?:\/(\d+))?(\/tokens(?:\/(\d+))?)?$/.exec(rest);
    if (agentPath) {
      const [, agentId, tokensPart, tokenId] = agentPath;
      const agent = agentId ? agents.find((x) => x.project === project && String(x.id) === agentId) : undefined;
      if (!tokensPart) {
        if (!agentId && method === 'GET') {
          if (need('developer')) host.json(res, 200, agents.filter((x) => x.project === project).map(agentView));
          return true;
        }
        if (!agentId && method === 'POST') {
          if (!need('maintainer')) return true;
          const name = typeof body.name === 'string' ? body.name : '';
          if (!name) return host.json(res, 400, { error: 'name is missing' }), true;
          if (!AGENT_NAME.test(name) || name.length > 63) {
            return host.json(res, 400, { message: { name: ['can contain only lowercase letters, digits, and \'-\', but cannot start or end with \'-\''] } }), true;
          }
          if (agents.some((x) => x.project === project && x.name === name)) {
            return host.json(res, 400, { message: { name: ['has already been taken'] } }), true;
          }
          const created: StandInAgent = { id: nextAgentId, gid: `gid://gitlab/Clusters::Agent/${nextAgentId}`, name, project, createdByUserId: user.id };
          nextAgentId++;
          agents.push(created);
          host.json(res, 201, agentView(created));
          return true;
        }
        if (agentId && (method === 'GET' || method === 'DELETE')) {
          if (!need(method === 'GET' ? 'developer' : 'maintainer')) return true;
          if (!agent) return host.json(res, 404, { message: '404 Not found' }), true;
          if (method === 'GET') return host.json(res, 200, agentView(agent)), true;
          agents.splice(agents.indexOf(agent), 1);
          for (const t of tokens) if (t.agentId === agent.id) t.status = 'revoked';
          for (const key of [...mappings]) if (key.endsWith(`:${agent.id}`)) mappings.delete(key);
          res.writeHead(204);
          res.end();
          return true;
        }
        host.json(res, 405, { error: '405 Method Not Allowed' });
        return true;
      }
      if (!need('maintainer')) return true;
      if (!agent) return host.json(res, 404, { message: '404 Not found' }), true;
      const token = tokenId ? tokens.find((t) => t.agentId === agent.id && String(t.id) === tokenId) : undefined;
      if (!tokenId && method === 'GET') {
        host.json(res, 200, tokens.filter((t) => t.agentId === agent.id && t.status === 'active').map(tokenView));
        return true;
      }
      if (!tokenId && method === 'POST') {
        const name = typeof body.name === 'string' ? body.name : '';
        if (!name) return host.json(res, 400, { error: 'name is missing' }), true;
        if (name.length > 255) return host.json(res, 400, { message: { name: ['is too long (maximum is 255 characters)'] } }), true;
        if (tokens.filter((t) => t.agentId === agent.id && t.status === 'active').length >= 2) {
          return host.json(res, 400, { message: 'An agent can have only two active tokens at a time' }), true;
        }
        const created: StandInAgentToken = {
          id: nextTokenId++, agentId: agent.id, name, description: typeof body.description === 'string' ? body.description : '',
          status: 'active', token: `glagent-${randomBytes(25).toString('base64url')}`,
        };
        tokens.push(created);
        // The only response that carries the secret.
        host.json(res, 201, { ...tokenView(created), token: created.token });
        return true;
      }
      if (tokenId && method === 'GET') {
        if (!token || token.status !== 'active') return host.json(res, 404, { message: '404 Not found' }), true;
        host.json(res, 200, tokenView(token));
        return true;
      }
      if (tokenId && method === 'DELETE') {
        if (!token || token.status !== 'active') return host.json(res, 404, { message: '404 Not found' }), true;
        token.status = 'revoked';
        res.writeHead(204);
        res.end();
        return true;
      }
      host.json(res, 405, { error: '405 Method Not Allowed' });
      return true;
    }

    // --- repository files ---
    const fileMatch = /^\/repository\/files\/([^/]+)(\/raw)?$/.exec(rest);
    if (fileMatch) {
      const filePath = decodeURIComponent(fileMatch[1] ?? '');
      const existing = project.files.get(filePath);
      if (method === 'GET') {
        if (!need('reporter')) return true;
        const ref = query.get('ref');
        if (!ref) return host.json(res, 400, { error: 'ref is missing' }), true;
        if (ref !== project.defaultBranch || existing === undefined) return host.json(res, 404, { message: '404 File Not Found' }), true;
        const content = Buffer.from(existing, 'utf8');
        host.json(res, 200, {
          file_name: filePath.split('/').pop(), file_path: filePath, size: content.length, encoding: 'base64',
          content: content.toString('base64'), content_sha256: createHash('sha256').update(content).digest('hex'), ref,
          blob_id: createHash('sha1').update(content).digest('hex'), last_commit_id: 'unknown',
        });
        return true;
      }
      if (method === 'POST' || method === 'PUT' || method === 'DELETE') {
        // The default branch is protected: pushing to it takes Maintainer.
        if (!need('maintainer')) return true;
        for (const k of ['branch', 'commit_message', ...(method === 'DELETE' ? [] : ['content'])]) {
          if (typeof body[k] !== 'string') return host.json(res, 400, { error: `${k} is missing` }), true;
        }
        if (body.branch !== project.defaultBranch) return host.json(res, 400, { message: 'You can only create or edit files when you are on a branch' }), true;
        const content = body.encoding === 'base64' ? Buffer.from(String(body.content), 'base64').toString('utf8') : String(body.content ?? '');
        if (method === 'POST' && existing !== undefined) return host.json(res, 400, { message: 'A file with this name already exists' }), true;
        if (method !== 'POST' && existing === undefined) return host.json(res, 400, { message: "A file with this name doesn't exist" }), true;
        if (method === 'PUT' && existing === content) {
          // GitLab refuses to make an empty commit.
          return host.json(res, 400, { message: 'You are attempting to update a file with no changes' }), true;
        }
        commit(project, String(body.commit_message));
        if (method === 'DELETE') {
          project.files.delete(filePath);
          res.writeHead(204);
          res.end();
          return true;
        }
        project.files.set(filePath, content);
        host.json(res, method === 'POST' ? 201 : 200, { file_path: filePath, branch: project.defaultBranch });
        return true;
      }
    }
    host.json(res, 404, { message: '404 Not Found' });
    return true;
  }

  /** A GraphQL argument given inline as a string or as a `$variable`. */
  function argument(query: string, field: string, arg: string, variables: Record<string, unknown>): unknown {
    const m = new RegExp(`${field}\\s*\\([^)]*?${arg}\\s*:\\s*(?:"((?:[^"\\\\]|\\\\.)*)"|\\$(\\w+))`).exec(query);
    if (!m) return undefined;
    return m[1] !== undefined ? m[1] : variables[m[2] ?? ''];
  }

  function graphql(query: string, variables: Record<string, unknown>, user: Member | undefined, data: Record<string, unknown>): { message: string }[] {
    const errors: { message: string }[] = [];
    if (/\bgroup\s*\(/.test(query)) {
      const fullPath = argument(query, 'group', 'fullPath', variables);
      const group = groups.find((g) => g.fullPath === fullPath);
      const visible = group && user && levelInGroup(group, user) > 0;
      if (!visible) data.group = null;
      else {
        const mapped = agents.filter((a) => mappings.has(`${group.id}:${a.id}`));
        data.group = {
          id: group.gid,
          fullPath: group.fullPath,
          ...(/workspacesClusterAgents/.test(query) ? { workspacesClusterAgents: { nodes: mapped.map((a) => ({ id: a.gid, name: a.name })) } } : {}),
        };
      }
    }
    for (const op of ['Create', 'Delete'] as const) {
      const field = `namespace${op}RemoteDevelopmentClusterAgentMapping`;
      if (!new RegExp(`\\b${field}\\s*\\(`).test(query)) continue;
      const input = argument(query, field, 'input', variables) as { clusterAgentId?: string; namespaceId?: string } | undefined;
      const group = groups.find((g) => g.gid === input?.namespaceId);
      const agent = agents.find((a) => a.gid === input?.clusterAgentId);
      // Owner of the group; the agent must be visible to the user too.
      if (!user || !group || !agent || levelInGroup(group, user) < LEVEL.owner || projectLevel(agent.project, user) === 0) {
        data[field] = null;
        errors.push({ message: NO_PERMISSION });
        continue;
      }
      const key = `${group.id}:${agent.id}`;
      const errs: string[] = [];
      if (op === 'Create') {
        let nested = false;
        for (let g = agent.project.group; g; g = g.parent) if (g === group) nested = true;
        if (!nested) errs.push("Namespace cluster agent mapping create validation failed: Cluster Agent's project must be nested within the namespace");
        else if (mappings.has(key)) errs.push('Namespace cluster agent mapping already exists');
        else mappings.add(key);
      } else if (!mappings.delete(key)) {
        errs.push('Namespace cluster agent mapping not found');
      }
      data[field] = { errors: errs, clientMutationId: null };
    }
    return errors;
  }

  return {
    addGroup(path, parent) {
      const g: StandInGroup = {
        id: nextGroupId, gid: `gid://gitlab/Group/${nextGroupId}`, fullPath: parent ? `${parent.fullPath}/${path}` : path, parent, members: new Map(),
      };
      nextGroupId++;
      groups.push(g);
      return g;
    },
    addProject(group, path, opts = {}) {
      const p: StandInProject = {
        id: nextProjectId++, path: `${group ? group.fullPath : opts.userNamespace ?? 'user'}/${path}`, name: opts.name ?? path, group,
        defaultBranch: 'main', members: new Map(), files: new Map([['README.md', '# project\n']]), commits: ['Initial commit'],
      };
      projects.push(p);
      return p;
    },
    addProjectAt(fullPath, name) {
      const parts = fullPath.split('/');
      const path = parts.pop() ?? fullPath;
      const parent = parts.join('/');
      const group = groups.find((g) => g.fullPath === parent);
      return this.addProject(group, path, { userNamespace: group ? undefined : parent || 'user', name });
    },
    project: (ref) => findProject(String(ref)),
    levelOf: projectLevel,
    addMember(target, user, role) {
      target.members.set(user.id, LEVEL[role]);
    },
    agentsOf: (p) => agents.filter((a) => a.project === p),
    tokensOf: (agent) => tokens.filter((t) => t.agentId === (typeof agent === 'number' ? agent : agent.id)),
    file: (p, path) => p.files.get(path),
    writeFile(p, path, content) {
      if (content === undefined) p.files.delete(path);
      else p.files.set(path, content);
      commit(p, `Edit ${path}`);
    },
    mappingsOf: (g) => agents.filter((a) => mappings.has(`${g.id}:${a.id}`)),
    map(g, a, mapped) {
      if (mapped) mappings.add(`${g.id}:${a.id}`);
      else mappings.delete(`${g.id}:${a.id}`);
    },
    handleRest,
    graphql,
  };
}
