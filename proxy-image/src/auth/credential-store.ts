// The GitLab credentials open connections are re-checked with. Connections opened with the same
// credential share one entry, so a refresh happens once and every batch using it sees the new tokens
// (GitLab rotates refresh tokens: refreshing the same one twice would fail the second time).
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { Credential, TokenRefresher } from './types';
import type { RefreshOutcome } from './metrics';

export interface CredentialEntry {
  readonly key: string;
  /** The newest tokens: the ones the connection was opened with, or refreshed ones. */
  current: Credential;
  refs: number;
  refreshing?: Promise<RefreshOutcome | 'impossible'>;
  /** GitLab refused the refresh token: it stays refused, so it is not sent again. */
  refused?: boolean;
}

/** Identity of a credential without keeping the secret itself as a map key (hash, never logged). */
export function credentialKey(c: Credential): string {
  const secret = c.type === 'token' ? c.token : c.accessToken;
  return createHash('sha256').update(`${c.type}\0${secret}`).digest('base64url');
}

export function bearerOf(c: Credential): string {
  return c.type === 'token' ? c.token : c.accessToken;
}

/**
 * A refresh failure is a verdict on the credential when GitLab refused the grant: the auth module's
 * OidcError says so with kind 'rejected'; a raw openid-client error carries an OAuth `error` code
 * (invalid_grant) or a 4xx status. Anything else (network error, timeout, 5xx) says nothing about the
 * user and is treated like GitLab being unreachable.
 */
export function isRefreshRejection(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { kind?: unknown; status?: unknown; error?: unknown };
  if (e.kind === 'rejected') return true;
  if (e.kind === 'unavailable') return false;
  if (typeof e.status === 'number') return e.status >= 400 && e.status < 500;
  return typeof e.error === 'string';
}

export interface CredentialStoreOptions {
  refresher: TokenRefresher;
  logger: Logger;
  timeoutMs: number;
  onRefresh(outcome: RefreshOutcome): void;
}

export interface CredentialStore {
  acquire(c: Credential): CredentialEntry;
  release(entry: CredentialEntry): void;
  /**
   * Refresh the entry's tokens. `staleToken` is the access token a failed check used: if the entry
   * already moved past it (another batch refreshed meanwhile) no second refresh is made.
   */
  refresh(entry: CredentialEntry, staleToken?: string): Promise<RefreshOutcome | 'impossible'>;
}

export function createCredentialStore(opts: CredentialStoreOptions): CredentialStore {
  const entries = new Map<string, CredentialEntry>();

  async function doRefresh(entry: CredentialEntry, refreshToken: string): Promise<RefreshOutcome> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('token refresh timed out')), opts.timeoutMs);
      timer.unref?.();
    });
    try {
      const tokens = await Promise.race([opts.refresher.refresh(refreshToken), timeout]);
      entry.current = {
        type: 'oauth',
        accessToken: tokens.accessToken,
        // GitLab rotates refresh tokens; keep the old one only if the server did not send a new one.
        refreshToken: tokens.refreshToken ?? refreshToken,
        expiresAt: tokens.expiresAt,
      };
      return 'refreshed';
    } catch (err) {
      const rejected = isRefreshRejection(err);
      opts.logger.warn(
        { err: { message: (err as Error)?.message, error: (err as { error?: unknown })?.error } },
        rejected ? 'GitLab refused to refresh the token' : 'token refresh failed',
      );
      return rejected ? 'rejected' : 'unavailable';
    } finally {
      clearTimeout(timer);
    }
  }

  return {
    acquire(c) {
      const key = credentialKey(c);
      let entry = entries.get(key);
      if (!entry) {
        entry = { key, current: c, refs: 0 };
        entries.set(key, entry);
      }
      entry.refs += 1;
      return entry;
    },
    release(entry) {
      entry.refs -= 1;
      if (entry.refs <= 0 && entries.get(entry.key) === entry) entries.delete(entry.key);
    },
    refresh(entry, staleToken) {
      if (entry.refreshing) return entry.refreshing;
      const cur = entry.current;
      if (staleToken !== undefined && bearerOf(cur) !== staleToken) return Promise.resolve('refreshed');
      if (cur.type !== 'oauth' || !cur.refreshToken) return Promise.resolve('impossible');
      if (entry.refused) return Promise.resolve('rejected');
      const refreshToken = cur.refreshToken;
      entry.refreshing = doRefresh(entry, refreshToken).then((outcome) => {
        if (outcome === 'rejected') entry.refused = true;
        opts.onRefresh(outcome);
        return outcome;
      }).finally(() => {
        entry.refreshing = undefined;
      });
      return entry.refreshing;
    },
  };
}
