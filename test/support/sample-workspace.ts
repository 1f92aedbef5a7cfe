// A sample workspace for tests, the demo and benchmarks: an HTTP page with a WebSocket echo, plus a few
// endpoints that make proxy behaviour observable (request echo, streams, large bodies). Loopback only.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { writeBytes } from './write-bytes';

export interface SampleWorkspace {
  port: number;
  server: Server;
  /** Requests seen, newest last (method, url, headers). */
  requests: { method: string; url: string; headers: IncomingMessage['headers'] }[];
  /** WebSocket upgrades the workspace accepted, as it saw them (not counted in `requests`). */
  upgrades: { url: string; headers: IncomingMessage['headers'] }[];
  close(): Promise<void>;
}

const page = (title: string) => `<!doctype html>
<html><head><meta charset="utf-8"><title>${title}</title></head>
<body>
<h1 id="title">${title}</h1>
<p>This page is served by the sample workspace behind the GitLab workspaces proxy.</p>
<p>WebSocket echo: <input id="msg" value="hello"> <button id="send">send</button> <span id="echo"></span></p>
<script>
  const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/echo', ['echo.v1']);
  window.wsState = 'connecting';
  ws.onopen = () => { window.wsState = 'open'; window.wsProtocol = ws.protocol; };
  ws.onclose = (e) => { window.wsState = 'closed'; window.wsClose = { code: e.code, reason: e.reason }; };
  ws.onmessage = (e) => { document.getElementById('echo').textContent = e.data; };
  document.getElementById('send').onclick = () => ws.send(document.getElementById('msg').value);
</script>
</body></html>
`;

export async function startSampleWorkspace(opts: { title?: string; port?: number } = {}): Promise<SampleWorkspace> {
  const title = opts.title ?? 'Sample workspace';
  const requests: SampleWorkspace['requests'] = [];
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    // Any request target the proxy forwards (`//x`, `*`) parses as a path: a test backend must not crash on them.
    const raw = req.url ?? '/';
    const url = new URL(`http://x${raw.startsWith('/') ? raw : `/${raw}`}`);
    switch (url.pathname) {
      case '/':
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        return res.end(page(title));
      case '/echo-request': {
        // Reports what reached the workspace, counting the body as it streams.
        let bytes = 0;
        req.on('data', (c: Buffer) => (bytes += c.length));
        req.on('end', () => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, bodyBytes: bytes }));
        });
        return;
      }
      case '/metrics':
        res.writeHead(200, { 'content-type': 'text/plain' });
        return res.end('workspace own metrics\n');
      case '/events': {
        // Server-sent events: one now, then one per `interval` ms, `count` in all.
        const count = Number(url.searchParams.get('count') ?? 3);
        const interval = Number(url.searchParams.get('interval') ?? 200);
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        let n = 0;
        const tick = () => {
          res.write(`data: event ${n}\n\n`);
          if (++n >= count) return res.end();
          timer = setTimeout(tick, interval);
        };
        let timer = setTimeout(tick, 0);
        res.on('close', () => clearTimeout(timer));
        return;
      }
      case '/bytes': {
        const size = Number(url.searchParams.get('size') ?? 1024);
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
        writeBytes(res, size, 120);
        return;
      }
      case '/truncated':
        // Promises 100000 bytes, sends a few, then the connection dies (a crashing workspace).
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 100000 });
        res.write('partial');
        setTimeout(() => res.socket?.destroy(), 50);
        return;
      case '/set-cookie':
        res.writeHead(200, { 'set-cookie': 'app=1; Path=/', 'content-type': 'text/plain' });
        return res.end('ok');
      default:
        res.writeHead(404, { 'content-type': 'text/plain' });
        return res.end('not found in workspace\n');
    }
  };
  const server = createServer(handle);
  server.keepAliveTimeout = 30_000;
  const wss = new WebSocketServer({
    server,
    handleProtocols: (protocols) => (protocols.has('echo.v1') ? 'echo.v1' : false),
  });
  const upgrades: SampleWorkspace['upgrades'] = [];
  wss.on('connection', (ws, req) => {
    upgrades.push({ url: req.url ?? '', headers: req.headers });
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  await new Promise<void>((r) => server.listen(opts.port ?? 0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as AddressInfo).port,
    server,
    requests,
    upgrades,
    close: () =>
      new Promise<void>((r) => {
        for (const c of wss.clients) c.terminate();
        wss.close();
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}
