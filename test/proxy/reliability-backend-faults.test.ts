// Backend faults (issue 13): workspaces that reset connections, answer late (headers late; a body that
// stalls), or send something that is not HTTP. The browser gets a readable 502 page from the catalogue
// (http/pages.ts; "not reachable", or "did not answer" when the headers are late), a started stream is never cut for being silent (SSE, long polls), an upload
// slower than the headers timeout still goes through, and another workspace served at the same time is
// unaffected. The response-headers timeout is shortened to 1 s here (production: BACKEND_HEADERS_TIMEOUT_MS).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpServer, request, type Server as HttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { startHarness, loginAs, send, ZONE, type Harness, type Reply } from '../support/http-harness';
import { answers } from '../../proxy-image/src/http/pages';

const HEADERS_TIMEOUT_MS = 1000;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A TCP server that does `onData` with each connection once the request starts arriving. */
async function rawBackend(onData: (socket: Socket) => void): Promise<{ port: number; server: Server; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.once('data', () => onData(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { port: (server.address() as AddressInfo).port, server, sockets };
}

function assertPage(r: Reply, a: { status: number; title: string }): void {
  assert.equal(r.status, a.status, r.body);
  assert.match(String(r.headers['content-type']), /^text\/html/);
  assert.ok(r.body.includes(`<h1>${a.title}</h1>`), r.body);
}

describe('workspaces that fail: readable 502 pages, others unaffected', () => {
  let h: Harness;
  const backends: { server: Server | HttpServer; sockets?: Set<Socket> }[] = [];
  /** Stalled responses of the slow backend, released at the end. */
  const held = new Set<() => void>();
  const hosts = { reset: `1-faulty.${ZONE}`, invalid: `2-faulty.${ZONE}`, slow: `3-faulty.${ZONE}`, stall: `4-faulty.${ZONE}` };
  const cookies: Record<string, string> = {};
  let cookieA: string;

  before(async () => {
    h = await startHarness({ backendHeadersTimeoutMs: HEADERS_TIMEOUT_MS });
    const reset = await rawBackend((s) => s.resetAndDestroy());
    const invalid = await rawBackend((s) => s.end('THIS IS NOT HTTP\r\n\r\n'));
    // Headers late: /upload reads the body first (answers when it is all in), every other path never answers.
    const slow = createHttpServer((req, res) => {
      if (req.url === '/upload') {
        let bytes = 0;
        req.on('data', (c: Buffer) => (bytes += c.length));
        req.on('end', () => res.end(`got ${bytes}`));
        return;
      }
      held.add(() => res.destroy());
    });
    // Body stalls on /stream: headers and a first chunk at once, the rest only when the test says so.
    const stall = createHttpServer((req, res) => {
      if (req.url !== '/stream') return res.end('ok');
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first part;');
      held.add(() => res.end('rest'));
    });
    for (const s of [slow, stall]) await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    backends.push(reset, invalid, { server: slow }, { server: stall });
    h.gitlab.setWorkspaceOwner(44, h.alice);
    h.directory.add({
      name: 'faulty', id: '44',
      routes: {
        [hosts.reset]: reset.port, [hosts.invalid]: invalid.port,
        [hosts.slow]: (slow.address() as AddressInfo).port, [hosts.stall]: (stall.address() as AddressInfo).port,
      },
    });
    cookieA = (await loginAs(h, h.alice, h.url(h.hostA, '/'))).jar.header(h.hostA)!;
    // Each host has its own session; the login's last hop already meets the fault (that is fine here).
    for (const [name, host] of Object.entries(hosts)) {
      cookies[name] = (await loginAs(h, h.alice, h.url(host, '/'))).jar.header(host)!;
    }
  });
  after(async () => {
    for (const release of held) release();
    for (const b of backends) {
      for (const s of b.sockets ?? []) s.destroy();
      if ('closeAllConnections' in b.server) b.server.closeAllConnections();
      await new Promise<void>((r) => b.server.close(() => r()));
    }
    await h?.close();
  });

  const get = (host: string, cookie: string, path = '/') => send(h.url(host, path), { headers: { cookie } });

  test('a workspace that resets every connection: 502 page, while another workspace answers every request', async () => {
    const [faulty, healthy] = await Promise.all([
      Promise.all(Array.from({ length: 30 }, () => get(hosts.reset, cookies.reset!))),
      Promise.all(Array.from({ length: 30 }, () => get(h.hostA, cookieA, '/echo-request'))),
    ]);
    for (const r of faulty) assertPage(r, answers.workspaceUnreachable);
    assert.deepEqual(healthy.map((r) => r.status), Array(30).fill(200));
  });

  test('a workspace that answers with something that is not HTTP: 502 page', async () => {
    assertPage(await get(hosts.invalid, cookies.invalid!), answers.workspaceUnreachable);
    assert.equal((await get(h.hostA, cookieA, '/echo-request')).status, 200);
  });

  test('response headers later than the timeout: 502 "did not answer" page; another workspace is served meanwhile', async () => {
    const late = get(hosts.slow, cookies.slow!, '/never');
    let lateDone = false;
    void late.then(() => (lateDone = true));
    // While that request waits for its headers, the other workspace answers (one by one, counting the
    // answers that came while the late one was still pending).
    let meanwhile = 0;
    for (let i = 0; i < 5; i++) {
      assert.equal((await get(h.hostA, cookieA, '/echo-request')).status, 200);
      if (!lateDone) meanwhile++;
    }
    assert.ok(meanwhile >= 1, 'the other workspace answered while the late request was waiting');
    assertPage(await late, answers.workspaceTimeout);
  });

  test('an upload that takes longer than the headers timeout is not cut by it', async () => {
    const chunks = 6;
    const body = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request({
        host: '127.0.0.1', port: h.port, method: 'POST', path: '/upload',
        headers: { host: `${hosts.slow}:${h.port}`, cookie: cookies.slow!, 'transfer-encoding': 'chunked' }, agent: false,
      }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      });
      req.on('error', reject);
      void (async () => {
        // 6 × 500 ms = 3 × the headers timeout of trickled upload.
        for (let i = 0; i < chunks; i++) {
          req.write(Buffer.alloc(1000, 1));
          await sleep(HEADERS_TIMEOUT_MS / 2);
        }
        req.end();
      })();
    });
    assert.deepEqual(body, { status: 200, text: `got ${chunks * 1000}` });
  });

  test('a body that stalls after the headers is not cut (SSE and long streams may be silent); it ends when the workspace ends it', async () => {
    const got = await new Promise<{ status: number; first: string; rest: Promise<string> }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: h.port, path: '/stream', headers: { host: `${hosts.stall}:${h.port}`, cookie: cookies.stall! }, agent: false }, (res) => {
        res.setEncoding('utf8');
        let text = '';
        const rest = new Promise<string>((r, j) => {
          res.on('end', () => r(text));
          res.on('error', j);
          res.on('close', () => (res.complete ? undefined : j(new Error('cut before the end'))));
        });
        res.once('data', (first: string) => {
          res.on('data', (d: string) => (text += d));
          resolve({ status: res.statusCode ?? 0, first, rest });
        });
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(got.status, 200);
    assert.equal(got.first, 'first part;');
    // Silent for 3 × the headers timeout: still open.
    await sleep(3 * HEADERS_TIMEOUT_MS);
    assert.equal((await get(h.hostA, cookieA, '/echo-request')).status, 200, 'another workspace is served meanwhile');
    for (const release of held) release();
    held.clear();
    assert.equal(await got.rest, 'rest');
  });
});
