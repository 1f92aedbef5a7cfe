// Hostile input on the HTTP port, end to end (issue 13): a bounded fuzz loop of raw requests (targets,
// Host headers, cookies, sealed tokens of the login flow, header sizes) and slowloris clients, against the
// proxy as app.ts assembles it. Properties: every request gets an answer and no 5xx (the sample workspace
// never answers 5xx, so one would be the proxy's own), no error is logged, the proxy keeps serving, slow
// and silent connections are closed by the headers timeout, and memory stays bounded.
// Parser-level properties are parsers.property.test.ts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import fc from 'fast-check';
import { heapAfterGc, MiB } from '../support/heap';
import type { DestinationStream } from 'pino';
import { createLogger } from '../../proxy-image/src/observability/logger';
import { startHarness, loginAs, send, CookieJar, PROXY_DOMAIN, type Harness } from '../support/http-harness';


/** Short, so the slowloris test waits seconds, not the production 30 s. */
const HEADERS_TIMEOUT_MS = 4_000;

interface LogLine { level: number; msg: string; [k: string]: unknown }

/** Sends `text` on a fresh connection and collects everything until the server closes (bounded). */
function exchange(port: number, text: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.write(text));
    const chunks: Buffer[] = [];
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    s.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' || err.code === 'EPIPE' ? undefined : reject(err)));
    s.setTimeout(10_000, () => s.destroy(new Error('no answer within 10 s')));
  });
}

/** The final status of an answer (after any `100 Continue`). */
const statusOf = (answer: string): number | undefined => {
  const m = /^HTTP\/1\.1 (\d{3}) /.exec(answer.replace(/^HTTP\/1\.1 100 Continue\r\n\r\n/, ''));
  return m ? Number(m[1]) : undefined;
};

describe('hostile HTTP input', () => {
  let h: Harness;
  const logs: LogLine[] = [];
  let jar: CookieJar;
  let session: string;

  before(async () => {
    const dest: DestinationStream = { write: (s: string) => void logs.push(JSON.parse(s) as LogLine) };
    h = await startHarness({ logger: createLogger('info', dest), headersTimeoutMs: HEADERS_TIMEOUT_MS });
    jar = (await loginAs(h, h.alice, h.url(h.hostA, '/'))).jar;
    session = jar.get(h.hostA, 'wsp-session')!;
    assert.ok(session);
  });
  after(() => h.close());

  /** A normal signed-in request: the proxy still serves. */
  async function stillServes(): Promise<void> {
    const r = await send(h.url(h.hostA, '/'), { jar });
    assert.equal(r.status, 200);
  }

  test('a fuzz loop of raw requests: always an answer, never a 5xx, nothing logged as an error', async () => {
    const text = (max: number) => fc.string({ unit: 'binary', maxLength: max }).map((s) => Buffer.from(s, 'utf8').toString('latin1'));
    const noCrLf = (max: number) => text(max).map((s) => s.replace(/[\r\n]/g, ''));
    const tampered = fc.nat().map((i) => {
      const at = i % session.length;
      return session.slice(0, at) + (session[at] === 'A' ? 'B' : 'A') + session.slice(at + 1);
    });
    const token = fc.oneof(noCrLf(200), fc.string({ unit: fc.constantFrom(...'AZaz09-_'), maxLength: 400 }), tampered, fc.constant(session));
    // Mostly well-formed requests with one hostile part, so most reach the proxy's own code (routing, login
    // flow, sessions) rather than stopping at Node's parser; some are malformed outright.
    const often = <T>(usual: fc.Arbitrary<T>, rare: fc.Arbitrary<T>) => fc.oneof({ arbitrary: usual, weight: 6 }, { arbitrary: rare, weight: 1 });
    const host = often(
      fc.constantFrom(`${h.hostA}:${h.port}`, `${h.hostB}:${h.port}`, `${PROXY_DOMAIN}:${h.port}`, `${h.hostA.toUpperCase()}:${h.port}`,
        `${h.hostA}.:${h.port}`, 'unknown.workspaces.test', h.hostA),
      fc.oneof(fc.constantFrom('localhost', '127.0.0.1', `[::1]:${h.port}`, '', `${h.hostA}:99999`, `user@${h.hostA}`), noCrLf(80)),
    );
    const target = fc.oneof(
      fc.webPath(),
      fc.constantFrom('*', '/', '//evil.test/x', '/\\evil.test', '/.workspaces-proxy/logout', '/.workspaces-proxy/nope', '/%00', '/..%2f..%2f'),
      token.map((t) => `/.workspaces-proxy/handoff?t=${encodeURIComponent(t)}`),
      token.map((t) => `/auth/login?t=${encodeURIComponent(t)}`),
      fc.tuple(token, fc.boolean()).map(([t, code]) => `/auth/callback?state=${encodeURIComponent(t)}${code ? '&code=x' : '&error=access_denied'}`),
      fc.tuple(fc.constantFrom('http', 'https', 'HTTP', 'ftp'), host, fc.webPath()).map(([s, a, p]) => `${s}://${a}${p}`),
      noCrLf(300).map((s) => s.replace(/ /g, '')),
      fc.integer({ min: 1, max: 20_000 }).map((n) => `/${'a'.repeat(n)}`),
    );
    const cookie = fc.oneof(
      fc.constant(`wsp-session=${session}`),
      tampered.map((t) => `wsp-session=${t}`),
      token.map((t) => `wsp-session=${t}; wsp-login=${t}; wsp-oauth-${t.slice(0, 16)}=${t}`),
      fc.integer({ min: 1, max: 200 }).map((n) => Array.from({ length: n }, (_, i) => `wsp-session=${session.slice(0, 40 + (i % 30))}`).join('; ')),
      noCrLf(500),
    );
    const extra = fc.array(often(
      fc.oneof(
        fc.tuple(fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,20}$/), noCrLf(100)).map(([n, v]) => `${n}: ${v}`),
        fc.constantFrom('Expect: 100-continue', 'Upgrade: websocket\r\nConnection: Upgrade',
          'Origin: http://evil.test', `Origin: http://${h.hostB}:${h.port}`, 'Origin: null', 'Host: second.host', 'X-Forwarded-Host: evil.test'),
      ),
      fc.oneof(
        fc.constantFrom('Content-Length: 5\r\nContent-Length: 6', 'Content-Length: -1', 'Content-Length: 1\r\nTransfer-Encoding: chunked', ': no name'),
        fc.integer({ min: 1, max: 20_000 }).map((n) => `X-Big: ${'b'.repeat(n)}`),
        noCrLf(60),
      ),
    ), { maxLength: 4 });
    const request = fc.record({
      method: often(fc.constantFrom('GET', 'GET', 'GET', 'HEAD', 'POST', 'PUT', 'OPTIONS', 'DELETE'), fc.constantFrom('CONNECT', 'PRI', 'G E T', 'get', 'TRACE')),
      target, host: often(host, fc.constant(null)), cookie: fc.option(cookie, { freq: 3 }), extra,
      // Complete bodies only: a signed-in request is forwarded and waits for its body, as an upload may.
      body: fc.option(fc.tuple(noCrLf(50), fc.constantFrom('Content-Length', 'chunked', 'gzip, chunked'))),
      version: often(fc.constant('HTTP/1.1'), fc.constantFrom('HTTP/1.0', 'HTTP/2.0', 'HTTP/1.1x', 'HTTP/0.9')),
    });

    const heapBefore = heapAfterGc();
    const unknownHostLinesBefore = logs.filter((l) => l.msg.startsWith('could not find upstream workspace')).length;
    const started = Date.now();
    let sent = 0;
    const statuses = new Map<number | string, number>();
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        let framing: string[] = [];
        let body = '';
        if (r.body !== null) {
          const [text, how] = r.body;
          const bytes = Buffer.byteLength(text, 'latin1');
          framing = how === 'Content-Length' ? [`Content-Length: ${bytes}`] : [`Transfer-Encoding: ${how}`];
          body = how === 'Content-Length' ? text : `${bytes ? `${bytes.toString(16)}\r\n${text}\r\n` : ''}0\r\n\r\n`;
        }
        const head = [`${r.method} ${r.target} ${r.version}`, ...(r.host === null ? [] : [`Host: ${r.host}`]),
          ...(r.cookie === null ? [] : [`Cookie: ${r.cookie}`]), ...r.extra, ...framing, 'Connection: close'];
        const answer = await exchange(h.port, Buffer.from(`${head.join('\r\n')}\r\n\r\n${body}`, 'latin1'));
        sent++;
        const status = statusOf(answer);
        statuses.set(status ?? 'none', (statuses.get(status ?? 'none') ?? 0) + 1);
        assert.ok(status !== undefined, `no HTTP answer: ${JSON.stringify(answer.slice(0, 200))}`);
        assert.ok(status < 500, `answered ${status}: ${answer.slice(0, 300)}`);
      }),
      { numRuns: 1000, includeErrorInReport: true },
    );
    const minutes = Math.ceil((Date.now() - started) / 60_000) + 1;
    console.log(`fuzz: ${sent} requests, statuses ${JSON.stringify(Object.fromEntries(statuses))}`);
    assert.deepEqual(logs.filter((l) => l.level >= 50), [], 'nothing logged as an error');
    // The unknown-host line is rate-limited (5 a minute): a scanner cannot flood the log.
    const unknownHostLines = logs.filter((l) => l.msg.startsWith('could not find upstream workspace')).length - unknownHostLinesBefore;
    assert.ok(unknownHostLines <= 5 * minutes, `${unknownHostLines} unknown-host lines`);
    await stillServes();
    const grown = (heapAfterGc() - heapBefore) / MiB;
    console.log(`fuzz: heap grew ${grown.toFixed(1)} MiB`);
    assert.ok(grown < 32, `heap grew ${grown.toFixed(1)} MiB over ${sent} requests`);
  });

  test('found by the fuzz loop: `//` paths on the proxy domain, `*` targets and CONNECT get a clear 4xx (were 500, 502 and a dropped connection)', async () => {
    for (const method of ['GET', 'OPTIONS']) {
      const answer = await exchange(h.port, `${method} * HTTP/1.1\r\nHost: ${h.hostA}:${h.port}\r\nCookie: wsp-session=${session}\r\nConnection: close\r\n\r\n`);
      assert.equal(statusOf(answer), 400, `${method} *: ${answer.slice(0, 200)}`);
      assert.match(answer, /request target is not a path/);
    }
    for (const path of ['//', '//x', '///auth/login', '//[']) {
      const answer = await exchange(h.port, `GET ${path} HTTP/1.1\r\nHost: ${PROXY_DOMAIN}:${h.port}\r\nConnection: close\r\n\r\n`);
      assert.equal(statusOf(answer), 400, `${path}: ${answer.slice(0, 200)}`);
      assert.match(answer, /Open your workspace from GitLab/);
    }
    const handoff = await exchange(h.port, `GET //.workspaces-proxy/handoff HTTP/1.1\r\nHost: ${h.hostA}:${h.port}\r\nConnection: close\r\n\r\n`);
    assert.ok([302, 400].includes(statusOf(handoff)!), handoff.slice(0, 200));
    for (const target of [`${h.hostA}:${h.port}`, '/', 'evil.test:443']) {
      const answer = await exchange(h.port, `CONNECT ${target} HTTP/1.1\r\nHost: ${h.hostA}:${h.port}\r\n\r\n`);
      assert.equal(statusOf(answer), 405, `CONNECT ${target}: ${JSON.stringify(answer.slice(0, 200))}`);
    }
    assert.deepEqual(logs.filter((l) => l.level >= 50), []);
  });

  test('header sizes: up to the limit served, over it 431, thousands of headers fine', async () => {
    const get = (headers: string[]) => exchange(h.port, `GET / HTTP/1.1\r\nHost: ${h.hostA}:${h.port}\r\nCookie: wsp-session=${session}\r\n${headers.join('\r\n')}\r\nConnection: close\r\n\r\n`);
    const under = await get([`X-Pad: ${'p'.repeat(12_000)}`]);
    assert.equal(statusOf(under), 200);
    const over = await get([`X-Pad: ${'p'.repeat(17_000)}`]);
    assert.equal(statusOf(over), 431);
    const overInMany = await get(Array.from({ length: 2_000 }, (_, i) => `X-H${i}: ${'v'.repeat(10)}`));
    assert.equal(statusOf(overInMany), 431, 'the limit is on all headers together');
    const many = await get(Array.from({ length: 1_000 }, (_, i) => `X${i}: v`));
    assert.equal(statusOf(many), 200);
    // A Cookie header full of session look-alikes: each is tried and refused, with bounded work.
    const lookalikes = Array.from({ length: 200 }, (_, i) => `wsp-session=${session.slice(0, 45 + (i % 20))}`).join('; ');
    const crowded = await exchange(h.port, `GET / HTTP/1.1\r\nHost: ${h.hostA}:${h.port}\r\nCookie: ${lookalikes}\r\nConnection: close\r\n\r\n`);
    assert.equal(statusOf(crowded), 302, 'to the login');
    await stillServes();
  });

  test('slowloris: hundreds of half-sent requests do not hold up a normal one, and the headers timeout closes them', async () => {
    const heapBefore = heapAfterGc();
    const rssBefore = process.memoryUsage().rss;
    /** `dialedAt`: before connecting, so no earlier than the proxy's own clock for the connection starts. */
    interface Slow { socket: Socket; dialedAt: number; openedAt: number; closedAt?: number; answer: string; closed: Promise<void> }
    const open = (first: string | undefined, trickle: boolean): Promise<Slow> =>
      new Promise((resolve, reject) => {
        const dialedAt = Date.now();
        const socket = connect(h.port, '127.0.0.1');
        const slow: Slow = { socket, dialedAt, openedAt: 0, answer: '', closed: new Promise((r) => socket.once('close', () => r())) };
        let timer: NodeJS.Timeout | undefined;
        socket.on('data', (d: Buffer) => (slow.answer += d.toString('latin1')));
        socket.on('error', () => {});
        socket.once('close', () => {
          slow.closedAt = Date.now();
          clearInterval(timer);
        });
        socket.once('connect', () => {
          slow.openedAt = Date.now();
          if (first !== undefined) socket.write(first);
          // One header byte every 200 ms: the headers timeout counts from the first byte, so this does not help.
          if (trickle) timer = setInterval(() => socket.write('a'), 200);
          resolve(slow);
        });
        socket.once('error', reject);
      });
    const half = `GET / HTTP/1.1\r\nHost: ${h.hostA}:${h.port}\r\nX-Slow: `;
    const clients: Slow[] = [];
    for (let i = 0; i < 300; i++) clients.push(await open(half, i % 2 === 0));
    for (let i = 0; i < 100; i++) clients.push(await open(undefined, false)); // connect and say nothing
    const allOpenAt = Date.now();

    // A normal request is served at once, while the slow clients still hold their connections: every one
    // younger than the headers timeout when the answer came (on a loaded machine opening 400 one by one can
    // take longer than the timeout, so the first ones may rightly be gone already).
    await stillServes();
    const servedAt = Date.now();
    const young = clients.filter((c) => servedAt - c.dialedAt < HEADERS_TIMEOUT_MS);
    assert.ok(young.length > 0, `opening the slow clients and serving the normal request took ${servedAt - clients[0]!.dialedAt} ms`);
    const closedEarly = young.filter((c) => c.closedAt !== undefined).length;
    assert.equal(closedEarly, 0, `${closedEarly} of ${young.length} slow clients were closed before the headers timeout`);

    await Promise.all(clients.map((c) => c.closed));
    // Each is closed by the headers timeout (bound: 2 × timeout + 1 s after it connected), with a 408.
    for (const c of clients) {
      assert.ok(c.closedAt! - c.openedAt <= 2 * HEADERS_TIMEOUT_MS + 1_000, `closed after ${c.closedAt! - c.openedAt} ms`);
      assert.ok(c.answer === '' || statusOf(c.answer) === 408, c.answer.slice(0, 100));
    }
    assert.ok(clients.filter((c) => statusOf(c.answer) === 408).length >= 300, 'the half-sent requests were told 408');
    console.log(`slowloris: ${clients.length} clients opened in ${allOpenAt - clients[0]!.openedAt} ms (${young.length} open when the normal request was answered), ` +
      `all closed ${Date.now() - allOpenAt} ms after the last connected`);
    await stillServes();
    const grown = (heapAfterGc() - heapBefore) / MiB;
    console.log(`slowloris: heap grew ${grown.toFixed(1)} MiB, RSS ${((process.memoryUsage().rss - rssBefore) / MiB).toFixed(1)} MiB`);
    assert.ok(grown < 32, `heap grew ${grown.toFixed(1)} MiB`);
  });

  test('a refused request whose body never finishes is answered and its connection closed, without waiting for a timeout', async () => {
    // requestTimeout is 0 (uploads may take any time), so only the proxy closing them ends these connections.
    const targets = [
      `Host: unknown.workspaces.test:${h.port}`, // no workspace
      `Host: ${h.hostA}:${h.port}`, // no session: 401
      `Host: ${h.hostA}:${h.port}\r\nCookie: wsp-session=${session}\r\nOrigin: http://${h.hostB}:${h.port}`, // another workspace's page: 403
    ];
    const answers = await Promise.all(Array.from({ length: 60 }, (_, i) =>
      new Promise<string>((resolve, reject) => {
        const s = connect(h.port, '127.0.0.1', () =>
          s.write(`POST /upload HTTP/1.1\r\n${targets[i % targets.length]}\r\nContent-Length: 100000000\r\n\r\npartial body`));
        let answer = '';
        s.on('data', (d: Buffer) => (answer += d.toString('latin1')));
        s.on('error', () => {});
        s.on('close', () => resolve(answer));
        s.setTimeout(20_000, () => reject(new Error('connection with a pending body was left open')));
      })));
    for (const answer of answers) {
      assert.ok([400, 401, 403].includes(statusOf(answer)!), answer.slice(0, 100));
      assert.match(answer, /\r\nconnection: close\r\n/i);
    }
    await stillServes();
  });
});
