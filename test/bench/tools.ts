// The bench's external tools: nginx (a reference proxy) and wrk (the HTTP load generator), both Debian
// packages, installed with apt-get when missing, and run with their own files under a temp dir.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function has(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Installs the Debian packages of the tools that are missing; throws naming what could not be installed. */
export function ensureTools(tools: { cmd: string; pkg: string }[]): void {
  const missing = tools.filter((t) => !has(t.cmd)).map((t) => t.pkg);
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0 || !has('apt-get')) {
    throw new Error(`the bench needs ${missing.join(', ')} (Debian packages): install them as root with apt-get install ${missing.join(' ')}`);
  }
  console.error(`bench: installing ${missing.join(', ')} with apt-get`);
  try {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    execFileSync('apt-get', ['update', '-q'], { stdio: ['ignore', 'ignore', 'inherit'], env });
    execFileSync('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing], { stdio: ['ignore', 'ignore', 'inherit'], env });
  } catch (err) {
    throw new Error(`could not install ${missing.join(', ')} with apt-get: ${(err as Error).message}`);
  }
  const still = tools.filter((t) => !has(t.cmd)).map((t) => t.cmd);
  if (still.length) throw new Error(`still missing after apt-get install: ${still.join(', ')}`);
}

export interface Nginx {
  port: number;
  pid: number;
  stop(): Promise<void>;
}

/**
 * nginx as a reverse proxy to `backendPort`, one process (master_process off, so its CPU is one pid), keep-alive
 * to clients and to the backend as the proxy keeps them (65 s to clients, a pool to the backend), unbuffered
 * like the proxy (responses and request bodies stream), WebSocket upgrades passed through.
 */
export async function startNginx(backendPort: number, port: number): Promise<Nginx> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-nginx-'));
  for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, d));
  const conf = `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
worker_rlimit_nofile 65536;
events { worker_connections 32768; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_timeout 65s;
  keepalive_requests 10000000;
  map $http_upgrade $connection_upgrade { default upgrade; '' ''; }
  upstream workspace {
    server 127.0.0.1:${backendPort};
    keepalive 256;
    keepalive_requests 10000000;
    keepalive_timeout 60s;
  }
  server {
    listen 127.0.0.1:${port};
    client_max_body_size 0;
    location / {
      proxy_pass http://workspace;
      proxy_http_version 1.1;
      proxy_set_header Host $http_host;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 3600s;
    }
  }
}
`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  const child: ChildProcess = spawn('nginx', ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], { stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  // Ready when it accepts connections.
  const { connect } = await import('node:net');
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`nginx exited (${child.exitCode}); see its error log in ${dir}`);
    const ok = await new Promise<boolean>((r) => {
      const s = connect(port, '127.0.0.1', () => (s.destroy(), r(true)));
      s.on('error', () => r(false));
    });
    if (ok) break;
    if (i > 100) throw new Error('nginx did not start listening within 5 s');
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    pid: child.pid!,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGQUIT');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface WrkResult {
  requests: number;
  seconds: number;
  perSecond: number;
  bytesPerSecond: number;
  p50: number;
  p99: number;
  /** Socket errors (connect, read, write, timeout) plus non-2xx/3xx responses. */
  errors: number;
}

const toMs = (v: string, unit: string) => Number(v) * ({ us: 0.001, ms: 1, s: 1000, m: 60_000 }[unit] ?? NaN);
const toBytes = (v: string, unit: string) => Number(v) * ({ B: 1, KB: 1024, MB: 1048576, GB: 1073741824 }[unit] ?? NaN);

/** Parses wrk's report (run with --latency). */
export function parseWrk(out: string): WrkResult {
  const m = /(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(out);
  if (!m) throw new Error(`unexpected wrk output:\n${out}`);
  const lat = (q: string) => {
    const r = new RegExp(`^\\s*${q}%\\s+([\\d.]+)(us|ms|s|m)`, 'm').exec(out);
    return r ? toMs(r[1]!, r[2]!) : NaN;
  };
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const transfer = /Transfer\/sec:\s+([\d.]+)(B|KB|MB|GB)/.exec(out);
  const seconds = toMs(m[2]!, m[3]!) / 1000;
  return {
    requests: Number(m[1]),
    seconds,
    perSecond: Number(m[1]) / seconds,
    bytesPerSecond: transfer ? toBytes(transfer[1]!, transfer[2]!) : NaN,
    p50: lat('50'),
    p99: lat('99'),
    errors: (sock ? sock.slice(1).reduce((a, x) => a + Number(x), 0) : 0) + (non2xx ? Number(non2xx[1]) : 0),
  };
}

/** Runs wrk against 127.0.0.1:port with keep-alive connections (wrk's default) and the given headers. */
export function wrk(o: { port: number; path: string; connections: number; seconds: number; headers: Record<string, string>; threads?: number }): Promise<WrkResult> {
  const args = ['--latency', '-t', String(Math.min(o.threads ?? 2, o.connections)), '-c', String(o.connections), '-d', `${o.seconds}s`, '--timeout', '10s'];
  for (const [k, v] of Object.entries(o.headers)) args.push('-H', `${k}: ${v}`);
  args.push(`http://127.0.0.1:${o.port}${o.path}`);
  return new Promise((resolve, reject) => {
    const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`wrk exited ${code}:\n${out}`));
      try {
        resolve(parseWrk(out));
      } catch (err) {
        reject(err as Error);
      }
    });
  });
}
