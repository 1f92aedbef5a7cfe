// One connection-log line per relayed WebSocket, written when both of its sides are closed.
import type { Route } from '../discovery/types';
import type { SessionData } from '../auth/session';
import type { ConnectionLog } from '../observability/connection-log';
import type { Relay } from './websocket';

export function logWebSocketEnd(log: ConnectionLog, relay: Relay, route: Route, session: SessionData): void {
  const { name, namespace, id } = route.workspace;
  const record = log.open({ kind: 'websocket', userId: session.sub, workspace: { name, namespace, id }, auth: 'oauth_session', host: route.host });
  void relay.closed.then(() => {
    const { stats } = relay;
    record.toWorkspace(stats.toWorkspace);
    record.fromWorkspace(stats.fromWorkspace);
    if (stats.reason) record.reason(stats.reason);
    record.end(stats.closedFirst === 'workspace' ? 'workspace_closed' : 'client_closed');
  });
}
