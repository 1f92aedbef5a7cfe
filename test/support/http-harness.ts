// Starts the HTTP side of the proxy in-process (assembled by app.ts) against the GitLab stand-in and a sample workspace, plus a
// small cookie-jar HTTP client that talks to `*.workspaces.test` hosts on loopback (no browser needed).
import { connect } from 'node:net';
import { request, type IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import pino, { type Logger } from 'pino';
import { Registry } from 'prom-client';
import { parseConfigObject, type ProxyConfig, type ProxyConfigInput } from '../../proxy-image/src/config';
import { assembleProxy } from '../../proxy-image/src/app';
import type { ConnectionRegistry } from '../../proxy-image/src/connections';
import type { HttpProxy } from '../../proxy-image/src/http';
import type { WorkspaceDirectory } from '../../proxy-image/src/discovery/types';
import { startGitLabStandIn, type GitLabStandIn, type GitLabUser } from './gitlab-stand-in';
import { pickPort } from './ports';
import { createMemoryDirectory, type MemoryDirectory } from './memory-directory';
import { startSampleWorkspace, type SampleWorkspace } from './sample-workspace';

export const ZONE = 'workspaces.test';
export const PROXY_DOMAIN = `auth.${ZONE}`;

export interface Harness {
  gitlab: GitLabStandIn;
  alice: GitLabUser;
  bob: GitLabUser;
  directory: MemoryDirectory;
  workspace: SampleWorkspace;
  /** Alice's workspace (id 42): hosts `${workspace.port}-alice-ws` and `8080-alice-ws`. */
  hostA: string;
  hostA2: string;
  /** Bob's workspace (id 43) served by the same sample backend. */
  hostB: string;
  port: number;
  config: ProxyConfig;
  registry: Registry;
  connections: ConnectionRegistry;
  proxy: HttpProxy;
  /** `http://<host>:<port><path>` */
  url(host: string, path?: string): string;
  close(): Promise<void>;
}

export async function startHarness(
  opts: {
    auth?: Partial<ProxyConfigInput['auth']>; directory?: WorkspaceDirectory; backendDispatcher?: Dispatcher; backendHeadersTimeoutMs?: number;
    logger?: Logger;
    headersTimeoutMs?: number;
  } = {},
): Promise<Harness> {
  const gitlab = await startGitLabStandIn();
  const alice = gitlab.addUser({ username: 'alice', password: 'alice-password' });
  const bob = gitlab.addUser({ username: 'bob', password: 'bob-password' });
  const workspace = await startSampleWorkspace();
  const port = await pickPort();
  const redirect = `http://${PROXY_DOMAIN}:${port}/auth/callback`;
  gitlab.registerOAuthClient({ clientId: 'proxy-client', clientSecret: 'proxy-secret', redirectUris: [redirect] });
  gitlab.setWorkspaceOwner(42, alice);
  gitlab.setWorkspaceOwner(43, bob);
  const hostA = `${workspace.port}-alice-ws.${ZONE}`;
  const hostA2 = `8080-alice-ws.${ZONE}`;
  const hostB = `${workspace.port}-bob-ws.${ZONE}`;
  const directory = createMemoryDirectory();
  directory.add({ name: 'alice-ws', id: '42', routes: { [hostA]: workspace.port, [hostA2]: workspace.port } });
  directory.add({ name: 'bob-ws', id: '43', routes: { [hostB]: workspace.port } });

  const { config } = parseConfigObject({
    auth: {
      client_id: 'proxy-client',
      client_secret: 'proxy-secret',
      host: gitlab.url,
      redirect_uri: redirect,
      signing_key: 'test-signing-key-0123456789abcdef',
      protocol: 'http',
      ...opts.auth,
    },
    log_level: 'silent',
  });
  const logger = opts.logger ?? pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  const registry = new Registry();
  // The proxy as app.ts assembles it; only the directory (in memory), the backend pool, the logger and
  // (slowloris tests) the headers timeout differ.
  const assembled = assembleProxy({
    config, logger, registry, directory: opts.directory ?? directory, backendDispatcher: opts.backendDispatcher,
    backendHeadersTimeoutMs: opts.backendHeadersTimeoutMs,
    headersTimeoutMs: opts.headersTimeoutMs,
  });
  const proxy = assembled.http!;
  await proxy.listen(port, '127.0.0.1');
  return {
    gitlab, alice, bob, directory, workspace, hostA, hostA2, hostB, port, config, registry, connections: assembled.connections, proxy,
    url: (host, path = '/') => `http://${host}:${port}${path}`,
    async close() {
      await assembled.stop(1000);
      await workspace.close();
      await gitlab.close();
    },
  };
}

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  url: string;
}

/** Cookies per hostname (host-only, as the proxy sets them; paths and expiry are ignored except deletion). */
export class CookieJar {
  readonly hosts = new Map<string, Map<string, string>>();
  header(hostname: string): string | undefined {
    const m = this.hosts.get(hostname);
    return m && m.size ? [...m].map(([k, v]) => `${k}=${v}`).join('; ') : undefined;
  }
  store(hostname: string, setCookie: string[] | undefined): void {
    for (const line of setCookie ?? []) {
      const [pair] = line.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      const m = this.hosts.get(hostname) ?? new Map<string, string>();
      if (/;\s*max-age=0/i.test(line)) m.delete(name);
      else m.set(name, value);
      this.hosts.set(hostname, m);
    }
  }
  get(hostname: string, name: string): string | undefined {
    return this.hosts.get(hostname)?.get(name);
  }
  set(hostname: string, name: string, value: string): void {
    const m = this.hosts.get(hostname) ?? new Map<string, string>();
    m.set(name, value);
    this.hosts.set(hostname, m);
  }
}

/** One request to `url` sent to 127.0.0.1 (every test host is loopback), with the jar's cookies. */
export function send(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string | Buffer; jar?: CookieJar } = {},
): Promise<Reply> {
  const u = new URL(url);
  const cookie = opts.jar?.header(u.hostname);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: u.port || 80,
        method: opts.method ?? 'GET',
        path: u.pathname + u.search,
        headers: { host: u.host, ...(cookie ? { cookie } : {}), ...opts.headers },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          opts.jar?.store(u.hostname, res.headers['set-cookie']);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), url });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** GETs `url` following up to `max` redirects (proxy, GitLab stand-in, back); returns every hop and the last reply. */
export async function browse(url: string, jar: CookieJar, max = 12): Promise<{ final: Reply; hops: Reply[] }> {
  const hops: Reply[] = [];
  let next = url;
  for (;;) {
    const reply = await send(next, { jar });
    hops.push(reply);
    if (hops.length >= max || reply.status < 300 || reply.status >= 400 || !reply.headers.location) return { final: reply, hops };
    next = new URL(reply.headers.location, next).href;
  }
}

/** Logs `user` in through the full flow for `url` and returns the final reply. */
export async function loginAs(h: Harness, user: GitLabUser, url: string, jar = new CookieJar()): Promise<{ final: Reply; hops: Reply[]; jar: CookieJar }> {
  h.gitlab.autoLoginAs(user);
  const r = await browse(url, jar);
  return { ...r, jar };
}

/** A raw HTTP/1.x exchange, for requests a normal client will not send; resolves when the server closes. */
export function rawExchange(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.write(text));
    let out = '';
    s.on('data', (d: Buffer) => (out += d.toString('latin1')));
    s.on('end', () => resolve(out));
    s.on('error', reject);
    s.setTimeout(5000, () => s.destroy(new Error('server kept the connection open')));
  });
}

/** A download of `path` on 127.0.0.1:`port` that the client cuts after the first chunk (a browser navigating away). */
export function abortedDownload(port: number, path: string, headers: Record<string, string>): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode} for ${path}`));
      res.once('data', () => {
        req.destroy();
        resolve();
      });
    });
    req.on('error', (e) => (req.destroyed ? undefined : reject(e)));
    req.end();
  });
}
