// GitLab's answer to "does the holder of this token own workspace N?" via GraphQL (docs/contract.md §4, §5).
import type { Logger } from 'pino';
import { errorReason } from './error-reason';
import { GITLAB_TIMEOUT_MS } from './policy';

export type OwnershipResult =
  | { kind: 'owner'; userId: string }
  | { kind: 'not_owner'; userId: string }
  /** GitLab rejected the token (revoked, expired, wrong scope). */
  | { kind: 'invalid_token' }
  /** GitLab did not answer usably (network error, timeout, 5xx): not a verdict on the user. */
  | { kind: 'unavailable'; error: string };

export interface GitLabApi {
  checkOwnership(token: string, workspaceId: string): Promise<OwnershipResult>;
}

export interface GitLabApiOptions {
  baseUrl: string;
  timeoutMs?: number;
  logger: Logger;
  /** Observes every call: outcome kind and duration in seconds. */
  onCall?: (outcome: OwnershipResult['kind'], seconds: number) => void;
}

const query = `query workspaceOwner($id: RemoteDevelopmentWorkspaceID!) {
  currentUser { id }
  workspace(id: $id) { user { id } }
}`;

interface GraphQLResponse {
  data?: { currentUser?: { id?: string } | null; workspace?: { user?: { id?: string } | null } | null } | null;
  errors?: { message?: string }[];
}

export function createGitLabApi(opts: GitLabApiOptions): GitLabApi {
  const endpoint = new URL('/api/graphql', opts.baseUrl).toString();
  const timeoutMs = opts.timeoutMs ?? GITLAB_TIMEOUT_MS;

  async function call(token: string, workspaceId: string): Promise<OwnershipResult> {
    if (!/^\d+$/.test(workspaceId)) return { kind: 'not_owner', userId: '' };
    let res: Response;
    try {
      res = await fetch(endpoint, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ query, variables: { id: `gid://gitlab/RemoteDevelopment::Workspace/${workspaceId}` } }),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      return { kind: 'unavailable', error: errorReason(err) };
    }
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      return { kind: 'invalid_token' };
    }
    if (!res.ok) {
      await res.body?.cancel();
      return { kind: 'unavailable', error: `HTTP ${res.status}` };
    }
    let body: GraphQLResponse;
    try {
      body = (await res.json()) as GraphQLResponse;
    } catch {
      return { kind: 'unavailable', error: 'malformed GraphQL response' };
    }
    const userId = body.data?.currentUser?.id;
    // GitLab answers an anonymous or invalid-token query with currentUser: null.
    if (!userId) {
      if (body.data === undefined || body.data === null) {
        return { kind: 'unavailable', error: body.errors?.[0]?.message ?? 'no data in GraphQL response' };
      }
      return { kind: 'invalid_token' };
    }
    const ownerId = body.data?.workspace?.user?.id;
    return ownerId === userId ? { kind: 'owner', userId } : { kind: 'not_owner', userId };
  }

  return {
    async checkOwnership(token, workspaceId) {
      const started = performance.now();
      const result = await call(token, workspaceId);
      opts.onCall?.(result.kind, (performance.now() - started) / 1000);
      if (result.kind === 'unavailable') opts.logger.warn({ err: result.error }, 'GitLab authorization check failed');
      return result;
    },
  };
}
