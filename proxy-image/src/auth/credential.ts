// The GitLab credential a user proved who they are with: what it is, how it was obtained, and how it is
// refreshed. Every part of the proxy that holds one (the browser session, an SSH login, an open
// connection) uses these types and functions, so a new way of signing in is a new variant here, a
// checker in ownership.ts and the code that obtains it, nothing else.
import type { Logger } from 'pino';
import { isRefreshRejection } from './oidc';

export type Credential =
  /** A personal access token, typed as the SSH password. Cannot be refreshed. */
  | { type: 'token'; token: string }
  /** Tokens from the OAuth login (browser session, WebSockets opened with it). */
  | { type: 'oauth'; accessToken: string; refreshToken?: string; /** epoch ms */ expiresAt?: number }
  /** One of the workspace owner's GitLab SSH keys (signature verified at login). Checked with the
   *  service token (ssh-keys.ts); nothing to refresh. `key` is the base64 public key blob. */
  | { type: 'ssh_key'; key: string; userId: string };

export type BearerCredential = Exclude<Credential, { type: 'ssh_key' }>;

export interface Tokens {
  accessToken: string;
  refreshToken?: string;
  /** Epoch ms when the access token expires, when GitLab said. */
  expiresAt?: number;
}

/** Exchanges a refresh token for new tokens (openid-client, in oidc.ts; shared per process by shared-refresher.ts). */
export interface TokenRefresher {
  refresh(refreshToken: string): Promise<Tokens>;
}

/** The secret GitLab is shown for this credential (`Authorization: Bearer`). */
export function bearerOf(c: BearerCredential): string {
  return c.type === 'token' ? c.token : c.accessToken;
}

/**
 * What tells one credential from another (fingerprinted for map keys, never stored as is): the token, or
 * for an SSH key (GitLab is shown the proxy's service token, not the key) the key's blob.
 */
export function identityOf(c: Credential): string {
  return c.type === 'ssh_key' ? c.key : bearerOf(c);
}

/** True when the credential expires within `marginMs` and can be refreshed before it does. */
export function refreshDue(c: Credential, marginMs: number, now: number): boolean {
  return c.type === 'oauth' && !!c.refreshToken && c.expiresAt !== undefined && c.expiresAt - marginMs <= now;
}

export type RefreshOutcome = 'refreshed' | 'rejected' | 'unavailable';
export type RefreshResult =
  | { outcome: 'refreshed'; credential: Credential }
  | { outcome: Exclude<RefreshOutcome, 'refreshed'> | 'impossible' };

/**
 * One refresh of `c`, bounded by `timeoutMs` (GitLab's token endpoint hanging must not stall a caller).
 * 'rejected' is GitLab's verdict on the refresh token (oidc.ts classifies); 'unavailable' says nothing
 * about the user.
 */
export async function refreshCredential(
  c: Credential, refresher: TokenRefresher, opts: { timeoutMs: number; logger: Logger },
): Promise<RefreshResult> {
  if (c.type !== 'oauth' || !c.refreshToken) return { outcome: 'impossible' };
  const refreshToken = c.refreshToken;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('token refresh timed out')), opts.timeoutMs);
    timer.unref?.();
  });
  try {
    const tokens = await Promise.race([refresher.refresh(refreshToken), timeout]);
    return {
      outcome: 'refreshed',
      credential: {
        type: 'oauth',
        accessToken: tokens.accessToken,
        // GitLab rotates refresh tokens; keep the old one only if the server did not send a new one.
        refreshToken: tokens.refreshToken ?? refreshToken,
        expiresAt: tokens.expiresAt,
      },
    };
  } catch (err) {
    const rejected = isRefreshRejection(err);
    opts.logger.warn(
      { err: { message: (err as Error)?.message, error: (err as { error?: unknown })?.error } },
      rejected ? 'GitLab refused to refresh the token' : 'token refresh failed',
    );
    return { outcome: rejected ? 'rejected' : 'unavailable' };
  } finally {
    clearTimeout(timer);
  }
}
