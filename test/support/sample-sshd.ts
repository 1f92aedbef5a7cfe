// A workspace sshd that needs no root, for `npm run demo`: an ssh2 server on 127.0.0.1 that lets one
// username in with an empty password (as the GitLab workspace images' sshd lets `gitlab-workspaces` in) and
// runs what the client asks as the user running the demo, in a temporary "workspace" directory.
//
// OpenSSH's own sshd cannot play this part without root: it checks even an empty password against
// /etc/shadow, which only root reads. The tests use the real sshd (./sshd.ts); this is for trying things out.
// It serves shells and commands (a pty through util-linux `script` when one is asked for; window changes are
// not passed on), environment variables, signals, exit status, the `sftp` subsystem through OpenSSH's
// `sftp-server` (so scp and sftp work) and `ssh -L` to loopback addresses.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Server, type ServerChannel, type Session } from 'ssh2';
import { ed25519OpenSsh } from './ssh-keygen';

const SFTP_SERVERS = ['/usr/lib/openssh/sftp-server', '/usr/libexec/sftp-server', '/usr/libexec/openssh/sftp-server'];
const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

export interface SampleSshd {
  port: number;
  username: string;
  /** The workspace directory commands run in (removed by close()). */
  dir: string;
  close(): Promise<void>;
}

export async function startSampleSshd(opts: { username?: string } = {}): Promise<SampleSshd> {
  const username = opts.username ?? 'gitlab-workspaces';
  const dir = mkdtempSync(join(tmpdir(), 'gwp-demo-ws-'));
  writeFileSync(join(dir, 'README.txt'), 'This is the demo workspace of gitlab-workspaces-proxy.\n');
  const sftpServer = SFTP_SERVERS.find((p) => existsSync(p));
  const children = new Set<ChildProcess>();
  const clients = new Set<{ end(): unknown }>();

  const server = new Server({ hostKeys: [ed25519OpenSsh().private] }, (client) => {
    clients.add(client);
    client.on('close', () => clients.delete(client));
    client.on('error', () => {});
    client.on('authentication', (ctx) => {
      const empty = ctx.method === 'none' || (ctx.method === 'password' && ctx.password === '');
      if (ctx.username === username && empty) ctx.accept();
      else ctx.reject(['password']);
    });
    client.on('ready', () => {
      client.on('session', (acceptSession) => serveSession(acceptSession()));
      client.on('tcpip', (accept, reject, info) => {
        // Loopback only: the demo never reaches out beyond this machine.
        if (!LOOPBACK.has(info.destIP)) return reject();
        const socket = connect(info.destPort, info.destIP);
        socket.once('connect', () => {
          const channel = accept();
          socket.pipe(channel).pipe(socket);
          channel.on('error', () => socket.destroy());
        });
        socket.once('error', () => reject());
      });
    });
  });

  function serveSession(session: Session): void {
    let pty: { term: string; cols: number; rows: number } | undefined;
    const env: Record<string, string> = {};
    let child: ChildProcess | undefined;
    session.on('pty', (accept, _reject, info) => {
      pty = { term: info.term, cols: info.cols, rows: info.rows };
      accept?.();
    });
    session.on('env', (accept, _reject, info) => {
      env[info.key] = info.val;
      accept?.();
    });
    session.on('window-change', (accept) => accept?.());
    session.on('signal', (accept, _reject, info) => {
      child?.kill(`SIG${info.name}` as NodeJS.Signals);
      accept?.();
    });
    const run = (channel: ServerChannel, file: string, args: string[]): void => {
      const c = spawn(file, args, {
        cwd: dir,
        env: {
          PATH: process.env.PATH, HOME: dir, USER: username, SHELL: '/bin/bash', LANG: process.env.LANG ?? 'C.UTF-8', ...env,
          ...(pty ? { TERM: pty.term, COLUMNS: String(pty.cols), LINES: String(pty.rows) } : {}),
        },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      child = c;
      children.add(c);
      channel.pipe(c.stdin);
      c.stdin.on('error', () => {});
      c.stdout.pipe(channel, { end: false });
      c.stderr.pipe(channel.stderr, { end: false });
      c.once('error', (err) => {
        channel.stderr.write(`${err.message}\n`);
        channel.exit(127);
        channel.end();
      });
      c.once('close', (code, signal) => {
        children.delete(c);
        if (signal) channel.exit(signal.replace(/^SIG/, ''), false, '');
        else channel.exit(code ?? 0);
        channel.end();
      });
    };
    // With a pty asked for, `script` gives the command a real terminal.
    const withPty = (command: string): [string, string[]] => (pty ? ['script', ['-qfec', command, '/dev/null']] : ['/bin/sh', ['-c', command]]);
    session.on('shell', (accept) => {
      const channel = accept();
      const [file, args] = pty ? withPty('/bin/bash -i') : ['/bin/bash', ['-s']];
      run(channel, file, args as string[]);
    });
    session.on('exec', (accept, _reject, info) => {
      const [file, args] = withPty(info.command);
      run(accept(), file, args);
    });
    session.on('subsystem', (accept, reject, info) => {
      if (info.name !== 'sftp' || !sftpServer) return reject?.();
      run(accept(), sftpServer, []);
    });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    username,
    dir,
    async close() {
      for (const c of children) c.kill('SIGKILL');
      for (const c of clients) c.end();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
