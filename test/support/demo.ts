// `npm run demo`: the proxy with a local GitLab stand-in, a Kubernetes API stand-in and one sample workspace,
// all on loopback. Prints the URL to open, the users to sign in as, and the ssh commands (alice's key, or
// her personal access token). Ctrl-C stops everything. Needs no root: the workspace's sshd is sample-sshd.ts.
// The GitLab and Kubernetes stand-ins are test doubles for LOCAL USE ONLY: plain HTTP, in-memory, no security.
import { startStack } from './proxy-stack';
import { pickPort } from './ports';

async function main(): Promise<void> {
  const wanted = Number(process.env.DEMO_PORT ?? 9876);
  const httpPort = wanted > 0 && (await portFree(wanted)) ? wanted : await pickPort();
  // *.localhost resolves to 127.0.0.1 in current browsers, so no DNS or /etc/hosts change is needed.
  const stack = await startStack({ zone: 'workspaces.localhost', httpPort, logLevel: process.env.LOG_LEVEL ?? 'warn', ssh: true });
  const host = stack.addWorkspace('demo', '1', stack.alice);
  const url = stack.url(host, '/');
  const ssh = stack.ssh!;
  const quote = (args: string[]) => args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
  console.log(`
GitLab workspaces proxy - local demo

  Open in a browser:   ${url}
  Sign in as:          alice / alice-password   (owns the workspace: you see its page and WebSocket echo)
                       bob / bob-password       (signed in, but not the owner: 403)

  SSH into the workspace (the SSH user is the workspace name, "demo"):
    with alice's GitLab SSH key (no password asked):
      ssh ${quote(ssh.keyCommand('demo'))}
    or with her personal access token as the password:
      ssh ${quote(ssh.patCommand('demo'))}
      password: ${ssh.alicePat}
    scp and sftp work the same way (scp -P ${ssh.port} ...). The workspace's sshd is a local stand-in
    running as you, in ${ssh.sshd.dir}.

  Proxy metrics:       http://127.0.0.1:${stack.internalPort}/metrics   (also /healthz, /readyz)
  GitLab stand-in:     ${stack.gitlab.url}
    This is NOT GitLab: a local test stand-in that speaks GitLab's OAuth/OIDC and GraphQL, keeps
    everything in memory, uses plain HTTP and has no protection. For local use only.
  Kubernetes stand-in: ${stack.kube.url} (one workspace Service, "demo")

Ctrl-C stops everything.
`);
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    console.log('stopping...');
    stack.close().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error(err);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

async function portFree(port: number): Promise<boolean> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

main().catch((err: unknown) => {
  console.error(`demo failed to start: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});
