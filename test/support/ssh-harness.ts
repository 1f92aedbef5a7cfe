// Everything an SSH proxy test needs: a real workspace sshd (./sshd.ts), the GitLab stand-in with two users
// and a workspace owned by alice, and the proxy assembled by app.ts with SSH on 127.0.0.1 (HTTP off). The directory is in memory unless the test passes the real discovery.
import { Writable } from 'node:stream';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { createLogger } from '../../proxy-image/src/observability/logger';
import { assembleProxy } from '../../proxy-image/src/app';
import type { ConnectionRegistry } from '../../proxy-image/src/connections';
import type { WorkspaceDirectory } from '../../proxy-image/src/discovery/types';
import { parseConfigObject } from '../../proxy-image/src/config';
import type { ProxyConfig } from '../../proxy-image/src/config';
import type { SshProxy, SshTuning } from '../../proxy-image/src/ssh';
import { startGitLabStandIn, type GitLabProject, type GitLabStandIn, type GitLabUser } from './gitlab-stand-in';
import { createMemoryDirectory, type MemoryDirectory } from './memory-directory';
import { clientKit, startWorkspaceSshd, type ClientKit, type ClientRun, type TestSshd } from './sshd';

export const WORKSPACE = 'ws-alice';
export const WORKSPACE_ID = '42';

export interface SshHarness {
  sshd: TestSshd;
  gitlab: GitLabStandIn;
  alice: GitLabUser;
  bob: GitLabUser;
  aliceToken: string;
  bobToken: string;
  /** The project of the workspace's agent. */
  agentProject: GitLabProject;
  /** auth.service_token, when the harness was asked for one. */
  serviceToken?: string;
  /** The in-memory directory (undefined when the test passed its own). */
  memory?: MemoryDirectory;
  config: ProxyConfig;
  registry: Registry;
  connections: ConnectionRegistry;
  proxy: SshProxy;
  port: number;
  kit: ClientKit;
  /** Parsed log lines of the proxy so far. */
  logs(): Record<string, unknown>[];
  /** All log output as text (to check that no token leaked). */
  logText(): string;
  /** `ssh <opts> -p <port> <user>@127.0.0.1 <command...>`; extra options go first (ssh keeps the first value). */
  ssh(args: { user?: string; options?: string[]; command?: string[]; tokens: string[]; input?: string | Buffer; env?: NodeJS.ProcessEnv }): Promise<ClientRun>;
  sshArgs(user: string, options?: string[]): string[];
  /** A shell command creating a marker file in the workspace, and a wait until it exists (command started). */
  marker(name: string): { touch: string; wait(): Promise<void> };
  close(): Promise<void>;
}

export interface HarnessOptions {
  tuning?: Partial<SshTuning>;
  reauthorizeInterval?: number;
  directory?: WorkspaceDirectory;
  /** Backend port (default: the test sshd's). */
  backendPort?: number;
  /** Give the proxy a service token (auth.service_token): a Maintainer project access token, read_api, of the
   *  agent's project, so SSH keys work (default false: passwords only, as before). */
  serviceToken?: boolean;
  /** ssh.public_key_auth (default: the config's default, true). */
  publicKeyAuth?: boolean;
}

/** A fresh Ed25519 host key for the proxy, in OpenSSH format (as `ssh-keygen` writes it). */
export function testHostKey(): string {
  const dir = mkdtempSync(join(tmpdir(), 'gwp-hostkey-'));
  try {
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'key')]);
    return readFileSync(join(dir, 'key'), 'utf8');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function startSshHarness(opts: HarnessOptions = {}): Promise<SshHarness> {
  const sshd = await startWorkspaceSshd();
  let gitlab: GitLabStandIn | undefined;
  try {
    gitlab = await startGitLabStandIn();
    return await assemble(opts, sshd, gitlab);
  } catch (err) {
    await gitlab?.close();
    await sshd.stop();
    throw err;
  }
}

async function assemble(opts: HarnessOptions, sshd: TestSshd, gitlab: GitLabStandIn): Promise<SshHarness> {
  const alice = gitlab.addUser({ username: 'alice', password: 'pw-alice' });
  const bob = gitlab.addUser({ username: 'bob', password: 'pw-bob' });
  // The agent's project: its Maintainers (and their project access tokens) may read the workspace.
  const agentProject = gitlab.addProject({ path: 'platform/workspaces-agent' });
  gitlab.setWorkspaceOwner(WORKSPACE_ID, alice, { agentProject });
  const serviceToken = opts.serviceToken
    ? gitlab.createProjectAccessToken(agentProject, { name: 'workspaces-proxy', scopes: ['read_api'] }).token
    : undefined;
  const aliceToken = gitlab.createPersonalAccessToken(alice);
  const bobToken = gitlab.createPersonalAccessToken(bob);

  let memory: MemoryDirectory | undefined;
  let directory = opts.directory;
  if (!directory) {
    memory = createMemoryDirectory();
    memory.add({ name: WORKSPACE, namespace: 'ns-alice', id: WORKSPACE_ID, backendHost: '127.0.0.1', routes: {} });
    directory = memory;
  }

  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      cb();
    },
  });
  const logger = createLogger('debug', sink);
  const hostKey = testHostKey();
  const { config } = parseConfigObject({
    auth: {
      client_id: 'cid', client_secret: 'csecret', host: gitlab.url, redirect_uri: 'http://workspaces.test/auth/callback',
      signing_key: '0123456789abcdef0123456789abcdef', protocol: 'http',
      reauthorize_interval: opts.reauthorizeInterval ?? 60,
      ...(serviceToken ? { service_token: serviceToken } : {}),
    },
    http: { enabled: false },
    ssh: {
      enabled: true, host_key: hostKey, backend_port: opts.backendPort ?? sshd.port, backend_username: sshd.user.name,
      ...(opts.publicKeyAuth !== undefined ? { public_key_auth: opts.publicKeyAuth } : {}),
    },
    log_level: 'debug',
  });
  const registry = new Registry();
  const assembled = assembleProxy({ config, logger, registry, directory, sshTuning: opts.tuning });
  const proxy = assembled.ssh!;
  const connections = assembled.connections;
  const address = await proxy.listen(0, '127.0.0.1');
  const kit = clientKit();

  const sshArgs = (user: string, options: string[] = []): string[] => [
    ...options, ...kit.commonOptions(), '-p', String(address.port), `${user}@127.0.0.1`,
  ];

  return {
    sshd, gitlab, alice, bob, aliceToken, bobToken, agentProject, serviceToken, memory, config, registry, connections, proxy, kit,
    port: address.port,
    logs: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>),
    logText: () => lines.join('\n'),
    sshArgs,
    marker(name) {
      const path = join(sshd.workdir, `marker-${name}`);
      return {
        touch: `touch ${path}`,
        async wait() {
          while (!existsSync(path)) await new Promise((r) => setTimeout(r, 50));
        },
      };
    },
    ssh(a) {
      return kit.run('ssh', [...sshArgs(a.user ?? WORKSPACE, a.options), ...(a.command ?? [])], {
        tokens: a.tokens, input: a.input, env: a.env,
      });
    },
    async close() {
      await assembled.stop(0);
      await gitlab.close();
      await sshd.stop();
      kit.cleanup();
    },
  };
}
