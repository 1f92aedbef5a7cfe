// Composition root: builds every part of the proxy from its config and wires them together.
// Each part gets its dependencies passed in; nothing here is global, so tests can start several proxies
// in one process.
import type { AddressInfo } from 'node:net';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { ProxyConfig } from './config';
import { createMetricsRegistry } from './observability/metrics';
import { startWorkspaceDiscovery } from './discovery';
import { createGitLabApi } from './auth/gitlab-api';
import { createOidc } from './auth/oidc';
import { createSessionRegistry, shareRefreshes } from './sessions';
import { createHttpProxy } from './http';
import { createInternalServer } from './observability/internal-server';
import { createSshProxy } from './ssh';
import { gitlabCallMetrics } from './observability/gitlab-metrics';

export interface RunningProxy {
  /** Bound addresses, useful when the config asked for port 0 (tests). */
  addresses: { http?: AddressInfo; internal: AddressInfo; ssh?: AddressInfo };
  /** Graceful stop (CONTRACT §1): stop accepting, drain, close long-lived connections with "going away". */
  shutdown(): Promise<void>;
}

export interface StartOptions {
  config: ProxyConfig;
  kubeConfig: KubeConfig;
  logger: Logger;
  /** How long in-flight HTTP requests may take to finish on shutdown before they are cut. */
  drainTimeoutMs?: number;
  /** Address every listener binds (default: all interfaces; tests pass 127.0.0.1). */
  listenHost?: string;
}

export async function startProxy(opts: StartOptions): Promise<RunningProxy> {
  const { config, logger } = opts;
  const registry = createMetricsRegistry();
  const directory = startWorkspaceDiscovery({ kubeConfig: opts.kubeConfig, logger: logger.child({ module: 'discovery' }), registry });
  const gitlab = createGitLabApi({
    baseUrl: config.auth.host,
    logger: logger.child({ module: 'gitlab' }),
    onCall: gitlabCallMetrics(registry),
  });
  // One refresh per refresh token for cookies and open connections alike (GitLab rotates them).
  const oidc = shareRefreshes(createOidc({ config, logger: logger.child({ module: 'oidc' }) }));
  const sessions = createSessionRegistry({
    config, directory, gitlab, refresher: oidc, logger: logger.child({ module: 'sessions' }), registry,
  });
  const deps = { config, directory, gitlab, oidc, sessions, registry };

  const internal = createInternalServer({ ...deps, logger: logger.child({ module: 'internal' }) });
  const http = config.http.enabled ? createHttpProxy({ ...deps, logger: logger.child({ module: 'http' }) }) : undefined;
  const ssh = config.ssh.enabled ? createSshProxy({ ...deps, logger: logger.child({ module: 'ssh' }) }) : undefined;

  /** Stops every part; long-lived connections are told "going away" first, then short requests get time to finish. */
  async function stopParts(drainTimeoutMs: number): Promise<void> {
    sessions.closeAll('shutdown');
    await Promise.all([http?.shutdown(drainTimeoutMs), ssh?.shutdown(), internal.shutdown()]);
    sessions.stop();
    directory.stop();
  }

  let addresses: RunningProxy['addresses'];
  try {
    addresses = {
      internal: await internal.listen(config.http.internal_port, opts.listenHost),
      http: await http?.listen(config.http.port, opts.listenHost),
      ssh: await ssh?.listen(config.ssh.port, opts.listenHost),
    };
  } catch (err) {
    // A port that cannot be bound ends start-up; what already runs (the watch, other listeners) must not
    // keep the process, or a test, alive.
    await stopParts(0);
    throw err;
  }
  logger.info({ addresses }, 'proxy listening');

  let stopping: Promise<void> | undefined;
  function shutdown(): Promise<void> {
    stopping ??= (async () => {
      logger.info('shutting down: no new connections, draining');
      await stopParts(opts.drainTimeoutMs ?? 25_000);
      logger.info('shutdown complete');
    })();
    return stopping;
  }
  return { addresses, shutdown };
}
