// Discovery metrics on the proxy's own Registry.
import { Counter, Gauge, type Registry } from 'prom-client';

export interface DiscoveryMetrics {
  watchRestarts: Counter;
  lists: Counter;
  lastList: Gauge;
}

export function discoveryMetrics(registry: Registry, read: { workspaces(): number; hosts(): number; skipped(): number }): DiscoveryMetrics {
  new Gauge({
    name: 'workspaces_proxy_workspaces',
    help: 'Workspace Services currently known',
    registers: [registry],
    collect() {
      this.set(read.workspaces());
    },
  });
  new Gauge({
    name: 'workspaces_proxy_workspace_hosts',
    help: 'Workspace hosts currently routed',
    registers: [registry],
    collect() {
      this.set(read.hosts());
    },
  });
  new Gauge({
    name: 'workspaces_proxy_skipped_services',
    help: 'Services with the agent label that are skipped (missing or bad annotations)',
    registers: [registry],
    collect() {
      this.set(read.skipped());
    },
  });
  return {
    watchRestarts: new Counter({
      name: 'workspaces_proxy_discovery_watch_restarts_total',
      help: 'Times the Service watch failed and was restarted with a fresh list',
      registers: [registry],
    }),
    lists: new Counter({
      name: 'workspaces_proxy_discovery_lists_total',
      help: 'Complete lists of workspace Services loaded',
      registers: [registry],
    }),
    // Lists come at least every resync interval (5 min) while the API server answers: an old value means
    // routing runs on stale state.
    lastList: new Gauge({
      name: 'workspaces_proxy_discovery_last_list_timestamp_seconds',
      help: 'Unix time of the last complete list of workspace Services',
      registers: [registry],
    }),
  };
}
