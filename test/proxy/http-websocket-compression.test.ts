// permessage-deflate through the WebSocket relay is negotiated end to end (websocket.ts): the browser hop
// is compressed only when the workspace accepted compression on its own hop, as with a raw pipe.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { startHarness, loginAs, ZONE, type Harness } from '../support/http-harness';

let h: Harness;
let server: Server;
let wss: WebSocketServer;
let hostZ: string;
/** Extensions the compressing workspace agreed to, per connection, in order. */
const backendExtensions: string[] = [];

before(async () => {
  h = await startHarness();
  // A workspace whose WebSocket server accepts compression (the sample workspace does not).
  server = createServer((_req, res) => res.end('compressing workspace\n'));
  wss = new WebSocketServer({ server, perMessageDeflate: { threshold: 0 } });
  wss.on('connection', (ws) => {
    backendExtensions.push(ws.extensions);
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  hostZ = `${port}-alice-z.${ZONE}`;
  h.gitlab.setWorkspaceOwner(44, h.alice);
  h.directory.add({ name: 'alice-z', id: '44', routes: { [hostZ]: port } });
});

after(async () => {
  for (const c of wss.clients) c.terminate();
  wss.close();
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  await h.close();
});

async function openVia(host: string, deflate: boolean): Promise<WebSocket> {
  const { jar, final } = await loginAs(h, h.alice, h.url(host));
  assert.equal(final.status, 200);
  const ws = new WebSocket(`ws://127.0.0.1:${h.port}/echo`, {
    headers: { host: `${host}:${h.port}`, cookie: jar.header(host) ?? '' },
    perMessageDeflate: deflate ? { threshold: 0 } : false,
  });
  await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
  return ws;
}

async function echo(ws: WebSocket, payload: string): Promise<string> {
  const reply = new Promise<string>((r) => ws.once('message', (d: Buffer) => r(d.toString())));
  ws.send(payload);
  return reply;
}

async function closeWs(ws: WebSocket): Promise<void> {
  const closed = new Promise((r) => ws.once('close', r));
  ws.close();
  await closed;
}

test('browser offers compression, workspace does not accept it: neither hop is compressed', async () => {
  const ws = await openVia(h.hostA, true);
  assert.equal(ws.extensions, '');
  assert.equal(await echo(ws, 'plain'), 'plain');
  await closeWs(ws);
});

test('browser offers compression and the workspace accepts it: both hops are compressed', async () => {
  const before = backendExtensions.length;
  const ws = await openVia(hostZ, true);
  assert.match(ws.extensions, /permessage-deflate/);
  assert.match(backendExtensions[before] ?? '', /permessage-deflate/);
  const text = 'compressible '.repeat(400);
  assert.equal(await echo(ws, text), text);
  await closeWs(ws);
});

test('browser does not offer compression: the workspace is not offered it either', async () => {
  const before = backendExtensions.length;
  const ws = await openVia(hostZ, false);
  assert.equal(ws.extensions, '');
  assert.equal(backendExtensions[before], '');
  assert.equal(await echo(ws, 'plain'), 'plain');
  await closeWs(ws);
});
