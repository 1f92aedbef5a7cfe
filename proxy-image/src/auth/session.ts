// The session a browser holds for one workspace host ("session" means this cookie and nothing else; open
// WebSocket and SSH connections are connections/). The session is a sealed cookie (AES-256-GCM, see crypto.ts) carrying the GitLab tokens,
// so every replica can re-check it with GitLab; it is bound to the host, the Service uid and the workspace
// id, so a cookie for workspace A never opens workspace B, nor a re-created Service with another id.
import type { Sealer } from './crypto';
import type { Credential } from './credential';
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

/** The GitLab credential a session carries. */
export function credentialOf(s: SessionData): Credential {
  return { type: 'oauth', accessToken: s.at, refreshToken: s.rt, expiresAt: s.ate };
}

/** The session with a refreshed credential. */
export function withCredential(s: SessionData, c: Credential): SessionData {
  return c.type === 'oauth' ? { ...s, at: c.accessToken, rt: c.refreshToken, ate: c.expiresAt } : s;
}
