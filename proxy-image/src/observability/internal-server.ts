// Metrics and health: always on http.internal_port, and on the main port only for requests whose Host is
// an IP literal, localhost or missing (docs/contract.md §4) — never for a workspace host.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { ProxyConfig } from '../config';
import type { WorkspaceDirectory } from '../discovery/types';
import { listenOn } from '../net/listen';

export interface InternalDeps {
  config: ProxyConfig;
  directory: WorkspaceDirectory;
  registry: Registry;
  logger: Logger;
}

export type InternalHandler = (req: IncomingMessage, res: ServerResponse) => void;

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

export function createInternalHandler(deps: InternalDeps): InternalHandler {
  const metricsPath = deps.config.metrics_path;
  return (req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
    if (path === '/healthz') return send(res, 200, 'text/plain; charset=utf-8', 'ok\n');
    if (path === '/readyz') {
      // Ready only once the first complete list of workspace Services is in (docs/contract.md §1).
      return deps.directory.isReady()
        ? send(res, 200, 'text/plain; charset=utf-8', 'ready\n')
        : send(res, 503, 'text/plain; charset=utf-8', 'workspace discovery has not completed its first list\n');
    }
    if (path === metricsPath) {
      deps.registry.metrics().then(
        (text) => send(res, 200, deps.registry.contentType, text),
        (err: unknown) => {
          deps.logger.error({ err }, 'collecting metrics failed');
          send(res, 500, 'text/plain; charset=utf-8', 'metrics unavailable\n');
        },
      );
      return;
    }
    send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
  };
}

export interface InternalServer {
  /** Binds all interfaces (probes and Prometheus come from outside the pod); `host` narrows it (tests: 127.0.0.1). */
  listen(port: number, host?: string): Promise<AddressInfo>;
  shutdown(): Promise<void>;
}

export function createInternalServer(deps: InternalDeps): InternalServer {
  const handler = createInternalHandler(deps);
  const server = createServer(handler);
  server.keepAliveTimeout = 5_000;
  return {
    listen(port, host) {
      return listenOn(server, port, host);
    },
    shutdown() {
      return new Promise((resolve) => {
        if (!server.listening) return resolve();
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
