// Composition root: builds every part of the proxy from its config and wires them together. Each part
// gets its dependencies passed in; nothing here is global, so tests can start several proxies in one
// process. Tests assemble the proxy here too, replacing only what cannot run as in production (the
// directory, GitLab's address, the backend pool, the clock, the logger), so they test this wiring.
import type { Dispatcher } from 'undici';
import type { AddressInfo } from 'node:net';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { ProxyConfig } from './config';
import { createMetricsRegistry } from './observability/metrics';
import { startWorkspaceDiscovery } from './discovery';
import type { WorkspaceDirectory } from './discovery/types';
import { createGitLabApi, type GitLabApi } from './auth/gitlab-api';
import { createAuth, type Auth } from './auth';
import { createConnectionRegistry, type ConnectionRegistry } from './connections';
import { createHttpProxy, type HttpProxy } from './http';
import { createInternalServer, type InternalServer } from './observability/internal-server';
import { createSshProxy, type SshProxy, type SshTuning } from './ssh';
import { gitlabCallMetrics } from './observability/gitlab-metrics';

export interface RunningProxy {
  /** Bound addresses, useful when the config asked for port 0 (tests). */
  addresses: { http?: AddressInfo; internal: AddressInfo; ssh?: AddressInfo };
  /** Graceful stop (docs/contract.md §1): stop accepting, drain, close long-lived connections with "going away". */
  shutdown(): Promise<void>;
}

/** The parts a test may replace; everything else is built as in production. */
export interface ProxyParts {
  /** Default: Kubernetes discovery from `kubeConfig`. A directory passed in is not stopped by the proxy. */
  directory?: WorkspaceDirectory & { stop?(): void };
  gitlab?: GitLabApi;
  /** Connection pool to workspaces. */
  backendDispatcher?: Dispatcher;
  /** Response-headers timeout to workspaces (default http/forward.ts's; tests shorten it). */
  backendHeadersTimeoutMs?: number;
  /** Clock in epoch ms for authorization and the connection registry. */
  now?: () => number;
  registry?: Registry;
  sshTuning?: Partial<SshTuning>;
  /** HTTP headers timeout (default: http/index.ts HEADERS_TIMEOUT_MS). */
  headersTimeoutMs?: number;
}

export interface AssembleOptions extends ProxyParts {
  config: ProxyConfig;
  logger: Logger;
  /** Needed unless `directory` is given. */
  kubeConfig?: KubeConfig;
}

export interface AssembledProxy {
  config: ProxyConfig;
  directory: WorkspaceDirectory;
  auth: Auth;
  connections: ConnectionRegistry;
  registry: Registry;
  /** Metrics and health on http.internal_port (listening only when started). */
  internal: InternalServer;
  http?: HttpProxy;
  ssh?: SshProxy;
  /** Stops every part; long-lived connections are told "going away" first, then short requests get time to finish. */
  stop(drainTimeoutMs: number): Promise<void>;
}

export function assembleProxy(opts: AssembleOptions): AssembledProxy {
  const { config, logger } = opts;
  const registry = opts.registry ?? createMetricsRegistry();
  let ownDirectory: (WorkspaceDirectory & { stop(): void }) | undefined;
  if (!opts.directory) {
    if (!opts.kubeConfig) throw new Error('assembleProxy: a kubeConfig or a directory is needed');
    ownDirectory = startWorkspaceDiscovery({ kubeConfig: opts.kubeConfig, logger: logger.child({ module: 'discovery' }), registry });
  }
  const directory: WorkspaceDirectory = opts.directory ?? ownDirectory!;
  const gitlabMetrics = gitlabCallMetrics(registry);
  const gitlab = opts.gitlab ?? createGitLabApi({
    baseUrl: config.auth.host,
    logger: logger.child({ module: 'gitlab' }),
    onCall: gitlabMetrics.ownership,
  });
  const auth = createAuth({ config, gitlab, logger: logger.child({ module: 'auth' }), now: opts.now, onKeyLookup: gitlabMetrics.keyLookup });
  const connections = createConnectionRegistry({
    config, directory, ownership: auth.ownership, refresher: auth.oidc, logger: logger.child({ module: 'connections' }),
    registry, now: opts.now,
  });
  const deps = { config, directory, auth, connections, registry };

  const internal = createInternalServer({ ...deps, logger: logger.child({ module: 'internal' }) });
  const http = config.http.enabled
    ? createHttpProxy({ ...deps, logger: logger.child({ module: 'http' }), backendDispatcher: opts.backendDispatcher, backendHeadersTimeoutMs: opts.backendHeadersTimeoutMs, headersTimeoutMs: opts.headersTimeoutMs })
    : undefined;
  const ssh = config.ssh.enabled ? createSshProxy({ ...deps, logger: logger.child({ module: 'ssh' }), tuning: opts.sshTuning }) : undefined;

  return {
    config, directory, auth, connections, registry, internal, http, ssh,
    async stop(drainTimeoutMs) {
      connections.closeAll('shutdown');
      await Promise.all([http?.shutdown(drainTimeoutMs), ssh?.shutdown(), internal.shutdown()]);
      connections.stop();
      ownDirectory?.stop();
    },
  };
}

export interface StartOptions extends AssembleOptions {
  /** How long in-flight HTTP requests may take to finish on shutdown before they are cut. */
  drainTimeoutMs?: number;
  /** Address every listener binds (default: all interfaces; tests pass 127.0.0.1). */
  listenHost?: string;
}

export async function startProxy(opts: StartOptions): Promise<RunningProxy> {
  const { config, logger } = opts;
  const parts = assembleProxy(opts);

  let addresses: RunningProxy['addresses'];
  try {
    addresses = {
      internal: await parts.internal.listen(config.http.internal_port, opts.listenHost),
      http: await parts.http?.listen(config.http.port, opts.listenHost),
      ssh: await parts.ssh?.listen(config.ssh.port, opts.listenHost),
    };
  } catch (err) {
    // A port that cannot be bound ends start-up; what already runs (the watch, other listeners) must not
    // keep the process, or a test, alive.
    await parts.stop(0);
    throw err;
  }
  logger.info({ addresses }, 'proxy listening');

  let stopping: Promise<void> | undefined;
  function shutdown(): Promise<void> {
    stopping ??= (async () => {
      logger.info('shutting down: no new connections, draining');
      await parts.stop(opts.drainTimeoutMs ?? 25_000);
      logger.info('shutdown complete');
    })();
    return stopping;
  }
  return { addresses, shutdown };
}
