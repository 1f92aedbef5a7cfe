// docs/contract.md §1 and §2 at the process level: the BUILT proxy (`node proxy-image/dist/main.js`) started with
// the flag forms the upstream chart and people use, refusing bad configs with a non-zero exit that names
// the dotted key, warning about unknown keys, accepting every documented host key format, and exiting 0 on
// SIGTERM.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'ssh2';
import pino from 'pino';
import { startProxy } from '../../proxy-image/src/app';
import { parseConfigObject } from '../../proxy-image/src/config';
import { loadKubeConfig } from '../../proxy-image/src/discovery/kubeconfig';
import { startKubeApiStandIn, type KubeApiStandIn } from '../support/kube-api-stand-in';
import { writeKubeconfig } from '../support/kubeconfig';
import { ensureBuilt, freePorts, runProxyToExit, spawnProxy, validConfig, type ConfigDoc, type LogLine, type Ports, type SpawnOptions } from '../support/spawn-proxy';

let kube: KubeApiStandIn;
let dir: string;
let kubeconfigPath: string;

before(async () => {
  ensureBuilt();
  kube = await startKubeApiStandIn();
  dir = mkdtempSync(join(tmpdir(), 'wsp-cli-'));
  kubeconfigPath = writeKubeconfig(kube.url, dir);
});
after(async () => {
  await kube.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Starts the proxy, waits for 'proxy listening', checks /healthz answers, then stops it with SIGTERM. */
async function startsAndStops(opts: Omit<SpawnOptions, 'kubeconfigPath'>): Promise<{ logs: LogLine[]; sshPort?: number; code: number | null; stderr: string }> {
  const p = spawnProxy({ kubeconfigPath, ...opts });
  try {
    const addrs = await p.listening;
    const health = await fetch(`http://127.0.0.1:${addrs.internal.port}/healthz`);
    assert.equal(health.status, 200);
    const { code } = await p.stop('SIGTERM');
    return { logs: p.logs(), sshPort: addrs.ssh?.port, code, stderr: p.stderr() };
  } finally {
    await p.cleanup();
  }
}

describe('flags', () => {
  for (const [name, args] of [
    ['Go style -config x', ['-config', '{config}', '-kubeconfig', '{kubeconfig}']],
    ['Go style -config=x', ['-config={config}', '-kubeconfig={kubeconfig}']],
    ['GNU style --config x', ['--config', '{config}', '--kubeconfig', '{kubeconfig}']],
  ] as const) {
    test(`${name} starts the proxy on the configured ports`, async () => {
      const ports = await freePorts();
      const p = spawnProxy({ config: validConfig({ ports }), kubeconfigPath, args: [...args] });
      try {
        const addrs = await p.listening;
        assert.equal(addrs.internal.port, ports.internal);
        assert.equal(addrs.http?.port, ports.http);
        assert.equal(addrs.ssh, undefined, 'ssh is off by default');
        assert.equal((await fetch(`http://127.0.0.1:${ports.internal}/healthz`)).status, 200);
      } finally {
        await p.cleanup();
      }
    });
  }

  test('without -config the proxy exits 2 and prints the usage', async () => {
    const r = await runProxyToExit({ config: validConfig({ ports: await freePorts() }), args: ['-kubeconfig', '{kubeconfig}'] });
    assert.equal(r.timedOut, false);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /usage: .*-config/);
  });

  test('an unknown flag exits 2 with the usage', async () => {
    const r = await runProxyToExit({ config: validConfig({ ports: await freePorts() }), args: ['-config', '{config}', '-colour', 'blue'] });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /colour/);
    assert.match(r.stderr, /usage:/);
  });

  test('a config file that does not exist exits non-zero naming the problem', async () => {
    const r = await runProxyToExit({ config: '', args: ['-config', '{config}.missing'] });
    assert.notEqual(r.code, 0);
    assert.equal(r.timedOut, false);
    assert.match(r.stderr, /config/);
    assert.match(r.stderr, /ENOENT|no such file/i);
  });
});

describe('config.yaml errors stop the process and name the dotted key', () => {
  async function rejects(mutate: (c: ConfigDoc) => void, key: RegExp): Promise<void> {
    const config = validConfig({ ports: await freePorts() });
    mutate(config);
    const r = await runProxyToExit({ config, kubeconfigPath });
    assert.equal(r.timedOut, false, 'the proxy must exit by itself');
    assert.ok(r.code !== 0 && r.code !== null, `exit code ${r.code}`);
    assert.match(r.stderr, key);
    assert.doesNotMatch(r.stdout, /proxy listening/);
  }

  for (const key of ['client_id', 'client_secret', 'host', 'redirect_uri', 'signing_key'] as const) {
    test(`missing auth.${key}`, () => rejects((c) => delete c.auth[key], new RegExp(`auth\\.${key}\\b`)));
  }
  for (const [name, text] of [['missing auth section', 'http:\n  port: 9876\n'], ['empty file', '']] as const) {
    test(`${name}: every required key is named`, async () => {
      const r = await runProxyToExit({ config: text, kubeconfigPath });
      assert.ok(r.code !== 0 && r.code !== null, `exit code ${r.code}`);
      for (const key of ['auth.client_id', 'auth.client_secret', 'auth.host', 'auth.redirect_uri', 'auth.signing_key']) {
        assert.ok(r.stderr.includes(key), `${key} in ${r.stderr}`);
      }
    });
  }
  test('wrong type: http.port: "x"', () => rejects((c) => (c.http.port = 'x'), /http\.port\b/));
  test('wrong type: ssh.enabled: "yes please"', () => rejects((c) => (c.ssh = { enabled: 'yes please' }), /ssh\.enabled\b/));
  test('wrong type: auth.reauthorize_interval: [1]', () => rejects((c) => (c.auth.reauthorize_interval = [1]), /auth\.reauthorize_interval\b/));
  test('ssh.enabled without ssh.host_key', () => rejects((c) => (c.ssh = { enabled: true, port: 2222 }), /ssh\.host_key\b/));
  test('ssh.enabled with an unreadable ssh.host_key', () =>
    rejects((c) => (c.ssh = { enabled: true, host_key: '-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n-----END OPENSSH PRIVATE KEY-----\n' }), /ssh\.host_key\b/));
  test('ssh.enabled with a public key as ssh.host_key', () => {
    const pub = createPublicKey(generateKeyPairSync('ed25519').privateKey).export({ type: 'spki', format: 'pem' }).toString();
    return rejects((c) => (c.ssh = { enabled: true, host_key: pub }), /ssh\.host_key\b/);
  });
  test('ssh.enabled with a passphrase-protected ssh.host_key', () => {
    const file = join(dir, 'encrypted_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'a passphrase', '-C', 'test', '-f', file]);
    return rejects((c) => (c.ssh = { enabled: true, host_key: readFileSync(file, 'utf8') }), /ssh\.host_key\b/);
  });
  test('YAML that does not parse', async () => {
    const r = await runProxyToExit({ config: 'auth: [\n', kubeconfigPath });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /YAML/);
  });
});

describe('without -kubeconfig (not in a cluster)', () => {
  async function readyWith(env: Record<string, string>): Promise<void> {
    const ports = await freePorts();
    const lists = kube.count('list');
    const p = spawnProxy({ config: validConfig({ ports }), args: ['-config', '{config}'], env: { KUBERNETES_SERVICE_HOST: '', ...env } });
    try {
      await p.listening;
      await p.waitForLog((l) => /first complete list/.test(String(l.msg)));
      assert.ok(kube.count('list') > lists, 'it listed Services from the stand-in that kubeconfig names');
      assert.equal((await fetch(`http://127.0.0.1:${ports.internal}/readyz`)).status, 200);
    } finally {
      await p.cleanup();
    }
  }
  test('KUBECONFIG is used', () => readyWith({ KUBECONFIG: kubeconfigPath }));
  test('~/.kube/config is used when KUBECONFIG is unset', () => {
    const home = join(dir, 'home');
    mkdirSync(join(home, '.kube'), { recursive: true });
    copyFileSync(kubeconfigPath, join(home, '.kube', 'config'));
    return readyWith({ KUBECONFIG: '', HOME: home });
  });
});

test('a kubeconfig that does not exist stops the process with a non-zero exit', async () => {
  const r = await runProxyToExit({ config: validConfig({ ports: await freePorts() }), args: ['-config', '{config}', '-kubeconfig', '{kubeconfig}.missing'] });
  assert.equal(r.timedOut, false, 'the proxy must exit by itself');
  assert.ok(r.code !== 0 && r.code !== null, `exit code ${r.code}`);
  assert.match(r.stderr, /kubeconfig|ENOENT|no such file/i);
});

/** Runs `body` with free ports whose http port is already taken by another listener. */
async function withHttpPortTaken(body: (ports: Ports) => Promise<void>): Promise<void> {
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
  try {
    const ports = await freePorts();
    ports.http = (blocker.address() as AddressInfo).port;
    await body(ports);
  } finally {
    await new Promise((r) => blocker.close(r));
  }
}

test('a listener port already in use stops the process with a non-zero exit (no half-started proxy)', () =>
  withHttpPortTaken(async (ports) => {
    const r = await runProxyToExit({ config: validConfig({ ports }), kubeconfigPath });
    assert.equal(r.timedOut, false, 'the proxy must exit by itself');
    assert.ok(r.code !== 0 && r.code !== null, `exit code ${r.code}`);
    assert.match(r.stderr, /EADDRINUSE/);
  }));

test('in process, a port already in use rejects start-up and stops what had started (watch, other listeners)', () =>
  withHttpPortTaken(async (ports) => {
    const { config } = parseConfigObject(validConfig({ ports }));
    const watchesBefore = kube.count('watch');
    await assert.rejects(
      startProxy({ config, kubeConfig: loadKubeConfig(kubeconfigPath), logger: pino({ level: 'silent' }), listenHost: '127.0.0.1' }),
      /EADDRINUSE/,
    );
    // The internal listener had bound first: it is closed again.
    await assert.rejects(new Promise<void>((resolve, reject) => {
      const sock = connect(ports.internal, '127.0.0.1', () => {
        sock.destroy();
        resolve();
      });
      sock.on('error', reject);
    }), /ECONNREFUSED/);
    // Discovery was stopped: a list already in flight may still arrive, but no watch is opened after it.
    await new Promise((r) => setTimeout(r, 700));
    assert.equal(kube.count('watch'), watchesBefore, 'no watch opened after start-up failed');
    assert.equal(kube.openWatches(), 0);
  }));

test('unknown keys are logged as warnings naming the dotted key, and the proxy still starts', async () => {
  const config = validConfig({ ports: await freePorts() });
  config.auth.colour = 'blue';
  config.http.tls = true;
  config.extra_section = { a: 1 };
  const { logs, code } = await startsAndStops({ config });
  assert.equal(code, 0);
  const warned = logs.filter((l) => l.level === 40).map((l) => `${l.msg} ${JSON.stringify(l)}`);
  for (const key of ['auth.colour', 'http.tls', 'extra_section']) {
    assert.ok(warned.some((w) => w.includes(key)), `a warning names ${key}: ${warned.join('\n')}`);
  }
});

test('SIGTERM: an idle proxy exits 0', async () => {
  const p = spawnProxy({ config: validConfig({ ports: await freePorts() }), kubeconfigPath });
  try {
    await p.listening;
    const e = await p.stop('SIGTERM', 30_000);
    assert.deepEqual(e, { code: 0, signal: null }, `exit after SIGTERM\nstdout:\n${p.stdout()}\nstderr:\n${p.stderr()}`);
    assert.ok(p.logs().some((l) => /shutdown complete/.test(String(l.msg))), 'logs that shutdown completed');
  } finally {
    await p.cleanup();
  }
});

test('SIGINT: an idle proxy exits 0 too', async () => {
  const p = spawnProxy({ config: validConfig({ ports: await freePorts() }), kubeconfigPath });
  try {
    await p.listening;
    assert.deepEqual(await p.stop('SIGINT', 30_000), { code: 0, signal: null }, p.stdout());
  } finally {
    await p.cleanup();
  }
});

// --- host keys ------------------------------------------------------------------------------------------

function sshString(b: Buffer | string): Buffer {
  const data = typeof b === 'string' ? Buffer.from(b) : b;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  return Buffer.concat([len, data]);
}
function sshMpint(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  const v = b.subarray(i);
  return sshString(v[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), v]) : v);
}

/** The SSH wire-format public key of a node:crypto key (what the server sends as its host key). */
function sshPublicBlob(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' });
  const b = (s: string | undefined) => Buffer.from(s ?? '', 'base64url');
  if (jwk.kty === 'RSA') return Buffer.concat([sshString('ssh-rsa'), sshMpint(b(jwk.e)), sshMpint(b(jwk.n))]);
  if (jwk.kty === 'EC') {
    const curve = { 'P-256': 'nistp256', 'P-384': 'nistp384', 'P-521': 'nistp521' }[jwk.crv as string] as string;
    return Buffer.concat([sshString(`ecdsa-sha2-${curve}`), sshString(curve), sshString(Buffer.concat([Buffer.from([4]), b(jwk.x), b(jwk.y)]))]);
  }
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return Buffer.concat([sshString('ssh-ed25519'), sshString(b(jwk.x))]);
  throw new Error(`unexpected key type ${jwk.kty}`);
}

/** Connects to the SSH listener and returns the host key it presents (then hangs up). */
function presentedHostKey(port: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    let key: Buffer | undefined;
    client.on('error', (err) => (key ? resolve(key) : reject(err)));
    client.on('close', () => (key ? resolve(key) : reject(new Error('closed before a host key was seen'))));
    client.connect({
      host: '127.0.0.1',
      port,
      username: 'nobody',
      readyTimeout: 10_000,
      hostVerifier: (k: Buffer) => {
        key = Buffer.from(k);
        return false; // enough: we only want to see the key
      },
    });
  });
}

interface HostKeyCase {
  name: string;
  privateKey: string;
  publicBlob: Buffer;
}

function sshKeygen(type: string, format: 'openssh' | 'PEM', keyDir: string): HostKeyCase {
  const file = join(keyDir, `${type}-${format}`);
  execFileSync('ssh-keygen', ['-q', '-t', type, ...(format === 'PEM' ? ['-m', 'PEM'] : []), '-N', '', '-C', 'test', '-f', file]);
  const pub = readFileSync(`${file}.pub`, 'utf8').split(' ')[1]!;
  return { name: `${type} ${format} (ssh-keygen)`, privateKey: readFileSync(file, 'utf8'), publicBlob: Buffer.from(pub, 'base64') };
}

function nodeKey(name: string, pair: { privateKey: KeyObject; publicKey: KeyObject }, type: 'pkcs1' | 'sec1' | 'pkcs8'): HostKeyCase {
  return { name, privateKey: pair.privateKey.export({ type, format: 'pem' }).toString(), publicBlob: sshPublicBlob(pair.publicKey) };
}

describe('ssh.host_key formats (RSA, ECDSA, Ed25519; PEM and OpenSSH) are accepted and served', () => {
  const keyDir = mkdtempSync(join(tmpdir(), 'wsp-hostkeys-'));
  after(() => rmSync(keyDir, { recursive: true, force: true }));
  const cases: HostKeyCase[] = [
    sshKeygen('rsa', 'openssh', keyDir),
    sshKeygen('rsa', 'PEM', keyDir),
    sshKeygen('ecdsa', 'openssh', keyDir),
    sshKeygen('ecdsa', 'PEM', keyDir),
    sshKeygen('ed25519', 'openssh', keyDir),
    nodeKey('rsa PEM PKCS#1 (node:crypto)', generateKeyPairSync('rsa', { modulusLength: 2048 }), 'pkcs1'),
    nodeKey('rsa PEM PKCS#8 (node:crypto, openssl genpkey)', generateKeyPairSync('rsa', { modulusLength: 2048 }), 'pkcs8'),
    nodeKey('ecdsa P-256 PEM SEC1 (node:crypto)', generateKeyPairSync('ec', { namedCurve: 'P-256' }), 'sec1'),
    nodeKey('ecdsa P-384 PEM PKCS#8 (node:crypto)', generateKeyPairSync('ec', { namedCurve: 'P-384' }), 'pkcs8'),
    // Ed25519 has no PEM form but PKCS#8: what `openssl genpkey -algorithm ed25519` and Pulumi's
    // tls.PrivateKey privateKeyPem give.
    nodeKey('ed25519 PEM PKCS#8 (node:crypto)', generateKeyPairSync('ed25519'), 'pkcs8'),
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const ports = await freePorts();
      const config = validConfig({ ports });
      config.ssh = { enabled: true, port: ports.ssh, host_key: c.privateKey };
      const p = spawnProxy({ config, kubeconfigPath });
      try {
        const addrs = await p.listening.catch((err: Error) => assert.fail(`proxy did not start with this host key: ${err.message}`));
        assert.equal(addrs.ssh?.port, ports.ssh);
        const presented = await presentedHostKey(ports.ssh);
        assert.equal(presented.toString('base64'), c.publicBlob.toString('base64'), 'the SSH listener presents the configured key');
      } finally {
        await p.cleanup();
      }
    });
  }
});
