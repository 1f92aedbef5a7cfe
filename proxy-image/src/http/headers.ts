// Headers per hop: what the workspace sees of a request (hop-by-hop headers dropped, the proxy's cookies
// stripped, X-Forwarded-* set), and how the answer's connection handling is rewritten for the browser.
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { stripProxyCookies, type CookieNames } from '../auth/cookies';

/** Longer than common load balancer idle timeouts, so they close first. */
export const KEEP_ALIVE_TIMEOUT_MS = 65_000;
const KEEP_ALIVE_HEADER = `timeout=${KEEP_ALIVE_TIMEOUT_MS / 1000}`;

/**
 * Headers for one hop only (RFC 9110 §7.6.1), plus the client's proxy credentials, which are meant for a
 * proxy and never for the workspace. `Authorization` is NOT among them: it belongs to the workspace's own
 * apps (basic auth, Jupyter tokens); the proxy never puts a GitLab token there.
 */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'proxy-authorization'];
/** Never removed even when a client lists them in `Connection`: routing and body framing depend on them. */
const PROTECTED = new Set(['host', 'content-length', 'transfer-encoding']);

/** Header names listed in a Connection header (lowercase). */
function connectionTokens(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  // One token (`keep-alive`, `close`, `upgrade`): nearly every response and request that has the header.
  if (typeof value === 'string' && !value.includes(',')) {
    const t = value.trim().toLowerCase();
    return t === '' || PROTECTED.has(t) ? [] : [t];
  }
  return (Array.isArray(value) ? value.join(',') : value)
    .split(',')
    .map((t) => t.trim().toLowerCase())
    .filter((t) => t !== '' && !PROTECTED.has(t));
}

export interface ForwardingOptions {
  protocol: 'http' | 'https';
  names: CookieNames;
  /** WebSocket upgrade: `ws` rebuilds Connection and Upgrade for the backend hop (websocket.ts). */
  upgrade?: boolean;
}

/** Request headers as the workspace sees them (in place): proxy cookies removed, forwarding headers set. */
export function prepareRequestHeaders(req: IncomingMessage, opts: ForwardingOptions): void {
  const { upgrade = false, protocol } = opts;
  // Hop-by-hop: the backend connection is the agent's to keep alive, whatever the client asked.
  for (const name of connectionTokens(req.headers.connection)) if (!(upgrade && name === 'upgrade')) delete req.headers[name];
  // Only what is there: deleting an absent property still costs a runtime call, on every request.
  for (const name of HOP_BY_HOP) if (req.headers[name] !== undefined && !(upgrade && (name === 'connection' || name === 'upgrade'))) delete req.headers[name];
  const cookie = stripProxyCookies(req.headers.cookie, opts.names);
  if (cookie === undefined) delete req.headers.cookie;
  else req.headers.cookie = cookie;
  const client = req.socket.remoteAddress ?? '';
  const prior = req.headers['x-forwarded-for'];
  req.headers['x-forwarded-for'] = prior ? `${prior}, ${client}` : client;
  req.headers['x-forwarded-proto'] = protocol;
  req.headers['x-forwarded-host'] = req.headers.host ?? '';
  // The port the browser used (from Host, else the protocol's default), never a client-supplied value.
  const port = /:(\d+)$/.exec(req.headers.host ?? '')?.[1];
  req.headers['x-forwarded-port'] = port ?? (protocol === 'https' ? '443' : '80');
}

/**
 * Connection management is per hop: the workspace's keep-alive terms (and anything it lists in
 * Connection) are not the browser's. The browser's own `Connection: close`, or a draining shutdown,
 * closes its connection after this response.
 */
export function prepareResponseHeaders(headers: OutgoingHttpHeaders, res: ServerResponse, stopping: boolean): void {
  const keepAlive = res.shouldKeepAlive && !stopping;
  // A listed `keep-alive` that is about to be overwritten is left in place (deleting it cost more than the rest).
  for (const name of connectionTokens(headers.connection as string | string[] | undefined)) if (!(keepAlive && name === 'keep-alive')) delete headers[name];
  if (headers['proxy-connection'] !== undefined) delete headers['proxy-connection'];
  headers.connection = keepAlive ? 'keep-alive' : 'close';
  if (keepAlive) headers['keep-alive'] = KEEP_ALIVE_HEADER;
  else if (headers['keep-alive'] !== undefined) delete headers['keep-alive'];
}
