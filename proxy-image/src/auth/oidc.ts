// GitLab as an OpenID Connect provider, through openid-client: authorization URL (PKCE S256, state,
// nonce), code exchange with every check, and refresh-token grants for long-lived connections.
// Creation is synchronous and discovery lazy: a GitLab that is down when the proxy starts must not stop
// it; discovery is retried on the next use (at most every few seconds) until it succeeds.
import type { Logger } from 'pino';
import type * as OpenId from 'openid-client';
import type { ProxyConfig } from '../config';
import type { TokenRefresher, Tokens } from './credential';
import { errorReason } from './error-reason';
import { GITLAB_TIMEOUT_MS } from './policy';

// openid-client 6 is ESM-only; Node >= 20.19 loads it with require().
// eslint-disable-next-line @typescript-eslint/no-require-imports
const client = require('openid-client') as typeof OpenId;

export const SCOPES = 'openid profile api read_user';

export interface LoginChecks {
  state: string;
  nonce: string;
  codeVerifier: string;
}

/** Why a code exchange failed: GitLab refused (bad/replayed code, nonce mismatch…) or could not be reached. */
export class OidcError extends Error {
  constructor(
    readonly kind: 'rejected' | 'unavailable',
    message: string,
  ) {
    super(message);
  }
}

export interface Oidc extends TokenRefresher {
  /** Fresh random state, nonce and PKCE verifier for one login. */
  newLoginChecks(): LoginChecks;
  /** The `{auth.host}/oauth/authorize` URL for one login. Rejects with OidcError('unavailable') when GitLab is down. */
  authorizationUrl(checks: LoginChecks): Promise<URL>;
  /** Exchanges the code in `callbackUrl` after checking state, PKCE and the ID token's nonce. */
  exchangeCode(callbackUrl: URL, checks: LoginChecks): Promise<Tokens>;
}

export interface OidcOptions {
  config: ProxyConfig;
  logger: Logger;
  /** Seconds for each request to GitLab (default GITLAB_TIMEOUT_MS). */
  timeoutSeconds?: number;
}

const RETRY_AFTER_FAILURE_MS = 3_000;

/**
 * openid-client's codes that say nothing about the user: GitLab answered a status it should not (5xx), or
 * did not answer in time (its timeout becomes OAUTH_TIMEOUT). Read as refusals, a hanging token endpoint
 * ended logins with "GitLab refused the sign-in" and refreshes as if the refresh token were revoked.
 */
const TRANSPORT_CODES = new Set(['OAUTH_RESPONSE_IS_NOT_CONFORM', 'OAUTH_TIMEOUT', 'OAUTH_ABORT']);

/**
 * The one place openid-client's errors are read. Answers from GitLab (OAuth error bodies, failed ID
 * token/nonce/state checks, an OAuth `error` code or a 4xx status) are refusals: a verdict on the code or
 * the refresh token. Everything else (network error, timeout, 5xx) is transport and says nothing about the user.
 */
export function classifyOidcError(err: unknown): OidcError {
  if (err instanceof OidcError) return err;
  if (err instanceof client.ResponseBodyError || err instanceof client.AuthorizationResponseError) {
    return new OidcError('rejected', `${err.error}`);
  }
  const e = (typeof err === 'object' && err !== null ? err : {}) as { code?: unknown; status?: unknown; error?: unknown; message?: unknown };
  // With the transport's reason (timeout, reset, untrusted certificate), which the log line needs.
  const message = errorReason(err);
  if (typeof e.code === 'string' && e.code.startsWith('OAUTH_') && !TRANSPORT_CODES.has(e.code)) {
    return new OidcError('rejected', e.code);
  }
  if (typeof e.status === 'number') return new OidcError(e.status >= 400 && e.status < 500 ? 'rejected' : 'unavailable', message);
  if (typeof e.error === 'string') return new OidcError('rejected', e.error);
  return new OidcError('unavailable', message);
}

/** True when a refresh failed because GitLab refused the refresh token (it will stay refused). */
export function isRefreshRejection(err: unknown): boolean {
  return classifyOidcError(err).kind === 'rejected';
}

export function createOidc(opts: OidcOptions): Oidc {
  const { config, logger } = opts;
  const issuer = new URL(config.auth.host);
  const insecure = issuer.protocol === 'http:';
  let current: Promise<OpenId.Configuration> | undefined;
  let failedAt = 0;
  let failedWhy = '';

  function configuration(): Promise<OpenId.Configuration> {
    if (current) return current;
    if (Date.now() - failedAt < RETRY_AFTER_FAILURE_MS) {
      return Promise.reject(new OidcError('unavailable', `GitLab OpenID discovery failed recently: ${failedWhy}`));
    }
    const attempt = client
      .discovery(issuer, config.auth.client_id, { client_secret: config.auth.client_secret }, undefined, {
        // Only for local http GitLabs (tests, demo): production GitLab is https and keeps every check.
        execute: insecure ? [client.allowInsecureRequests] : [],
        // Kept by openid-client for every later request of this configuration (token, JWKS), not only discovery.
        timeout: opts.timeoutSeconds ?? GITLAB_TIMEOUT_MS / 1000,
      })
      .then((cfg) => {
        logger.info({ issuer: cfg.serverMetadata().issuer }, 'GitLab OpenID configuration loaded');
        return cfg;
      })
      .catch((err: unknown) => {
        current = undefined;
        failedAt = Date.now();
        failedWhy = errorReason(err);
        logger.warn({ err: failedWhy }, 'GitLab OpenID discovery failed; will retry on next login');
        throw new OidcError('unavailable', `GitLab OpenID discovery failed: ${failedWhy}`);
      });
    current = attempt;
    return attempt;
  }

  function toTokens(res: OpenId.TokenEndpointResponse & OpenId.TokenEndpointResponseHelpers): Tokens {
    const expiresIn = res.expiresIn();
    return {
      accessToken: res.access_token,
      refreshToken: res.refresh_token,
      expiresAt: expiresIn !== undefined ? Date.now() + expiresIn * 1000 : undefined,
    };
  }

  return {
    newLoginChecks() {
      return { state: client.randomState(), nonce: client.randomNonce(), codeVerifier: client.randomPKCECodeVerifier() };
    },
    async authorizationUrl(checks) {
      const cfg = await configuration();
      return client.buildAuthorizationUrl(cfg, {
        redirect_uri: config.auth.redirect_uri,
        scope: SCOPES,
        state: checks.state,
        nonce: checks.nonce,
        code_challenge: await client.calculatePKCECodeChallenge(checks.codeVerifier),
        code_challenge_method: 'S256',
      });
    },
    async exchangeCode(callbackUrl, checks) {
      const cfg = await configuration();
      try {
        const res = await client.authorizationCodeGrant(cfg, callbackUrl, {
          pkceCodeVerifier: checks.codeVerifier,
          expectedState: checks.state,
          expectedNonce: checks.nonce,
          idTokenExpected: true,
        });
        return toTokens(res);
      } catch (err) {
        throw classifyOidcError(err);
      }
    },
    async refresh(refreshToken) {
      const cfg = await configuration();
      try {
        return toTokens(await client.refreshTokenGrant(cfg, refreshToken));
      } catch (err) {
        throw classifyOidcError(err);
      }
    },
  };
}
