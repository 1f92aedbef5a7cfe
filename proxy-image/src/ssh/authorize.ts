// Decides one SSH password attempt: the username names the workspace, the password is a GitLab token, and
// the proxy's one ownership check decides (docs/contract.md §5), as for HTTP.
//
// Positive answers are reused for a short time (auth/policy.ts: newConnectionReuse) and concurrent attempts
// for the same token and workspace share one GitLab call (auth/ownership.ts): an IDE opens several SSH
// connections at once and GitLab should see one check, not five. The reuse never exceeds
// auth.reauthorize_interval, so a revoked token stops opening new connections within that interval (open
// ones are closed by the connection registry).
import type { Workspace, WorkspaceDirectory } from '../discovery/types';
import type { Credential } from '../auth/credential';
import type { OwnershipCheck } from '../auth/ownership';
import type { Reuse } from '../auth/policy';
import type { KeyMatch, SshKeyCheck } from '../auth/ssh-keys';
import type { GitLabSshKey } from '../auth/gitlab-keys-api';
import type { AuthFailureReason, KeyFailureReason } from './metrics';

export type AuthDecision =
  | { ok: true; workspace: Workspace; cached: boolean; userId: string; credential: Credential }
  | { ok: false; reason: AuthFailureReason; userId?: string; error?: string };

export type KeyDecision =
  | { ok: true; workspace: Workspace; userId: string; key: GitLabSshKey; credential: Credential }
  | { ok: false; reason: KeyFailureReason; userId?: string; error?: string };

export interface SshAuthorizer {
  authorize(username: string, token: string): Promise<AuthDecision>;
  /** Is the offered public key (base64 blob) one of the owner's GitLab keys? The caller verifies the signature. */
  authorizeKey(username: string, blob: string): Promise<KeyDecision>;
}

export interface SshAuthorizerOptions {
  directory: Pick<WorkspaceDirectory, 'workspaceByName'>;
  ownership: OwnershipCheck;
  reuse: Reuse;
  /** Absent when key logins are off. */
  sshKeys?: SshKeyCheck;
}

const keyRefusal: Record<Extract<KeyMatch, { kind: 'no_match' }>['why'], KeyFailureReason> = {
  no_owner: 'owner_not_visible',
  not_a_key_of_owner: 'unknown_key',
  expired: 'expired_key',
  signing_only: 'signing_key',
};

export function createSshAuthorizer(opts: SshAuthorizerOptions): SshAuthorizer {
  return {
    async authorize(username, token) {
      const workspace = opts.directory.workspaceByName(username);
      if (workspace === undefined) return { ok: false, reason: 'unknown_workspace' };
      if (workspace === 'ambiguous') return { ok: false, reason: 'ambiguous_workspace' };
      if (token.length === 0) return { ok: false, reason: 'invalid_token' };
      const credential: Credential = { type: 'token', token };
      const { result, cached } = await opts.ownership.check(credential, workspace.id, opts.reuse);
      switch (result.kind) {
        case 'owner':
          return { ok: true, workspace, cached, userId: result.userId, credential };
        case 'not_owner':
          return { ok: false, reason: 'not_owner', userId: result.userId };
        case 'invalid_token':
          return { ok: false, reason: 'invalid_token' };
        case 'unavailable':
          return { ok: false, reason: 'gitlab_unavailable', error: result.error };
      }
    },
    async authorizeKey(username, blob) {
      if (!opts.sshKeys) return { ok: false, reason: 'keys_off' };
      const workspace = opts.directory.workspaceByName(username);
      if (workspace === undefined) return { ok: false, reason: 'unknown_workspace' };
      if (workspace === 'ambiguous') return { ok: false, reason: 'ambiguous_workspace' };
      const m = await opts.sshKeys.match(blob, workspace.id, { fresh: false });
      switch (m.kind) {
        case 'match':
          return { ok: true, workspace, userId: m.ownerId, key: m.key, credential: { type: 'ssh_key', key: blob, userId: m.ownerId } };
        case 'no_match':
          return { ok: false, reason: keyRefusal[m.why], userId: m.ownerId };
        case 'unavailable':
          return { ok: false, reason: 'gitlab_unavailable', error: m.error };
      }
    },
  };
}
