// The bench's floors: the least a Node reverse proxy can do, with no authentication, no header rewriting and
// no metrics. `http`: core http server + keep-alive `http.request` (LIFO agent), bodies piped. `undici`: the
// same server with undici's Pool as the backend client (dispatch, backpressure through pause/resume).
// WebSocket upgrades in both modes are relayed as raw bytes over a fresh backend TCP connection (the
// cheapest relay possible; the proxy itself relays whole messages, see proxy-image/src/http/websocket.ts).
// Usage: node bare-pipe.cjs <http|undici> <backend port>; prints its own port.
/* global require, process, console */
/* eslint-disable no-console, @typescript-eslint/no-require-imports -- a plain CommonJS script, run by node without tsx */
'use strict';
const http = require('node:http');
const net = require('node:net');

const [mode, portArg] = process.argv.slice(2);
const port = Number(portArg);
if (!['http', 'undici'].includes(mode) || !port) {
  console.error('usage: node bare-pipe.cjs <http|undici> <backend port>');
  process.exit(2);
}

function viaHttp() {
  const agent = new http.Agent({ keepAlive: true, scheduling: 'lifo', maxFreeSockets: 256 });
  return (req, res) => {
    const up = http.request({ host: '127.0.0.1', port, method: req.method, path: req.url, headers: req.headers, agent }, (ur) => {
      res.writeHead(ur.statusCode, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    res.on('close', () => {
      if (!res.writableFinished) up.destroy();
    });
    req.pipe(up);
  };
}

function viaUndici() {
  const { Pool } = require('undici');
  const pool = new Pool(`http://127.0.0.1:${port}`, { headersTimeout: 0, bodyTimeout: 0, keepAliveTimeout: 60_000 });
  const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'expect', 'host']);
  return (req, res) => {
    const headers = [];
    const raw = req.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) if (!HOP.has(raw[i].toLowerCase())) headers.push(raw[i], raw[i + 1]);
    headers.push('host', req.headers.host ?? '');
    const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
    pool.dispatch(
      { method: req.method, path: req.url, headers, body: hasBody ? req : null },
      {
        onRequestStart(controller) {
          res.on('close', () => {
            if (!res.writableFinished) controller.abort(new Error('client gone'));
          });
          res.on('drain', () => controller.resume());
        },
        onResponseStart(controller, statusCode, headers) {
          delete headers.connection;
          delete headers['keep-alive'];
          res.writeHead(statusCode, headers);
        },
        onResponseData(controller, chunk) {
          if (!res.write(chunk)) controller.pause();
        },
        onResponseEnd() {
          res.end();
        },
        onResponseError() {
          if (res.headersSent) res.destroy();
          else res.writeHead(502).end();
        },
      },
    );
  };
}

const server = http.createServer({ keepAliveTimeout: 65_000, requestTimeout: 0 }, mode === 'http' ? viaHttp() : viaUndici());
server.on('upgrade', (req, socket, head) => {
  const up = net.connect(port, '127.0.0.1', () => {
    let text = `${req.method} ${req.url} HTTP/1.1\r\n`;
    for (let i = 0; i < req.rawHeaders.length; i += 2) text += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
    up.write(`${text}\r\n`);
    if (head.length) up.write(head);
    up.pipe(socket).pipe(up);
  });
  up.setNoDelay(true);
  const cut = () => (up.destroy(), socket.destroy());
  up.on('error', cut);
  socket.on('error', cut);
  up.on('close', cut);
  socket.on('close', cut);
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
process.on('SIGTERM', () => process.exit(0));
