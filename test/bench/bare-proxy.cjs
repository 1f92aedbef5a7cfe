// The bench's floor: http-proxy-3 alone, configured as this proxy configures it (keep-alive LIFO agent
// with the same pool size, no forwarding headers from the library, no proxy timeout), with no
// authentication, no header rewriting and no metrics. WebSockets are piped raw, as the library does.
// Usage: node bare-proxy.cjs <backend port>; prints its own port.
/* global require, process, console */
/* eslint-disable no-console, @typescript-eslint/no-require-imports -- a plain CommonJS script, run by node without tsx */
'use strict';
const http = require('node:http');
const { createProxyServer } = require('http-proxy-3');

const target = { protocol: 'http:', host: '127.0.0.1', port: Number(process.argv[2]) };
const agent = new http.Agent({ keepAlive: true, scheduling: 'lifo', maxFreeSockets: 256 });
const proxy = createProxyServer({ agent, xfwd: false, proxyTimeout: 0 });
proxy.on('error', (_err, _req, res) => res.destroy());
const server = http.createServer({ requestTimeout: 0, keepAliveTimeout: 65_000 }, (req, res) => proxy.web(req, res, { target }));
server.on('upgrade', (req, socket, head) => proxy.ws(req, socket, head, { target }));
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
process.on('SIGTERM', () => process.exit(0));
