// Kubernetes API faults (docs/contract.md §3): the real discovery (client-node informer) against the API stand-in,
// with its default backoff. Watches dropped, 410 Gone, 500s, and the API server answering nothing but
// errors for 30 s: routing keeps working from the last known state, /readyz stays 200 (the proxy can serve),
// the metrics show the restarts and the age of the last list, and changes made during the outage are applied
// within seconds after it. A watch that is silently stuck (an event lost, no error) is repaired by the
// periodic full re-list.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Registry } from 'prom-client';
import { startKubeApiStandIn, workspaceService } from '../support/kube-api-stand-in';
import { writeKubeconfig } from '../support/kubeconfig';
import { loadKubeConfig } from '../../proxy-image/src/discovery/kubeconfig';
import { startWorkspaceDiscovery } from '../../proxy-image/src/discovery';
import { DEFAULT_MAX_BACKOFF_MS } from '../../proxy-image/src/discovery/watch';
import { createInternalServer } from '../../proxy-image/src/observability/internal-server';
import { parseConfigObject } from '../../proxy-image/src/config';

const logger = pino({ level: process.env.TEST_LOG ?? 'silent' });
const { config } = parseConfigObject({
  auth: { client_id: 'c', client_secret: 's', host: 'http://127.0.0.1:9', redirect_uri: 'http://auth.workspaces.test/auth/callback', signing_key: '0123456789abcdef' },
});

async function within(ms: number, what: string, cond: () => boolean | Promise<boolean>): Promise<number> {
  const started = Date.now();
  while (!(await cond())) {
    if (Date.now() - started > ms) assert.fail(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return Date.now() - started;
}

async function withDiscovery(
  opts: { resyncIntervalMs?: number },
  body: (ctx: {
    kube: Awaited<ReturnType<typeof startKubeApiStandIn>>;
    discovery: ReturnType<typeof startWorkspaceDiscovery>;
    get(path: string): Promise<{ status: number; text: string }>;
    metric(name: string): Promise<number>;
  }) => Promise<void>,
): Promise<void> {
  const kube = await startKubeApiStandIn();
  const dir = mkdtempSync(join(tmpdir(), 'kube-faults-'));
  const registry = new Registry();
  const discovery = startWorkspaceDiscovery({ kubeConfig: loadKubeConfig(writeKubeconfig(kube.url, dir)), logger, registry, ...opts });
  const internal = createInternalServer({ config, directory: discovery, registry, logger });
  const { port } = await internal.listen(0, '127.0.0.1');
  const get = async (path: string) => {
    const r = await fetch(`http://127.0.0.1:${port}${path}`);
    return { status: r.status, text: await r.text() };
  };
  const metric = async (name: string) => {
    const m = new RegExp(`^${name} (\\S+)$`, 'm').exec((await get('/metrics')).text);
    return m ? Number(m[1]) : NaN;
  };
  try {
    await body({ kube, discovery, get, metric });
  } finally {
    await internal.shutdown();
    discovery.stop();
    await kube.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a 30 s API outage with dropped watches, 410 Gone and 500s: routing goes on, changes land within seconds after', { timeout: 120_000 }, async () => {
  await withDiscovery({}, async ({ kube, discovery, get, metric }) => {
    kube.addService(workspaceService({ name: 'ws-old', namespace: 'ns', workspaceId: '1', ports: [3000], clusterIP: '10.0.0.1' }));
    kube.addService(workspaceService({ name: 'ws-doomed', namespace: 'ns', workspaceId: '2', ports: [3000], clusterIP: '10.0.0.2' }));
    await within(20_000, 'first list', () => discovery.isReady());
    assert.equal((await get('/readyz')).status, 200);
    const restartsBefore = await metric('workspaces_proxy_discovery_watch_restarts_total');

    // Faults while the API still answers: a 410 and a dropped watch, each followed by a re-list.
    kube.expireResourceVersion();
    kube.breakWatches();
    kube.addService(workspaceService({ name: 'ws-mid', namespace: 'ns', workspaceId: '3', ports: [3000], clusterIP: '10.0.0.3' }));
    await within(20_000, 'a change after a 410 and a dropped watch', () => discovery.routeForHost('3000-ws-mid.workspaces.test') !== undefined);

    // The outage: every request answers 500 and open watches are cut, for 30 s.
    kube.failWith(500);
    kube.breakWatches();
    const outageStart = Date.now();
    kube.addService(workspaceService({ name: 'ws-new', namespace: 'ns', workspaceId: '4', ports: [3000], clusterIP: '10.0.0.4' }));
    kube.deleteService('ns', 'ws-doomed');
    while (Date.now() - outageStart < 30_000) {
      // Routing from the last known state, and ready: the proxy serves what it knows.
      assert.deepEqual(discovery.routeForHost('3000-ws-old.workspaces.test')?.target, { host: '10.0.0.1', port: 3000 });
      assert.equal((await get('/readyz')).status, 200);
      await new Promise((r) => setTimeout(r, 1000));
    }
    // The metrics say the watch keeps failing and how old the routing state is.
    assert.ok((await metric('workspaces_proxy_discovery_watch_restarts_total')) >= restartsBefore + 3);
    const lastList = await metric('workspaces_proxy_discovery_last_list_timestamp_seconds');
    assert.ok(Date.now() / 1000 - lastList >= 29, `last list ${Date.now() / 1000 - lastList} s ago`);

    kube.failWith(null);
    const restored = Date.now();
    // Applied within seconds: the next retry comes after at most the maximum backoff (5 s).
    await within(DEFAULT_MAX_BACKOFF_MS * 1.2 + 5_000, 'changes made during the outage', () =>
      discovery.routeForHost('3000-ws-new.workspaces.test') !== undefined && discovery.routeForHost('3000-ws-doomed.workspaces.test') === undefined);
    console.log(`kube faults: changes made during a 30 s outage applied ${Date.now() - restored} ms after it ended`);
    assert.ok(Date.now() / 1000 - (await metric('workspaces_proxy_discovery_last_list_timestamp_seconds')) < 10);
  });
});

test('a watch that is silently stuck is repaired by the periodic full re-list', { timeout: 60_000 }, async () => {
  await withDiscovery({ resyncIntervalMs: 1000 }, async ({ kube, discovery, metric }) => {
    kube.addService(workspaceService({ name: 'ws-a', namespace: 'ns', workspaceId: '1', ports: [3000], clusterIP: '10.0.0.1' }));
    await within(20_000, 'first list', () => discovery.isReady());
    const lists = await metric('workspaces_proxy_discovery_lists_total');
    // A lost event: kept by the API, never sent on the open watch, and no error anywhere.
    kube.addService(workspaceService({ name: 'ws-lost', namespace: 'ns', workspaceId: '2', ports: [3000], clusterIP: '10.0.0.2' }), { silent: true });
    await within(10_000, 'the lost Service found by a re-list', () => discovery.routeForHost('3000-ws-lost.workspaces.test') !== undefined);
    assert.ok((await metric('workspaces_proxy_discovery_lists_total')) > lists);
    assert.equal(await metric('workspaces_proxy_discovery_watch_restarts_total'), 0, 'a re-list is not a failure');
  });
});
