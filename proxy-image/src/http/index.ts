// The HTTP(S-terminated) entry point: routes each request by Host to the proxy's own endpoints, the login
// flow, or an authorized workspace, and proxies HTTP and WebSocket traffic to the workspace backend.
import { Agent, createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { createProxyServer } from 'http-proxy-3';
import type { ProxyConfig } from '../config';
import type { Route, WorkspaceDirectory } from '../discovery/types';
import type { GitLabApi } from '../auth/gitlab-api';
import type { Oidc } from '../auth/oidc';
import type { SessionRegistry } from '../sessions/types';
import { createSealer } from '../auth/crypto';
import { cookieNames, cookieValues, deleteCookie, stripProxyCookies } from '../auth/cookies';
import { createAccessControl, createSessionReader, type SessionData } from '../auth/session';
import { createInternalHandler } from '../observability/internal-server';
import { createHttpMetrics } from './metrics';
import { isInternalHost, parseHost, type ParsedHost } from './host';
import { createLoginFlow, RESERVED_PREFIX } from './login';
import { messages, rejectUpgrade, sendPage, sendText } from './pages';
import { createWebSocketRelayFactory, type Relay } from './websocket';

export interface HttpProxyDeps {
  config: ProxyConfig;
  directory: WorkspaceDirectory;
  gitlab: GitLabApi;
  oidc: Oidc;
  sessions: SessionRegistry;
  registry: Registry;
  logger: Logger;
  /** Connection pool to workspaces (default: keep-alive, LIFO). Tests pass a small one to catch leaks. */
  backendAgent?: Agent;
  /** How long connecting to a workspace may take before the answer is 502 (default 10 s). */
  connectTimeoutMs?: number;
  /** Largest WebSocket message relayed (default 100 MiB, as `ws`). */
  maxWebSocketMessageBytes?: number;
}

export interface HttpProxy {
  /** Binds all interfaces unless `host` is given (tests: 127.0.0.1). */
  listen(port: number, host?: string): Promise<AddressInfo>;
  /** Stop accepting, close WebSockets with "going away", let requests and streams finish for up to drainTimeoutMs. */
  shutdown(drainTimeoutMs: number): Promise<void>;
}

const SET_COOKIE = Symbol('wsp-set-cookie');
type Tagged = IncomingMessage & { [SET_COOKIE]?: string };

export function createHttpProxy(deps: HttpProxyDeps): HttpProxy {
  const { config, directory, logger } = deps;
  const secure = config.auth.protocol === 'https';
  const names = cookieNames(secure);
  const sealer = createSealer(config.auth.signing_key);
  const metrics = createHttpMetrics(deps.registry);
  const readSession = createSessionReader(sealer);
  const access = createAccessControl({
    gitlab: deps.gitlab,
    refresher: deps.oidc,
    sealer,
    logger,
    reauthorizeIntervalSeconds: config.auth.reauthorize_interval,
  });
  const login = createLoginFlow({ config, oidc: deps.oidc, gitlab: deps.gitlab, directory, sealer, access, names, metrics, logger });
  const internal = createInternalHandler({ config, directory, registry: deps.registry, logger });
  const connectTimeoutMs = deps.connectTimeoutMs ?? 10_000;
  const agent = deps.backendAgent ?? new Agent({ keepAlive: true, scheduling: 'lifo', maxFreeSockets: 256 });
  const relays = createWebSocketRelayFactory();
  const openRelays = new Set<Relay>();
  /** Upgrades still being authorized or connected: cut on shutdown so they cannot hold it up. */
  const pendingUpgrades = new Set<Duplex>();
  let stopping = false;

  const proxy = createProxyServer({
    agent,
    xfwd: false, // forwarding headers are set below, from the config's protocol rather than the socket
    connectTimeout: connectTimeoutMs,
    proxyTimeout: 0, // no idle limit: SSE and long polls may be silent for minutes
  });
  proxy.on('proxyRes', (proxyRes, req, res) => {
    // A workspace that dies mid-response must not leave the browser waiting for the rest forever:
    // http-proxy-3 does not propagate the backend's abort, so the client connection is cut too.
    proxyRes.once('close', () => {
      if (!proxyRes.complete) res.destroy();
    });
    // A refreshed session cookie rides on the workspace's own response.
    const extra = (req as Tagged)[SET_COOKIE];
    if (extra) proxyRes.headers['set-cookie'] = [...(proxyRes.headers['set-cookie'] ?? []), extra];
  });
  proxy.on('error', (err, _req, res) => {
    if ('writeHead' in res) sendBackendError(res, err);
    else res.destroy();
  });

  function sendBackendError(res: ServerResponse, err: Error): void {
    logger.info({ err: err.message, code: (err as NodeJS.ErrnoException).code }, 'workspace backend not reachable');
    sendPage(res, 502, 'Workspace not reachable', 'The workspace did not answer. It may be stopped, starting or restarting; try again shortly.');
  }

  /** Request headers as the workspace sees them: proxy cookies removed, forwarding headers set. */
  function prepareHeaders(req: IncomingMessage, upgrade = false): void {
    if (!upgrade) {
      // Hop-by-hop: the backend connection is the agent's to keep alive, whatever the client asked.
      delete req.headers.connection;
      delete req.headers['keep-alive'];
      delete req.headers['proxy-connection'];
    }
    const cookie = stripProxyCookies(req.headers.cookie, names);
    if (cookie === undefined) delete req.headers.cookie;
    else req.headers.cookie = cookie;
    const client = req.socket.remoteAddress ?? '';
    const prior = req.headers['x-forwarded-for'];
    req.headers['x-forwarded-for'] = prior ? `${prior}, ${client}` : client;
    req.headers['x-forwarded-proto'] = config.auth.protocol;
    req.headers['x-forwarded-host'] = req.headers.host ?? '';
  }

  function needsLogin(req: IncomingMessage, res: ServerResponse, host: ParsedHost, staleCookie: boolean): void {
    const clear = staleCookie ? [deleteCookie(names.session, { secure })] : [];
    if (req.method === 'GET' || req.method === 'HEAD') return login.redirectToLogin(req, res, host, clear);
    sendText(res, 401, 'sign in required: open this workspace URL in a browser first\n', clear.length ? { 'set-cookie': clear } : {});
  }

  function forbidden(res: ServerResponse): void {
    sendPage(res, 403, 'Not your workspace', 'You are signed in to GitLab, but this workspace belongs to another user. Only its owner can open it.');
  }

  function gitlabDown(res: ServerResponse): void {
    sendPage(res, 503, 'GitLab is not reachable', 'The proxy cannot confirm your access with GitLab right now. Try again in a minute.', { 'retry-after': '10' });
  }

  /** The request's Host; two Host headers (Node keeps the first) are refused rather than guessed at. */
  function hostOf(req: IncomingMessage): ParsedHost | 'invalid' | undefined {
    let seen = 0;
    for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]!.length === 4 && req.rawHeaders[i]!.toLowerCase() === 'host') seen++;
    return seen > 1 ? 'invalid' : parseHost(req.headers.host);
  }

  async function onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    res.once('close', () => metrics.request(res.statusCode, (performance.now() - started) / 1000));
    if (stopping) res.setHeader('connection', 'close');
    const host = hostOf(req);
    if (host === 'invalid') return sendText(res, 400, 'bad Host header\n');
    if (host === undefined || isInternalHost(host)) return internal(req, res);
    if (login.isProxyDomain(host)) return login.handleProxyDomain(req, res);
    const route = directory.routeForHost(host.hostname);
    if (!route) return sendText(res, 400, `${messages.unknownHost}\n`);
    if (req.url?.startsWith(RESERVED_PREFIX)) return login.handleReserved(req, res, host);

    const { session, present } = sessionOf(req, route);
    if (!session) return needsLogin(req, res, host, present);
    const decision = await access.decide(session);
    if (decision.kind === 'login') return needsLogin(req, res, host, true);
    if (decision.kind === 'forbidden') return forbidden(res);
    if (decision.kind === 'unavailable') return gitlabDown(res);
    if (crossWorkspace(req, route)) return sendText(res, 403, 'request from another workspace refused\n');
    if (decision.renewed) (req as Tagged)[SET_COOKIE] = login.sessionCookie(decision.session);
    prepareHeaders(req);
    proxy.web(req, res, { target: { protocol: 'http:', host: route.target.host, port: route.target.port } });
  }

  /** The first valid session among the values of the session cookie; `present` when any value was sent. */
  function sessionOf(req: IncomingMessage, route: Route): { session?: SessionData; present: boolean } {
    const values = cookieValues(req.headers.cookie, names.session);
    for (const v of values) {
      const session = readSession(v, route);
      if (session) return { session, present: true };
    }
    return { present: values.length > 0 };
  }

  /**
   * Hosts of other workspaces are the same *site*, so SameSite=Lax does not stop a page of another
   * workspace from sending this one state-changing requests with the owner's cookie. Those are refused;
   * origins outside the workspaces (IDE webviews, `null`) are left to the browser's own rules.
   */
  function crossWorkspace(req: IncomingMessage, route: Route): boolean {
    const origin = req.headers.origin;
    if (origin === undefined || req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') return false;
    let originHost: string;
    try {
      originHost = new URL(origin).host;
    } catch {
      return false;
    }
    const from = directory.routeForHost(originHost);
    return from !== undefined && from.workspace.uid !== route.workspace.uid;
  }

  /** Browsers always send Origin on WebSockets; a page of another workspace (same site!) must not reach this one. */
  function originAllowed(req: IncomingMessage, route: Route): boolean {
    const origin = req.headers.origin;
    if (origin === undefined) return true; // not a browser: the cookie alone decides
    let originHost: string;
    try {
      originHost = new URL(origin).host;
    } catch {
      return false;
    }
    const from = directory.routeForHost(originHost);
    return from !== undefined && from.workspace.uid === route.workspace.uid;
  }

  async function onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => {});
    const host = hostOf(req);
    if (host === undefined || host === 'invalid' || isInternalHost(host) || login.isProxyDomain(host)) {
      return rejectUpgrade(socket, 400, 'bad Host header');
    }
    const route = directory.routeForHost(host.hostname);
    if (!route) return rejectUpgrade(socket, 400, messages.unknownHost);
    if (stopping) return rejectUpgrade(socket, 503, 'proxy is shutting down');
    if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket' || req.url?.startsWith(RESERVED_PREFIX)) {
      return rejectUpgrade(socket, 400, 'only WebSocket upgrades are proxied');
    }
    const { session } = sessionOf(req, route);
    if (!session) return rejectUpgrade(socket, 401, 'sign in required');
    if (!originAllowed(req, route)) return rejectUpgrade(socket, 403, 'cross-origin WebSocket refused');
    const decision = await access.decide(session);
    if (decision.kind === 'login') return rejectUpgrade(socket, 401, 'sign in required');
    if (decision.kind === 'forbidden') return rejectUpgrade(socket, 403, 'not the owner of this workspace');
    if (decision.kind === 'unavailable') return rejectUpgrade(socket, 503, 'GitLab is not reachable');
    prepareHeaders(req, true);
    const relay = await relays.open({
      req,
      socket,
      head,
      target: `ws://${route.target.host.includes(':') ? `[${route.target.host}]` : route.target.host}:${route.target.port}${req.url ?? '/'}`,
      headers: req.headers,
      connectTimeoutMs,
      maxPayload: deps.maxWebSocketMessageBytes ?? 100 * 1024 * 1024,
      extraResponseHeaders: decision.renewed ? [`Set-Cookie: ${login.sessionCookie(decision.session)}`] : [],
    });
    if (!relay) return;
    track(relay, route, decision.session);
  }

  function track(relay: Relay, route: Route, session: SessionData): void {
    openRelays.add(relay);
    metrics.websocketOpened();
    const { name, namespace, uid, id } = route.workspace;
    const untrack = deps.sessions.track({
      kind: 'websocket',
      workspace: { name, namespace, uid, id },
      host: route.host,
      credential: { type: 'oauth', accessToken: session.at, refreshToken: session.rt, expiresAt: session.ate },
      notAfter: session.exp,
      close: (reason) => relay.close(reason),
    });
    if (stopping) relay.close('shutdown');
    void relay.closed.then(() => {
      openRelays.delete(relay);
      metrics.websocketClosed();
      untrack();
    });
  }

  const server = createServer(
    {
      requestTimeout: 0, // uploads of any size and duration; slow headers are still cut by headersTimeout
      headersTimeout: 60_000,
      keepAliveTimeout: 65_000, // longer than common load balancer idle timeouts, so they close first
    },
    (req, res) => {
      onRequest(req, res).catch((err: unknown) => {
        logger.error({ err }, 'request handling failed');
        sendText(res, 500, 'internal error\n');
      });
    },
  );
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    pendingUpgrades.add(socket);
    onUpgrade(req, socket, head)
      .catch((err: unknown) => {
        logger.error({ err }, 'upgrade handling failed');
        socket.destroy();
      })
      .finally(() => pendingUpgrades.delete(socket));
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // Malformed requests and oversized headers get a status, never a crash.
    if (!socket.writable) return socket.destroy();
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    socket.end(`HTTP/1.1 ${status} ${status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request'}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  });

  return {
    listen(port, host) {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.removeListener('error', reject);
          resolve(server.address() as AddressInfo);
        });
      });
    },
    async shutdown(drainTimeoutMs) {
      if (stopping) return;
      stopping = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const relay of openRelays) relay.close('shutdown');
      server.closeIdleConnections();
      // Connections that finish their response while draining become idle: close them as they do.
      const sweep = setInterval(() => server.closeIdleConnections(), 100);
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, drainTimeoutMs)));
      await Promise.race([closed, timedOut]);
      clearInterval(sweep);
      clearTimeout(timer);
      server.closeAllConnections();
      for (const socket of pendingUpgrades) socket.destroy();
      for (const relay of openRelays) relay.terminate();
      relays.close();
      proxy.close?.();
      agent.destroy();
      await closed;
    },
  };
}
