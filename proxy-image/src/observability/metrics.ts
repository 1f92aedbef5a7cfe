// One prom-client Registry per proxy instance, passed to every module (no global default registry).
import { Registry, collectDefaultMetrics } from 'prom-client';

export function createMetricsRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}

/** Histogram buckets (seconds) for calls to GitLab, from a fast cache-warm answer to a request timing out. */
export const gitlabLatencyBuckets = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
