// Prometheus metrics of the SSH proxy, registered on the registry passed in.
import { Counter, Gauge, type Registry } from 'prom-client';

/** Why a password attempt failed; also the `reason` field of the log line. */
export type AuthFailureReason =
  | 'unknown_workspace'
  | 'ambiguous_workspace'
  | 'invalid_token'
  | 'not_owner'
  | 'gitlab_unavailable'
  | 'rate_limited'
  | 'too_many_tries';

/** Why a public key was refused (log field `reason`, label of the key metric). */
export type KeyFailureReason =
  | 'keys_off' // no auth.service_token, or ssh.public_key_auth false
  | 'unknown_workspace'
  | 'ambiguous_workspace'
  | 'unknown_key' // not one of the workspace owner's GitLab keys
  | 'owner_not_visible' // GitLab showed the service token no owner: no such workspace, or the token is not Maintainer of the agent's project
  | 'expired_key'
  | 'signing_key' // a GitLab key for signing only
  | 'bad_signature'
  | 'gitlab_unavailable'
  | 'rate_limited'
  | 'too_many_keys';

export type BackendFailure = 'unreachable' | 'refused_login';

export interface SshMetrics {
  connectionOpened(): void;
  connectionClosed(): void;
  authSucceeded(cached: boolean): void;
  authFailed(reason: AuthFailureReason): void;
  /** Public-key attempts that were signed (success) or refused (failure, by reason). */
  keyAuth(result: 'success' | 'failure', reason: KeyFailureReason | 'verified'): void;
  backendFailed(kind: BackendFailure): void;
  /** Payload bytes of channels: `to_workspace` from the user, `from_workspace` to the user. */
  bytes(direction: 'to_workspace' | 'from_workspace', n: number): void;
}

export function createSshMetrics(registry: Registry): SshMetrics {
  const open = new Gauge({
    name: 'workspaces_proxy_ssh_connections_open',
    help: 'SSH client connections open on the proxy (authenticated or not)',
    registers: [registry],
  });
  const auth = new Counter({
    name: 'workspaces_proxy_ssh_auth_total',
    help: 'SSH password attempts, by result and reason (success: cached or gitlab)',
    labelNames: ['result', 'reason'],
    registers: [registry],
  });
  const keyAuth = new Counter({
    name: 'workspaces_proxy_ssh_key_auth_total',
    help: 'SSH public-key attempts, by result and reason (probes of keys that are refused count as failures)',
    labelNames: ['result', 'reason'],
    registers: [registry],
  });
  const backend = new Counter({
    name: 'workspaces_proxy_ssh_backend_failures_total',
    help: 'Authorized SSH connections whose workspace sshd could not be joined',
    labelNames: ['kind'],
    registers: [registry],
  });
  const bytes = new Counter({
    name: 'workspaces_proxy_ssh_bytes_total',
    help: 'SSH channel payload bytes, by direction',
    labelNames: ['direction'],
    registers: [registry],
  });
  // Each child resolved once, at its first bytes (so a series still appears only once it has counted): a
  // labelled inc() hashes its label object, and this one runs per data chunk.
  const byDirection: Partial<Record<'to_workspace' | 'from_workspace', ReturnType<typeof bytes.labels>>> = {};
  return {
    connectionOpened: () => open.inc(),
    connectionClosed: () => open.dec(),
    authSucceeded: (cached) => auth.inc({ result: 'success', reason: cached ? 'cached' : 'gitlab' }),
    authFailed: (reason) => auth.inc({ result: 'failure', reason }),
    keyAuth: (result, reason) => keyAuth.inc({ result, reason }),
    backendFailed: (kind) => backend.inc({ kind }),
    bytes: (direction, n) => (byDirection[direction] ??= bytes.labels({ direction })).inc(n),
  };
}
