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
import { createGitLabKeysApi, type GitLabKeysApi, type GitLabKeysApiOptions } from './gitlab-keys-api';
import { createSshKeyCheck, type SshKeyCheck } from './ssh-keys';
import { newConnectionReuse } from './policy';

export interface Auth {
  /** Seals cookies and login state, and fingerprints secrets for map keys (keyed from auth.signing_key). */
  sealer: Sealer;
  /** GitLab as OpenID provider; its refreshes are shared per refresh token (GitLab rotates them). */
  oidc: Oidc;
  ownership: OwnershipCheck;
  /** HTTP's decision for a browser session. */
  access: AccessControl;
  /** SSH public-key logins: present only with auth.service_token and ssh.public_key_auth. */
  sshKeys?: SshKeyCheck;
}

export interface AuthOptions {
  config: ProxyConfig;
  gitlab: GitLabApi;
  logger: Logger;
  /** Clock in epoch ms (tests). */
  now?: () => number;
  /** GitLab lookups for SSH keys (default: made with auth.service_token against auth.host). */
  gitlabKeys?: GitLabKeysApi;
  /** Observes each of the default lookups (metrics). */
  onKeyLookup?: GitLabKeysApiOptions['onCall'];
}

export function createAuth(opts: AuthOptions): Auth {
  const { config, logger, now } = opts;
  const sealer = createSealer(config.auth.signing_key);
  // One refresh per refresh token for cookies and open connections alike.
  const oidc = shareRefreshes(createOidc({ config, logger: logger.child({ module: 'oidc' }) }), { fingerprint: sealer.fingerprint, now });
  const sshKeys = keyLoginsOn(config) ? createSshKeyCheck({
    api: opts.gitlabKeys ?? createGitLabKeysApi({
      baseUrl: config.auth.host, serviceToken: config.auth.service_token as string, logger: logger.child({ module: 'gitlab-keys' }),
      onCall: opts.onKeyLookup,
    }),
    reuseMs: newConnectionReuse(config.auth.reauthorize_interval).ownerMs,
    now,
  }) : undefined;
  const ownership = createOwnershipCheck({ gitlab: opts.gitlab, sshKeys, fingerprint: sealer.fingerprint, now });
  const access = createAccessControl({
    ownership, refresher: oidc, logger, reauthorizeIntervalSeconds: config.auth.reauthorize_interval, now,
  });
  return { sealer, oidc, ownership, access, sshKeys };
}

/** SSH keys are accepted only when the proxy has a token to look them up with (docs/contract.md §2). */
export function keyLoginsOn(config: ProxyConfig): boolean {
  return config.ssh.public_key_auth && config.auth.service_token !== undefined;
}
