// Workspace discovery end to end: the real client-node informer, a kubeconfig file, the Kubernetes API
// stand-in. Add/update/delete propagate; broken watches, lost events and 410 Gone end in a re-list after
// which no stale host survives.
import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Registry } from 'prom-client';
import { startKubeApiStandIn, workspaceService, type KubeApiStandIn } from '../support/kube-api-stand-in';
import { writeKubeconfig } from '../support/kubeconfig';
import { loadKubeConfig } from '../../proxy-image/src/discovery/kubeconfig';
import { startWorkspaceDiscovery, type WorkspaceDiscovery } from '../../proxy-image/src/discovery';
import type { WorkspaceChange } from '../../proxy-image/src/discovery/types';

const logger = pino({ level: process.env.TEST_LOG ?? 'silent' });
let kube: KubeApiStandIn;
let dir: string;
let discovery: WorkspaceDiscovery | undefined;
let registry: Registry;

/** Polls until `cond` holds; fails (instead of hanging) after a generous bound. */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(`timed out waiting for: ${what}`);
}

function start(token?: string): WorkspaceDiscovery {
  registry = new Registry();
  const kubeConfig = loadKubeConfig(writeKubeconfig(kube.url, dir, { token }));
  discovery = startWorkspaceDiscovery({ kubeConfig, logger, registry, initialBackoffMs: 50, maxBackoffMs: 200 });
  return discovery;
}

beforeEach(async () => {
  kube = await startKubeApiStandIn({ token: 'sa-token' });
  dir = mkdtempSync(join(tmpdir(), 'discovery-test-'));
});
afterEach(async () => {
  discovery?.stop();
  discovery = undefined;
  await kube.close();
  rmSync(dir, { recursive: true, force: true });
});

test('ready after the first list; add, update and delete propagate through the watch', async () => {
  kube.addService(workspaceService({ name: 'ws-1', namespace: 'team-a', workspaceId: '11', ports: [3000, 60022], clusterIP: '10.1.0.5' }));
  // Not a workspace Service: no agent label, never listed.
  kube.addService({ metadata: { name: 'other', namespace: 'team-a', annotations: { 'workspaces.gitlab.com/host-template': '{{.port}}-other.workspaces.test', 'workspaces.gitlab.com/id': '1' } }, spec: { clusterIP: '10.1.0.9', ports: [{ port: 80 }] } });
  const d = start('sa-token');
  const changes: WorkspaceChange[] = [];
  d.onChange((c) => changes.push(c));
  assert.equal(d.isReady(), false);
  await until(() => d.isReady(), 'first list');
  assert.deepEqual(d.routeForHost('3000-ws-1.workspaces.test')?.target, { host: '10.1.0.5', port: 3000 });
  assert.equal(d.routeForHost('80-other.workspaces.test'), undefined);
  const ws = d.workspaceByName('ws-1');
  assert.ok(ws && ws !== 'ambiguous');
  assert.equal(ws.id, '11');

  kube.addService(workspaceService({ name: 'ws-2', namespace: 'team-b', workspaceId: '12', ports: [8080], clusterIP: 'None' }));
  await until(() => d.routeForHost('8080-ws-2.workspaces.test') !== undefined, 'ws-2 added');
  assert.deepEqual(d.routeForHost('8080-ws-2.workspaces.test')?.target, { host: 'ws-2.team-b.svc', port: 8080 });

  const updated = workspaceService({ name: 'ws-1', namespace: 'team-a', workspaceId: '11', ports: [4000], clusterIP: '10.1.0.5', hostTemplate: '{{ .port }}-moved.workspaces.test' });
  kube.updateService(updated);
  await until(() => d.routeForHost('4000-moved.workspaces.test') !== undefined, 'ws-1 updated');
  assert.equal(d.routeForHost('3000-ws-1.workspaces.test'), undefined);
  assert.equal(d.routeForHost('60022-ws-1.workspaces.test'), undefined);

  kube.deleteService('team-a', 'ws-1');
  await until(() => d.routeForHost('4000-moved.workspaces.test') === undefined, 'ws-1 deleted');
  assert.equal(d.workspaceByName('ws-1'), undefined);
  assert.deepEqual(changes.map((c) => `${c.type}:${c.workspace.name}`), ['added:ws-1', 'added:ws-2', 'updated:ws-1', 'removed:ws-1']);

  const metrics = await registry.metrics();
  assert.match(metrics, /^workspaces_proxy_workspaces 1$/m);
  assert.match(metrics, /^workspaces_proxy_workspace_hosts 1$/m);
});

test('a broken watch (lost events meanwhile) restarts with a re-list: no stale host survives', async () => {
  kube.addService(workspaceService({ name: 'gone', workspaceId: '1', ports: [3000] }));
  kube.addService(workspaceService({ name: 'changed', workspaceId: '2', ports: [3000] }));
  const d = start('sa-token');
  await until(() => d.isReady() && kube.openWatches() === 1, 'watching');
  assert.ok(d.routeForHost('3000-gone.workspaces.test'));
  const lists = kube.count('list');

  // While the API fails, the watch breaks and events are lost; the history is compacted too, so nothing
  // could be replayed: only a fresh list can bring the index up to date.
  kube.failWith(503);
  kube.breakWatches();
  kube.deleteService('default', 'gone', { silent: true });
  kube.updateService(workspaceService({ name: 'changed', workspaceId: '2', ports: [5000] }), { silent: true });
  kube.addService(workspaceService({ name: 'new', workspaceId: '3', ports: [3000] }), { silent: true });
  kube.expireResourceVersion();
  await until(() => kube.count('list') > lists + 1, 'failing re-lists with backoff');
  assert.ok(d.routeForHost('3000-gone.workspaces.test'), 'last known state is kept while the API is down');
  assert.equal(d.isReady(), true);
  kube.failWith(null);

  await until(() => d.routeForHost('3000-new.workspaces.test') !== undefined, 're-listed');
  assert.equal(d.routeForHost('3000-gone.workspaces.test'), undefined);
  assert.equal(d.routeForHost('3000-changed.workspaces.test'), undefined);
  assert.ok(d.routeForHost('5000-changed.workspaces.test'));
  const restarts = /^workspaces_proxy_discovery_watch_restarts_total (\d+)$/m.exec(await registry.metrics());
  assert.ok(Number(restarts?.[1]) >= 2, `watch restarts counted: ${restarts?.[0]}`);

  // And the watch after the re-list works.
  kube.deleteService('default', 'new');
  await until(() => d.routeForHost('3000-new.workspaces.test') === undefined, 'delete after recovery');
});

test('410 Gone as a watch ERROR event makes the informer re-list; lost deletes are applied', async () => {
  kube.addService(workspaceService({ name: 'a', workspaceId: '1', ports: [3000] }));
  kube.addService(workspaceService({ name: 'b', workspaceId: '2', ports: [3000] }));
  const d = start('sa-token');
  await until(() => d.isReady() && kube.openWatches() === 1, 'watching');
  const lists = kube.count('list');
  kube.deleteService('default', 'a', { silent: true });
  kube.addService(workspaceService({ name: 'c', workspaceId: '3', ports: [3000] }), { silent: true });
  kube.expireResourceVersion();
  await until(() => d.routeForHost('3000-c.workspaces.test') !== undefined, 're-list after 410');
  assert.equal(d.routeForHost('3000-a.workspaces.test'), undefined);
  assert.ok(d.routeForHost('3000-b.workspaces.test'));
  assert.ok(kube.count('list') > lists);
});

test('410 Gone as an HTTP status on reconnect also re-lists', async () => {
  kube.addService(workspaceService({ name: 'a', workspaceId: '1', ports: [3000] }));
  const d = start('sa-token');
  await until(() => d.isReady() && kube.openWatches() === 1, 'watching');
  kube.deleteService('default', 'a', { silent: true });
  kube.expireResourceVersion({ as: 'status' });
  await until(() => d.routeForHost('3000-a.workspaces.test') === undefined, 'stale host removed');
  await until(() => kube.openWatches() === 1, 'watching again');
});

test('a watch the server ends cleanly resumes from its resourceVersion and misses nothing', async () => {
  const d = start('sa-token');
  await until(() => d.isReady() && kube.openWatches() === 1, 'watching');
  const lists = kube.count('list');
  kube.breakWatches({ graceful: true });
  kube.addService(workspaceService({ name: 'late', workspaceId: '9', ports: [3000] }), { silent: true });
  await until(() => d.routeForHost('3000-late.workspaces.test') !== undefined, 'replayed from history');
  assert.equal(kube.count('list'), lists);
});

test('not ready while the API refuses the credentials; ready once it accepts them', async () => {
  await kube.close();
  kube = await startKubeApiStandIn({ token: 'right' });
  kube.addService(workspaceService({ name: 'ws', workspaceId: '1', ports: [3000] }));
  const d = start('wrong');
  await until(() => kube.count('list') >= 2, 'retries');
  assert.equal(d.isReady(), false);
  assert.equal(d.routeForHost('3000-ws.workspaces.test'), undefined);
  d.stop();
  const d2 = start('right');
  await until(() => d2.isReady(), 'ready with the right token');
  assert.ok(d2.routeForHost('3000-ws.workspaces.test'));
});

test('stop() closes the watch and makes no further requests', async () => {
  const d = start('sa-token');
  await until(() => d.isReady() && kube.openWatches() === 1, 'watching');
  d.stop();
  await until(() => kube.openWatches() === 0, 'watch closed');
  const requests = kube.count('list') + kube.count('watch');
  kube.breakWatches();
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(kube.count('list') + kube.count('watch'), requests);
});

test('stop() while the first list is in flight opens no watch afterwards', async () => {
  const d = start('sa-token');
  d.stop();
  await until(() => kube.count('list') >= 1, 'list request arrived');
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(kube.count('watch'), 0);
  assert.equal(kube.openWatches(), 0);
  assert.equal(d.isReady(), false);
});
