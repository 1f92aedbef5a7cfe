// The Kubernetes API stand-in speaks list/watch as the apiserver does for the parts tests rely on.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startKubeApiStandIn, workspaceService, parseLabelSelector, type KubeApiStandIn } from '../support/kube-api-stand-in';

let kube: KubeApiStandIn;
before(async () => {
  kube = await startKubeApiStandIn();
});
after(() => kube.close());

interface Event { type: string; object: { metadata?: { name?: string; resourceVersion?: string }; code?: number } }

/** Opens a watch and collects its events until `count` arrived or the server ended it. */
async function watch(query: string, count: number, during?: () => void): Promise<{ events: Event[]; ended: boolean }> {
  const controller = new AbortController();
  const res = await fetch(`${kube.url}/api/v1/services?watch=true&${query}`, { signal: controller.signal });
  assert.equal(res.status, 200);
  const events: Event[] = [];
  let buffer = '';
  const reader = res.body?.getReader();
  assert.ok(reader);
  during?.();
  let ended = false;
  while (events.length < count) {
    const { done, value } = await reader.read();
    if (done) {
      ended = true;
      break;
    }
    buffer += Buffer.from(value).toString();
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      events.push(JSON.parse(buffer.slice(0, nl)) as Event);
      buffer = buffer.slice(nl + 1);
    }
  }
  controller.abort();
  return { events, ended };
}

test('label selectors: exists, equality, inequality, set-based, negation', () => {
  const l = { 'agent.gitlab.com/id': '5', tier: 'web' };
  assert.equal(parseLabelSelector('agent.gitlab.com/id')(l), true);
  assert.equal(parseLabelSelector('!agent.gitlab.com/id')(l), false);
  assert.equal(parseLabelSelector('tier=web,agent.gitlab.com/id==5')(l), true);
  assert.equal(parseLabelSelector('tier!=web')(l), false);
  assert.equal(parseLabelSelector('tier in (db, web)')(l), true);
  assert.equal(parseLabelSelector('tier notin (db,web)')(l), false);
  assert.equal(parseLabelSelector('missing')(l), false);
  assert.equal(parseLabelSelector('')(l), true);
  assert.throws(() => parseLabelSelector('a b c'));
});

test('list honours the label selector and carries a resourceVersion; watch replays from it', async () => {
  kube.addService(workspaceService({ name: 'w1', workspaceId: '1', ports: [3000] }));
  kube.addService({ metadata: { name: 'plain', namespace: 'default' }, spec: { ports: [{ port: 80 }] } });
  const list = (await (await fetch(`${kube.url}/api/v1/services?labelSelector=agent.gitlab.com%2Fid`)).json()) as { kind: string; metadata: { resourceVersion: string }; items: { metadata: { name: string } }[] };
  assert.equal(list.kind, 'ServiceList');
  assert.deepEqual(list.items.map((i) => i.metadata.name), ['w1']);
  const rv = list.metadata.resourceVersion;

  kube.addService(workspaceService({ name: 'w2', workspaceId: '2', ports: [3000] }));
  const { events } = await watch(`labelSelector=agent.gitlab.com%2Fid&resourceVersion=${rv}`, 1);
  assert.deepEqual(events.map((e) => `${e.type}:${e.object.metadata?.name}`), ['ADDED:w2']);
  assert.ok(Number(events[0]?.object.metadata?.resourceVersion) > Number(rv));
});

test('objects entering or leaving the selector are ADDED/DELETED for that watch; namespaced path filters', async () => {
  const svc = kube.addService(workspaceService({ name: 'flip', namespace: 'ns-x', workspaceId: '3', ports: [3000] }));
  const rv = svc.metadata?.resourceVersion ?? '';
  const { events } = await watch(`labelSelector=agent.gitlab.com%2Fid&resourceVersion=${rv}`, 3, () => {
    kube.updateService({ ...svc, metadata: { ...svc.metadata, labels: {} } });
    kube.updateService(svc);
    kube.deleteService('ns-x', 'flip');
  });
  assert.deepEqual(events.map((e) => e.type), ['DELETED', 'ADDED', 'DELETED']);

  kube.addService(workspaceService({ name: 'only-here', namespace: 'ns-y', workspaceId: '4', ports: [3000] }));
  const nsList = (await (await fetch(`${kube.url}/api/v1/namespaces/ns-y/services`)).json()) as { items: unknown[] };
  assert.equal(nsList.items.length, 1);
  assert.equal((await fetch(`${kube.url}/api/v1/namespaces/ns-y/services/only-here`)).status, 200);
  assert.equal((await fetch(`${kube.url}/api/v1/namespaces/ns-y/services/nope`)).status, 404);
});

test('watch without resourceVersion starts with ADDED for current objects; timeoutSeconds ends it', async () => {
  const { events, ended } = await watch('labelSelector=agent.gitlab.com%2Fid&timeoutSeconds=1', 100);
  assert.ok(ended);
  assert.ok(events.length >= 1 && events.every((e) => e.type === 'ADDED'));
});

test('expired resourceVersion answers 410 as an ERROR event; bookmarks when allowed', async () => {
  const list = (await (await fetch(`${kube.url}/api/v1/services`)).json()) as { metadata: { resourceVersion: string } };
  const old = list.metadata.resourceVersion;
  const b = await watch(`allowWatchBookmarks=true&resourceVersion=${old}`, 1, () => kube.bookmark());
  assert.equal(b.events[0]?.type, 'BOOKMARK');

  kube.expireResourceVersion();
  const { events } = await watch(`resourceVersion=${old}`, 1);
  assert.equal(events[0]?.type, 'ERROR');
  assert.equal(events[0]?.object.code, 410);
  kube.expireResourceVersion({ as: 'status' });
  assert.equal((await fetch(`${kube.url}/api/v1/services?watch=true&resourceVersion=${old}`)).status, 410);

  kube.failWith(500);
  assert.equal((await fetch(`${kube.url}/api/v1/services`)).status, 500);
  kube.failWith(null);
  assert.ok(kube.count('list') >= 3);
});
