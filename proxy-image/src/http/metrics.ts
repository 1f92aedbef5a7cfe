// HTTP-side Prometheus metrics, registered on the registry passed in.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export type LoginOutcome =
  | 'started'
  | 'success'
  | 'not_owner'
  | 'state_invalid'
  | 'exchange_rejected'
  | 'gitlab_unavailable'
  | 'handoff_invalid'
  | 'denied_by_user';

export interface HttpMetrics {
  request(status: number, seconds: number): void;
  login(outcome: LoginOutcome): void;
  websocketOpened(): void;
  websocketClosed(): void;
}

export function createHttpMetrics(registry: Registry): HttpMetrics {
  const requests = new Counter({
    name: 'workspaces_proxy_http_requests_total',
    help: 'HTTP requests on workspace hosts and the proxy domain, by status class',
    labelNames: ['code'],
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'workspaces_proxy_http_request_duration_seconds',
    help: 'Time from request to the end of the response (streams count until they end)',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [registry],
  });
  const logins = new Counter({
    name: 'workspaces_proxy_logins_total',
    help: 'Browser login steps and their outcomes',
    labelNames: ['outcome'],
    registers: [registry],
  });
  const websockets = new Gauge({
    name: 'workspaces_proxy_websockets_open',
    help: 'Open proxied WebSocket connections',
    registers: [registry],
  });
  // Children resolved once: labelled inc() hashes its label object on every call, on every request.
  const byClass = ['1xx', '2xx', '3xx', '4xx', '5xx'].map((code) => requests.labels({ code }));
  return {
    request(status, seconds) {
      (byClass[Math.floor(status / 100) - 1] ?? requests.labels({ code: 'other' })).inc();
      latency.observe(seconds);
    },
    login(outcome) {
      logins.inc({ outcome });
    },
    websocketOpened() {
      websockets.inc();
    },
    websocketClosed() {
      websockets.dec();
    },
  };
}
