// Load generators of the bench (loopback only). Each runs for a bounded time or a bounded amount of data.
import { randomBytes } from 'node:crypto';
import { Agent, request } from 'node:http';
import { WebSocket } from 'ws';
import { Client } from 'ssh2';
import { writeBytes } from '../support/write-bytes';

export interface Target {
  port: number;
  /** Host header. */
  host: string;
  cookie?: string;
}

export interface RateResult {
  count: number;
  seconds: number;
  perSecond: number;
  p50: number;
  p99: number;
}

function summarize(latencies: number[], elapsedMs: number): RateResult {
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  return { count: latencies.length, seconds: elapsedMs / 1000, perSecond: (latencies.length / elapsedMs) * 1000, p50: at(0.5), p99: at(0.99) };
}

const headersFor = (t: Target): Record<string, string> => ({ host: t.host, ...(t.cookie ? { cookie: t.cookie } : {}) });

/** `concurrency` keep-alive connections issuing GETs back to back for `seconds`. */
export async function httpLoad(t: Target, path: string, seconds: number, concurrency: number): Promise<RateResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const latencies: number[] = [];
  const end = performance.now() + seconds * 1000;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const t0 = performance.now();
      const req = request({ host: '127.0.0.1', port: t.port, path, agent, headers: headersFor(t) }, (res) => {
        if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode} for ${path}`));
        res.resume();
        res.on('end', () => {
          latencies.push(performance.now() - t0);
          resolve();
        });
      });
      req.on('error', reject);
      req.end();
    });
  const started = performance.now();
  try {
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < end) await one();
      }),
    );
  } finally {
    agent.destroy();
  }
  return summarize(latencies, performance.now() - started);
}

export interface StreamResult {
  bytes: number;
  seconds: number;
  mibPerSecond: number;
}

/** One large download over one connection, read as fast as the client can. */
export function download(t: Target, bytes: number): Promise<StreamResult> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = request({ host: '127.0.0.1', port: t.port, path: `/bytes?size=${bytes}`, headers: headersFor(t), agent: false }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`download status ${res.statusCode}`));
      let got = 0;
      res.on('data', (c: Buffer) => (got += c.length));
      res.on('end', () => {
        const seconds = (performance.now() - started) / 1000;
        if (got !== bytes) return reject(new Error(`download got ${got} of ${bytes} bytes`));
        resolve({ bytes, seconds, mibPerSecond: bytes / 1048576 / seconds });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** One large streamed upload (64 KiB writes, backpressure honoured) to the workspace's byte counter. */
export function upload(t: Target, bytes: number): Promise<StreamResult> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = request(
      { host: '127.0.0.1', port: t.port, method: 'POST', path: '/echo-request', headers: { ...headersFor(t), 'content-length': String(bytes) }, agent: false },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => {
          const seconds = (performance.now() - started) / 1000;
          const counted = res.statusCode === 200 ? (JSON.parse(body) as { bodyBytes: number }).bodyBytes : -1;
          if (counted !== bytes) return reject(new Error(`upload: workspace counted ${counted} of ${bytes} bytes (status ${res.statusCode})`));
          resolve({ bytes, seconds, mibPerSecond: bytes / 1048576 / seconds });
        });
      },
    );
    req.on('error', reject);
    writeBytes(req, bytes, 121);
  });
}

function openWs(t: Target, deflate = false): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${t.port}/echo`, { headers: headersFor(t), perMessageDeflate: deflate });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/**
 * Sequential 256 B echo round trips on one WebSocket for `seconds`. `deflate`: the client offers
 * permessage-deflate, as every browser does (random payload, so compression cannot shrink it away).
 */
export async function wsRoundTrips(t: Target, seconds: number, deflate = false): Promise<RateResult> {
  const ws = await openWs(t, deflate);
  const latencies: number[] = [];
  const payload = deflate ? randomBytes(256) : Buffer.alloc(256, 97);
  const end = performance.now() + seconds * 1000;
  const started = performance.now();
  while (performance.now() < end) {
    const t0 = performance.now();
    await new Promise<void>((r) => {
      ws.once('message', () => r());
      ws.send(payload);
    });
    latencies.push(performance.now() - t0);
  }
  const elapsed = performance.now() - started;
  ws.close();
  return summarize(latencies, elapsed);
}

/**
 * `n` open, idle WebSockets (opened `batch` at a time); each has echoed one message end to end.
 * `deflate`: the client offers permessage-deflate, as browsers do.
 */
export async function idleWebSockets(t: Target, n: number, deflate = false, batch = 50): Promise<WebSocket[]> {
  const all: WebSocket[] = [];
  for (let i = 0; i < n; i += batch) {
    const opened = await Promise.all(Array.from({ length: Math.min(batch, n - i) }, () => openWs(t, deflate)));
    await Promise.all(
      opened.map((ws) => new Promise<void>((r) => (ws.once('message', () => r()), ws.send('hello')))),
    );
    all.push(...opened);
  }
  return all;
}

export async function closeWebSockets(sockets: WebSocket[]): Promise<void> {
  await Promise.all(
    sockets.map((ws) => new Promise<void>((r) => (ws.readyState === WebSocket.CLOSED ? r() : (ws.once('close', () => r()), ws.close())))),
  );
}

/** `n` SSH connections through the proxy, each running an idle `sleep` (a terminal nobody types in). */
export async function idleSsh(port: number, username: string, password: string, n: number, batch = 10): Promise<Client[]> {
  const all: Client[] = [];
  const one = () =>
    new Promise<Client>((resolve, reject) => {
      const c = new Client();
      c.once('error', reject);
      c.once('ready', () => {
        c.exec('sleep 3600', (err, stream) => {
          if (err) return reject(err);
          stream.on('data', () => {});
          stream.stderr.on('data', () => {});
          resolve(c);
        });
      });
      c.connect({ host: '127.0.0.1', port, username, password, hostVerifier: () => true, readyTimeout: 30_000 });
    });
  try {
    for (let i = 0; i < n; i += batch) all.push(...(await Promise.all(Array.from({ length: Math.min(batch, n - i) }, one))));
  } catch (err) {
    for (const c of all) c.end();
    throw err;
  }
  return all;
}

export async function closeSsh(clients: Client[]): Promise<void> {
  await Promise.all(clients.map((c) => new Promise<void>((r) => (c.once('close', () => r()), c.end()))));
}
