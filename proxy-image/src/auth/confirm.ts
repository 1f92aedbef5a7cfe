// One confirmation of ownership with whatever refreshing the credential needs, for every caller: the
// browser request (access.ts) and the re-check of open connections (connections/registry.ts). A token that
// is about to expire is refreshed first; a token GitLab rejects is refreshed and asked about once more.
// Who holds the credential, and so how a refresh is shared or limited, is the caller's CredentialHolder.
import { refreshDue, type Credential, type RefreshOutcome } from './credential';
import type { OwnershipCheck } from './ownership';
import type { Reuse } from './policy';

export interface CredentialHolder {
  /** The newest credential: the one presented, or a refreshed one. */
  readonly current: Credential;
  /** Refreshes `current`. `stale`: the credential a failed check used; a holder already past it need not refresh. */
  refresh(stale?: Credential): Promise<RefreshOutcome | 'impossible'>;
}

export type Confirmation =
  | { outcome: 'owner'; userId: string; cached: boolean }
  | { outcome: 'not_owner' | 'credential_invalid' }
  /** Nothing said about the user: GitLab unreachable while checking, or while refreshing a rejected token. */
  | { outcome: 'unavailable'; during: 'check' | 'refresh' };

export interface ConfirmOptions {
  reuse: Reuse;
  /** Refresh before the check when the access token expires within this. */
  refreshMarginMs: number;
  now: number;
}

export async function confirmOwnership(
  ownership: OwnershipCheck, holder: CredentialHolder, workspaceId: string, opts: ConfirmOptions,
): Promise<Confirmation> {
  // Failure here is not final: the current token may still be good, the check below decides.
  if (refreshDue(holder.current, opts.refreshMarginMs, opts.now)) await holder.refresh();
  let used = holder.current;
  let answer = await ownership.check(used, workspaceId, opts.reuse);
  if (answer.result.kind === 'invalid_token') {
    const refreshed = await holder.refresh(used);
    if (refreshed === 'unavailable') return { outcome: 'unavailable', during: 'refresh' };
    if (refreshed !== 'refreshed') return { outcome: 'credential_invalid' };
    used = holder.current;
    answer = await ownership.check(used, workspaceId, opts.reuse);
  }
  const { result } = answer;
  switch (result.kind) {
    case 'owner': return { outcome: 'owner', userId: result.userId, cached: answer.cached };
    case 'not_owner': return { outcome: 'not_owner' };
    case 'invalid_token': return { outcome: 'credential_invalid' };
    case 'unavailable': return { outcome: 'unavailable', during: 'check' };
  }
}
