// Counts and times every authorization call the proxy makes to GitLab.
import { Counter, Histogram, type Registry } from 'prom-client';
import { gitlabLatencyBuckets } from './metrics';
import type { OwnershipResult } from '../auth/gitlab-api';

export function gitlabCallMetrics(registry: Registry): (outcome: OwnershipResult['kind'], seconds: number) => void {
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
  return (outcome, seconds) => {
    calls.inc({ outcome });
    latency.observe(seconds);
  };
}
