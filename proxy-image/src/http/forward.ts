// Forwards one HTTP request to a workspace and streams the answer back, with undici as the backend client.
// Chosen by measurement (`npm run bench`, README "Performance"): undici's dispatch costs less CPU per
// request than `http.request` (which http-proxy-3 is built on) and keeps no per-request ClientRequest /
// IncomingMessage pair alive. Bodies stream both ways with backpressure (pause/resume), unbuffered; a
// client that goes away aborts the backend request (its socket is closed, never handed back half-read,
// which is what leaked with http-proxy 1.x: node-http-proxy#1582); a backend that dies mid-response cuts
// the client connection, so the browser does not wait for the rest forever.
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { Agent, type Dispatcher } from 'undici';

/** Request headers undici refuses or manages itself (framing, expectations); the rest go through as prepared. */
const CLIENT_MANAGED = ['transfer-encoding', 'expect'];

export interface ForwardOptions {
  /** Response headers as the workspace sent them, to adjust in place before they are written. */
  onResponseHeaders(headers: OutgoingHttpHeaders, res: ServerResponse): void;
  /** The workspace could not be reached or failed before answering. */
  onError(err: Error, res: ServerResponse): void;
}

export interface Forwarder {
  forward(req: IncomingMessage, res: ServerResponse, target: { host: string; port: number }, opts: ForwardOptions): void;
  /** Cuts every backend connection (shutdown, after the drain window). */
  destroy(): Promise<void>;
}

/**
 * How long a workspace may take to send its response headers once the request is sent, before the browser
 * gets a 502 "did not answer" page; a hung dev server otherwise leaves the tab spinning for good. Two
 * minutes is longer than long polls hold a request (typically 25-60 s, the idle limit of common load
 * balancers) and than a slow first compile of a dev server. A stream that has started (SSE, downloads, a
 * long poll's answer) has no limit at all, since its body may be silent for minutes; nor has an upload
 * (undici starts counting once the request body is sent).
 */
export const BACKEND_HEADERS_TIMEOUT_MS = 120_000;

/** True for the error undici reports when the response headers did not come in time. */
export function isHeadersTimeout(err: Error): boolean {
  return (err as NodeJS.ErrnoException).code === 'UND_ERR_HEADERS_TIMEOUT';
}

/**
 * `dispatcher`: the pool of backend connections (default: keep-alive, headers within `headersTimeoutMs`
 * (default BACKEND_HEADERS_TIMEOUT_MS), no body timeout; connecting may take `connectTimeoutMs`).
 */
export function createForwarder(o: { connectTimeoutMs: number; headersTimeoutMs?: number; dispatcher?: Dispatcher }): Forwarder {
  const dispatcher = o.dispatcher ?? new Agent({
    connect: { timeout: o.connectTimeoutMs },
    headersTimeout: o.headersTimeoutMs ?? BACKEND_HEADERS_TIMEOUT_MS,
    bodyTimeout: 0,
    keepAliveTimeout: 60_000,
  });

  function forward(req: IncomingMessage, res: ServerResponse, target: { host: string; port: number }, opts: ForwardOptions): void {
    const headers = req.headers;
    // A request has a body exactly when it says so (RFC 9112 §6.3); undici frames it again for this hop.
    const hasBody = headers['transfer-encoding'] !== undefined || (headers['content-length'] !== undefined && headers['content-length'] !== '0');
    for (const name of CLIENT_MANAGED) delete headers[name];
    const host = target.host.includes(':') ? `[${target.host}]` : target.host;
    let controller: Dispatcher.DispatchController | undefined;
    let finished = false;
    const onClose = () => {
      if (!finished) controller?.abort(new Error('client closed the connection'));
    };
    const onDrain = () => controller?.resume();
    dispatcher.dispatch(
      {
        origin: `http://${host}:${target.port}`,
        method: req.method as Dispatcher.HttpMethod,
        path: req.url ?? '/',
        headers: headers as Record<string, string | string[]>,
        body: hasBody ? req : null,
      },
      {
        onRequestStart(c) {
          controller = c;
          res.once('close', onClose);
          res.on('drain', onDrain);
        },
        onResponseStart(_c, statusCode, responseHeaders, statusMessage) {
          const out = responseHeaders as OutgoingHttpHeaders;
          // Framing is this hop's: without Content-Length, Node chunks what is written for the browser.
          delete out['transfer-encoding'];
          opts.onResponseHeaders(out, res);
          res.writeHead(statusCode, statusMessage || undefined, out);
        },
        onResponseData(c, chunk) {
          if (!res.write(chunk)) c.pause();
        },
        onResponseEnd() {
          finished = true;
          res.off('drain', onDrain);
          res.end();
        },
        onResponseError(_c, err) {
          finished = true;
          res.off('drain', onDrain);
          if (res.headersSent) res.destroy();
          else if (res.destroyed) return;
          else opts.onError(err, res);
        },
      },
    );
  }

  return {
    forward,
    destroy: () => dispatcher.destroy(),
  };
}
