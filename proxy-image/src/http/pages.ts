// The answers the proxy gives itself: one catalogue of statuses and wording (like fastify's lib/errors.js),
// sent as small readable HTML pages, as plain text, or on a socket that asked to upgrade.
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

/**
 * Every answer the proxy gives itself, by name. `text` is the short form (plain-text bodies, refused
 * WebSocket upgrades); answers with a `title` are sent to browsers as a page. GitLab being unreachable is
 * always 503 (Service Unavailable: the proxy cannot do its job right now, try again), whether it happens
 * at login, at the callback or when a request is authorized; 502 is kept for the workspace backend.
 */
export const answers = {
  badHost: { status: 400, text: 'bad Host header' },
  otherAuthority: { status: 400, text: 'request target names another host' },
  notAPath: { status: 400, text: 'request target is not a path' },
  unknownHost: { status: 400, text: 'no workspace serves this host' },
  notWebSocket: { status: 400, text: 'only WebSocket upgrades are proxied' },
  /** The proxy domain serves the login flow only (docs/contract.md §4): every other path, `/` included. */
  openFromGitLab: {
    status: 400, text: 'workspaces are opened from GitLab', title: 'Open your workspace from GitLab',
    message: 'Workspaces are opened from GitLab (Your work → Workspaces). This address only signs you in when a workspace asks for it.',
  },
  /** A broken, expired, replayed or other-browser login step; the page says which and how to start again. */
  signInIncomplete: { status: 400, text: 'sign-in did not complete', title: 'Sign-in did not complete' },
  signInRequired: { status: 401, text: 'sign in required: open this workspace URL in a browser first' },
  notYourWorkspace: {
    status: 403, text: 'not the owner of this workspace', title: 'Not your workspace',
    message: 'You are signed in to GitLab, but this workspace belongs to another user. Only its owner can open it.',
  },
  crossWorkspace: { status: 403, text: 'request from another workspace refused' },
  signInRefused: {
    status: 403, text: 'sign-in refused', title: 'Sign-in refused',
    message: 'GitLab did not authorize the sign-in (it was cancelled or refused).',
  },
  crossOriginWebSocket: { status: 403, text: 'cross-origin WebSocket refused' },
  notFound: { status: 404, text: 'not found' },
  methodNotAllowed: { status: 405, text: 'method not allowed' },
  workspaceUnreachable: {
    status: 502, text: 'the workspace is not reachable', title: 'Workspace not reachable',
    message: 'The workspace did not answer. It may be stopped, starting or restarting; try again shortly.',
  },
  /** Connected, but no response headers within http/forward.ts's limit. 502 like every backend failure
   *  (docs/contract.md §4: "refuses or times out"), with its own wording. */
  workspaceTimeout: {
    status: 502, text: 'the workspace did not answer in time', title: 'Workspace did not answer',
    message: 'The workspace accepted the request but did not answer in time. The app in it may be busy or stuck; try again, or restart it.',
  },
  gitlabUnreachable: {
    status: 503, text: 'GitLab is not reachable', title: 'GitLab is not reachable',
    message: 'The proxy cannot confirm your access with GitLab right now. Try again in a minute.',
  },
  shuttingDown: { status: 503, text: 'proxy is shutting down' },
  signedOut: { status: 200, text: 'signed out', title: 'Signed out', message: 'You are signed out of this workspace host.' },
} as const satisfies Record<string, Answer>;

export interface Answer {
  status: number;
  text: string;
  title?: string;
  message?: string;
}

/** Sends a catalogue answer: a page when it has one, else its text. `message` overrides the page's sentence. */
export function sendAnswer(res: ServerResponse, a: Answer, headers: Record<string, string | string[]> = {}, message?: string): void {
  if (a.title) return sendPage(res, a.status, a.title, message ?? a.message ?? a.text, headers);
  sendText(res, a.status, `${a.text}\n`, headers);
}

/** A catalogue answer on a socket that asked to upgrade. */
export function rejectUpgradeWith(socket: Duplex, a: Answer): void {
  rejectUpgrade(socket, a.status, a.text);
}
