// Browser login (docs/contract.md §4), in four hops, every value signed and encrypted by the proxy:
//  1. workspace host, no session: set a host-only binding cookie (random), redirect to the proxy domain's
//     login path with a sealed "start" token {host, return path, fingerprint(binding)}.
//  2. proxy domain /auth/login: new state, nonce, PKCE verifier; sealed into a short-lived host-only cookie
//     named after the state (parallel logins in several tabs do not clobber each other); redirect to
//     {auth.host}/oauth/authorize.
//  3. proxy domain callback: state checked against that cookie BEFORE the code is exchanged; code exchanged
//     with PKCE, ID token nonce checked; ownership asked of GitLab; redirect to the workspace host's handoff
//     path with a sealed, 60-second, single-use handoff token.
//  4. workspace host handoff: the token must be for this host and come back to the browser holding the
//     binding cookie from hop 1; then the host-only session cookie is set and the browser lands on the
//     exact path and query it first asked for, on the same host (an absolute URL the proxy builds).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { ProxyConfig } from '../config';
import type { Route, WorkspaceDirectory } from '../discovery/types';
import type { Auth } from '../auth';
import { OidcError, type LoginChecks } from '../auth/oidc';
import { randomToken, safeEqual } from '../auth/crypto';
import { cookieValues, deleteCookie, parseCookies, serializeCookie, type CookieNames } from '../auth/cookies';
import { RECHECK } from '../auth/policy';
import { SESSION_LIFETIME_MS, sealSession, type SessionData } from '../auth/session';
import type { HttpMetrics } from './metrics';
import type { ParsedHost } from './host';
import { answers, closeIfBodyPending, sendAnswer } from './pages';

/** Paths the proxy answers itself on every workspace host. */
export const RESERVED_PREFIX = '/.workspaces-proxy/';
export const HANDOFF_PATH = `${RESERVED_PREFIX}handoff`;
export const LOGOUT_PATH = `${RESERVED_PREFIX}logout`;

const LOGIN_TTL_MS = 10 * 60 * 1000;
const HANDOFF_TTL_MS = 60 * 1000;
const BINDING = /^[A-Za-z0-9_-]{32}$/;
/** Logins one browser may have in progress at once (tabs); older ones are dropped. */
const MAX_PENDING_LOGINS = 4;

interface StartToken { h: string; p: string; b: string }
interface StateCookie extends StartToken { s: string; n: string; v: string }
interface HandoffToken { h: string; p: string; b: string; j: string; s: SessionData }

export interface LoginDeps {
  config: ProxyConfig;
  auth: Pick<Auth, 'oidc' | 'ownership' | 'sealer'>;
  directory: WorkspaceDirectory;
  names: CookieNames;
  metrics: HttpMetrics;
  logger: Logger;
  /** Whether the request already carries a valid session for this route. */
  hasSession(req: IncomingMessage, route: Route): boolean;
  now?: () => number;
}

export interface LoginFlow {
  isProxyDomain(host: ParsedHost): boolean;
  /** No usable session on a workspace host (GET/HEAD): start hop 1. */
  redirectToLogin(req: IncomingMessage, res: ServerResponse, host: ParsedHost, extraCookies?: string[]): void;
  /** Requests to the proxy domain: login start and OAuth callback. */
  handleProxyDomain(req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** Requests to RESERVED_PREFIX on a workspace host. */
  handleReserved(req: IncomingMessage, res: ServerResponse, host: ParsedHost): void;
  /** Set-Cookie value for a session. */
  sessionCookie(s: SessionData): string;
}

const noStore = { 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' };

function redirect(res: ServerResponse, location: string, cookies: string[] = []): void {
  res.writeHead(302, { location, ...noStore, 'content-length': 0, ...closeIfBodyPending(res), ...(cookies.length ? { 'set-cookie': cookies } : {}) });
  res.end();
}

/**
 * Longest return path kept. The path travels sealed in the login-start and handoff URLs (base64, about
 * 4/3 of its size plus the session); 4 KiB keeps those under the 8 KiB request line of common ingresses.
 */
export const MAX_RETURN_PATH = 4096;

/** Path and query of the request, as a path on the same host (never scheme-relative). */
export function returnPathOf(rawUrl: string | undefined): string {
  if (!rawUrl || !rawUrl.startsWith('/')) return '/';
  // `//evil.example/x` or `/\\evil.example` would read as another host: collapse leading slashes. The
  // redirect is an absolute URL on the same host anyway; this keeps the path meaning what was asked.
  const path = `/${rawUrl.replace(/^[/\\]+/, '')}`;
  if (path.length <= MAX_RETURN_PATH) return path;
  // Too long to carry through login: land on the same path without its query, or on / when even that is too long.
  const bare = path.split('?')[0]!;
  return bare.length <= MAX_RETURN_PATH ? bare : '/';
}

/**
 * The request's path and query, parsed on a placeholder origin. Never throws: `//x` or `//` is a path here,
 * where `new URL('//', base)` would read it as an (empty) host and throw.
 */
export function requestPathUrl(rawUrl: string | undefined): URL {
  const raw = rawUrl ?? '/';
  return new URL(`http://placeholder.invalid${raw.startsWith('/') ? raw : `/${raw}`}`);
}

export function createLoginFlow(deps: LoginDeps): LoginFlow {
  const { config, names, metrics, logger } = deps;
  const { oidc, ownership, sealer } = deps.auth;
  const now = deps.now ?? Date.now;
  const secure = config.auth.protocol === 'https';
  const redirectUri = new URL(config.auth.redirect_uri);
  const proxyHostname = redirectUri.hostname.toLowerCase();
  const callbackPath = redirectUri.pathname;
  // The login start lives next to the callback: /auth/callback → /auth/login.
  const loginPath = callbackPath.replace(/[^/]*$/, 'login');
  const usedHandoffs = new Map<string, number>();

  const workspaceUrl = (authority: string, path: string) => `${config.auth.protocol}://${authority}${path}`;

  function markUsed(jti: string): boolean {
    const t = now();
    if (usedHandoffs.size > 1000) for (const [k, exp] of usedHandoffs) if (exp < t) usedHandoffs.delete(k);
    if (usedHandoffs.has(jti)) return false;
    usedHandoffs.set(jti, t + HANDOFF_TTL_MS);
    return true;
  }

  /**
   * Abandoned logins leave state cookies behind for 10 minutes; a page that keeps starting logins would
   * grow the Cookie header past the server's limit. Keep the newest few (browsers list older cookies first).
   */
  function staleStateCookies(req: IncomingMessage): string[] {
    const pending = [...parseCookies(req.headers.cookie).keys()].filter((n) => n.startsWith(names.oauthPrefix));
    return pending.slice(0, Math.max(0, pending.length - MAX_PENDING_LOGINS + 1)).map((n) => deleteCookie(n, { secure }));
  }

  function retryPage(res: ServerResponse, why: string, cookies: string[] = []): void {
    sendAnswer(res, answers.signInIncomplete, { ...noStore, ...(cookies.length ? { 'set-cookie': cookies } : {}) },
      `${why} Open the workspace URL again to sign in.`);
  }

  async function loginStart(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const start = sealer.open<StartToken>('login-start', url.searchParams.get('t') ?? '', now());
    if (!start || typeof start.h !== 'string' || typeof start.p !== 'string' || typeof start.b !== 'string') {
      metrics.login('state_invalid');
      return retryPage(res, 'This sign-in link is invalid or has expired.');
    }
    const checks = oidc.newLoginChecks();
    let authorize: URL;
    try {
      authorize = await oidc.authorizationUrl(checks);
    } catch (err) {
      metrics.login('gitlab_unavailable');
      logger.warn({ err: (err as Error).message }, 'cannot start login: GitLab unavailable');
      return sendAnswer(res, answers.gitlabUnreachable, noStore, 'The proxy cannot reach GitLab to sign you in. Try again in a minute.');
    }
    const state: StateCookie = { ...start, s: checks.state, n: checks.nonce, v: checks.codeVerifier };
    const cookie = serializeCookie(`${names.oauthPrefix}${sealer.fingerprint(checks.state).slice(0, 16)}`, sealer.seal('oauth-state', state, now() + LOGIN_TTL_MS), {
      secure,
      maxAge: LOGIN_TTL_MS / 1000,
    });
    metrics.login('started');
    redirect(res, authorize.href, [...staleStateCookies(req), cookie]);
  }

  async function callback(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const state = url.searchParams.get('state');
    if (!state || state.length > 512) {
      metrics.login('state_invalid');
      return retryPage(res, 'The sign-in answer from GitLab has no state.');
    }
    const cookieName = `${names.oauthPrefix}${sealer.fingerprint(state).slice(0, 16)}`;
    const clear = [deleteCookie(cookieName, { secure })];
    const saved = sealer.open<StateCookie>('oauth-state', parseCookies(req.headers.cookie).get(cookieName) ?? '', now());
    // State is checked against this browser's cookie before anything is sent to GitLab.
    if (!saved || typeof saved.s !== 'string' || !safeEqual(saved.s, state)) {
      metrics.login('state_invalid');
      return retryPage(res, 'This sign-in was not started in this browser, was already used, or has expired.', clear);
    }
    if (url.searchParams.has('error')) {
      metrics.login('denied_by_user');
      return sendAnswer(res, answers.signInRefused, { ...noStore, 'set-cookie': clear });
    }
    if (!url.searchParams.get('code')) {
      metrics.login('state_invalid');
      return retryPage(res, 'The sign-in answer from GitLab has no code.', clear);
    }
    const checks: LoginChecks = { state: saved.s, nonce: saved.n, codeVerifier: saved.v };
    const current = new URL(config.auth.redirect_uri);
    current.search = url.search;
    let tokens;
    try {
      tokens = await oidc.exchangeCode(current, checks);
    } catch (err) {
      const unavailable = err instanceof OidcError && err.kind === 'unavailable';
      metrics.login(unavailable ? 'gitlab_unavailable' : 'exchange_rejected');
      logger.info({ err: (err as Error).message }, 'login code exchange failed');
      return unavailable
        ? sendAnswer(res, answers.gitlabUnreachable, { ...noStore, 'set-cookie': clear }, 'The proxy could not complete the sign-in with GitLab. Try again in a minute.')
        : retryPage(res, 'GitLab refused the sign-in (the link may have been used already).', clear);
    }
    const route = deps.directory.routeForHost(saved.h);
    if (!route) return sendAnswer(res, answers.unknownHost, { 'set-cookie': clear });
    // Always a fresh answer at login; it is kept, so the first request after it needs no second call.
    const { result: verdict } = await ownership.check({ type: 'oauth', accessToken: tokens.accessToken }, route.workspace.id, RECHECK);
    if (verdict.kind === 'unavailable') {
      metrics.login('gitlab_unavailable');
      return sendAnswer(res, answers.gitlabUnreachable, { ...noStore, 'set-cookie': clear });
    }
    if (verdict.kind !== 'owner') {
      metrics.login('not_owner');
      logger.info({ workspace: route.workspace.name, namespace: route.workspace.namespace }, 'login refused: not the workspace owner');
      return sendAnswer(res, answers.notYourWorkspace, { ...noStore, 'set-cookie': clear });
    }
    const session: SessionData = {
      h: route.host,
      u: route.workspace.uid,
      w: route.workspace.id,
      sub: verdict.userId,
      at: tokens.accessToken,
      rt: tokens.refreshToken,
      ate: tokens.expiresAt,
      exp: now() + SESSION_LIFETIME_MS,
    };
    const handoff: HandoffToken = { h: saved.h, p: saved.p, b: saved.b, j: randomToken(12), s: session };
    const token = sealer.seal('handoff', handoff, now() + HANDOFF_TTL_MS);
    redirect(res, `${workspaceUrl(saved.h, HANDOFF_PATH)}?t=${token}`, clear);
  }

  function handoff(req: IncomingMessage, res: ServerResponse, host: ParsedHost, url: URL): void {
    const clearLogin = deleteCookie(names.login, { secure });
    const h = sealer.open<HandoffToken>('handoff', url.searchParams.get('t') ?? '', now());
    const route = h ? deps.directory.routeForHost(host.hostname) : undefined;
    // A genuine handoff for this host (sealed by us, unexpired, same workspace); whose browser it is comes next.
    const genuine =
      h !== undefined &&
      route !== undefined &&
      typeof h.h === 'string' &&
      h.h === host.authority &&
      typeof h.b === 'string' &&
      typeof h.p === 'string' &&
      typeof h.j === 'string' &&
      h.s.u === route.workspace.uid &&
      h.s.w === route.workspace.id;
    // Every binding value is tried: on http a sibling host can plant a zone-wide `wsp-login` in front of ours.
    const bound = genuine && cookieValues(req.headers.cookie, names.login).some((b) => BINDING.test(b) && safeEqual(sealer.fingerprint(b), h.b));
    if (genuine && bound && markUsed(h.j)) {
      metrics.login('success');
      logger.info({ workspace: route.workspace.name, user: h.s.sub }, 'login complete');
      return redirect(res, workspaceUrl(host.authority, returnPathOf(h.p)), [sessionCookie(h.s), clearLogin]);
    }
    if (genuine && !usedHandoffs.has(h.j) && deps.hasSession(req, route)) {
      // Another tab of this browser finished its login first (and took the binding cookie with it): this
      // browser is signed in already, so land on the page this tab asked for. Nothing is issued, and the
      // handoff is not spent. A handoff that was already used stays refused, even here.
      return redirect(res, workspaceUrl(host.authority, returnPathOf(h.p)));
    }
    metrics.login('handoff_invalid');
    return retryPage(res, 'This sign-in link is invalid, expired, already used, or was opened in another browser.');
  }

  function sessionCookie(s: SessionData): string {
    return serializeCookie(names.session, sealSession(sealer, s), { secure, maxAge: (s.exp - now()) / 1000 });
  }

  return {
    isProxyDomain: (host) => host.hostname === proxyHostname,
    redirectToLogin(req, res, host, extraCookies = []) {
      // Reuse a binding set moments ago so two tabs logging in to the same host do not undo each other.
      const existing = cookieValues(req.headers.cookie, names.login).find((b) => BINDING.test(b));
      const binding = existing ?? randomToken(24);
      const start: StartToken = { h: host.authority, p: returnPathOf(req.url), b: sealer.fingerprint(binding) };
      const token = sealer.seal('login-start', start, now() + LOGIN_TTL_MS);
      const cookie = serializeCookie(names.login, binding, { secure, maxAge: LOGIN_TTL_MS / 1000 });
      redirect(res, `${redirectUri.origin}${loginPath}?t=${token}`, [...extraCookies, cookie]);
    },
    async handleProxyDomain(req, res) {
      const url = requestPathUrl(req.url);
      // Anything else on the proxy domain, `/` included: a short page pointing to GitLab (docs/contract.md §4).
      if (url.pathname !== loginPath && url.pathname !== callbackPath) return sendAnswer(res, answers.openFromGitLab);
      // GET only: a HEAD must not spend a single-use code or state.
      if (req.method !== 'GET') return sendAnswer(res, answers.methodNotAllowed, { allow: 'GET' });
      if (url.pathname === loginPath) return loginStart(req, res, url);
      return callback(req, res, url);
    },
    handleReserved(req, res, host) {
      const url = requestPathUrl(req.url);
      if (req.method !== 'GET') return sendAnswer(res, answers.methodNotAllowed, { allow: 'GET' });
      if (url.pathname === HANDOFF_PATH) return handoff(req, res, host, url);
      if (url.pathname === LOGOUT_PATH) {
        return sendAnswer(res, answers.signedOut, {
          ...noStore,
          'set-cookie': [deleteCookie(names.session, { secure }), deleteCookie(names.login, { secure })],
        });
      }
      return sendAnswer(res, answers.notFound);
    },
    sessionCookie,
  };
}
