// Prometheus metrics of the connection registry, registered on the registry passed in.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { gitlabLatencyBuckets } from '../observability/metrics';
import type { RefreshOutcome } from '../auth/credential';
import type { CloseReason, TrackedConnection } from './types';

export type ReauthOutcome = 'owner' | 'not_owner' | 'credential_invalid' | 'unavailable';

export interface ConnectionMetrics {
  closed(kind: TrackedConnection['kind'], reason: CloseReason): void;
  reauthorized(outcome: ReauthOutcome, seconds: number): void;
  refreshed(outcome: RefreshOutcome): void;
}

export function createConnectionMetrics(
  registry: Registry,
  size: (kind: TrackedConnection['kind']) => number,
): ConnectionMetrics {
  new Gauge({
    name: 'workspaces_proxy_open_connections',
    help: 'Open long-lived connections (WebSocket, SSH) tracked for re-authorization',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      this.set({ kind: 'websocket' }, size('websocket'));
      this.set({ kind: 'ssh' }, size('ssh'));
    },
  });
  const closures = new Counter({
    name: 'workspaces_proxy_connection_closures_total',
    help: 'Long-lived connections closed by the proxy, by kind and reason',
    labelNames: ['kind', 'reason'],
    registers: [registry],
  });
  const reauths = new Counter({
    name: 'workspaces_proxy_reauthorizations_total',
    help: 'Re-authorizations of a batch of connections (same credential and workspace), by outcome',
    labelNames: ['outcome'],
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'workspaces_proxy_reauthorization_duration_seconds',
    help: 'Time to re-authorize one batch, token refresh included',
    buckets: gitlabLatencyBuckets,
    registers: [registry],
  });
  const refreshes = new Counter({
    name: 'workspaces_proxy_token_refreshes_total',
    help: 'OAuth token refreshes made to keep re-authorizing browser sessions, by outcome',
    labelNames: ['outcome'],
    registers: [registry],
  });
  return {
    closed: (kind, reason) => closures.inc({ kind, reason }),
    reauthorized: (outcome, seconds) => {
      reauths.inc({ outcome });
      latency.observe(seconds);
    },
    refreshed: (outcome) => refreshes.inc({ outcome }),
  };
}
