// Timing policy of re-authorization: derived from auth.reauthorize_interval so that one setting
// controls everything (CONTRACT §6), and kept in one place so docs and tests agree with the code.

/** Intervals a batch may go without a GitLab confirmation (unreachable or 5xx) before it closes. */
export const GRACE_INTERVALS = 3;

/** Upper bound of one token refresh: GitLab's token endpoint hanging must not stall a batch forever. */
export const REFRESH_TIMEOUT_MS = 10_000;

/** setTimeout's largest delay; longer deadlines re-arm. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export function intervalMs(reauthorizeIntervalSeconds: number): number {
  return reauthorizeIntervalSeconds * 1000;
}

export function graceMs(reauthorizeIntervalSeconds: number): number {
  return GRACE_INTERVALS * intervalMs(reauthorizeIntervalSeconds);
}

/**
 * First re-check of a new batch: somewhere in [interval/2, interval). The connection was just
 * authorized when it opened; the random phase spreads batches created at the same moment (a proxy
 * restart reconnecting every browser) across half an interval.
 */
export function firstCheckDelayMs(interval: number, random: () => number): number {
  return interval * (0.5 + 0.5 * random());
}

/**
 * Later re-checks: every [3/4 interval, interval). Never longer than one interval, so a change is
 * seen by the next check within one interval (the contract allows two plus one second), and the
 * jitter keeps batches from drifting back into lockstep.
 */
export function nextCheckDelayMs(interval: number, random: () => number): number {
  return interval * (0.75 + 0.25 * random());
}

/** An OAuth access token this close to expiry is refreshed before the check rather than after a failure. */
export function refreshMarginMs(interval: number): number {
  return 2 * interval;
}
