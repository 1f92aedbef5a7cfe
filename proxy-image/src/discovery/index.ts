// Workspace discovery (docs/contract.md §3): watches workspace Services and keeps the index the HTTP and SSH
// proxies look workspaces up in.
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { WorkspaceDirectory } from './types';
import { createWorkspaceIndex } from './index-store';
import { discoveryMetrics } from './metrics';
import { startServiceWatch } from './watch';

export type { Route, Workspace, WorkspaceChange, WorkspaceDirectory } from './types';
export { loadKubeConfig } from './kubeconfig';

export interface DiscoveryOptions {
  kubeConfig: KubeConfig;
  logger: Logger;
  registry: Registry;
  /** First pause before re-listing after a watch error (doubles up to maxBackoffMs). */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
}

export type WorkspaceDiscovery = WorkspaceDirectory & { stop(): void };

export function startWorkspaceDiscovery(opts: DiscoveryOptions): WorkspaceDiscovery {
  const { logger } = opts;
  const index = createWorkspaceIndex(logger);
  const metrics = discoveryMetrics(opts.registry, {
    workspaces: index.workspaceCount, hosts: index.hostCount, skipped: index.skippedCount,
  });
  let ready = false;
  const watch = startServiceWatch({
    kubeConfig: opts.kubeConfig,
    logger,
    initialBackoffMs: opts.initialBackoffMs,
    maxBackoffMs: opts.maxBackoffMs,
    onList(services) {
      index.replaceAll(services);
      metrics.lists.inc();
      if (!ready) logger.info({ workspaces: index.workspaceCount(), hosts: index.hostCount() }, 'first complete list of workspace Services loaded');
      ready = true;
    },
    onUpsert: (svc) => index.apply(svc),
    onDelete: (svc) => index.remove(svc.metadata?.namespace ?? '', svc.metadata?.name ?? '', svc.metadata?.uid),
    onRestart: () => metrics.watchRestarts.inc(),
  });
  return {
    routeForHost: index.routeForHost,
    workspaceByName: index.workspaceByName,
    onChange: index.onChange,
    isReady: () => ready,
    stop: () => watch.stop(),
  };
}
