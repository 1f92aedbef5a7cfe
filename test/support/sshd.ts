// Real OpenSSH for the SSH tests: a Debian sshd playing the workspace's sshd, and the `ssh`/`scp`/`sftp`
// clients playing the user.
//
// The "workspace" sshd runs with its own config, host key and pid file in a temp dir, on 127.0.0.1 and a free
// port, and lets one dedicated local user in with an empty password (as the workspace image's sshd lets
// `gitlab-workspaces` in). That user is created on first use (useradd + passwd -d), which needs root: the
// tests run as root in CI and in test/run.sh. Nothing here touches the machine's own sshd.
//
// The clients get the token through SSH_ASKPASS (SSH_ASKPASS_REQUIRE=force), never on a command line; each
// password prompt takes the next token of the list, so "3 tries" can be driven with three wrong tokens.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, mkdirSync, chownSync, rmSync, chmodSync, existsSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pickPort } from './ports';

/** The local account the test sshd lets in with an empty password. */
export const TEST_USER = 'gwp-ssh-test';

export interface TestUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

/** Creates the test user (once per machine) with an empty password. */
export function ensureTestUser(): TestUser {
  const lookup = (): TestUser | undefined => {
    try {
      const line = execFileSync('getent', ['passwd', TEST_USER], { encoding: 'utf8' }).trim();
      const f = line.split(':');
      return { name: TEST_USER, uid: Number(f[2]), gid: Number(f[3]), home: f[5] ?? `/home/${TEST_USER}` };
    } catch {
      return undefined;
    }
  };
  if (process.getuid?.() !== 0) throw new Error(`the SSH tests need root (to create the local user ${TEST_USER} and run sshd)`);
  // Several test files start at once: serialise on a lock file (useradd and passwd lock /etc/shadow).
  // The password is made empty, not locked: sshd with PermitEmptyPasswords then lets the user in.
  execFileSync('flock', ['/tmp/gwp-ssh-test-user.lock', 'sh', '-c', [
    `getent passwd ${TEST_USER} >/dev/null || useradd --create-home --shell /bin/bash ${TEST_USER}`,
    `passwd -S ${TEST_USER} | grep -q ' NP ' || passwd -d ${TEST_USER} >/dev/null`,
  ].join(' && ')]);
  const user = lookup();
  if (!user) throw new Error(`could not create ${TEST_USER}`);
  return user;
}

/** Resolves once something on port answers with an SSH banner. */
async function waitForBanner(port: number, child: ChildProcess, deadlineMs = 10_000): Promise<void> {
  const until = Date.now() + deadlineMs;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`sshd exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.setTimeout(1000);
      s.once('data', (d) => {
        s.destroy();
        resolve(d.toString().startsWith('SSH-2.0'));
      });
      s.once('error', () => resolve(false));
      s.once('timeout', () => {
        s.destroy();
        resolve(false);
      });
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('sshd did not start');
}

export interface TestSshd {
  port: number;
  user: TestUser;
  /** A directory owned by the test user, removed by stop(). */
  workdir: string;
  /** What sshd logged (-e: to stderr). */
  log(): string;
  stop(): Promise<void>;
}

export async function startWorkspaceSshd(): Promise<TestSshd> {
  const user = ensureTestUser();
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const dir = mkdtempSync(join(tmpdir(), 'gwp-sshd-'));
  const workdir = mkdtempSync(join(tmpdir(), 'gwp-ws-'));
  chownSync(workdir, user.uid, user.gid);
  chmodSync(workdir, 0o755);
  const hostKey = join(dir, 'ssh_host_ed25519_key');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);

  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await pickPort();
    const config = join(dir, 'sshd_config');
    writeFileSync(config, [
      `ListenAddress 127.0.0.1:${port}`,
      `HostKey ${hostKey}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      'UsePAM no',
      'PasswordAuthentication yes',
      'PermitEmptyPasswords yes',
      'KbdInteractiveAuthentication no',
      'PubkeyAuthentication no',
      'PermitRootLogin no',
      `AllowUsers ${user.name}`,
      'StrictModes no',
      'AuthorizedKeysFile none',
      'AllowTcpForwarding yes',
      'GatewayPorts no',
      'X11Forwarding no',
      'PrintMotd no',
      'PrintLastLog no',
      'UseDNS no',
      'AcceptEnv LANG LC_* GWP_*',
      'Subsystem sftp internal-sftp',
      'MaxSessions 50',
      'MaxStartups 100',
      'LogLevel VERBOSE',
      '',
    ].join('\n'));
    const child = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr?.on('data', (d: Buffer) => (log += d.toString()));
    try {
      await waitForBanner(port, child);
    } catch (err) {
      lastError = new Error(`${(err as Error).message}: ${log}`);
      child.kill('SIGKILL');
      continue;
    }
    return {
      port,
      user,
      workdir,
      log: () => log,
      async stop() {
        if (child.exitCode === null && child.signalCode === null) {
          const exited = new Promise((r) => child.once('exit', r));
          child.kill('SIGTERM');
          await exited;
        }
        rmSync(dir, { recursive: true, force: true });
        rmSync(workdir, { recursive: true, force: true });
      },
    };
  }
  rmSync(dir, { recursive: true, force: true });
  rmSync(workdir, { recursive: true, force: true });
  throw lastError;
}

// ---- the user's side: OpenSSH clients against the proxy

export interface ClientRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** How many times ssh asked for a password. */
  prompts: number;
}

export interface UserKey {
  path: string;
  /** `<type> <base64> <comment>`, as in `<path>.pub`. */
  publicKey: string;
}

export interface ClientKit {
  /** `-o ...` options every client call gets (host keys not checked, password auth only). */
  commonOptions(extra?: string[]): string[];
  /** Environment making ssh/scp/sftp take passwords from `tokens` (one per prompt; the last repeats). */
  env(tokens: string[]): NodeJS.ProcessEnv;
  /** Runs a client to completion (input written to its stdin, then closed). */
  run(
    cmd: 'ssh' | 'scp' | 'sftp',
    args: string[],
    opts: { tokens: string[]; input?: string | Buffer; timeoutMs?: number; env?: NodeJS.ProcessEnv },
  ): Promise<ClientRun>;
  /** Starts a long-running client (e.g. `ssh -N -L`); the caller kills it. */
  spawn(cmd: 'ssh' | 'scp' | 'sftp', args: string[], opts: { tokens: string[] }): ChildProcess;
  /** A user key pair made by `ssh-keygen` in the kit's directory: private key file and public key line. */
  userKey(type: 'ed25519' | 'rsa', name: string): UserKey;
  /** Options that offer exactly these keys first and fall back to the password, as the README's
   *  ~/.ssh/config does. They go before commonOptions() (ssh keeps the first value of an option). */
  keyOptions(...keys: UserKey[]): string[];
  dir: string;
  cleanup(): void;
}

export function clientKit(): ClientKit {
  const dir = mkdtempSync(join(tmpdir(), 'gwp-sshc-'));
  const askpass = join(dir, 'askpass.sh');
  // Prints the Nth line of the token file on the Nth call (the last line again after that).
  writeFileSync(askpass, [
    '#!/bin/sh',
    'n=$(cat "$GWP_ASKPASS_DIR/count" 2>/dev/null || echo 0)',
    'n=$((n + 1))',
    'echo "$n" > "$GWP_ASKPASS_DIR/count"',
    'total=$(wc -l < "$GWP_ASKPASS_DIR/tokens")',
    'if [ "$n" -gt "$total" ]; then n=$total; fi',
    'sed -n "${n}p" "$GWP_ASKPASS_DIR/tokens"',
    '',
  ].join('\n'));
  chmodSync(askpass, 0o755);
  let runs = 0;

  function env(tokens: string[]): NodeJS.ProcessEnv {
    const runDir = join(dir, `run-${++runs}`);
    mkdirSync(runDir);
    writeFileSync(join(runDir, 'tokens'), tokens.map((t) => `${t}\n`).join(''), { mode: 0o600 });
    return {
      PATH: process.env.PATH,
      HOME: dir,
      SSH_ASKPASS: askpass,
      SSH_ASKPASS_REQUIRE: 'force',
      DISPLAY: ':0',
      GWP_ASKPASS_DIR: runDir,
    };
  }
  function prompts(e: NodeJS.ProcessEnv): number {
    const f = join(e.GWP_ASKPASS_DIR as string, 'count');
    return existsSync(f) ? Number(readFileSync(f, 'utf8').trim()) : 0;
  }

  return {
    dir,
    commonOptions(extra = []) {
      return [
        '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR',
        '-o', 'PubkeyAuthentication=no', '-o', 'PreferredAuthentications=password', '-o', 'ConnectTimeout=10',
        '-o', 'BatchMode=no', ...extra,
      ];
    },
    env,
    run(cmd, args, opts) {
      const e = { ...env(opts.tokens), ...opts.env };
      const child = spawn(cmd, args, { env: e, stdio: ['pipe', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (d: Buffer) => out.push(d));
      child.stderr.on('data', (d: Buffer) => err.push(d));
      child.stdin.on('error', () => {});
      if (opts.input !== undefined) child.stdin.end(opts.input);
      else child.stdin.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
      return new Promise((resolve) => {
        child.once('close', (code, signal) => {
          clearTimeout(timer);
          resolve({
            code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), prompts: prompts(e),
          });
        });
      });
    },
    spawn(cmd, args, opts) {
      return spawn(cmd, args, { env: env(opts.tokens), stdio: ['pipe', 'pipe', 'pipe'] });
    },
    userKey(type, name) {
      const path = join(dir, `id_${name}`);
      execFileSync('ssh-keygen', ['-q', '-t', type, ...(type === 'rsa' ? ['-b', '3072'] : []), '-N', '', '-C', `${name}@laptop`, '-f', path]);
      return { path, publicKey: readFileSync(`${path}.pub`, 'utf8').trim() };
    },
    keyOptions(...keys) {
      return [
        '-o', 'PubkeyAuthentication=yes', '-o', 'PreferredAuthentications=publickey,password', '-o', 'IdentitiesOnly=yes',
        ...keys.flatMap((k) => ['-i', k.path]),
      ];
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
