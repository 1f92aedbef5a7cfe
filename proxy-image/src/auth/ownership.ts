// The one answer to "does this credential own workspace W?" (docs/contract.md §4, §5, §6), for HTTP
// requests, SSH logins and open connections alike: one cache keyed by a keyed fingerprint of the
// credential, one GitLab call in flight per credential and workspace however many callers ask, and the
// reuse and grace rules of policy.ts. Modelled on oauth2-proxy's provider + stored-session loader: the
// callers say how fresh an answer they need, this module decides whether GitLab is asked.
//
// How each kind of credential is checked is the `checkers` table: a new kind (an SSH key, whose check is
// "owner unchanged and the key still one of the owner's GitLab keys", asked with a service token) is a new
// entry there and a variant of Credential, and every caller gets caching and sharing for it unchanged.
import type { GitLabApi, OwnershipResult } from './gitlab-api';
import { bearerOf, identityOf, type Credential } from './credential';
import type { SshKeyCheck } from './ssh-keys';
import { createSealer, randomToken } from './crypto';
import type { Reuse } from './policy';

export interface OwnershipAnswer {
  result: OwnershipResult;
  /** The answer came from the cache or from a call another caller had already made. */
  cached: boolean;
}

export interface OwnershipCheck {
  check(c: Credential, workspaceId: string, reuse: Reuse): Promise<OwnershipAnswer>;
  /**
   * The answer `check` would give at once from the cache (owner or not owner, fresh enough for `reuse`), or
   * undefined when it would have to ask GitLab. Synchronous, so that a caller holding a fresh answer need not wait.
   */
  cached(c: Credential, workspaceId: string, reuse: Reuse): OwnershipResult | undefined;
  /** Records an answer obtained elsewhere (the login's own check), so the next caller needs no second call. */
  remember(c: Credential, workspaceId: string, result: OwnershipResult): void;
  /** When GitLab last confirmed that this credential owns the workspace, while its latest answer still says so (epoch ms; 0 otherwise). */
  confirmedAt(c: Credential, workspaceId: string): number;
  /** True when the latest call for this credential and workspace found GitLab unavailable (an outage in progress). */
  failing(c: Credential, workspaceId: string): boolean;
  /** Identity of a credential for maps (keyed fingerprint: the secret itself is never a key). */
  keyOf(c: Credential): string;
}

export interface OwnershipOptions {
  gitlab: GitLabApi;
  /** SSH key checks (with the service token); absent when key logins are off. */
  sshKeys?: SshKeyCheck;
  /** Keyed hash for cache keys (app.ts: the sealer's, from auth.signing_key); default: a per-process random key. */
  fingerprint?: (secret: string) => string;
  now?: () => number;
  maxEntries?: number;
}

interface Entry {
  result: Extract<OwnershipResult, { kind: 'owner' | 'not_owner' }>;
  answeredAt: number;
  /** Last time GitLab confirmed ownership (for the outage grace); 0 if never. */
  confirmedAt: number;
  /** The latest call since this answer found GitLab unavailable. */
  failing?: boolean;
}

const MAX_ENTRIES = 20_000;

export function createOwnershipCheck(opts: OwnershipOptions): OwnershipCheck {
  const now = opts.now ?? Date.now;
  const max = opts.maxEntries ?? MAX_ENTRIES;
  const fingerprint = opts.fingerprint ?? createSealer(randomToken(32)).fingerprint;
  const entries = new Map<string, Entry>();
  const asking = new Map<string, Promise<OwnershipResult>>();

  const checkers: { [K in Credential['type']]: (c: Extract<Credential, { type: K }>, workspaceId: string) => Promise<OwnershipResult> } = {
    token: (c, w) => opts.gitlab.checkOwnership(bearerOf(c), w),
    oauth: (c, w) => opts.gitlab.checkOwnership(bearerOf(c), w),
    ssh_key: (c, w) => checkKey(c, w),
  };

  /** An open key connection stays while the workspace's owner is unchanged and the key still theirs. */
  async function checkKey(c: Extract<Credential, { type: 'ssh_key' }>, workspaceId: string): Promise<OwnershipResult> {
    if (!opts.sshKeys) return { kind: 'invalid_token' };
    const m = await opts.sshKeys.match(c.key, workspaceId, { fresh: true });
    if (m.kind === 'unavailable') return m;
    if (m.kind === 'match') return m.ownerId === c.userId ? { kind: 'owner', userId: c.userId } : { kind: 'not_owner', userId: c.userId };
    // The owner changed (or the workspace is gone in GitLab): not theirs any more. Same owner: the key went.
    if (m.ownerId !== c.userId) return { kind: 'not_owner', userId: c.userId };
    return { kind: 'invalid_token' };
  }

  // The fingerprint of a secret is memoised per secret string (bounded): hot paths reuse the same few.
  const fingerprints = new Map<string, string>();
  function keyOf(c: Credential): string {
    const secret = identityOf(c);
    let fp = fingerprints.get(secret);
    if (fp === undefined) {
      fp = fingerprint(secret);
      if (fingerprints.size >= max) fingerprints.delete(fingerprints.keys().next().value as string);
      fingerprints.set(secret, fp);
    }
    return `${c.type}:${fp}`;
  }
  const entryKey = (c: Credential, workspaceId: string) => `${keyOf(c)}\0${workspaceId}`;

  function store(k: string, result: OwnershipResult): void {
    if (result.kind === 'invalid_token') {
      entries.delete(k);
      return;
    }
    if (result.kind === 'unavailable') {
      // Not a verdict: what was known stays known, marked as in an outage.
      const known = entries.get(k);
      if (known) known.failing = true;
      return;
    }
    const t = now();
    const previous = entries.get(k);
    entries.delete(k);
    // Oldest first (Map keeps insertion order): a burst of logins must not grow memory without bound.
    if (entries.size >= max) entries.delete(entries.keys().next().value as string);
    entries.set(k, { result, answeredAt: t, confirmedAt: result.kind === 'owner' ? t : (previous?.confirmedAt ?? 0) });
  }

  function ask(k: string, c: Credential, workspaceId: string): Promise<OwnershipResult> {
    let p = asking.get(k);
    if (!p) {
      const checker = checkers[c.type] as (c: Credential, w: string) => Promise<OwnershipResult>;
      p = checker(c, workspaceId)
        .catch((err: unknown): OwnershipResult => ({ kind: 'unavailable', error: (err as Error).message }))
        .then((result) => {
          store(k, result);
          return result;
        })
        .finally(() => asking.delete(k));
      asking.set(k, p);
    }
    return p;
  }

  /** The entry's answer while it is young enough for `reuse`. */
  function fresh(k: string, reuse: Reuse): OwnershipResult | undefined {
    const hit = entries.get(k);
    if (!hit) return undefined;
    const maxAge = hit.result.kind === 'owner' ? reuse.ownerMs : reuse.notOwnerMs;
    return now() - hit.answeredAt < maxAge ? hit.result : undefined;
  }

  return {
    async check(c, workspaceId, reuse) {
      const k = entryKey(c, workspaceId);
      const hit = fresh(k, reuse);
      if (hit) return { result: hit, cached: true };
      const sharing = asking.has(k);
      return { result: await ask(k, c, workspaceId), cached: sharing };
    },
    cached(c, workspaceId, reuse) {
      return fresh(entryKey(c, workspaceId), reuse);
    },
    remember(c, workspaceId, result) {
      store(entryKey(c, workspaceId), result);
    },
    confirmedAt(c, workspaceId) {
      const e = entries.get(entryKey(c, workspaceId));
      return e?.result.kind === 'owner' ? e.confirmedAt : 0;
    },
    failing(c, workspaceId) {
      return entries.get(entryKey(c, workspaceId))?.failing === true;
    },
    keyOf,
  };
}
