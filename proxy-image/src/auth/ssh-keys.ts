// "Is this public key one of the workspace owner's GitLab SSH keys?" (docs/contract.md §5, §6), answered
// from two lookups made with the service token (gitlab-keys-api.ts): workspace → owner, owner → keys.
//
// Both lookups are shared while in flight and their answers reused briefly for new logins, keyed by
// workspace and by user, not by key: an IDE opening ten connections, or ten keys offered in a row, cost
// GitLab one owner lookup and one key listing. Re-checks of open connections ask `fresh` (no reuse, but
// still joined to a call already in flight) and refresh what new logins see.
import type { GitLabKeysApi, GitLabSshKey, KeysLookup, OwnerLookup } from './gitlab-keys-api';

export type KeyMatch =
  /** The key is one of the owner's keys, usable for authentication and not expired. */
  | { kind: 'match'; ownerId: string; key: GitLabSshKey }
  /** Not one of them (or expired, or a signing-only key); ownerId when the owner is known. */
  | { kind: 'no_match'; ownerId?: string; why: 'no_owner' | 'not_a_key_of_owner' | 'expired' | 'signing_only' }
  /** GitLab unreachable, or the service token refused: nothing said about the key. */
  | { kind: 'unavailable'; error: string };

export interface SshKeyCheck {
  /** `blob`: base64 of the SSH public key blob (what `ssh-ed25519 AAAA…` carries in its second field). */
  match(blob: string, workspaceId: string, opts: { fresh: boolean }): Promise<KeyMatch>;
}

export interface SshKeyCheckOptions {
  api: GitLabKeysApi;
  /** How long answers are reused for new logins (auth/policy.ts newConnectionReuse). */
  reuseMs: number;
  now?: () => number;
  maxEntries?: number;
}

/** One lookup table: answers reused for `reuseMs`, one call in flight per key. */
function sharedLookup<T extends { kind: string }>(
  lookup: (k: string) => Promise<T>, reusable: (answer: T) => boolean, reuseMs: number, now: () => number, max: number,
): (k: string, fresh: boolean) => Promise<T> {
  const answers = new Map<string, { answer: T; at: number }>();
  const asking = new Map<string, Promise<T>>();
  return (k, fresh) => {
    const hit = answers.get(k);
    if (!fresh && hit && now() - hit.at < reuseMs) return Promise.resolve(hit.answer);
    let p = asking.get(k);
    if (!p) {
      const startedAt = now();
      p = lookup(k).then((answer) => {
        answers.delete(k);
        if (reusable(answer)) {
          // Oldest first (Map order): a flood of workspaces or users cannot grow memory without bound.
          if (answers.size >= max) answers.delete(answers.keys().next().value as string);
          answers.set(k, { answer, at: startedAt });
        }
        return answer;
      }).finally(() => asking.delete(k));
      asking.set(k, p);
    }
    return p;
  };
}

export function createSshKeyCheck(opts: SshKeyCheckOptions): SshKeyCheck {
  const now = opts.now ?? Date.now;
  const max = opts.maxEntries ?? 10_000;
  const ownerOf = sharedLookup<OwnerLookup>((w) => opts.api.workspaceOwner(w), (a) => a.kind === 'owner', opts.reuseMs, now, max);
  const keysOf = sharedLookup<KeysLookup>((u) => opts.api.userKeys(u), (a) => a.kind === 'keys', opts.reuseMs, now, max);

  return {
    async match(blob, workspaceId, { fresh }) {
      const owner = await ownerOf(workspaceId, fresh).catch((err: unknown): OwnerLookup => ({ kind: 'unavailable', error: (err as Error).message }));
      if (owner.kind === 'unavailable') return owner;
      if (owner.kind === 'service_token_rejected') return { kind: 'unavailable', error: 'service token rejected' };
      if (owner.kind === 'not_visible') return { kind: 'no_match', why: 'no_owner' };
      const keys = await keysOf(owner.userId, fresh).catch((err: unknown): KeysLookup => ({ kind: 'unavailable', error: (err as Error).message }));
      if (keys.kind === 'unavailable') return keys;
      if (keys.kind === 'service_token_rejected') return { kind: 'unavailable', error: 'service token rejected' };
      const ownerId = owner.userId;
      if (keys.kind === 'no_user') return { kind: 'no_match', ownerId, why: 'not_a_key_of_owner' };
      const key = keys.keys.find((k) => k.blob === blob);
      if (!key) return { kind: 'no_match', ownerId, why: 'not_a_key_of_owner' };
      if (key.expiresAt !== undefined && key.expiresAt <= now()) return { kind: 'no_match', ownerId, why: 'expired' };
      // GitLab's own SSH server takes only `auth` and `auth_and_signing` keys for logging in.
      if (key.usageType === 'signing') return { kind: 'no_match', ownerId, why: 'signing_only' };
      return { kind: 'match', ownerId, key };
    },
  };
}
