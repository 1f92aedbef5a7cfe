// The two GitLab lookups behind SSH public-key logins (docs/contract.md §5), made with the proxy's own
// service token (auth.service_token) because no user token exists yet when a key is offered:
//   - the workspace's owner: the same GraphQL query as the ownership check, `workspace(id) { user { id } }`
//     (a project access token of the agent's project may read its workspaces: GitLab's WorkspacePolicy
//     grants read_workspace to whoever has admin_cluster on the workspace's agent, i.e. Maintainers);
//   - the owner's SSH keys: `GET /api/v4/users/:id/keys` (paginated, expired keys included).
// The token lives in this closure only: it is never returned, logged or put in an error message.
import type { Logger } from 'pino';
import { errorReason } from './error-reason';
import { GITLAB_TIMEOUT_MS } from './policy';

export interface GitLabSshKey {
  /** `<type> <base64 blob>` (GitLab appends "<name> (<host>)" in place of the comment; dropped here). */
  type: string;
  blob: string;
  /** Epoch ms; undefined = never. */
  expiresAt?: number;
  /** `auth`, `signing` or `auth_and_signing` (GitLab 15.7+); absent on older GitLab = auth. */
  usageType?: string;
}

export type OwnerLookup =
  | { kind: 'owner'; userId: string }
  /** No such workspace, or the service token may not read it (then GitLab answers the same way). */
  | { kind: 'not_visible' }
  /** GitLab refused the service token itself (revoked, expired, wrong scope): a misconfiguration. */
  | { kind: 'service_token_rejected' }
  | { kind: 'unavailable'; error: string };

export type KeysLookup =
  | { kind: 'keys'; keys: GitLabSshKey[] }
  | { kind: 'no_user' }
  | { kind: 'service_token_rejected' }
  | { kind: 'unavailable'; error: string };

export interface GitLabKeysApi {
  workspaceOwner(workspaceId: string): Promise<OwnerLookup>;
  /** `userId` as GraphQL gives it (`gid://gitlab/User/5`) or numeric. */
  userKeys(userId: string): Promise<KeysLookup>;
}

export interface GitLabKeysApiOptions {
  baseUrl: string;
  serviceToken: string;
  timeoutMs?: number;
  logger: Logger;
  /** Observes every call: which lookup, outcome kind and duration in seconds. */
  onCall?: (lookup: 'owner' | 'keys', outcome: string, seconds: number) => void;
}

const ownerQuery = `query workspaceOwner($id: RemoteDevelopmentWorkspaceID!) {
  currentUser { id }
  workspace(id: $id) { user { id } }
}`;

/** More keys than this per user is not a profile but a problem: stop paging. */
const MAX_PAGES = 10;

export function createGitLabKeysApi(opts: GitLabKeysApiOptions): GitLabKeysApi {
  const timeoutMs = opts.timeoutMs ?? GITLAB_TIMEOUT_MS;
  const graphqlUrl = new URL('/api/graphql', opts.baseUrl).toString();
  const headers = { authorization: `Bearer ${opts.serviceToken}`, accept: 'application/json' };
  let warnedRejected = false;

  async function request(url: string, init: RequestInit = {}): Promise<Response | { error: string }> {
    try {
      return await fetch(url, { ...init, headers: { ...headers, ...(init.headers as Record<string, string>) }, signal: AbortSignal.timeout(timeoutMs) });
    } catch (err) {
      return { error: errorReason(err) };
    }
  }

  function rejected(): { kind: 'service_token_rejected' } {
    // Loud once: every key login fails until an operator replaces the token.
    if (!warnedRejected) opts.logger.error('GitLab rejected auth.service_token: SSH key logins fail until it is replaced (PATs still work)');
    warnedRejected = true;
    return { kind: 'service_token_rejected' };
  }

  async function owner(workspaceId: string): Promise<OwnerLookup> {
    if (!/^\d+$/.test(workspaceId)) return { kind: 'not_visible' };
    const res = await request(graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: ownerQuery, variables: { id: `gid://gitlab/RemoteDevelopment::Workspace/${workspaceId}` } }),
    });
    if ('error' in res) return { kind: 'unavailable', error: res.error };
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      return rejected();
    }
    if (!res.ok) {
      await res.body?.cancel();
      return { kind: 'unavailable', error: `HTTP ${res.status}` };
    }
    let body: { data?: { currentUser?: { id?: string } | null; workspace?: { user?: { id?: string } | null } | null } | null; errors?: { message?: string }[] };
    try {
      body = (await res.json()) as typeof body;
    } catch {
      return { kind: 'unavailable', error: 'malformed GraphQL response' };
    }
    if (!body.data) return { kind: 'unavailable', error: body.errors?.[0]?.message ?? 'no data in GraphQL response' };
    if (!body.data.currentUser?.id) return rejected();
    warnedRejected = false;
    const userId = body.data.workspace?.user?.id;
    return userId ? { kind: 'owner', userId } : { kind: 'not_visible' };
  }

  async function keys(userId: string): Promise<KeysLookup> {
    const id = /(\d+)$/.exec(userId)?.[1];
    if (!id) return { kind: 'no_user' };
    const out: GitLabSshKey[] = [];
    let page = '1';
    for (let n = 0; n < MAX_PAGES && page; n++) {
      const res = await request(new URL(`/api/v4/users/${id}/keys?per_page=100&page=${page}`, opts.baseUrl).toString());
      if ('error' in res) return { kind: 'unavailable', error: res.error };
      if (res.status === 401 || res.status === 403) {
        await res.body?.cancel();
        return rejected();
      }
      if (res.status === 404) {
        await res.body?.cancel();
        return { kind: 'no_user' };
      }
      if (!res.ok) {
        await res.body?.cancel();
        return { kind: 'unavailable', error: `HTTP ${res.status}` };
      }
      let list: unknown;
      try {
        list = await res.json();
      } catch {
        return { kind: 'unavailable', error: 'malformed keys response' };
      }
      if (!Array.isArray(list)) return { kind: 'unavailable', error: 'malformed keys response' };
      for (const k of list as { key?: unknown; expires_at?: unknown; usage_type?: unknown }[]) {
        const [type, blob] = typeof k.key === 'string' ? k.key.trim().split(/\s+/) : [];
        if (!type || !blob) continue;
        const expiresAt = typeof k.expires_at === 'string' ? Date.parse(k.expires_at) : undefined;
        out.push({
          type, blob,
          // An unreadable date is treated as already expired: never accept a key whose expiry is unknown.
          expiresAt: expiresAt === undefined ? undefined : Number.isNaN(expiresAt) ? 0 : expiresAt,
          usageType: typeof k.usage_type === 'string' ? k.usage_type : undefined,
        });
      }
      page = res.headers.get('x-next-page') ?? '';
    }
    warnedRejected = false;
    return { kind: 'keys', keys: out };
  }

  async function timed<T extends { kind: string }>(lookup: 'owner' | 'keys', run: () => Promise<T>): Promise<T> {
    const started = performance.now();
    const result = await run();
    opts.onCall?.(lookup, result.kind, (performance.now() - started) / 1000);
    if (result.kind === 'unavailable') {
      opts.logger.warn({ lookup, err: (result as unknown as { error: string }).error }, 'GitLab lookup for SSH keys failed');
    }
    return result;
  }

  return {
    workspaceOwner: (workspaceId) => timed('owner', () => owner(workspaceId)),
    userKeys: (userId) => timed('keys', () => keys(userId)),
  };
}
