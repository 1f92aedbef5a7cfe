// One refresh per refresh token for the whole proxy process. GitLab rotates refresh tokens: the
// first use revokes the old pair. A browser session is refreshed from two places (HTTP requests carry
// it in the cookie, the connection registry re-checks the WebSockets opened with it); without sharing,
// whichever refreshed second would be refused and the user logged out or the terminal cut.
// Whoever presents an already-used refresh token gets the tokens that use produced: only the holder
// of that session's refresh token can present it, so nothing is handed to anyone new. Successive
// rotations chain (rt0 -> rt1 -> rt2): a holder of rt0 gets the newest tokens, not revoked ones.
// Limitation: this is per process; replicas each refresh on their own.
import type { TokenRefresher, Tokens } from './credential';
import { createSealer, randomToken } from './crypto';

export interface SharedRefreshOptions {
  /** How long the outcome of a used refresh token is kept (default 24 h, a session's lifetime). */
  keepMs?: number;
  /** Bound on remembered refresh tokens; the oldest go first. */
  maxEntries?: number;
  now?: () => number;
  /** Keyed hash for map keys (app.ts: the sealer's); default: a per-process random key. */
  fingerprint?: (secret: string) => string;
}

/** Wraps a refresher (the OIDC client) so that concurrent and repeated refreshes of one token share one grant. */
export function shareRefreshes<T extends TokenRefresher>(inner: T, opts: SharedRefreshOptions = {}): T {
  const keepMs = opts.keepMs ?? 24 * 60 * 60 * 1000;
  const maxEntries = opts.maxEntries ?? 20_000;
  const now = opts.now ?? Date.now;
  const outcomes = new Map<string, { tokens: Promise<Tokens>; until: number }>();
  const fingerprint = opts.fingerprint ?? createSealer(randomToken(32)).fingerprint;

  /** The remembered outcome for a used token, following later rotations to the newest tokens. */
  function remembered(refreshToken: string, t: number): Promise<Tokens> | undefined {
    const known = outcomes.get(fingerprint(refreshToken));
    if (!known) return undefined;
    if (known.until <= t) {
      outcomes.delete(fingerprint(refreshToken));
      return undefined;
    }
    return known.tokens.then((tokens) => {
      const next = tokens.refreshToken;
      const newer = next && next !== refreshToken ? remembered(next, t) : undefined;
      // A later rotation that failed leaves these tokens the newest good ones.
      return newer ? newer.catch(() => tokens) : tokens;
    });
  }

  function refresh(refreshToken: string): Promise<Tokens> {
    const k = fingerprint(refreshToken);
    const t = now();
    const known = remembered(refreshToken, t);
    if (known) return known;
    if (outcomes.size >= maxEntries) {
      const oldest = outcomes.keys().next();
      if (!oldest.done) outcomes.delete(oldest.value);
    }
    const tokens = inner.refresh(refreshToken);
    outcomes.set(k, { tokens, until: t + keepMs });
    // A failed grant is not remembered: a later try (GitLab back up) must reach GitLab again.
    tokens.catch(() => {
      if (outcomes.get(k)?.tokens === tokens) outcomes.delete(k);
    });
    return tokens;
  }

  const wrapped = Object.create(inner) as T;
  wrapped.refresh = refresh;
  return wrapped;
}
