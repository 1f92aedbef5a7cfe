// docs/contract.md §1 and §4 at the process level: the BUILT proxy's /readyz stays non-200 until discovery has the
// first complete list of workspace Services, /healthz answers at once, and on the main port health and
// metrics answer only to probe-like Hosts (IP literal, localhost, none); every other unknown host gets 400.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { request } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startKubeApiStandIn, workspaceService, type KubeApiStandIn } from '../support/kube-api-stand-in';
import { startGitLabStandIn, type GitLabStandIn } from '../support/gitlab-stand-in';
import { writeKubeconfig } from '../support/kubeconfig';
import { freePorts, spawnProxy, validConfig, type Ports, type SpawnedProxy } from '../support/spawn-proxy';

const ZONE = 'workspaces.test';
let kube: KubeApiStandIn;
let gitlab: GitLabStandIn;
let dir: string;
let proxy: SpawnedProxy;
let ports: Ports;

before(async () => {
  kube = await startKubeApiStandIn();
  gitlab = await startGitLabStandIn();
  dir = mkdtempSync(join(tmpdir(), 'wsp-ready-'));
  // The Kubernetes API fails every list until the test lets it answer.
  kube.failWith(503);
  kube.addService(workspaceService({ name: 'ready-ws', namespace: 'ns1', workspaceId: '42', zone: ZONE, ports: [3000], clusterIP: '127.0.0.1' }));
  ports = await freePorts();
  proxy = spawnProxy({ config: validConfig({ ports, gitlabUrl: gitlab.url }), kubeconfigPath: writeKubeconfig(kube.url, dir) });
  await proxy.listening;
});
after(async () => {
  await proxy?.cleanup();
  await kube?.close();
  await gitlab?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** GET with an explicit Host header (or none: HTTP/1.0 over a raw socket, as a bare probe can send). */
function get(port: number, path: string, host: string | null): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  if (host === null) {
    return new Promise((resolve, reject) => {
      const sock = connect(port, '127.0.0.1', () => sock.end(`GET ${path} HTTP/1.0\r\n\r\n`));
      let raw = '';
      sock.setEncoding('utf8');
      sock.on('data', (d: string) => (raw += d));
      sock.on('error', reject);
      sock.on('close', () => {
        const m = /^HTTP\/1\.[01] (\d{3})/.exec(raw);
        if (!m) return reject(new Error(`no HTTP response: ${JSON.stringify(raw)}`));
        resolve({ status: Number(m[1]), body: raw.slice(raw.indexOf('\r\n\r\n') + 4), headers: {} });
      });
    });
  }
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('before the first complete Service list: /healthz 200, /readyz non-200 on both ports', async () => {
  // Let discovery try (and fail) at least twice, so "not ready" is observed across a retry.
  while (kube.count('list') < 2) await sleep(50);
  const health = await get(ports.internal, '/healthz', `127.0.0.1:${ports.internal}`);
  assert.equal(health.status, 200);
  const ready = await get(ports.internal, '/readyz', `127.0.0.1:${ports.internal}`);
  assert.notEqual(ready.status, 200);
  assert.ok(ready.status >= 500, `a probe failure status, got ${ready.status}`);
  const onMain = await get(ports.http, '/readyz', `127.0.0.1:${ports.http}`);
  assert.notEqual(onMain.status, 200);
  // While not ready no Service is known, so a workspace host is an unknown host.
  assert.equal((await get(ports.http, '/', `3000-ready-ws.${ZONE}:${ports.http}`)).status, 400);
});

test('after the Kubernetes API answers the list, /readyz turns 200', async () => {
  const listsBefore = kube.count('list');
  kube.failWith(null);
  let status = 0;
  while (status !== 200) {
    await sleep(100);
    status = (await get(ports.internal, '/readyz', `127.0.0.1:${ports.internal}`)).status;
  }
  assert.ok(kube.count('list') > listsBefore, 'readiness followed a successful list');
  assert.equal((await get(ports.internal, '/healthz', `127.0.0.1:${ports.internal}`)).status, 200);
  await proxy.waitForLog((l) => /first complete list/.test(String(l.msg)));
});

test('main port: /readyz, /healthz and metrics answer for an IP literal, localhost or no Host', async () => {
  for (const host of [`127.0.0.1:${ports.http}`, '127.0.0.1', `localhost:${ports.http}`, 'localhost', `[::1]:${ports.http}`, '10.1.2.3:9876', null]) {
    const ready = await get(ports.http, '/readyz', host);
    assert.equal(ready.status, 200, `/readyz with Host ${host}`);
    const health = await get(ports.http, '/healthz', host);
    assert.equal(health.status, 200, `/healthz with Host ${host}`);
    const metrics = await get(ports.http, '/metrics', host);
    assert.equal(metrics.status, 200, `/metrics with Host ${host}`);
    assert.match(metrics.body, /^# (HELP|TYPE) /m);
  }
});

test('main port: any other unknown host gets 400 for /readyz, /healthz and /metrics', async () => {
  for (const host of [`nobody.${ZONE}:${ports.http}`, `3001-ready-ws.${ZONE}`, 'example.com', 'localhost.example.com', '127.0.0.1.nip.io']) {
    for (const path of ['/readyz', '/healthz', '/metrics']) {
      const r = await get(ports.http, path, host);
      assert.equal(r.status, 400, `${path} with Host ${host}: ${r.status} ${r.body}`);
      assert.doesNotMatch(r.body, /^ready|^ok|# HELP/m);
    }
  }
});

test('main port: a workspace host never answers the proxy\'s own /readyz or /metrics', async () => {
  const host = `3000-ready-ws.${ZONE}:${ports.http}`;
  for (const path of ['/readyz', '/healthz', '/metrics']) {
    const r = await get(ports.http, path, host);
    // No session: the request belongs to the workspace, so it goes into the login (through the proxy
    // domain or straight to GitLab), never to the proxy's own endpoint.
    assert.equal(r.status, 302, `${path} on a workspace host: ${r.status} ${r.body}`);
    const location = new URL(String(r.headers.location));
    assert.ok(
      location.href.startsWith(`${gitlab.url}/oauth/authorize?`) || (location.hostname === `auth.${ZONE}` && location.pathname.startsWith('/auth/')),
      location.href,
    );
  }
});

test('internal port answers health whatever the Host', async () => {
  for (const host of [`3000-ready-ws.${ZONE}`, 'example.com', null]) {
    assert.equal((await get(ports.internal, '/readyz', host)).status, 200, `Host ${host}`);
    assert.equal((await get(ports.internal, '/healthz', host)).status, 200, `Host ${host}`);
  }
});
