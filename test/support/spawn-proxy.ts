// Runs the BUILT proxy (`node proxy-image/dist/main.js -config <f> -kubeconfig <k>`) as a child process, the
// way the container does, for process-level tests (docs/contract.md §1, §2): flags, exit codes, logs, signals.
//
//   const p = await spawnProxy({ config: validConfig({ gitlabUrl }), kubeconfigPath });
//   const addrs = await p.listening;        // parsed from the 'proxy listening' log line
//   p.logs();                               // stdout JSON lines parsed so far
//   const { code } = await p.stop();        // SIGTERM, wait for exit
//   const r = await runProxyToExit({ config: 'auth: {}' });   // { code, stdout, stderr } for start-up failures
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, statSync, readdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { pickPort } from './ports';

export const repoRoot = join(__dirname, '..', '..');
export const mainJs = join(repoRoot, 'proxy-image', 'dist', 'main.js');
const srcDir = join(repoRoot, 'proxy-image', 'src');

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(path));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

let built = false;

/**
 * Builds the proxy when dist/main.js is missing or older than a source file. Several test files may ask at
 * once (node --test runs files in parallel), so the check and the build run again under one flock.
 */
export function ensureBuilt(): void {
  if (built) return;
  if (!existsSync(mainJs) || statSync(mainJs).mtimeMs < newestMtime(srcDir)) {
    const script = [
      'set -e',
      `if [ ! -f "$1" ] || [ -n "$(find "$2" -name '*.ts' -newer "$1" -print -quit)" ]; then`,
      '  npm run --silent build',
      // tsc may leave main.js untouched when its text did not change; mark the build as current.
      '  touch "$1"',
      'fi',
    ].join('\n');
    try {
      execFileSync('flock', ['-w', '300', join(tmpdir(), 'gitlab-workspaces-proxy-build.lock'), 'sh', '-c', script, 'sh', mainJs, srcDir], {
        cwd: repoRoot,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (err) {
      const e = err as { stdout?: Buffer; stderr?: Buffer; message: string };
      throw new Error(`npm run build failed: ${e.message}\n${e.stdout?.toString() ?? ''}${e.stderr?.toString() ?? ''}`);
    }
  }
  built = true;
}

export interface Ports {
  http: number;
  internal: number;
  ssh: number;
}

/** Free loopback ports for one proxy (the schema has no port 0, so these are probed then released). */
export async function freePorts(): Promise<Ports> {
  const ports = new Set<number>();
  while (ports.size < 3) ports.add(await pickPort());
  const [http, internal, ssh] = [...ports] as [number, number, number];
  return { http, internal, ssh };
}

export const testSecrets = {
  clientSecret: 'spawn-test-client-secret-7f3a9c',
  signingKey: 'spawn-test-signing-key-2b8e41d6c0a5f917',
};

/** One JSON log line of the proxy (pino). */
export type LogLine = Record<string, unknown>;

/** A config file as plain data, so tests can add, break or delete any key. */
export interface ConfigDoc {
  auth: Record<string, unknown>;
  http: Record<string, unknown>;
  ssh?: Record<string, unknown>;
  [key: string]: unknown;
}

/** A complete, valid config object (plain data, so tests can break any part of it). */
export function validConfig(o: { ports: Ports; gitlabUrl?: string; logLevel?: string; redirectHost?: string }): ConfigDoc {
  return {
    auth: {
      client_id: 'spawn-test-client',
      client_secret: testSecrets.clientSecret,
      host: o.gitlabUrl ?? 'http://127.0.0.1:9',
      redirect_uri: `http://${o.redirectHost ?? 'auth.workspaces.test'}:${o.ports.http}/auth/callback`,
      signing_key: testSecrets.signingKey,
      protocol: 'http',
    },
    http: { port: o.ports.http, internal_port: o.ports.internal },
    log_level: o.logLevel ?? 'info',
  };
}

export interface ListenAddress {
  address: string;
  port: number;
  family?: string;
}
export interface ListeningAddresses {
  internal: ListenAddress;
  http?: ListenAddress;
  ssh?: ListenAddress;
}

export interface SpawnOptions {
  /** Object (written as YAML) or raw file text. */
  config: unknown;
  kubeconfigPath?: string;
  /** Arguments after main.js; `{config}` and `{kubeconfig}` are replaced by the paths. Default: Go-style flags. */
  args?: string[];
  /** Extra environment (the proxy always gets WORKSPACES_PROXY_LISTEN_HOST=127.0.0.1). */
  env?: Record<string, string>;
  /** How long to wait for 'proxy listening' (default 20 s). */
  startTimeoutMs?: number;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnedProxy {
  child: ChildProcess;
  pid: number;
  dir: string;
  configPath: string;
  /** Resolves with the addresses from the 'proxy listening' line; rejects if the process exits first. */
  listening: Promise<ListeningAddresses>;
  exited: Promise<ExitInfo>;
  stdout(): string;
  stderr(): string;
  /** Every stdout line that parsed as JSON. */
  logs(): LogLine[];
  /** Resolves with the first log line matching `pred` (already seen or future). */
  waitForLog(pred: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Sends `signal` (default SIGTERM) and waits for the exit; SIGKILLs after `killAfterMs` (default 20 s). */
  stop(signal?: NodeJS.Signals, killAfterMs?: number): Promise<ExitInfo>;
  /** Kills the process if still running and removes its temp dir. Safe to call twice. */
  cleanup(): Promise<void>;
}

export function spawnProxy(opts: SpawnOptions): SpawnedProxy {
  ensureBuilt();
  const dir = mkdtempSync(join(tmpdir(), 'wsp-spawn-'));
  const configPath = join(dir, 'config.yaml');
  const text = typeof opts.config === 'string' ? opts.config : stringify(opts.config, { lineWidth: 0 });
  writeFileSync(configPath, text, { mode: 0o600 });
  const kubeconfigPath = opts.kubeconfigPath ?? join(dir, 'no-kubeconfig');
  const template = opts.args ?? ['-config', '{config}', '-kubeconfig', '{kubeconfig}'];
  const args = template.map((a) => a.replaceAll('{config}', configPath).replaceAll('{kubeconfig}', kubeconfigPath));

  const child = spawn(process.execPath, [mainJs, ...args], {
    cwd: dir,
    env: { ...process.env, ...opts.env, WORKSPACES_PROXY_LISTEN_HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const parsed: LogLine[] = [];
  const waiters = new Set<{ pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }>();
  let partial = '';
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    out += chunk;
    partial += chunk;
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      let obj: unknown;
      try {
        obj = JSON.parse(line);
      } catch {
        continue;
      }
      if (obj === null || typeof obj !== 'object') continue;
      const rec = obj as LogLine;
      parsed.push(rec);
      for (const w of [...waiters]) {
        if (w.pred(rec)) {
          waiters.delete(w);
          w.resolve(rec);
        }
      }
    }
  });
  child.stderr!.on('data', (chunk: string) => (err += chunk));

  let exitInfo: ExitInfo | undefined;
  const exited = new Promise<ExitInfo>((resolve) => {
    child.once('exit', (code, signal) => {
      exitInfo = { code, signal };
      // Let the pipes drain so the last lines are in stdout()/stderr().
      let pending = 2;
      const done = () => --pending === 0 && resolve({ code, signal });
      if (child.stdout!.readableEnded) done(); else child.stdout!.once('end', done);
      if (child.stderr!.readableEnded) done(); else child.stderr!.once('end', done);
    });
  });

  function waitForLog(pred: (l: LogLine) => boolean, timeoutMs = 20_000): Promise<LogLine> {
    const seen = parsed.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const w = {
        pred,
        resolve: (l: LogLine) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      const timer = setTimeout(() => {
        waiters.delete(w);
        reject(new Error(`no matching log line within ${timeoutMs} ms\nstdout:\n${out}\nstderr:\n${err}`));
      }, timeoutMs);
      waiters.add(w);
      void exited.then((e) => {
        if (!waiters.has(w)) return;
        waiters.delete(w);
        clearTimeout(timer);
        reject(new Error(`proxy exited (code ${e.code}, signal ${e.signal}) before the expected log line\nstdout:\n${out}\nstderr:\n${err}`));
      });
    });
  }

  const listening = waitForLog((l) => l.msg === 'proxy listening', opts.startTimeoutMs ?? 20_000).then((l) => {
    const a = l.addresses as ListeningAddresses | undefined;
    if (!a?.internal?.port) throw new Error(`'proxy listening' line without addresses: ${JSON.stringify(l)}`);
    return a;
  });
  listening.catch(() => undefined); // callers that only care about the exit need not await it

  async function stop(signal: NodeJS.Signals = 'SIGTERM', killAfterMs = 20_000): Promise<ExitInfo> {
    if (exitInfo) return exited;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    try {
      return await exited;
    } finally {
      clearTimeout(timer);
    }
  }

  let cleaned = false;
  return {
    child,
    pid: child.pid ?? -1,
    dir,
    configPath,
    listening,
    exited,
    stdout: () => out,
    stderr: () => err,
    logs: () => parsed,
    waitForLog,
    stop,
    async cleanup() {
      if (cleaned) return;
      cleaned = true;
      if (!exitInfo) await stop('SIGKILL', 5_000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs the proxy expecting it to exit by itself (bad flags or config); kills it after `timeoutMs`. */
export async function runProxyToExit(opts: SpawnOptions & { timeoutMs?: number }): Promise<ExitInfo & { stdout: string; stderr: string; timedOut: boolean }> {
  const p = spawnProxy(opts);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    p.child.kill('SIGKILL');
  }, opts.timeoutMs ?? 15_000);
  try {
    const e = await p.exited;
    return { ...e, stdout: p.stdout(), stderr: p.stderr(), timedOut };
  } finally {
    clearTimeout(timer);
    await p.cleanup();
  }
}
