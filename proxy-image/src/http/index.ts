// The HTTP(S-terminated) entry point: routes each request by Host to the proxy's own endpoints, the login
// flow, or an authorized workspace, and proxies HTTP and WebSocket traffic to the workspace backend.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Dispatcher } from 'undici';
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
import { createForwarder, type ForwardOptions } from './forward';
import { createLogGate } from './log-limit';
import { listenOn } from '../net/listen';

export interface HttpProxyDeps {
  config: ProxyConfig;
  directory: WorkspaceDirectory;
  gitlab: GitLabApi;
  oidc: Oidc;
  sessions: SessionRegistry;
  registry: Registry;
  logger: Logger;
  /** Connection pool to workspaces (default: an undici Agent, keep-alive). Tests pass a small one to catch leaks. */
  backendDispatcher?: Dispatcher;
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

const KEEP_ALIVE_TIMEOUT_MS = 65_000;
const KEEP_ALIVE_HEADER = `timeout=${KEEP_ALIVE_TIMEOUT_MS / 1000}`;
/**
 * Headers for one hop only (RFC 9110 §7.6.1), plus the client's proxy credentials, which are meant for a
 * proxy and never for the workspace. `Authorization` is NOT among them: it belongs to the workspace's own
 * apps (basic auth, Jupyter tokens); the proxy never puts a GitLab token there.
 */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'proxy-authorization'];
/** Never removed even when a client lists them in `Connection`: routing and body framing depend on them. */
const PROTECTED = new Set(['host', 'content-length', 'transfer-encoding']);

/** Header names listed in a Connection header (lowercase). */
function connectionTokens(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return (Array.isArray(value) ? value.join(',') : value)
    .split(',')
    .map((t) => t.trim().toLowerCase())
    .filter((t) => t !== '' && !PROTECTED.has(t));
}

/**
 * Absolute-form request targets (`GET http://host/path`, legal in HTTP/1.1) are reduced to origin form when
 * they name the Host header's authority, so routing, reserved paths and the workspace all read one path.
 * A target naming another authority is refused (false): the proxy routes by Host and never guesses.
 */
export function toOriginForm(req: IncomingMessage, host: ParsedHost, protocol: 'http' | 'https'): boolean {
  const url = req.url ?? '/';
  if (url.startsWith('/') || url === '*') return true;
  const m = /^(https?):\/\/([^/?#]*)/i.exec(url);
  if (!m) return false;
  const target = parseHost(m[2]);
  if (target === undefined || target === 'invalid' || target.hostname !== host.hostname) return false;
  const portOf = (a: ParsedHost, scheme: string) => /:(\d+)$/.exec(a.authority)?.[1] ?? (scheme === 'https' ? '443' : '80');
  if (portOf(target, m[1]!.toLowerCase()) !== portOf(host, protocol)) return false;
  const rest = url.slice(m[0].length);
  req.url = rest.startsWith('/') ? rest : `/${rest}`;
  return true;
}

/** The path of a request URL without its query, bounded, for logs (queries may carry tokens). */
function logPath(url: string | undefined): string {
  const path = (url ?? '').split('?')[0]!;
  return path.length > 200 ? `${path.slice(0, 200)}…` : path;
}

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
  const login = createLoginFlow({
    config, oidc: deps.oidc, gitlab: deps.gitlab, directory, sealer, access, names, metrics, logger,
    hasSession: (req, route) => sessionOf(req, route).session !== undefined,
  });
  const internal = createInternalHandler({ config, directory, registry: deps.registry, logger });
  const connectTimeoutMs = deps.connectTimeoutMs ?? 10_000;
  const relays = createWebSocketRelayFactory();
  const openRelays = new Set<Relay>();
  /** Upgrades still being authorized or connected: cut on shutdown so they cannot hold it up. */
  const pendingUpgrades = new Set<Duplex>();
  let stopping = false;
  // A scanner trying hostnames must not flood the logs: a few lines a minute, the rest counted.
  const unknownHostGate = createLogGate({ max: 5, windowMs: 60_000 });

  function logUnknownHost(host: ParsedHost): void {
    const gate = unknownHostGate();
    if (!gate.allowed) return;
    // The hostname passed parseHost (letters, digits, dots, dashes only), so it is safe to log as is.
    logger.info(
      { host: host.hostname, ...(gate.suppressed ? { suppressed: gate.suppressed } : {}) },
      'could not find upstream workspace: no workspace serves this host',
    );
  }

  const forwarder = createForwarder({ connectTimeoutMs, dispatcher: deps.backendDispatcher });
  /** One set of hooks for every forwarded request (no per-request closures on the hot path). */
  const forwarding: ForwardOptions = {
    onResponseHeaders(headers, res) {
      // Connection management is per hop: the workspace's keep-alive terms (and anything it lists in
      // Connection) are not the browser's. The browser's own `Connection: close`, or a draining shutdown,
      // closes its connection after this response.
      for (const name of connectionTokens(headers.connection as string | string[] | undefined)) delete headers[name];
      delete headers['proxy-connection'];
      const keepAlive = res.shouldKeepAlive && !stopping;
      headers.connection = keepAlive ? 'keep-alive' : 'close';
      if (keepAlive) headers['keep-alive'] = KEEP_ALIVE_HEADER;
      else delete headers['keep-alive'];
      // A refreshed session cookie rides on the workspace's own response.
      const extra = (res.req as Tagged)[SET_COOKIE];
      if (extra) {
        const prior = headers['set-cookie'];
        headers['set-cookie'] = [...(prior === undefined ? [] : Array.isArray(prior) ? prior : [String(prior)]), extra];
      }
    },
    onError(err, res) {
      sendBackendError(res, err, (res.req as Tagged)[SET_COOKIE]);
    },
  };

  /** `renewed`: a refreshed session cookie, kept even on error pages (GitLab has already rotated the old refresh token). */
  function sendBackendError(res: ServerResponse, err: Error, renewed?: string): void {
    logger.info({ err: err.message, code: (err as NodeJS.ErrnoException).code }, 'workspace backend not reachable');
    sendPage(res, 502, 'Workspace not reachable', 'The workspace did not answer. It may be stopped, starting or restarting; try again shortly.', renewed ? { 'set-cookie': renewed } : {});
  }

  /** Request headers as the workspace sees them: proxy cookies removed, forwarding headers set. */
  function prepareHeaders(req: IncomingMessage, upgrade = false): void {
    // Hop-by-hop: the backend connection is the agent's to keep alive, whatever the client asked. For
    // WebSockets, `ws` rebuilds Connection and Upgrade for the backend hop (websocket.ts).
    for (const name of connectionTokens(req.headers.connection)) if (!(upgrade && name === 'upgrade')) delete req.headers[name];
    for (const name of HOP_BY_HOP) if (!(upgrade && (name === 'connection' || name === 'upgrade'))) delete req.headers[name];
    const cookie = stripProxyCookies(req.headers.cookie, names);
    if (cookie === undefined) delete req.headers.cookie;
    else req.headers.cookie = cookie;
    const client = req.socket.remoteAddress ?? '';
    const prior = req.headers['x-forwarded-for'];
    req.headers['x-forwarded-for'] = prior ? `${prior}, ${client}` : client;
    req.headers['x-forwarded-proto'] = config.auth.protocol;
    req.headers['x-forwarded-host'] = req.headers.host ?? '';
    // The port the browser used (from Host, else the protocol's default), never a client-supplied value.
    const port = /:(\d+)$/.exec(req.headers.host ?? '')?.[1];
    req.headers['x-forwarded-port'] = port ?? (config.auth.protocol === 'https' ? '443' : '80');
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
    const host = hostOf(req);
    res.once('close', () => {
      const seconds = (performance.now() - started) / 1000;
      metrics.request(res.statusCode, seconds);
      // Per-request line for debugging: no query (tokens ride there), no headers, no cookies.
      if (logger.isLevelEnabled('debug')) {
        logger.debug(
          {
            method: req.method,
            host: typeof host === 'object' ? host.authority : host,
            path: logPath(req.url),
            status: res.statusCode,
            durationMs: Math.round(seconds * 10_000) / 10,
          },
          'request',
        );
      }
    });
    if (stopping) res.setHeader('connection', 'close');
    if (host === 'invalid') return sendText(res, 400, 'bad Host header\n');
    if (host === undefined || isInternalHost(host)) return internal(req, res);
    if (!toOriginForm(req, host, config.auth.protocol)) return sendText(res, 400, 'request target names another host\n');
    if (login.isProxyDomain(host)) return login.handleProxyDomain(req, res);
    const route = directory.routeForHost(host.hostname);
    if (!route) {
      logUnknownHost(host);
      return sendText(res, 400, `${messages.unknownHost}\n`);
    }
    if (req.url?.startsWith(RESERVED_PREFIX)) return login.handleReserved(req, res, host);

    const { session, present } = sessionOf(req, route);
    if (!session) return needsLogin(req, res, host, present);
    const decision = await access.decide(session);
    if (decision.kind === 'login') return needsLogin(req, res, host, true);
    if (decision.kind === 'forbidden') return forbidden(res);
    if (decision.kind === 'unavailable') return gitlabDown(res);
    if (decision.renewed) (req as Tagged)[SET_COOKIE] = login.sessionCookie(decision.session);
    if (crossWorkspace(req, route)) {
      const renewed = (req as Tagged)[SET_COOKIE];
      return sendText(res, 403, 'request from another workspace refused\n', renewed ? { 'set-cookie': renewed } : {});
    }
    prepareHeaders(req);
    forwarder.forward(req, res, route.target, forwarding);
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
    if (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') return false;
    const from = originRoute(req.headers.origin);
    return typeof from === 'object' && from.workspace.uid !== route.workspace.uid;
  }

  /** Browsers always send Origin on WebSockets; a page of another workspace (same site!) must not reach this one. */
  function originAllowed(req: IncomingMessage, route: Route): boolean {
    if (req.headers.origin === undefined) return true; // not a browser: the cookie alone decides
    const from = originRoute(req.headers.origin);
    return typeof from === 'object' && from.workspace.uid === route.workspace.uid;
  }

  /** The workspace route an Origin header names: undefined when absent or not a workspace, 'invalid' when unparsable. */
  function originRoute(origin: string | undefined): Route | undefined | 'invalid' {
    if (origin === undefined) return undefined;
    try {
      return directory.routeForHost(new URL(origin).host);
    } catch {
      return 'invalid';
    }
  }

  async function onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => {});
    const host = hostOf(req);
    if (host === undefined || host === 'invalid' || isInternalHost(host) || login.isProxyDomain(host)) {
      return rejectUpgrade(socket, 400, 'bad Host header');
    }
    if (!toOriginForm(req, host, config.auth.protocol)) return rejectUpgrade(socket, 400, 'request target names another host');
    const route = directory.routeForHost(host.hostname);
    if (!route) {
      logUnknownHost(host);
      return rejectUpgrade(socket, 400, messages.unknownHost);
    }
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
    logger.debug({ host: host.authority, path: logPath(req.url) }, 'websocket opened');
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
      logger.debug({ host: route.host }, 'websocket closed');
      openRelays.delete(relay);
      metrics.websocketClosed();
      untrack();
    });
  }

  const server = createServer(
    {
      requestTimeout: 0, // uploads of any size and duration; slow headers are still cut by headersTimeout
      headersTimeout: 60_000,
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS, // longer than common load balancer idle timeouts, so they close first
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
      return listenOn(server, port, host);
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
      await forwarder.destroy();
      await closed;
    },
  };
}
