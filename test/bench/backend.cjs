// The bench's workspace: one static backend that nginx, the bare pipes and the proxy all forward to, in its own
// process. Fixed, preallocated bodies so the backend costs the same for every side and keeps no per-request
// state (the test suite's sample workspace records every request, which grows over millions).
//   GET /bytes?size=N        N bytes (Content-Length)
//   POST /echo-request       {"bodyBytes": n} after reading the body
//   WebSocket /echo          echoes every message
// Usage: node backend.cjs; prints its port.
/* global require, process, console, Buffer, URL */
/* eslint-disable no-console, @typescript-eslint/no-require-imports -- a plain CommonJS script, run by node without tsx */
'use strict';
const http = require('node:http');
const { WebSocketServer } = require('ws');

const bodies = new Map();
const body = (size) => {
  let b = bodies.get(size);
  if (!b && size <= 1048576) bodies.set(size, (b = Buffer.alloc(size, 120)));
  return b;
};
const chunk = Buffer.alloc(65536, 120);

const server = http.createServer({ keepAliveTimeout: 65_000, requestTimeout: 0 }, (req, res) => {
  if (req.url.startsWith('/bytes')) {
    const size = Number(new URL(req.url, 'http://x').searchParams.get('size') ?? 1024);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
    const fixed = body(size);
    if (fixed) return void res.end(fixed);
    // Large streams: 64 KiB writes with backpressure; a client that goes away stops the loop.
    let left = size;
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        left -= n;
        if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void res.once('drain', pump);
      }
      res.end();
    };
    res.on('close', () => (left = 0));
    return pump();
  }
  if (req.url === '/echo-request') {
    let bytes = 0;
    req.on('data', (c) => (bytes += c.length));
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ bodyBytes: bytes }));
    });
    return;
  }
  res.writeHead(404).end();
});
const wss = new WebSocketServer({ server, perMessageDeflate: true });
wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
process.on('SIGTERM', () => process.exit(0));
