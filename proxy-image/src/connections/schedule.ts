// When open connections are re-checked: jittered around auth.reauthorize_interval (docs/contract.md §6).
// How long answers are trusted and the outage grace are auth's (auth/policy.ts).

/** setTimeout's largest delay; longer deadlines re-arm. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

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
