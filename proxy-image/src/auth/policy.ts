// How long GitLab's answers are trusted, and how long an outage is ridden out: all derived from
// auth.reauthorize_interval so that one setting controls everything (docs/contract.md §6), and kept in
// one place so the HTTP side, SSH logins, open connections, the docs and the tests agree.

/** Intervals a credential may go without a GitLab confirmation (unreachable or 5xx) before access ends. */
export const GRACE_INTERVALS = 3;

/**
 * Upper bound of every call to GitLab (OpenID discovery, code exchange, JWKS, GraphQL, SSH key lookups): a
 * GitLab that hangs costs a login or a check this long, then the user gets a "GitLab is not reachable" page
 * or the outage grace applies. Long enough for a slow GitLab under load, short enough for a person to wait.
 */
export const GITLAB_TIMEOUT_MS = 10_000;

/** Upper bound of one token refresh: GitLab's token endpoint hanging must not stall a check forever. */
export const REFRESH_TIMEOUT_MS = GITLAB_TIMEOUT_MS;

/** A "not the owner" answer is reused this long at most (a user just given the workspace waits no longer). */
export const NOT_OWNER_REUSE_MS = 5_000;

/** A positive answer opens new SSH connections for this long at most (an IDE opens several at once). */
export const NEW_CONNECTION_REUSE_MS = 10_000;

/** Browser requests refresh an access token this long before it expires, so a request never races the expiry. */
export const REQUEST_REFRESH_EARLY_MS = 30_000;

export function intervalMs(reauthorizeIntervalSeconds: number): number {
  return reauthorizeIntervalSeconds * 1000;
}

export function graceMs(reauthorizeIntervalSeconds: number): number {
  return GRACE_INTERVALS * intervalMs(reauthorizeIntervalSeconds);
}

/** True while an outage that began (or whose last confirmation was) at `since` is still within the grace. */
export function withinGrace(since: number, now: number, reauthorizeIntervalSeconds: number): boolean {
  return now - since < graceMs(reauthorizeIntervalSeconds);
}

/** How old a cached answer each kind of caller accepts, in ms; 0 means "ask GitLab" (in-flight calls are still shared). */
export interface Reuse {
  ownerMs: number;
  notOwnerMs: number;
}

/** Browser requests: a positive answer for one interval, a negative one briefly. */
export function requestReuse(reauthorizeIntervalSeconds: number): Reuse {
  const interval = intervalMs(reauthorizeIntervalSeconds);
  return { ownerMs: interval, notOwnerMs: Math.min(NOT_OWNER_REUSE_MS, interval) };
}

/** New SSH connections: positive answers briefly (never beyond one interval), failures never. */
export function newConnectionReuse(reauthorizeIntervalSeconds: number, capMs = NEW_CONNECTION_REUSE_MS): Reuse {
  return { ownerMs: Math.min(capMs, intervalMs(reauthorizeIntervalSeconds)), notOwnerMs: 0 };
}

/** Re-checks of open connections always ask GitLab. */
export const RECHECK: Reuse = { ownerMs: 0, notOwnerMs: 0 };

/** An open connection's access token this close to expiry is refreshed before its re-check rather than after a failure. */
export function recheckRefreshMarginMs(reauthorizeIntervalSeconds: number): number {
  return 2 * intervalMs(reauthorizeIntervalSeconds);
}
