// Session registry for long-lived connections (CONTRACT §6).
export { createSessionRegistry, type SessionRegistryOptions } from './registry';
export { GRACE_INTERVALS, graceMs } from './policy';
export * from './types';
export { shareRefreshes } from './shared-refresher';
