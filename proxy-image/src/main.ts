// Entry point: `node dist/main.js -config <file> [-kubeconfig <file>]` (docs/contract.md §1).
import { readFileSync } from 'node:fs';
import { parseFlags, parseConfigText, ConfigError, UsageError } from './config';
import { loadKubeConfig } from './discovery/kubeconfig';
import { createLogger } from './observability/logger';
import { startProxy, type RunningProxy } from './app';

async function main(): Promise<void> {
  let flags;
  let parsed;
  try {
    flags = parseFlags(process.argv.slice(2));
    parsed = parseConfigText(readFileSync(flags.configPath, 'utf8'));
  } catch (err) {
    if (err instanceof UsageError || err instanceof ConfigError) {
      console.error(err.message);
      process.exit(2);
    }
    console.error(`cannot read config: ${(err as Error).message}`);
    process.exit(2);
  }
  const logger = createLogger(parsed.config.log_level);
  for (const key of parsed.unknownKeys) logger.warn({ key }, `unknown config key ${key} ignored`);
  // A bug that escapes every handler leaves the process in an unknown state: log it as one JSON line
  // (collected like every other log) and exit non-zero so Kubernetes restarts the pod.
  process.on('uncaughtException', (err) => {
    logger.fatal({ err }, 'uncaught exception, exiting');
    process.exit(1);
  });

  const kubeConfig = loadKubeConfig(flags.kubeconfigPath);
  // WORKSPACES_PROXY_LISTEN_HOST narrows every listener to one address (tests and local runs: 127.0.0.1).
  const listenHost = process.env.WORKSPACES_PROXY_LISTEN_HOST || undefined;
  // Handlers go in before start-up: a SIGTERM that arrives while (or just after) the listeners open must
  // still end in a graceful stop and exit 0, not in Node's default kill-by-signal.
  let proxy: RunningProxy | undefined = undefined;
  let signalled = false;
  const stop = (running: RunningProxy) => {
    running.shutdown().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  const onSignal = (signal: string) => {
    if (signalled) return;
    signalled = true;
    logger.info({ signal }, 'signal received');
    if (proxy) stop(proxy); // else stopped as soon as start-up completes
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  proxy = await startProxy({ config: parsed.config, kubeConfig, logger, listenHost });
  if (signalled) stop(proxy);
}

main().catch((err: unknown) => {
  console.error(`proxy failed to start: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});
