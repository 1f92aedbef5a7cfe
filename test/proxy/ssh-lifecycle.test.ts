// The SSH proxy's life around the user's connection: host keys of every accepted kind, a workspace that is
// down or hangs, a workspace Service that goes away while connected (docs/contract.md §6), and shutdown.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect as netConnect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import pino from 'pino';
import { Client, utils as sshUtils } from 'ssh2';
import { KubeConfig } from '@kubernetes/client-node';
import { parseConfigObject } from '../../proxy-image/src/config';
import { assembleProxy } from '../../proxy-image/src/app';
import { startWorkspaceDiscovery } from '../../proxy-image/src/discovery';
import { createMemoryDirectory } from '../support/memory-directory';
import { startKubeApiStandIn, workspaceService } from '../support/kube-api-stand-in';
import { writeKubeconfig } from '../support/kubeconfig';
import { startSshHarness, WORKSPACE, WORKSPACE_ID } from '../support/ssh-harness';
import { pickPort } from '../support/ports';

const baseConfig = {
  auth: {
    client_id: 'cid', client_secret: 'csecret', host: 'http://127.0.0.1:9', redirect_uri: 'http://workspaces.test/auth/callback',
    signing_key: '0123456789abcdef0123456789abcdef', protocol: 'http',
  },
  http: { enabled: false },
};

test('host keys: RSA, ECDSA and Ed25519, PEM and OpenSSH, are served as the proxy host key', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gwp-hostkeys-'));
  try {
    const keygen = (name: string, args: string[]) => {
      execFileSync('ssh-keygen', ['-q', '-N', '', '-f', join(dir, name), ...args]);
      return readFileSync(join(dir, name), 'utf8');
    };
    const cases: { label: string; type: string; key: string }[] = [
      { label: 'RSA PEM (PKCS#1)', type: 'rsa', key: keygen('rsa-pem', ['-t', 'rsa', '-b', '2048', '-m', 'PEM']) },
      { label: 'RSA OpenSSH', type: 'rsa', key: keygen('rsa-openssh', ['-t', 'rsa', '-b', '2048']) },
      { label: 'ECDSA PEM (SEC1)', type: 'ecdsa', key: keygen('ecdsa-pem', ['-t', 'ecdsa', '-m', 'PEM']) },
      { label: 'ECDSA OpenSSH', type: 'ecdsa', key: keygen('ecdsa-openssh', ['-t', 'ecdsa']) },
      { label: 'Ed25519 OpenSSH', type: 'ed25519', key: keygen('ed25519-openssh', ['-t', 'ed25519']) },
      {
        label: 'Ed25519 PEM (PKCS#8)', type: 'ed25519',
        key: generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      },
    ];
    for (const c of cases) {
      const { config } = parseConfigObject({ ...baseConfig, ssh: { enabled: true, host_key: c.key } });
      const logger = pino({ level: 'silent' });
      const registry = new Registry();
      const directory = createMemoryDirectory();
      const assembled = assembleProxy({ config, directory, registry, logger });
      const { port } = await assembled.ssh!.listen(0, '127.0.0.1');
      try {
        // Asynchronously: the proxy runs in this process.
        const { stdout: scanned } = await promisify(execFile)('ssh-keyscan', ['-p', String(port), '-t', c.type, '127.0.0.1'], { encoding: 'utf8' });
        const parsed = sshUtils.parseKey(config.ssh.host_key ?? '');
        const key = Array.isArray(parsed) ? parsed[0] : parsed;
        assert.ok(key && !(key instanceof Error), c.label);
        const expected = key.getPublicSSH().toString('base64');
        assert.match(scanned, new RegExp(`^\\[127\\.0\\.0\\.1\\]:${port} \\S+ ${expected.replace(/[+/]/g, '\\$&')}$`, 'm'), c.label);
      } finally {
        await assembled.stop(0);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a workspace whose sshd is down: the user gets a clear message, not a hang', async () => {
  const closedPort = await pickPort();
  const h = await startSshHarness({ backendPort: closedPort });
  try {
    const r = await h.ssh({ tokens: [h.aliceToken], command: ['echo in'] });
    assert.equal(r.code, 255);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, new RegExp(`workspace ${WORKSPACE} is not reachable over SSH`));
    assert.ok(h.logs().some((l) => l.msg === 'workspace sshd not reachable'));
  } finally {
    await h.close();
  }
});

test('a workspace that accepts TCP but never speaks SSH: the user gets the message after the connect timeout', async () => {
  const sockets = new Set<Socket>();
  const silent = createServer((s) => sockets.add(s));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const h = await startSshHarness({ backendPort: (silent.address() as AddressInfo).port, tuning: { backendTimeoutMs: 1_500 } });
  try {
    const r = await h.ssh({ tokens: [h.aliceToken], command: ['echo in'] });
    assert.equal(r.code, 255);
    assert.match(r.stderr, /is not reachable over SSH/);
  } finally {
    await h.close();
    for (const s of sockets) s.destroy();
    await new Promise((r) => silent.close(r));
  }
});

test('a user who leaves while the workspace sshd is being joined leaves no workspace connection behind', { timeout: 30_000 }, async () => {
  // A workspace that accepts TCP and never answers: the proxy's login to it stays pending (for a minute here).
  let reached!: (s: Socket) => void;
  const backendSocket = new Promise<Socket>((r) => (reached = r));
  const silent = createServer((s) => reached(s));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const h = await startSshHarness({ backendPort: (silent.address() as AddressInfo).port, tuning: { backendTimeoutMs: 60_000 } });
  const user = new Client();
  try {
    user.on('error', () => {});
    user.connect({ host: '127.0.0.1', port: h.port, username: WORKSPACE, password: h.aliceToken });
    const sock = await backendSocket;
    const backendClosed = new Promise((r) => sock.once('close', r));
    sock.on('error', () => {});
    sock.resume(); // reading, so the proxy's hang-up is seen
    user.destroy();
    await backendClosed;
    while (!h.logs().some((l) => l.msg === 'user left while the workspace sshd was being joined')) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(!h.logs().some((l) => l.msg === 'workspace sshd not reachable'), 'leaving is not a workspace failure');
  } finally {
    user.destroy();
    await h.close();
    await new Promise((r) => silent.close(r));
  }
});

test('shutdown closes open SSH connections with "going away" and refuses new ones', async () => {
  const h = await startSshHarness();
  let closed = false;
  try {
    const started = h.marker('shutdown');
    const open = h.ssh({ tokens: [h.aliceToken], command: [`echo started; ${started.touch}; sleep 30; echo never`] });
    await started.wait();
    // As app.ts does on SIGTERM.
    h.connections.closeAll('shutdown');
    await h.proxy.shutdown();
    closed = true;
    const r = await open;
    assert.equal(r.stdout, 'started\n');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /gitlab-workspaces-proxy: proxy going away/);
    const after = await h.ssh({ tokens: [h.aliceToken], command: ['echo in'] });
    assert.equal(after.code, 255);
    assert.equal(after.stdout, '');
  } finally {
    if (!closed) h.connections.closeAll('shutdown');
    await h.close();
  }
});

test('the close reason reaches stderr even while the workspace floods the session with output', async () => {
  // Regression: stdout and stderr share one SSH window, and ssh2 closed the channel once queued stdout was
  // out, dropping a notice queued behind it: under output the user saw no reason at all.
  const h = await startSshHarness();
  try {
    for (let i = 0; i < 3; i += 1) {
      const flooding = h.marker(`flood-${i}`);
      const open = h.ssh({
        tokens: [h.aliceToken],
        command: [`(yes | head -c 300000000) & sleep 0.2; ${flooding.touch}; wait; sleep 30`],
      });
      await flooding.wait();
      h.connections.closeAll('not_owner');
      const r = await open;
      assert.notEqual(r.code, 0);
      assert.ok(r.stdout.length > 0, 'output was flowing');
      assert.match(r.stderr, /gitlab-workspaces-proxy: access to this workspace was revoked/, `round ${i}`);
    }
  } finally {
    await h.close();
  }
});

test('a client that connects and never speaks SSH is dropped after the login grace time and does not hold up shutdown', { timeout: 60_000 }, async () => {
  const connectSilently = async (port: number): Promise<{ closed: Promise<void>; sock: Socket }> => {
    const sock = netConnect({ host: '127.0.0.1', port });
    sock.on('error', () => {});
    sock.resume();
    await new Promise((r) => sock.once('connect', r));
    return { sock, closed: new Promise((r) => sock.once('close', () => r())) };
  };
  const quick = await startSshHarness({ tuning: { loginGraceMs: 200 } });
  try {
    const silent = await connectSilently(quick.port);
    await silent.closed;
    assert.ok(quick.logs().some((l) => /no identification within the login grace time/.test(String(l.msg))));
  } finally {
    await quick.close();
  }
  // With the default grace (a minute), shutdown itself drops such a client instead of waiting for it.
  const h = await startSshHarness();
  const silent = await connectSilently(h.port);
  await h.close();
  await silent.closed;
  silent.sock.destroy();
});

test('a workspace Service deleted while connected closes the SSH session (real discovery)', async () => {
  const kube = await startKubeApiStandIn();
  const dir = mkdtempSync(join(tmpdir(), 'gwp-kube-'));
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(writeKubeconfig(kube.url, dir));
  const discovery = startWorkspaceDiscovery({ kubeConfig, logger: pino({ level: 'silent' }), registry: new Registry() });
  kube.addService(workspaceService({ name: WORKSPACE, namespace: 'ns-alice', workspaceId: WORKSPACE_ID, ports: [3000], clusterIP: '127.0.0.1' }));
  const h = await startSshHarness({ directory: discovery, reauthorizeInterval: 1 });
  try {
    while (discovery.workspaceByName(WORKSPACE) === undefined) await new Promise((r) => setTimeout(r, 50));
    const started = h.marker('deleted');
    const open = h.ssh({ tokens: [h.aliceToken], command: [`echo started; ${started.touch}; sleep 30; echo never`] });
    await started.wait();
    kube.deleteService('ns-alice', WORKSPACE);
    const r = await open;
    assert.equal(r.stdout, 'started\n');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /gitlab-workspaces-proxy: workspace no longer available/);
    // And it cannot be reached any more.
    const again = await h.ssh({ tokens: [h.aliceToken], options: ['-o', 'NumberOfPasswordPrompts=1'], command: ['echo in'] });
    assert.equal(again.code, 255);
  } finally {
    await h.close();
    discovery.stop();
    await kube.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
