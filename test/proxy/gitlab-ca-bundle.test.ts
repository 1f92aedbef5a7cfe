// A self-managed GitLab behind an internal CA. The Deployment mounts the stack's gitlabCaBundle and sets
// NODE_EXTRA_CA_CERTS to it (infra/components/gitlab-ca.ts); here the BUILT proxy runs as a process
// against an HTTPS GitLab stand-in signed by a private CA: with the variable, login (OIDC discovery
// and the token exchange) and the GraphQL ownership check succeed; without it, TLS verification
// refuses GitLab and nobody gets in. TLS is never weakened: the public roots stay, nothing is skipped.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGitLabStandIn, type GitLabStandIn, type GitLabUser } from '../support/gitlab-stand-in';
import { startKubeApiStandIn, workspaceService, type KubeApiStandIn } from '../support/kube-api-stand-in';
import { writeKubeconfig } from '../support/kubeconfig';
import { makePrivateCa, type PrivateCa } from '../support/private-ca';
import { startSampleWorkspace, type SampleWorkspace } from '../support/sample-workspace';
import { CookieJar } from '../support/http-harness';
import { freePorts, spawnProxy, testSecrets, validConfig, type SpawnedProxy } from '../support/spawn-proxy';
import { CA_ENV } from '../../infra/components/gitlab-ca';

const ZONE = 'workspaces.test';

interface Hop {
  status: number;
  location?: string;
  body: string;
}

/** One GET: workspace and proxy hosts over HTTP to 127.0.0.1, GitLab over HTTPS trusting the private CA. */
function get(url: string, jar: CookieJar, port: number, ca: string): Promise<Hop> {
  const u = new URL(url);
  const cookie = jar.header(u.hostname);
  const onResponse = (resolve: (h: Hop) => void) => (res: IncomingMessage) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (d: string) => (body += d));
    res.on('end', () => {
      jar.store(u.hostname, res.headers['set-cookie']);
      resolve({ status: res.statusCode ?? 0, location: res.headers.location, body });
    });
  };
  return new Promise((resolve, reject) => {
    const headers = { host: u.host, ...(cookie ? { cookie } : {}) };
    const req =
      u.protocol === 'https:'
        ? httpsRequest({ host: '127.0.0.1', port: u.port, path: u.pathname + u.search, headers, ca, agent: false }, onResponse(resolve))
        : httpRequest({ host: '127.0.0.1', port: u.port || port, path: u.pathname + u.search, headers, agent: false }, onResponse(resolve));
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error(`no answer from ${url}`)));
    req.end();
  });
}

async function browse(start: string, port: number, ca: string): Promise<Hop[]> {
  const jar = new CookieJar();
  const hops: Hop[] = [];
  let url = start;
  for (let i = 0; i < 12; i++) {
    const hop = await get(url, jar, port, ca);
    hops.push(hop);
    if (hop.status < 300 || hop.status >= 400 || !hop.location) break;
    url = new URL(hop.location, url).href;
  }
  return hops;
}

describe('the proxy process trusts GitLab\'s internal CA through NODE_EXTRA_CA_CERTS', () => {
  let ca: PrivateCa;
  let gitlab: GitLabStandIn;
  let kube: KubeApiStandIn;
  let workspace: SampleWorkspace;
  let alice: GitLabUser;
  let dir: string;
  let kubeconfigPath: string;
  let host: string;
  const procs: SpawnedProxy[] = [];

  before(async () => {
    ca = makePrivateCa('GitLab Internal CA');
    gitlab = await startGitLabStandIn({ tls: { key: ca.keyPem, cert: ca.certPem } });
    alice = gitlab.addUser({ username: 'alice', password: 'pw' });
    gitlab.autoLoginAs(alice);
    gitlab.setWorkspaceOwner(42, alice);
    workspace = await startSampleWorkspace();
    kube = await startKubeApiStandIn();
    kube.addService(workspaceService({ name: 'ca-ws', workspaceId: '42', zone: ZONE, ports: [workspace.port], clusterIP: '127.0.0.1' }));
    host = `${workspace.port}-ca-ws.${ZONE}`;
    dir = mkdtempSync(join(tmpdir(), 'wsp-ca-proxy-'));
    kubeconfigPath = writeKubeconfig(kube.url, dir);
  });
  after(async () => {
    for (const p of procs) await p.cleanup();
    await workspace?.close();
    await kube?.close();
    await gitlab?.close();
    ca?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  async function start(env: Record<string, string>): Promise<{ proxy: SpawnedProxy; port: number }> {
    const ports = await freePorts();
    const config = validConfig({ ports, gitlabUrl: gitlab.url });
    gitlab.registerOAuthClient({ clientId: 'spawn-test-client', clientSecret: testSecrets.clientSecret, redirectUris: [String(config.auth.redirect_uri)] });
    const proxy = spawnProxy({ config, kubeconfigPath, env });
    procs.push(proxy);
    await proxy.listening;
    // Ready (docs/contract.md §1) = the first list of workspace Services is in, so the workspace host routes.
    const deadline = Date.now() + 15_000;
    for (;;) {
      const r = await fetch(`http://127.0.0.1:${ports.internal}/readyz`).catch(() => undefined);
      if (r?.status === 200) break;
      if (Date.now() > deadline) throw new Error('the proxy never became ready');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return { proxy, port: ports.http };
  }

  it('with the bundle: OAuth login and the GraphQL check reach GitLab over verified TLS, the workspace answers', async () => {
    const { port } = await start({ [CA_ENV]: ca.caFile });
    gitlab.resetCounts();
    const hops = await browse(`http://${host}:${port}/`, port, ca.caPem);
    const last = hops.at(-1);
    assert.equal(last?.status, 200, JSON.stringify(hops.map((h) => [h.status, h.location])));
    assert.ok(gitlab.count('token') >= 1, 'the code was exchanged at /oauth/token (HTTPS)');
    assert.ok(gitlab.count('graphql') >= 1, 'ownership was checked at /api/graphql (HTTPS)');
  });

  it('without it: TLS verification refuses GitLab, no token is exchanged, nobody gets in, and the log says why', async () => {
    // The same setup as above but for the variable, so the variable alone makes the difference.
    const { port, proxy } = await start({});
    gitlab.resetCounts();
    const hops = await browse(`http://${host}:${port}/`, port, ca.caPem);
    const last = hops.at(-1);
    assert.notEqual(last?.status, 200);
    assert.ok((last?.status ?? 0) >= 500, `a server error page, got ${last?.status}`);
    assert.equal(gitlab.count('token'), 0);
    assert.equal(gitlab.count('graphql'), 0);
    // The operator reads the reason (the certificate is not trusted, and what to do) on the warning lines.
    const line = await proxy.waitForLog((l) => l.msg === 'cannot start login: GitLab unavailable', 10_000);
    const why = String(line.err);
    assert.match(why, /self-signed certificate in certificate chain \(SELF_SIGNED_CERT_IN_CHAIN\)/);
    assert.match(why, /GitLab's TLS certificate is not trusted: give the proxy its CA \(NODE_EXTRA_CA_CERTS/);
    assert.ok(!proxy.stdout().includes(testSecrets.clientSecret), 'no secret in the logs');
  });
});
