// Small, readable HTML pages for the answers the proxy gives itself (400, 401, 403, 502, 503).
import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { STATUS_CODES } from 'node:http';

const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);

/**
 * `Connection: close` when the request still has body bytes to come. The proxy answers these requests
 * itself (refused, redirected, failed) and never reads the body; keeping the connection would let a client
 * trickle a refused upload forever, since uploads have no time limit.
 */
export function closeIfBodyPending(res: ServerResponse): Record<string, string> {
  const req = res.req;
  const length = req.headers['content-length'];
  const hasBody = req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
  return hasBody && !req.complete ? { connection: 'close' } : {};
}

export function pageHtml(status: number, title: string, message: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>${escapeHtml(title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}h1{font-size:1.4rem}small{color:#777}</style>
</head><body><h1>${escapeHtml(title)}</h1><p>${escapeHtml(message)}</p><small>${status} ${escapeHtml(STATUS_CODES[status] ?? '')} · GitLab workspaces proxy</small></body></html>
`;
}

/** Sends a page unless headers already went out (then the connection is cut, the only honest signal left). */
export function sendPage(res: ServerResponse, status: number, title: string, message: string, headers: Record<string, string | string[]> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = pageHtml(status, title, message);
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...closeIfBodyPending(res),
    ...headers,
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

export function sendText(res: ServerResponse, status: number, text: string, headers: Record<string, string | string[]> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...closeIfBodyPending(res),
    ...headers,
  });
  res.end(res.req.method === 'HEAD' ? undefined : text);
}

/** An HTTP answer on a socket that asked to upgrade (WebSocket): status, short text, then close. */
export function rejectUpgrade(socket: Duplex, status: number, text: string): void {
  if (socket.destroyed || socket.writableEnded) return;
  const body = `${text}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nCache-Control: no-store\r\n\r\n${body}`,
  );
}

export const messages = {
  unknownHost: 'no workspace serves this host',
} as const;
