// The HTTP(S-terminated) entry point. Every request and every WebSocket upgrade goes through one decision,
// `route(req)`, in this order (like fastify's documented lifecycle):
//   Host → the proxy's own endpoints (internal, login flow on the proxy domain) → workspace route →
//   reserved paths → browser session → ownership (auth/) → forward to the workspace.
// `onRequest` and `onUpgrade` only carry the decision out, as an HTTP answer or on the upgrading socket.
// Headers per hop are headers.ts's, answers and their statuses pages.ts's.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Dispatcher } from 'undici';
import type { ProxyConfig } from '../config';
import type { Route, WorkspaceDirectory } from '../discovery/types';
import type { Auth } from '../auth';
import type { AccessDecision } from '../auth/access';
import type { ConnectionRegistry } from '../connections/types';
import { cookieNames, cookieValues, deleteCookie } from '../auth/cookies';
import { createSessionReader, credentialOf, type SessionData } from '../auth/session';
import { createInternalHandler } from '../observability/internal-server';
import { createHttpMetrics } from './metrics';
import { hostOf, isInternalHost, toOriginForm, type ParsedHost } from './host';
import { KEEP_ALIVE_TIMEOUT_MS, prepareRequestHeaders, prepareResponseHeaders } from './headers';
import { createForwarder, isHeadersTimeout, type ForwardOptions } from './forward';
import { createLoginFlow, RESERVED_PREFIX } from './login';
import { answers, rejectUpgradeWith, sendAnswer, sendText, type Answer } from './pages';
import { createWebSocketRelayFactory, type Relay } from './websocket';
import { createLogGate, gatedLog } from '../observability/log-limit';
import { listenOn } from '../net/listen';
import { trackConnections } from './connection-drain';
import { createConnectionLog } from '../observability/connection-log';
import { logWebSocketEnd } from './websocket-log';

export interface HttpProxyDeps {
  config: ProxyConfig;
  directory: WorkspaceDirectory;
  auth: Auth;
  connections: ConnectionRegistry;
  registry: Registry;
  logger: Logger;
  /** Connection pool to workspaces (default: an undici Agent, keep-alive). Tests pass a small one to catch leaks. */
  backendDispatcher?: Dispatcher;
  /** How long connecting to a workspace may take before the answer is 502 (default 10 s). */
  connectTimeoutMs?: number;
  /** How long a workspace may take to send response headers before the answer is 502 "did not answer" (default forward.ts's). */
  backendHeadersTimeoutMs?: number;
  /** Largest WebSocket message relayed (default 100 MiB, as `ws`). */
  maxWebSocketMessageBytes?: number;
  /** How long a request's headers may take to arrive (default HEADERS_TIMEOUT_MS; tests shorten it). */
  headersTimeoutMs?: number;
}

/**
 * A request's headers must have arrived this long after its first byte (for a new connection, after the
 * connect), else 408 and the connection is closed. Real clients send their headers at once; this is what
 * frees the sockets of a slowloris client (headers trickled, or never sent) and of connections nobody uses.
 * Between nginx's 60 s and HAProxy's suggested 10 s; the keep-alive idle time after a response is separate.
 */
export const HEADERS_TIMEOUT_MS = 30_000;
/** How often Node looks for connections past the headers timeout: its default (30 s) would let one live 1.5× as long. */
const TIMEOUT_CHECK_INTERVAL_MS = 1_000;

export interface HttpProxy {
  /** Binds all interfaces unless `host` is given (tests: 127.0.0.1). */
  listen(port: number, host?: string): Promise<AddressInfo>;
  /** Stop accepting, close WebSockets with "going away", let requests and streams finish for up to drainTimeoutMs. */
  shutdown(drainTimeoutMs: number): Promise<void>;
}

const SET_COOKIE = Symbol('wsp-set-cookie');
type Tagged = IncomingMessage & { [SET_COOKIE]?: string };

/** What to do with a request or upgrade: the outcome of route(). */
type Decision =
  | { kind: 'answer'; answer: Answer; headers?: Record<string, string | string[]> }
  /** Metrics and health (probe-like Host). */
  | { kind: 'internal' }
  /** The login flow on the proxy domain. */
  | { kind: 'login_flow' }
  /** RESERVED_PREFIX on a workspace host (handoff, logout). */
  | { kind: 'reserved'; host: ParsedHost }
  /** No usable session: sign in (GET/HEAD) or 401. `stale`: a session cookie was sent but is no good. */
  | { kind: 'sign_in'; host: ParsedHost; stale: boolean }
  /** Authorized: on to the workspace. `renewed`: a refreshed session cookie to send back. */
  | { kind: 'forward'; host: ParsedHost; route: Route; session: SessionData; renewed?: string };

/** The path of a request URL without its query, bounded, for logs (queries may carry tokens). */
function logPath(url: string | undefined): string {
  const path = (url ?? '').split('?')[0]!;
  return path.length > 200 ? `${path.slice(0, 200)}…` : path;
}

export function createHttpProxy(deps: HttpProxyDeps): HttpProxy {
  const { config, directory, logger } = deps;
  const secure = config.auth.protocol === 'https';
  const names = cookieNames(secure);
  const { sealer, access } = deps.auth;
  const metrics = createHttpMetrics(deps.registry);
  const readSession = createSessionReader(sealer);
  const login = createLoginFlow({
    config, auth: deps.auth, directory, names, metrics, logger,
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
  const connectionLog = createConnectionLog(logger);

  function logUnknownHost(host: ParsedHost): void {
    // The hostname passed parseHost (letters, digits, dots, dashes only), so it is safe to log as is.
    gatedLog(unknownHostGate, logger, 'info', { host: host.hostname }, 'could not find upstream workspace: no workspace serves this host');
  }

  const forwarder = createForwarder({ connectTimeoutMs, headersTimeoutMs: deps.backendHeadersTimeoutMs, dispatcher: deps.backendDispatcher });
  /** One set of hooks for every forwarded request (no per-request closures on the hot path). */
  const forwarding: ForwardOptions = {
    onResponseHeaders(headers, res) {
      prepareResponseHeaders(headers, res, stopping);
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
    const timedOut = isHeadersTimeout(err);
    logger.info({ err: err.message, code: (err as NodeJS.ErrnoException).code },
      timedOut ? 'workspace backend did not answer in time' : 'workspace backend not reachable');
    sendAnswer(res, timedOut ? answers.workspaceTimeout : answers.workspaceUnreachable, renewed ? { 'set-cookie': renewed } : {});
  }

  const answer = (a: Answer, headers?: Record<string, string | string[]>): Decision => ({ kind: 'answer', answer: a, headers });

  /**
   * The one decision for a request (`upgrade` false) or a WebSocket upgrade (true). Synchronous when
   * auth/ can answer from what it knows (a fresh ownership answer: nearly every request), a promise only
   * when GitLab must be asked or a token refreshed: a chain of awaits per request was a measurable part of
   * the proxy's CPU per small request.
   */
  function route(req: IncomingMessage, upgrade: boolean, host = hostOf(req)): Decision | Promise<Decision> {
    if (host === 'invalid') return answer(answers.badHost);
    // Probes and operators address the pod by IP, localhost or no Host: the proxy's own endpoints.
    if (host === undefined || isInternalHost(host)) return upgrade ? answer(answers.badHost) : { kind: 'internal' };
    const target = toOriginForm(req, host, config.auth.protocol);
    if (target !== 'ok') return answer(target === 'other_authority' ? answers.otherAuthority : answers.notAPath);
    if (login.isProxyDomain(host)) return upgrade ? answer(answers.badHost) : { kind: 'login_flow' };
    const r = directory.routeForHost(host.hostname);
    if (!r) {
      logUnknownHost(host);
      return answer(answers.unknownHost);
    }
    const reserved = req.url?.startsWith(RESERVED_PREFIX) ?? false;
    if (upgrade) {
      if (stopping) return answer(answers.shuttingDown);
      if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket' || reserved) return answer(answers.notWebSocket);
    } else if (reserved) {
      return { kind: 'reserved', host };
    }
    const { session, present } = sessionOf(req, r);
    if (!session) return { kind: 'sign_in', host, stale: present };
    if (upgrade && !originAllowed(req, r)) return answer(answers.crossOriginWebSocket);
    const known = access.decideCached(session);
    if (known) return authorized(req, upgrade, host, r, known);
    return access.decide(session).then((decision) => authorized(req, upgrade, host, r, decision));
  }

  /** The rest of route() once auth/ has decided. */
  function authorized(req: IncomingMessage, upgrade: boolean, host: ParsedHost, r: Route, decision: AccessDecision): Decision {
    if (decision.kind === 'login') return { kind: 'sign_in', host, stale: true };
    if (decision.kind === 'forbidden') return answer(answers.notYourWorkspace);
    if (decision.kind === 'unavailable') return answer(answers.gitlabUnreachable, upgrade ? undefined : { 'retry-after': '10' });
    const renewed = decision.renewed ? login.sessionCookie(decision.session) : undefined;
    if (!upgrade && crossWorkspace(req, r)) return answer(answers.crossWorkspace, renewed ? { 'set-cookie': renewed } : {});
    return { kind: 'forward', host, route: r, session: decision.session, renewed };
  }

  function signIn(req: IncomingMessage, res: ServerResponse, host: ParsedHost, stale: boolean): void {
    const clear = stale ? [deleteCookie(names.session, { secure })] : [];
    if (req.method === 'GET' || req.method === 'HEAD') return login.redirectToLogin(req, res, host, clear);
    sendAnswer(res, answers.signInRequired, clear.length ? { 'set-cookie': clear } : {});
  }

  /** A promise only when the decision or its handler is asynchronous (see route()). */
  function onRequest(req: IncomingMessage, res: ServerResponse): void | Promise<void> {
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
    const d = route(req, false, host);
    return d instanceof Promise ? d.then((decided) => carryOut(req, res, decided)) : carryOut(req, res, d);
  }

  function carryOut(req: IncomingMessage, res: ServerResponse, d: Decision): void | Promise<void> {
    switch (d.kind) {
      case 'answer': return sendAnswer(res, d.answer, d.headers);
      case 'internal': return internal(req, res);
      case 'login_flow': return login.handleProxyDomain(req, res);
      case 'reserved': return login.handleReserved(req, res, d.host);
      case 'sign_in': return signIn(req, res, d.host, d.stale);
      case 'forward':
        if (d.renewed) (req as Tagged)[SET_COOKIE] = d.renewed;
        prepareRequestHeaders(req, { protocol: config.auth.protocol, names });
        forwarder.forward(req, res, d.route.target, forwarding);
    }
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
    const d = await route(req, true);
    if (d.kind === 'sign_in') return rejectUpgradeWith(socket, answers.signInRequired);
    if (d.kind !== 'forward') return rejectUpgradeWith(socket, d.kind === 'answer' ? d.answer : answers.badHost);
    const { host, route: r, session, renewed } = d;
    prepareRequestHeaders(req, { protocol: config.auth.protocol, names, upgrade: true });
    const relay = await relays.open({
      req,
      socket,
      head,
      target: `ws://${r.target.host.includes(':') ? `[${r.target.host}]` : r.target.host}:${r.target.port}${req.url ?? '/'}`,
      headers: req.headers,
      connectTimeoutMs,
      maxPayload: deps.maxWebSocketMessageBytes ?? 100 * 1024 * 1024,
      extraResponseHeaders: renewed ? [`Set-Cookie: ${renewed}`] : [],
    });
    if (!relay) return;
    logger.debug({ host: host.authority, path: logPath(req.url) }, 'websocket opened');
    track(relay, r, session);
  }

  function track(relay: Relay, route: Route, session: SessionData): void {
    openRelays.add(relay);
    metrics.websocketOpened();
    const { name, namespace, uid, id } = route.workspace;
    const untrack = deps.connections.track({
      kind: 'websocket',
      workspace: { name, namespace, uid, id },
      host: route.host,
      credential: credentialOf(session),
      notAfter: session.exp,
      close: (reason) => relay.close(reason),
    });
    logWebSocketEnd(connectionLog, relay, route, session);
    if (stopping) relay.close('shutdown');
    void relay.closed.then(() => {
      logger.debug({ host: route.host }, 'websocket closed');
      openRelays.delete(relay);
      metrics.websocketClosed();
      untrack();
    });
  }

  function requestFailed(res: ServerResponse, err: unknown): void {
    logger.error({ err }, 'request handling failed');
    sendText(res, 500, 'internal error\n');
  }

  const server = createServer(
    {
      requestTimeout: 0, // uploads of any size and duration; slow headers are still cut by headersTimeout
      headersTimeout: deps.headersTimeoutMs ?? HEADERS_TIMEOUT_MS,
      connectionsCheckingInterval: TIMEOUT_CHECK_INTERVAL_MS,
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS, // longer than common load balancer idle timeouts, so they close first
    },
    (req, res) => {
      try {
        onRequest(req, res)?.catch((err: unknown) => requestFailed(res, err));
      } catch (err) {
        requestFailed(res, err);
      }
    },
  );
  const connections = trackConnections(server);
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    pendingUpgrades.add(socket);
    onUpgrade(req, socket, head)
      .catch((err: unknown) => {
        logger.error({ err }, 'upgrade handling failed');
        socket.destroy();
      })
      .finally(() => pendingUpgrades.delete(socket));
  });
  // CONNECT asks for a tunnel, which this proxy never opens. Without a listener Node drops the connection
  // without a word; bad input gets a clear answer instead.
  server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
    socket.on('error', () => {});
    rejectUpgradeWith(socket, answers.methodNotAllowed);
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
      // Idle and never-used connections go now, busy ones as soon as their last response is out.
      connections.start();
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, drainTimeoutMs)));
      await Promise.race([closed, timedOut]);
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
