// `npm run bench`: the built proxy (a separate process, as in production) against direct access to the same
// sample workspace, and against a bare http-proxy-3 process with no authentication (what the library alone
// costs), measured in the same run and reported as ratios. Loopback only; about 40 seconds.
//   BENCH_SECONDS (default 4 per phase), BENCH_CONCURRENCY (default 16)
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { Agent, request } from 'node:http';
import { WebSocket } from 'ws';
import { startStack } from '../support/proxy-stack';
import { browse, send, CookieJar } from '../support/http-harness';

const seconds = Number(process.env.BENCH_SECONDS ?? 4);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 16);

interface Result {
  count: number;
  perSecond: number;
  p50: number;
  p99: number;
}

function summarize(latencies: number[], elapsedMs: number): Result {
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  return { count: latencies.length, perSecond: (latencies.length / elapsedMs) * 1000, p50: at(0.5), p99: at(0.99) };
}

async function httpLoad(port: number, host: string, path: string, cookie?: string): Promise<Result> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const latencies: number[] = [];
  const end = performance.now() + seconds * 1000;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const t0 = performance.now();
      const req = request({ host: '127.0.0.1', port, path, agent, headers: { host, ...(cookie ? { cookie } : {}) } }, (res) => {
        if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
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
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) await one();
    }),
  );
  const r = summarize(latencies, performance.now() - started);
  agent.destroy();
  return r;
}

async function wsRoundTrips(port: number, host: string, cookie?: string): Promise<Result> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/echo`, { headers: { host, ...(cookie ? { cookie } : {}) }, perMessageDeflate: false });
  await new Promise((r, j) => (ws.once('open', r), ws.once('error', j)));
  const latencies: number[] = [];
  const payload = Buffer.alloc(256, 97);
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
  ws.close();
  return summarize(latencies, performance.now() - started);
}

/** A bare keep-alive http-proxy-3 in its own process, no auth: the floor this proxy is built on. */
const bareProxySource = `
const http = require('node:http');
const { createProxyServer } = require('http-proxy-3');
const target = { protocol: 'http:', host: '127.0.0.1', port: Number(process.argv[1]) };
const proxy = createProxyServer({ agent: new http.Agent({ keepAlive: true, scheduling: 'lifo' }), proxyTimeout: 0 });
proxy.on('error', (_e, _q, res) => res.destroy());
const server = http.createServer((req, res) => proxy.web(req, res, { target }));
server.on('upgrade', (req, socket, head) => proxy.ws(req, socket, head, { target }));
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
`;

async function main(): Promise<void> {
  const stack = await startStack({ startInProcess: false });
  const child = spawn(process.execPath, [...(process.env.BENCH_PROF ? ['--cpu-prof', '--cpu-prof-dir=/tmp/prof'] : []), join(__dirname, '..', '..', 'proxy-image', 'dist', 'main.js'), '-config', stack.configPath, '-kubeconfig', stack.kubeconfigPath], {
    env: { ...process.env, WORKSPACES_PROXY_LISTEN_HOST: '127.0.0.1' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  try {
    const host = stack.addWorkspace('bench', '1', stack.alice);
    for (let i = 0; i < 200 && (await send(stack.url(host, '/')).catch(() => ({ status: 0 }))).status !== 302; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    stack.gitlab.autoLoginAs(stack.alice);
    const jar = new CookieJar();
    const { final } = await browse(stack.url(host, '/'), jar);
    if (final.status !== 200) throw new Error(`login failed: ${final.status}`);
    const cookie = jar.header(host);
    const proxiedHost = `${host}:${stack.httpPort}`;
    const directHost = `127.0.0.1:${stack.workspace.port}`;

    const bare = spawn(process.execPath, ['-e', bareProxySource, String(stack.workspace.port)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const barePort = await new Promise<number>((r) => bare.stdout.once('data', (d: Buffer) => r(Number(d.toString().trim()))));

    console.log(`bench: ${seconds}s per phase, ${concurrency} concurrent keep-alive connections, loopback, Node ${process.version}`);
    const rows: [string, Result, Result, Result][] = [];
    try {
      for (const [name, path] of [['GET 1 KiB', '/bytes?size=1024'], ['GET 1 MiB', '/bytes?size=1048576']] as const) {
        const direct = await httpLoad(stack.workspace.port, directHost, path);
        const bareR = await httpLoad(barePort, directHost, path);
        const proxied = await httpLoad(stack.httpPort, proxiedHost, path, cookie);
        rows.push([name, direct, bareR, proxied]);
      }
      rows.push([
        'WebSocket 256 B echo (sequential)',
        await wsRoundTrips(stack.workspace.port, directHost),
        await wsRoundTrips(barePort, directHost),
        await wsRoundTrips(stack.httpPort, proxiedHost, cookie),
      ]);
    } finally {
      bare.kill();
    }

    const f = (n: number) => n.toFixed(n < 10 ? 2 : 0);
    console.log('\n| workload | direct /s | bare http-proxy-3 /s | this proxy /s | vs direct | vs bare | direct p50 ms | proxy p50 ms | proxy p99 ms |');
    console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const [name, d, b, p] of rows) {
      console.log(
        `| ${name} | ${f(d.perSecond)} | ${f(b.perSecond)} | ${f(p.perSecond)} | ${(p.perSecond / d.perSecond).toFixed(2)} | ${(p.perSecond / b.perSecond).toFixed(2)} | ${d.p50.toFixed(3)} | ${p.p50.toFixed(3)} | ${p.p99.toFixed(3)} |`,
      );
    }
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    await stack.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
