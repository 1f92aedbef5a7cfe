// The authorization seam: everything that decides who a user is and whether they own a workspace.
// app.ts builds one Auth per proxy; HTTP (access, login), SSH (ownership) and the connection registry
// (ownership, refresher) all use these same parts, so answers, in-flight calls and refreshes are shared.
import type { Logger } from 'pino';
import type { ProxyConfig } from '../config';
import type { GitLabApi } from './gitlab-api';
import { createSealer, type Sealer } from './crypto';
import { createOidc, type Oidc } from './oidc';
import { createOwnershipCheck, type OwnershipCheck } from './ownership';
import { createAccessControl, type AccessControl } from './access';
import { shareRefreshes } from './shared-refresher';

export interface Auth {
  /** Seals cookies and login state, and fingerprints secrets for map keys (keyed from auth.signing_key). */
  sealer: Sealer;
  /** GitLab as OpenID provider; its refreshes are shared per refresh token (GitLab rotates them). */
  oidc: Oidc;
  ownership: OwnershipCheck;
  /** HTTP's decision for a browser session. */
  access: AccessControl;
}

export interface AuthOptions {
  config: ProxyConfig;
  gitlab: GitLabApi;
  logger: Logger;
  /** Clock in epoch ms (tests). */
  now?: () => number;
}

export function createAuth(opts: AuthOptions): Auth {
  const { config, logger, now } = opts;
  const sealer = createSealer(config.auth.signing_key);
  // One refresh per refresh token for cookies and open connections alike.
  const oidc = shareRefreshes(createOidc({ config, logger: logger.child({ module: 'oidc' }) }), { fingerprint: sealer.fingerprint, now });
  const ownership = createOwnershipCheck({ gitlab: opts.gitlab, fingerprint: sealer.fingerprint, now });
  const access = createAccessControl({
    ownership, refresher: oidc, logger, reauthorizeIntervalSeconds: config.auth.reauthorize_interval, now,
  });
  return { sealer, oidc, ownership, access };
}
