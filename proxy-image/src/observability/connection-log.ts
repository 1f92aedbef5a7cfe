// The connection log: one JSON line per WebSocket and SSH connection when it ends, so a platform team can
// answer "who used which workspace when, how, for how long, and why did it end". Only identifiers and
// counts go in: never a token, cookie, password, header or path query.
import type { Logger } from 'pino';
import type { CloseReason } from '../connections/types';

export type ConnectionKind = 'websocket' | 'ssh';
/** How the connection was authenticated. */
export type AuthMethod = 'oauth_session' | 'personal_access_token' | 'public_key';
/** Why it ended: a reason of the proxy's own (docs/contract.md §6), or the side that closed it. */
export type EndReason = CloseReason | 'client_closed' | 'workspace_closed' | 'error';

export interface ConnectionStart {
  kind: ConnectionKind;
  /** GitLab user id (GraphQL gid or number), as GitLab confirmed it. */
  userId: string;
  workspace: { name: string; namespace: string; id: string };
  auth: AuthMethod;
  /** Client address (ip:port) as the proxy saw it. */
  client?: string;
  /** Workspace host the WebSocket was opened on. */
  host?: string;
}

export interface ConnectionRecord {
  /** Bytes relayed (payload only: WebSocket messages, SSH channel data). */
  toWorkspace(n: number): void;
  fromWorkspace(n: number): void;
  /** The first reason given wins; later ones (the echo of our own close) are ignored. */
  reason(r: EndReason): void;
  /** Writes the line (once). */
  end(fallback?: EndReason): void;
}

export interface ConnectionLog {
  open(start: ConnectionStart): ConnectionRecord;
}

export function createConnectionLog(logger: Logger, now: () => number = Date.now): ConnectionLog {
  return {
    open(start) {
      const startedAt = now();
      let toWorkspace = 0;
      let fromWorkspace = 0;
      let why: EndReason | undefined;
      let done = false;
      return {
        toWorkspace: (n) => void (toWorkspace += n),
        fromWorkspace: (n) => void (fromWorkspace += n),
        reason(r) {
          why ??= r;
        },
        end(fallback = 'client_closed') {
          if (done) return;
          done = true;
          const endedAt = now();
          logger.info(
            {
              event: 'connection_end',
              kind: start.kind,
              userId: start.userId,
              workspace: `${start.workspace.namespace}/${start.workspace.name}`,
              workspaceId: start.workspace.id,
              ...(start.host ? { host: start.host } : {}),
              auth: start.auth,
              ...(start.client ? { client: start.client } : {}),
              startedAt: new Date(startedAt).toISOString(),
              durationMs: endedAt - startedAt,
              bytesToWorkspace: toWorkspace,
              bytesFromWorkspace: fromWorkspace,
              closeReason: why ?? fallback,
            },
            'connection ended',
          );
        },
      };
    },
  };
}
