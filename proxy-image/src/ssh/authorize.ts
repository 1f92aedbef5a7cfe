// Decides one SSH password attempt: the username names the workspace, the password is a GitLab token, and
// the same GraphQL ownership check as HTTP decides (CONTRACT §5).
//
// Positive answers are cached per (token hash, workspace id) for a short time, and concurrent attempts for
// the same pair share one GitLab call: an IDE opens several SSH connections at once and GitLab should see
// one check, not five. The cache lifetime never exceeds auth.reauthorize_interval, so a revoked token stops
// opening new connections within that interval (open ones are closed by the session registry).
import { createHash } from 'node:crypto';
import type { GitLabApi, OwnershipResult } from '../auth/gitlab-api';
import type { Workspace, WorkspaceDirectory } from '../discovery/types';
import type { AuthFailureReason } from './metrics';

export type AuthDecision =
  | { ok: true; workspace: Workspace; cached: boolean; userId: string }
  | { ok: false; reason: AuthFailureReason; userId?: string; error?: string };

export interface SshAuthorizer {
  authorize(username: string, token: string): Promise<AuthDecision>;
}

export interface SshAuthorizerOptions {
  directory: Pick<WorkspaceDirectory, 'workspaceByName'>;
  gitlab: GitLabApi;
  cacheTtlMs: number;
  now?: () => number;
}

interface CacheEntry {
  /** Epoch ms after which the entry is not used; Infinity while the call is in flight. */
  expires: number;
  result: Promise<OwnershipResult>;
}

const MAX_ENTRIES = 10_000;

export function createSshAuthorizer(opts: SshAuthorizerOptions): SshAuthorizer {
  const now = opts.now ?? Date.now;
  const cache = new Map<string, CacheEntry>();

  function prune(): void {
    const t = now();
    for (const [k, e] of cache) if (e.expires <= t) cache.delete(k);
    // Still full (a flood of distinct valid tokens): forget the oldest.
    while (cache.size >= MAX_ENTRIES) {
      const oldest = cache.keys().next().value;
      if (oldest === undefined) break;
      cache.delete(oldest);
    }
  }

  async function check(token: string, workspaceId: string): Promise<{ result: OwnershipResult; cached: boolean }> {
    // Only a hash of the token is kept as the key; the token itself lives in the pending call only.
    const key = `${createHash('sha256').update(token).digest('hex')}\0${workspaceId}`;
    const hit = cache.get(key);
    if (hit && hit.expires > now()) return { result: await hit.result, cached: true };
    if (cache.size >= MAX_ENTRIES) prune();
    const pending = opts.gitlab
      .checkOwnership(token, workspaceId)
      .catch((err: unknown): OwnershipResult => ({ kind: 'unavailable', error: (err as Error).message }));
    const entry: CacheEntry = { expires: Infinity, result: pending };
    cache.set(key, entry);
    const result = await pending;
    if (result.kind === 'owner' && opts.cacheTtlMs > 0) entry.expires = now() + opts.cacheTtlMs;
    else if (cache.get(key) === entry) cache.delete(key);
    return { result, cached: false };
  }

  return {
    async authorize(username, token) {
      const workspace = opts.directory.workspaceByName(username);
      if (workspace === undefined) return { ok: false, reason: 'unknown_workspace' };
      if (workspace === 'ambiguous') return { ok: false, reason: 'ambiguous_workspace' };
      if (token.length === 0) return { ok: false, reason: 'invalid_token' };
      const { result, cached } = await check(token, workspace.id);
      switch (result.kind) {
        case 'owner':
          return { ok: true, workspace, cached, userId: result.userId };
        case 'not_owner':
          return { ok: false, reason: 'not_owner', userId: result.userId };
        case 'invalid_token':
          return { ok: false, reason: 'invalid_token' };
        case 'unavailable':
          return { ok: false, reason: 'gitlab_unavailable', error: result.error };
      }
    },
  };
}
