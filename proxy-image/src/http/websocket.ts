// WebSocket relay: the proxy terminates the browser's WebSocket and opens its own to the workspace, and
// relays messages both ways (with `ws` on both sides).
// Why not pipe raw sockets like the upstream proxy: the proxy must be able to close a connection at any
// moment (re-authorization, docs/contract.md §6) with a proper close frame and reason, and a close frame injected
// into a raw byte stream could land in the middle of a frame. With a relay every message is whole, so a
// close is always clean. Subprotocols are negotiated end to end (the browser's offer goes to the workspace,
// the workspace's choice goes back), and so is compression: permessage-deflate is offered to the workspace
// only when the browser offered it, and accepted from the browser only when the workspace accepted it, as
// a raw pipe would. Compressing the browser hop on the proxy's own initiative cost ~10x the memory per
// idle WebSocket (240 KiB against 25 KiB) and ~2.5x the CPU per small message (`npm run bench`), for
// workspaces that never asked for it.
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { closeReasonText, type CloseReason } from '../connections/types';
import { rejectUpgrade } from './pages';

/** Headers that belong to one hop of the handshake and are rebuilt by `ws` for the backend hop. */
const HOP_HEADERS = new Set([
  'connection', 'upgrade', 'sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions',
  'sec-websocket-protocol', 'sec-websocket-accept', 'keep-alive', 'transfer-encoding', 'proxy-connection',
  'content-length', 'te', 'trailer',
]);

/** When the far side reads slower than this side writes, stop reading until it catches up. */
const HIGH_WATER = 4 * 1024 * 1024;
/** How long a peer gets to answer our close frame before its socket is cut. */
const CLOSE_GRACE_MS = 5_000;

export interface RelayOptions {
  req: IncomingMessage;
  socket: Duplex;
  head: Buffer;
  /** Backend ws:// URL (path and query included). */
  target: string;
  /** Request headers to send on (cookies already stripped, forwarding headers set). */
  headers: Record<string, string | string[] | undefined>;
  connectTimeoutMs: number;
  maxPayload: number;
  /** Raw header lines added to the 101 answer (a renewed session cookie). */
  extraResponseHeaders?: string[];
}

export interface Relay {
  /** Close both sides; the browser gets a close frame with the code for `reason` and its text. Idempotent. */
  close(reason: CloseReason): void;
  /** Cut both sides now (after a close that was not answered in time). */
  terminate(): void;
  /** Resolves when both sides are closed. */
  closed: Promise<void>;
}

export function closeCodeFor(reason: CloseReason): number {
  // 1001 "going away" when the proxy or workspace goes; 1008 "policy violation" when access ended.
  return reason === 'shutdown' || reason === 'workspace_gone' ? 1001 : 1008;
}

/** Codes a peer may put in a close frame (RFC 6455 §7.4); others (1005, 1006, 1015…) are never sent. */
function sendableCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

export function createWebSocketRelayFactory(): {
  /** Resolves with the relay once both sides are open, or undefined when the handshake was answered with an error. */
  open(opts: RelayOptions): Promise<Relay | undefined>;
  close(): void;
} {
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false, // set per connection below
    maxPayload: 0, // set per connection below
    clientTracking: false,
  });

  function open(opts: RelayOptions): Promise<Relay | undefined> {
    const { req, socket } = opts;
    const offered = (req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean);
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(opts.headers)) if (v !== undefined && !HOP_HEADERS.has(k)) headers[k] = v;
    const browserOffersDeflate = /permessage-deflate/i.test(String(req.headers['sec-websocket-extensions'] ?? ''));

    return new Promise((resolve) => {
      let settled = false;
      const backend = new WebSocket(opts.target, offered, {
        headers,
        perMessageDeflate: browserOffersDeflate,
        handshakeTimeout: opts.connectTimeoutMs,
        maxPayload: opts.maxPayload,
        followRedirects: false,
      });
      // Messages the workspace sends before the browser side is ready are kept in order.
      const early: [RawData, boolean][] = [];
      const onEarly = (data: RawData, isBinary: boolean) => early.push([data, isBinary]);
      backend.on('message', onEarly);

      const fail = (status: number, text: string) => {
        if (settled) return;
        settled = true;
        backend.removeAllListeners();
        backend.on('error', () => {});
        backend.terminate();
        rejectUpgrade(socket, status, text);
        resolve(undefined);
      };
      const onSocketGone = () => {
        if (settled) return;
        settled = true;
        backend.removeAllListeners();
        backend.on('error', () => {});
        backend.terminate();
        resolve(undefined);
      };
      socket.once('close', onSocketGone);
      socket.on('error', () => {});

      backend.once('unexpected-response', (_r, res) => {
        // The workspace refused the upgrade: tell the browser the same status (its body is not relayed).
        const status = res.statusCode && res.statusCode >= 400 ? res.statusCode : 502;
        res.resume();
        fail(status, 'the workspace refused the WebSocket upgrade');
      });
      backend.once('error', () => fail(502, 'the workspace is not reachable'));
      backend.once('open', () => {
        if (settled) return;
        socket.removeListener('close', onSocketGone);
        wss.options.maxPayload = opts.maxPayload;
        // Compression on the browser hop only when the workspace agreed to it on its own hop.
        wss.options.perMessageDeflate = backend.extensions.includes('permessage-deflate') ? {} : false;
        // Answer the browser with the subprotocol the workspace chose (or none).
        wss.options.handleProtocols = () => backend.protocol || false;
        // handleUpgrade answers synchronously (no verifyClient), so these per-connection settings and the
        // extra headers apply to this request only; the listener checks the request and is removed at once.
        const extra = opts.extraResponseHeaders ?? [];
        const onHeaders = (lines: string[], r: IncomingMessage) => {
          if (r === req) lines.push(...extra);
        };
        if (extra.length) wss.on('headers', onHeaders);
        try {
          wss.handleUpgrade(req, socket, opts.head, (client) => {
            settled = true;
            backend.removeListener('message', onEarly);
            resolve(wire(client, backend, early));
          });
        } finally {
          wss.removeListener('headers', onHeaders);
        }
        // An invalid handshake is answered by `ws` itself (400) without calling back.
        if (!settled) fail(400, 'invalid WebSocket handshake');
      });
    });
  }

  return {
    open,
    close() {
      wss.close();
    },
  };
}

function wire(client: WebSocket, backend: WebSocket, early: [RawData, boolean][]): Relay {
  let closing = false;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((r) => (resolveClosed = r));
  let open = 2;
  const onGone = () => {
    if (--open === 0) resolveClosed();
  };
  client.once('close', onGone);
  backend.once('close', onGone);

  const forward = (from: WebSocket, to: WebSocket) => (data: RawData, isBinary: boolean) => {
    if (to.readyState !== WebSocket.OPEN) return;
    to.send(data, { binary: isBinary }, () => {
      if (from.isPaused && to.bufferedAmount < HIGH_WATER) from.resume();
    });
    if (to.bufferedAmount >= HIGH_WATER && !from.isPaused) from.pause();
  };
  const toClient = forward(backend, client);
  for (const [data, isBinary] of early) toClient(data, isBinary);
  backend.on('message', toClient);
  client.on('message', forward(client, backend));
  // Pings travel end to end so idle timeouts of load balancers on either hop see traffic;
  // each side answers pongs itself.
  backend.on('ping', (data) => client.readyState === WebSocket.OPEN && client.ping(data));
  client.on('ping', (data) => backend.readyState === WebSocket.OPEN && backend.ping(data));

  const mirrorClose = (to: WebSocket) => (code: number, reason: Buffer) => {
    if (to.readyState === WebSocket.CLOSED || to.readyState === WebSocket.CLOSING) return;
    if (sendableCode(code)) to.close(code, reason.length <= 123 ? reason : undefined);
    else to.close();
    setTimeout(() => to.terminate(), CLOSE_GRACE_MS).unref();
  };
  client.on('close', mirrorClose(backend));
  backend.on('close', mirrorClose(client));
  client.on('error', () => backend.terminate());
  backend.on('error', () => client.terminate());

  return {
    closed,
    terminate() {
      client.terminate();
      backend.terminate();
    },
    close(reason) {
      if (closing) return;
      closing = true;
      const code = closeCodeFor(reason);
      for (const side of [client, backend]) {
        if (side.readyState === WebSocket.OPEN || side.readyState === WebSocket.CONNECTING) {
          side.close(code, closeReasonText[reason]);
        }
        setTimeout(() => side.terminate(), CLOSE_GRACE_MS).unref();
      }
    },
  };
}
