// The contract between the connection owners (HTTP WebSockets, SSH) and the connection registry that
// re-authorizes long-lived connections (docs/contract.md §6).
import type { Credential } from '../auth/credential';

export type CloseReason =
  | 'workspace_gone' // Service deleted, re-created with another workspace id, or host no longer routed
  | 'not_owner' // GitLab says the user does not own the workspace
  | 'credential_invalid' // token revoked or expired and cannot be refreshed
  | 'session_expired' // the HTTP session cookie the WebSocket was opened with has expired
  | 'max_duration' // auth.max_session_duration reached
  | 'gitlab_unreachable' // GitLab could not confirm access for longer than the grace period
  | 'shutdown'; // the proxy is stopping (SIGTERM)

/** Human-readable text for each reason: sent as the WebSocket close reason / SSH disconnect message. */
export const closeReasonText: Record<CloseReason, string> = {
  workspace_gone: 'workspace no longer available',
  not_owner: 'access to this workspace was revoked',
  credential_invalid: 'GitLab credential revoked or expired',
  session_expired: 'session expired, sign in again',
  max_duration: 'maximum session duration reached',
  gitlab_unreachable: 'could not confirm access with GitLab',
  shutdown: 'proxy going away',
};

export interface TrackedConnection {
  kind: 'websocket' | 'ssh';
  workspace: { name: string; namespace: string; uid: string; id: string };
  /** The workspace host the WebSocket was opened on (websocket only). */
  host?: string;
  credential: Credential;
  /** Epoch ms after which the connection must close regardless (e.g. session cookie expiry). */
  notAfter?: number;
  /** Close the connection with the given reason. Must be idempotent. */
  close(reason: CloseReason): void;
}

export interface ConnectionRegistry {
  /** Start tracking; returns the function to call when the connection ends by itself. */
  track(conn: TrackedConnection): () => void;
  /** Close every tracked connection (used on shutdown). */
  closeAll(reason: CloseReason): void;
  /** Number of open tracked connections, by kind. */
  size(kind?: TrackedConnection['kind']): number;
  stop(): void;
}
