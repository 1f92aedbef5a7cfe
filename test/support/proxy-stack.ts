// The whole local stack on loopback: GitLab stand-in, Kubernetes API stand-in with workspace Services, a
// sample workspace and the real proxy (real discovery through @kubernetes/client-node). Used by the browser
// end-to-end tests, the built-proxy test and `npm run demo`.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { renderConfigYaml, parseConfigObject, type ProxyConfig, type ProxyConfigInput } from '../../proxy-image/src/config';
import { loadKubeConfig } from '../../proxy-image/src/discovery/kubeconfig';
import { startProxy, type RunningProxy } from '../../proxy-image/src/app';
import { startGitLabStandIn, type GitLabStandIn, type GitLabUser } from './gitlab-stand-in';
import { startKubeApiStandIn, workspaceService, type KubeApiStandIn } from './kube-api-stand-in';
import { writeKubeconfig } from './kubeconfig';
import { startSampleWorkspace, type SampleWorkspace } from './sample-workspace';
import { startSampleSshd, type SampleSshd } from './sample-sshd';
import { pickPort } from './ports';
import { ed25519OpenSsh } from './ssh-keygen';

export interface StackOptions {
  zone?: string;
  /** Proxy domain (host of auth.redirect_uri); default `auth.<zone>`. */
  proxyDomain?: string;
  httpPort?: number;
  gitlabPort?: number;
  auth?: Partial<ProxyConfigInput['auth']>;
  logLevel?: string;
  /** false: write config and kubeconfig but do not start the proxy in this process. */
  startInProcess?: boolean;
  /** SSH too: workspaces get a sample sshd that needs no root, the proxy a service token, and alice an
   *  SSH key in her GitLab profile and a personal access token (what `npm run demo` prints). */
  ssh?: boolean;
}

export interface StackSsh {
  port: number;
  sshd: SampleSshd;
  /** alice's private key file (her public key is in her GitLab profile). */
  aliceKeyPath: string;
  /** A known_hosts file holding the proxy's host key for [127.0.0.1]:port. */
  knownHostsPath: string;
  /** A personal access token of alice: the password when no key is offered. */
  alicePat: string;
  /** `ssh` arguments that log in to the workspace as alice with her key (no prompt). */
  keyCommand(workspace: string): string[];
  /** `ssh` arguments that log in with the PAT as password (keys not offered). */
  patCommand(workspace: string): string[];
}

export interface Stack {
  gitlab: GitLabStandIn;
  kube: KubeApiStandIn;
  workspace: SampleWorkspace;
  alice: GitLabUser;
  bob: GitLabUser;
  zone: string;
  proxyDomain: string;
  httpPort: number;
  internalPort: number;
  config: ProxyConfig;
  configPath: string;
  kubeconfigPath: string;
  proxy?: RunningProxy;
  ssh?: StackSsh;
  /** Adds a workspace Service on the sample backend's port; returns its host. */
  addWorkspace(name: string, workspaceId: string, owner: GitLabUser | null): string;
  url(host: string, path?: string): string;
  close(): Promise<void>;
}

export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const zone = opts.zone ?? 'workspaces.test';
  const proxyDomain = opts.proxyDomain ?? `auth.${zone}`;
  const dir = mkdtempSync(join(tmpdir(), 'wsp-stack-'));
  const gitlab = await startGitLabStandIn({ port: opts.gitlabPort });
  const kube = await startKubeApiStandIn();
  const workspace = await startSampleWorkspace();
  const alice = gitlab.addUser({ username: 'alice', password: 'alice-password', name: 'Alice Developer' });
  const bob = gitlab.addUser({ username: 'bob', password: 'bob-password', name: 'Bob Other' });
  const httpPort = opts.httpPort ?? (await pickPort());
  const internalPort = await pickPort();
  const redirectUri = `http://${proxyDomain}:${httpPort}/auth/callback`;
  gitlab.registerOAuthClient({ clientId: 'workspaces-proxy', clientSecret: 'local-only-client-secret', redirectUris: [redirectUri] });
  // The agent's project: a Maintainer project access token of it is the proxy's service token for SSH keys.
  const agentProject = gitlab.addProject({ path: 'demo/workspaces-agent' });
  const ssh = opts.ssh ? await prepareSsh(dir, gitlab, alice) : undefined;

  const input: ProxyConfigInput = {
    auth: {
      client_id: 'workspaces-proxy',
      client_secret: 'local-only-client-secret',
      host: gitlab.url,
      redirect_uri: redirectUri,
      signing_key: 'local-only-signing-key-0123456789abcdef',
      protocol: 'http',
      ...(ssh ? { service_token: gitlab.createProjectAccessToken(agentProject, { name: 'workspaces-proxy', scopes: ['read_api'] }).token } : {}),
      ...opts.auth,
    },
    http: { port: httpPort, internal_port: internalPort },
    ...(ssh ? { ssh: { enabled: true, port: ssh.port, host_key: ssh.hostKey, backend_port: ssh.sshd.port, backend_username: ssh.sshd.username } } : {}),
    log_level: (opts.logLevel ?? 'silent') as ProxyConfigInput['log_level'],
  };
  const { config } = parseConfigObject(input);
  const configPath = join(dir, 'config.yaml');
  writeFileSync(configPath, renderConfigYaml(input), { mode: 0o600 });
  const kubeconfigPath = writeKubeconfig(kube.url, dir);

  let proxy: RunningProxy | undefined;
  if (opts.startInProcess !== false) {
    const logger: Logger = pino({ level: opts.logLevel ?? 'silent' });
    proxy = await startProxy({ config, kubeConfig: loadKubeConfig(kubeconfigPath), logger, listenHost: '127.0.0.1', drainTimeoutMs: 2000 });
  }

  return {
    gitlab, kube, workspace, alice, bob, zone, proxyDomain, httpPort, internalPort, config, configPath, kubeconfigPath, proxy,
    ssh: ssh?.public,
    addWorkspace(name, workspaceId, owner) {
      gitlab.setWorkspaceOwner(workspaceId, owner, { agentProject });
      kube.addService(workspaceService({ name, workspaceId, zone, ports: [workspace.port], clusterIP: '127.0.0.1' }));
      return `${workspace.port}-${name}.${zone}`;
    },
    url: (host, path = '/') => `http://${host}:${httpPort}${path}`,
    async close() {
      await proxy?.shutdown();
      await workspace.close();
      await ssh?.sshd.close();
      await kube.close();
      await gitlab.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The SSH side of the stack: a no-root sshd for the workspaces, the proxy's host key, alice's key and PAT. */
async function prepareSsh(dir: string, gitlab: GitLabStandIn, alice: GitLabUser): Promise<{ port: number; hostKey: string; sshd: SampleSshd; public: StackSsh }> {
  const sshd = await startSampleSshd();
  const port = await pickPort();
  const host = ed25519OpenSsh();
  const knownHostsPath = join(dir, 'known_hosts');
  writeFileSync(knownHostsPath, `[127.0.0.1]:${port} ${host.public.trim()}\n`);
  const aliceKey = ed25519OpenSsh();
  const aliceKeyPath = join(dir, 'alice_ed25519');
  writeFileSync(aliceKeyPath, aliceKey.private, { mode: 0o600 });
  gitlab.addSshKey(alice, aliceKey.public, { title: 'demo laptop' });
  const alicePat = gitlab.createPersonalAccessToken(alice, { scopes: ['read_api'] });
  const common = ['-p', String(port), '-o', `UserKnownHostsFile=${knownHostsPath}`, '-o', 'StrictHostKeyChecking=yes'];
  return {
    port, hostKey: host.private, sshd,
    public: {
      port, sshd, aliceKeyPath, knownHostsPath, alicePat,
      keyCommand: (ws) => ['-i', aliceKeyPath, '-o', 'IdentitiesOnly=yes', ...common, `${ws}@127.0.0.1`],
      patCommand: (ws) => ['-o', 'PubkeyAuthentication=no', ...common, `${ws}@127.0.0.1`],
    },
  };
}
