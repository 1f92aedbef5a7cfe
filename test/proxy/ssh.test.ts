// The SSH proxy with real OpenSSH on both sides: what a terminal or an IDE does over SSH must work through it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync, readFileSync, chownSync, mkdirSync } from 'node:fs';
import { connect } from 'node:net';
import { createServer as createHttpServer } from 'node:http';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { ChildProcess } from 'node:child_process';
import { Client, type ClientChannel } from 'ssh2';
import { startSshHarness, WORKSPACE, type SshHarness } from '../support/ssh-harness';
import { pickPort } from '../support/ports';

let h: SshHarness;
before(async () => {
  h = await startSshHarness();
});
after(async () => {
  await h?.close();
});

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** A file in the workspace user's work dir (owned by that user). */
function workspaceFile(name: string, content?: Buffer): string {
  const path = join(h.sshd.workdir, name);
  if (content) {
    writeFileSync(path, content);
    chownSync(path, h.sshd.user.uid, h.sshd.user.gid);
  }
  return path;
}

async function httpServer(body: string): Promise<{ port: number; close(): Promise<void> }> {
  const srv = createHttpServer((_req, res) => res.end(body));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    port: (srv.address() as AddressInfo).port,
    close: () => new Promise((r) => {
      srv.closeAllConnections();
      srv.close(() => r());
    }),
  };
}

async function waitForPort(port: number, child: ChildProcess): Promise<void> {
  for (;;) {
    if (child.exitCode !== null) throw new Error(`ssh exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

test('a command runs in the workspace: output, stderr and exit status come back', async () => {
  const r = await h.ssh({ tokens: [h.aliceToken], command: ['echo ok; echo oops >&2; whoami; exit 3'] });
  assert.equal(r.code, 3);
  assert.equal(r.stdout, `ok\n${h.sshd.user.name}\n`);
  assert.equal(r.stderr, 'oops\n');
  assert.equal(r.prompts, 1);
});

test('stdin is piped through and its EOF reaches the command (pipes finish)', async () => {
  const input = randomBytes(3 * 1024 * 1024);
  const r = await h.ssh({ tokens: [h.aliceToken], command: ['sha256sum'], input });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.split(' ')[0], sha256(input));
});

test('a signal ending the remote process is reported as the exit status', async () => {
  const r = await h.ssh({ tokens: [h.aliceToken], options: ['-v'], command: ['kill -TERM $$'] });
  // OpenSSH exits 255 on an exit-signal instead of an exit-status.
  assert.equal(r.code, 255);
  assert.match(r.stderr, /rtype exit-signal/);
  assert.doesNotMatch(r.stderr, /rtype exit-status/);
});

test('environment variables the sshd accepts are passed (SendEnv)', async () => {
  const r = await h.ssh({
    tokens: [h.aliceToken], options: ['-o', 'SendEnv=GWP_GREETING'], command: ['echo "$GWP_GREETING"'],
    env: { GWP_GREETING: 'hello-from-client' },
  });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'hello-from-client\n');
});

test('an interactive session with a pty works', async () => {
  const r = await h.ssh({
    tokens: [h.aliceToken], options: ['-tt'],
    input: 'tty; echo "sum=$((40 + 2))"; echo "term=$TERM"; exit 7\n',
    env: { TERM: 'xterm-256color' },
  });
  assert.equal(r.code, 7, r.stderr);
  assert.match(r.stdout, /\/dev\/pts\/\d+/);
  assert.match(r.stdout, /sum=42/);
  assert.match(r.stdout, /term=xterm-256color/);
});

test('scp copies a 32 MiB file up and down intact (SFTP and legacy scp protocol)', async () => {
  const data = randomBytes(32 * 1024 * 1024);
  const local = join(h.kit.dir, 'up.bin');
  writeFileSync(local, data);
  const scp = (mode: string[], from: string, to: string) =>
    h.kit.run('scp', [...mode, ...h.kit.commonOptions(), '-P', String(h.port), from, to], { tokens: [h.aliceToken], timeoutMs: 90_000 });

  for (const mode of [[], ['-O']]) {
    const remote = workspaceFile(`up${mode.join('')}.bin`);
    const up = await scp(mode, local, `${WORKSPACE}@127.0.0.1:${remote}`);
    assert.equal(up.code, 0, up.stderr);
    const remoteSum = await h.ssh({ tokens: [h.aliceToken], command: [`sha256sum ${remote}`] });
    assert.equal(remoteSum.stdout.split(' ')[0], sha256(data), `upload ${mode.join('') || 'sftp'}`);

    const back = join(h.kit.dir, `down${mode.join('')}.bin`);
    const down = await scp(mode, `${WORKSPACE}@127.0.0.1:${remote}`, back);
    assert.equal(down.code, 0, down.stderr);
    assert.equal(sha256(readFileSync(back)), sha256(data), `download ${mode.join('') || 'sftp'}`);
  }
});

test('sftp lists a directory', async () => {
  const dir = join(h.sshd.workdir, 'listing');
  mkdirSync(dir);
  chownSync(dir, h.sshd.user.uid, h.sshd.user.gid);
  for (const n of ['alpha.txt', 'beta.txt']) workspaceFile(join('listing', n), Buffer.from(n));
  const r = await h.kit.run('sftp', [...h.kit.commonOptions(), '-P', String(h.port), '-b', '-', `${WORKSPACE}@127.0.0.1`], {
    tokens: [h.aliceToken], input: `cd ${dir}\nls -1\nget beta.txt ${join(h.kit.dir, 'beta.txt')}\n`,
  });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /alpha\.txt/);
  assert.match(r.stdout, /beta\.txt/);
  assert.equal(readFileSync(join(h.kit.dir, 'beta.txt'), 'utf8'), 'beta.txt');
});

test('ssh -L reaches a server listening inside the workspace', async () => {
  const inside = await httpServer('hello from inside the workspace');
  const localPort = await pickPort();
  const child = h.kit.spawn('ssh', [
    '-N', '-o', 'ExitOnForwardFailure=yes', '-L', `127.0.0.1:${localPort}:127.0.0.1:${inside.port}`, ...h.sshArgs(WORKSPACE),
  ], { tokens: [h.aliceToken] });
  try {
    await waitForPort(localPort, child);
    // Several requests at once: each is its own channel on the one connection.
    const bodies = await Promise.all([1, 2, 3, 4].map(() => fetch(`http://127.0.0.1:${localPort}/`).then((r) => r.text())));
    assert.deepEqual(bodies, Array(4).fill('hello from inside the workspace'));
  } finally {
    await stop(child);
    await inside.close();
  }
});

test('ssh -R exposes a server of the user inside the workspace', async () => {
  const onLaptop = await httpServer('hello from the laptop');
  const remotePort = await pickPort();
  const child = h.kit.spawn('ssh', [
    '-N', '-o', 'ExitOnForwardFailure=yes', '-R', `127.0.0.1:${remotePort}:127.0.0.1:${onLaptop.port}`, ...h.sshArgs(WORKSPACE),
  ], { tokens: [h.aliceToken] });
  try {
    await waitForPort(remotePort, child);
    // From inside the workspace (the sshd's loopback is this machine's).
    const r = await h.ssh({ tokens: [h.aliceToken], command: [
      `exec 3<>/dev/tcp/127.0.0.1/${remotePort}; printf 'GET / HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n' >&3; cat <&3`,
    ] });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /hello from the laptop$/);
  } finally {
    await stop(child);
    await onLaptop.close();
  }
});

test('a -L target nobody listens on is refused to the client', async () => {
  const closedPort = await pickPort();
  // -W opens exactly one direct-tcpip channel and exits when it fails.
  const r = await h.ssh({ tokens: [h.aliceToken], options: ['-v', '-W', `127.0.0.1:${closedPort}`] });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /open failed/);
  assert.match(r.stderr, /stdio forwarding failed/);
});

test("keepalives are answered and the workspace's hostkeys-00 announcement is not passed on", async () => {
  const viaProxy = await h.ssh({
    tokens: [h.aliceToken], options: ['-v', '-o', 'ServerAliveInterval=1', '-o', 'ServerAliveCountMax=2'],
    command: ['sleep 3; echo alive'],
  });
  assert.equal(viaProxy.code, 0, viaProxy.stderr);
  assert.equal(viaProxy.stdout, 'alive\n');
  assert.doesNotMatch(viaProxy.stderr, /hostkeys-00@openssh\.com/);
  // The workspace sshd itself does announce them: the check above would see it if it were relayed.
  const direct = await h.kit.run('ssh', [
    '-v', ...h.kit.commonOptions(), '-p', String(h.sshd.port), `${h.sshd.user.name}@127.0.0.1`, 'true',
  ], { tokens: [''] });
  assert.equal(direct.code, 0, direct.stderr);
  assert.match(direct.stderr, /hostkeys-00@openssh\.com/);
});

function bytesMetric(text: string, direction: 'to_workspace' | 'from_workspace'): number {
  const m = new RegExp(`workspaces_proxy_ssh_bytes_total\\{direction="${direction}"\\} (\\d+)`).exec(text);
  return m ? Number(m[1]) : 0;
}

const MiB = 1024 * 1024;
const settle = () => new Promise((r) => setTimeout(r, 1_500));

test('flow control: a user who stops reading stops the workspace, instead of filling the proxy', async () => {
  const total = 96 * MiB;
  const start = bytesMetric(await h.registry.metrics(), 'from_workspace');
  const child = h.kit.spawn('ssh', [...h.sshArgs(WORKSPACE), `head -c ${total} /dev/zero`], { tokens: [h.aliceToken] });
  // Nobody reads the client's stdout yet: its pipe fills, ssh stops reading, the SSH windows close.
  await settle();
  const whilePaused = bytesMetric(await h.registry.metrics(), 'from_workspace') - start;
  let received = 0;
  child.stdout?.on('data', (d: Buffer) => (received += d.length));
  const code = await new Promise((r) => child.once('exit', r));
  assert.equal(code, 0);
  assert.equal(received, total);
  assert.ok(whilePaused < 32 * MiB, `proxy relayed ${whilePaused} bytes while the user read nothing`);
});

test('flow control: a workspace command that does not read stops the upload, and gets all of it later', async () => {
  const total = 96 * MiB;
  const start = bytesMetric(await h.registry.metrics(), 'to_workspace');
  const child = h.kit.spawn('ssh', [...h.sshArgs(WORKSPACE), 'sleep 3; wc -c'], { tokens: [h.aliceToken] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  const chunk = Buffer.alloc(MiB, 1);
  const writing = (async () => {
    for (let sent = 0; sent < total; sent += chunk.length) {
      if (!child.stdin?.write(chunk)) await new Promise((r) => child.stdin?.once('drain', r));
    }
    child.stdin?.end();
  })();
  await settle();
  const whileStalled = bytesMetric(await h.registry.metrics(), 'to_workspace') - start;
  await writing;
  const code = await new Promise((r) => child.once('exit', r));
  assert.equal(code, 0);
  assert.equal(out.trim(), String(total));
  assert.ok(whileStalled < 32 * MiB, `proxy relayed ${whileStalled} bytes to a command that read nothing`);
});

test('window size changes and signals reach the workspace process (ssh2 as the client)', async () => {
  const client = new Client();
  await new Promise<void>((resolve, reject) => {
    client.once('ready', () => resolve()).once('error', reject);
    client.connect({ host: '127.0.0.1', port: h.port, username: WORKSPACE, password: h.aliceToken, hostVerifier: () => true });
  });
  try {
    const shell = await new Promise<ClientChannel>((resolve, reject) =>
      client.shell({ rows: 24, cols: 80, term: 'xterm' }, (err, ch) => (err ? reject(err) : resolve(ch))));
    let out = '';
    shell.on('data', (d: Buffer) => (out += d.toString()));
    const waitFor = async (re: RegExp) => {
      while (!re.test(out)) await new Promise((r) => setTimeout(r, 20));
    };
    shell.write('stty size | sed "s/^/size=/"\n');
    await waitFor(/size=24 80/);
    shell.setWindow(50, 132, 0, 0);
    shell.write('stty size | sed "s/^/size=/"\n');
    await waitFor(/size=50 132/);
    shell.end('exit\n');
    await new Promise((r) => shell.once('close', r));

    const started = h.marker('signal');
    const exec = await new Promise<ClientChannel>((resolve, reject) =>
      client.exec(`trap 'echo got-term; exit 9' TERM; ${started.touch}; while :; do sleep 0.1; done`, (err, ch) => (err ? reject(err) : resolve(ch))));
    let execOut = '';
    exec.on('data', (d: Buffer) => (execOut += d.toString()));
    const exit = new Promise<number>((r) => exec.once('exit', (code: number) => r(code)));
    await started.wait();
    exec.signal('TERM');
    assert.equal(await exit, 9);
    assert.match(execOut, /got-term/);
  } finally {
    client.end();
  }
});

test('metrics count connections, authentications and bytes', async () => {
  const r = await h.ssh({ tokens: [h.aliceToken], command: ['head -c 100000 /dev/zero'] });
  assert.equal(r.code, 0);
  const text = await h.registry.metrics();
  assert.match(text, /workspaces_proxy_ssh_auth_total\{result="success",reason="(gitlab|cached)"\} \d+/);
  const fromWs = /workspaces_proxy_ssh_bytes_total\{direction="from_workspace"\} (\d+)/.exec(text);
  assert.ok(fromWs && Number(fromWs[1]) >= 100000, text);
  assert.match(text, /workspaces_proxy_ssh_bytes_total\{direction="to_workspace"\} \d+/);
  assert.match(text, /workspaces_proxy_ssh_connections_open \d+/);
});

test('the proxy never logs a token', () => {
  const text = h.logText();
  assert.ok(text.length > 0);
  assert.ok(!text.includes(h.aliceToken));
  assert.ok(!text.includes(h.bobToken));
});
