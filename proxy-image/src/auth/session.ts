// The session a browser holds for one workspace host, and the decision "may this session use this
// workspace now?". The session is a sealed cookie (AES-256-GCM, see crypto.ts) carrying the GitLab tokens,
// so every replica can re-check it with GitLab; it is bound to the host, the Service uid and the workspace
// id, so a cookie for workspace A never opens workspace B, nor a re-created Service with another id.
import type { Logger } from 'pino';
import type { GitLabApi, OwnershipResult } from './gitlab-api';
import type { Sealer } from './crypto';
import type { TokenRefresher } from '../sessions/types';
import type { Route } from '../discovery/types';

/** Absolute lifetime of a session cookie; afterwards the browser goes through login again (usually silent). */
export const SESSION_LIFETIME_MS = 24 * 60 * 60 * 1000;

export interface SessionData {
  /** Workspace hostname (lowercase, no port): the cookie is host-only there. */
  h: string;
  /** Service uid and workspace id the session was authorized for. */
  u: string;
  w: string;
  /** GitLab user id (GraphQL gid) that logged in: for logs, never a credential. */
  sub: string;
  at: string;
  rt?: string;
  /** Access token expiry, epoch ms. */
  ate?: number;
  /** Session expiry, epoch ms (also the seal's expiry). */
  exp: number;
}

export function sealSession(sealer: Sealer, s: SessionData): string {
  return sealer.seal('session', s, s.exp);
}

/** The session from a cookie value when it is intact, unexpired and for this route's workspace. */
export function openSession(sealer: Sealer, cookie: string | undefined, route: Route): SessionData | undefined {
  if (!cookie) return undefined;
  const s = sealer.open<SessionData>('session', cookie);
  return s && boundTo(s, route) ? s : undefined;
}

function boundTo(s: SessionData, route: Route): boolean {
  return typeof s.at === 'string' && s.h === route.host && s.u === route.workspace.uid && s.w === route.workspace.id;
}

export type SessionReader = (cookie: string | undefined, route: Route) => SessionData | undefined;

/**
 * openSession with a small memo of recently opened cookies: decrypting costs ~20 µs, a noticeable share of
 * a proxied request, and a browser sends the same cookie on every request. Expiry and binding are still
 * checked on every call; only the decryption is skipped.
 */
export function createSessionReader(sealer: Sealer, opts: { maxEntries?: number; now?: () => number } = {}): SessionReader {
  const max = opts.maxEntries ?? 10_000;
  const now = opts.now ?? Date.now;
  const memo = new Map<string, SessionData>();
  return (cookie, route) => {
    if (!cookie) return undefined;
    let s = memo.get(cookie);
    if (s === undefined) {
      s = sealer.open<SessionData>('session', cookie);
      if (!s || typeof s.exp !== 'number') return undefined;
      if (memo.size >= max) memo.delete(memo.keys().next().value as string);
      memo.set(cookie, s);
    }
    if (s.exp <= now()) {
      memo.delete(cookie);
      return undefined;
    }
    return boundTo(s, route) ? s : undefined;
  };
}

export type AccessDecision =
  | { kind: 'allow'; session: SessionData; /** set when tokens were refreshed: re-issue the cookie */ renewed: boolean }
  /** The credential is no good any more: log in again (GET) or 401. */
  | { kind: 'login' }
  | { kind: 'forbidden' }
  /** GitLab could not be asked and nothing recent vouches for the session. */
  | { kind: 'unavailable' };

export interface AccessControl {
  decide(session: SessionData): Promise<AccessDecision>;
  /** The outcome of a fresh ownership check made elsewhere (login), so the first request needs no second call. */
  remember(accessToken: string, workspaceId: string, owner: boolean): void;
}

export interface AccessControlOptions {
  gitlab: GitLabApi;
  /** Must share refreshes of one refresh token (shareRefreshes), as app.ts wires it. */
  refresher: TokenRefresher;
  sealer: Sealer;
  logger: Logger;
  /** Seconds a positive ownership answer is reused (auth.reauthorize_interval, at most). */
  reauthorizeIntervalSeconds: number;
  now?: () => number;
}

interface Verdict {
  owner: boolean;
  /** Until when the answer is used without asking again. */
  freshUntil: number;
  /** When GitLab last confirmed ownership (for the outage grace). */
  confirmedAt: number;
}

const NEGATIVE_TTL_MS = 5_000;
const MAX_CACHE = 20_000;
/** Refresh a little before the access token expires so a request never races its expiry. */
const REFRESH_EARLY_MS = 30_000;

export function createAccessControl(opts: AccessControlOptions): AccessControl {
  const now = opts.now ?? Date.now;
  const positiveTtl = opts.reauthorizeIntervalSeconds * 1000;
  // CONTRACT §6 gives open connections a grace of 3 intervals when GitLab is down; requests get the same.
  const graceMs = 3 * positiveTtl;
  const verdicts = new Map<string, Verdict>();
  const asking = new Map<string, Promise<OwnershipResult>>();

  // The HMAC of a token is memoised per token string (bounded): hot paths reuse the same few tokens.
  const fingerprints = new Map<string, string>();
  const key = (token: string, workspaceId: string) => {
    let fp = fingerprints.get(token);
    if (fp === undefined) {
      fp = opts.sealer.fingerprint(token);
      if (fingerprints.size >= MAX_CACHE) fingerprints.delete(fingerprints.keys().next().value as string);
      fingerprints.set(token, fp);
    }
    return `${fp}:${workspaceId}`;
  };

  function store(k: string, owner: boolean): void {
    const t = now();
    if (verdicts.size >= MAX_CACHE) {
      // Oldest first (Map keeps insertion order); a burst of logins must not grow memory without bound.
      const first = verdicts.keys().next();
      if (!first.done) verdicts.delete(first.value);
    }
    const previous = verdicts.get(k);
    verdicts.delete(k);
    verdicts.set(k, {
      owner,
      freshUntil: t + (owner ? positiveTtl : Math.min(NEGATIVE_TTL_MS, positiveTtl)),
      confirmedAt: owner ? t : (previous?.confirmedAt ?? 0),
    });
  }

  /**
   * The refresher is shared process-wide (sessions/shared-refresher.ts, wired in app.ts): concurrent and
   * repeated refreshes of one refresh token already share one grant there, because GitLab rotates refresh
   * tokens and a second grant would be refused. So no memory of refreshes is kept here.
   */
  function refresh(s: SessionData): Promise<SessionData | undefined> {
    const rt = s.rt;
    if (!rt) return Promise.resolve(undefined);
    return opts.refresher.refresh(rt).then(
      (t): SessionData | undefined => ({ ...s, at: t.accessToken, rt: t.refreshToken ?? rt, ate: t.expiresAt }),
      (err: unknown) => {
        opts.logger.info({ err: (err as Error).message }, 'GitLab token refresh failed');
        return undefined;
      },
    );
  }

  /** One GitLab call per token and workspace at a time: a page load after the verdict expired asks once. */
  function ask(k: string, token: string, workspaceId: string): Promise<OwnershipResult> {
    let p = asking.get(k);
    if (!p) {
      p = opts.gitlab.checkOwnership(token, workspaceId).finally(() => asking.delete(k));
      asking.set(k, p);
    }
    return p;
  }

  async function check(s: SessionData, renewed: boolean, allowRefresh: boolean): Promise<AccessDecision> {
    const k = key(s.at, s.w);
    const cached = verdicts.get(k);
    const t = now();
    if (cached && cached.freshUntil > t) return cached.owner ? { kind: 'allow', session: s, renewed } : { kind: 'forbidden' };
    const result = await ask(k, s.at, s.w);
    switch (result.kind) {
      case 'owner':
        store(k, true);
        return { kind: 'allow', session: s, renewed };
      case 'not_owner':
        store(k, false);
        return { kind: 'forbidden' };
      case 'invalid_token': {
        verdicts.delete(k);
        if (!allowRefresh) return { kind: 'login' };
        const next = await refresh(s);
        return next ? check(next, true, false) : { kind: 'login' };
      }
      case 'unavailable':
        if (cached?.owner && t - cached.confirmedAt < graceMs) return { kind: 'allow', session: s, renewed };
        return { kind: 'unavailable' };
    }
  }

  return {
    async decide(s) {
      if (s.ate !== undefined && s.rt && s.ate - REFRESH_EARLY_MS <= now()) {
        const next = await refresh(s);
        if (next) return check(next, true, false);
        // Refresh failed: the old token may still work for a few seconds; GitLab decides.
      }
      return check(s, false, true);
    },
    remember(accessToken, workspaceId, owner) {
      store(key(accessToken, workspaceId), owner);
    },
  };
}
