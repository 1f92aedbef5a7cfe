// Counts and times every authorization call the proxy makes to GitLab: the ownership checks made with a
// user's token, and the SSH key lookups made with the service token (workspace owner, owner's keys).
import { Counter, Histogram, type Registry } from 'prom-client';
import { gitlabLatencyBuckets } from './metrics';
import type { OwnershipResult } from '../auth/gitlab-api';
import type { GitLabKeysApiOptions } from '../auth/gitlab-keys-api';

export interface GitLabCallMetrics {
  /** createGitLabApi's onCall. */
  ownership: (outcome: OwnershipResult['kind'], seconds: number) => void;
  /** createGitLabKeysApi's onCall. */
  keyLookup: NonNullable<GitLabKeysApiOptions['onCall']>;
}

export function gitlabCallMetrics(registry: Registry): GitLabCallMetrics {
  const calls = new Counter({
    name: 'workspaces_proxy_gitlab_authz_calls_total',
    help: 'GitLab GraphQL ownership checks, by outcome',
    labelNames: ['outcome'],
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'workspaces_proxy_gitlab_authz_duration_seconds',
    help: 'Latency of GitLab GraphQL ownership checks',
    buckets: gitlabLatencyBuckets,
    registers: [registry],
  });
  // Their own series: a key lookup's `owner` outcome is not a user's ownership check.
  const keyCalls = new Counter({
    name: 'workspaces_proxy_gitlab_ssh_key_lookups_total',
    help: 'GitLab lookups for SSH key logins (service token), by lookup (owner, keys) and outcome',
    labelNames: ['lookup', 'outcome'],
    registers: [registry],
  });
  const keyLatency = new Histogram({
    name: 'workspaces_proxy_gitlab_ssh_key_lookup_duration_seconds',
    help: 'Latency of GitLab lookups for SSH key logins, by lookup',
    labelNames: ['lookup'],
    buckets: gitlabLatencyBuckets,
    registers: [registry],
  });
  return {
    ownership(outcome, seconds) {
      calls.inc({ outcome });
      latency.observe(seconds);
    },
    keyLookup(lookup, outcome, seconds) {
      keyCalls.inc({ lookup, outcome });
      keyLatency.observe({ lookup }, seconds);
    },
  };
}
