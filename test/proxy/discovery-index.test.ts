// The workspace index: add/update/delete, duplicate hosts, ambiguous names, re-list reconciliation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import pino from 'pino';
import type { V1Service } from '@kubernetes/client-node';
import { createWorkspaceIndex } from '../../proxy-image/src/discovery/index-store';
import type { WorkspaceChange } from '../../proxy-image/src/discovery/types';

let rv = 1;
function svc(name: string, o: { ns?: string; id?: string; ports?: number[]; template?: string | null; uid?: string; clusterIP?: string } = {}): V1Service {
  const annotations: Record<string, string> = { 'workspaces.gitlab.com/id': o.id ?? '1' };
  if (o.template !== null) annotations['workspaces.gitlab.com/host-template'] = o.template ?? `{{.port}}-${name}.zone`;
  return {
    metadata: { name, namespace: o.ns ?? 'ns', uid: o.uid ?? `uid-${o.ns ?? 'ns'}-${name}`, resourceVersion: String(rv++), labels: { 'agent.gitlab.com/id': '1' }, annotations },
    spec: { clusterIP: o.clusterIP ?? '10.0.0.1', ports: (o.ports ?? [3000]).map((p) => ({ port: p, targetPort: p })) },
  };
}

function setup() {
  const logs: { level: number; msg: string; [k: string]: unknown }[] = [];
  const logger = pino({ level: 'debug' }, new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(JSON.parse(chunk.toString()));
      cb();
    },
  }));
  const index = createWorkspaceIndex(logger);
  const changes: WorkspaceChange[] = [];
  index.onChange((c) => changes.push(c));
  return { index, logs, changes };
}

test('add makes every port host routable, case- and port-insensitively', () => {
  const { index, changes } = setup();
  index.apply(svc('ws-a', { id: '7', ports: [3000, 8080] }));
  const r = index.routeForHost('3000-WS-A.zone:443');
  assert.ok(r);
  assert.equal(r.workspace.id, '7');
  assert.deepEqual(r.target, { host: '10.0.0.1', port: 3000 });
  assert.deepEqual(index.routeForHost('8080-ws-a.zone')?.target, { host: '10.0.0.1', port: 8080 });
  assert.equal(index.routeForHost('9999-ws-a.zone'), undefined);
  assert.deepEqual(changes.map((c) => c.type), ['added']);
  const w = index.workspaceByName('ws-a');
  assert.ok(w && w !== 'ambiguous');
  assert.deepEqual(w.hosts, ['3000-ws-a.zone', '8080-ws-a.zone']);
});

test('update replaces every host of the Service; same resourceVersion again is a no-op', () => {
  const { index, changes } = setup();
  const first = svc('ws-a', { ports: [3000, 8080] });
  index.apply(first);
  index.apply(first);
  assert.equal(changes.length, 1);
  index.apply(svc('ws-a', { ports: [4000], template: '{{.port}}-renamed.zone', clusterIP: '10.0.0.2' }));
  assert.equal(index.routeForHost('3000-ws-a.zone'), undefined);
  assert.equal(index.routeForHost('8080-ws-a.zone'), undefined);
  assert.deepEqual(index.routeForHost('4000-renamed.zone')?.target, { host: '10.0.0.2', port: 4000 });
  const last = changes.at(-1);
  assert.equal(last?.type, 'updated');
  assert.deepEqual(last?.type === 'updated' && last.before.hosts, ['3000-ws-a.zone', '8080-ws-a.zone']);
  assert.equal(index.hostCount(), 1);
});

test('a new version that changes nothing routed (e.g. labels) emits no change', () => {
  const { index, changes } = setup();
  index.apply(svc('ws-a', { ports: [3000] }));
  index.apply(svc('ws-a', { ports: [3000] }));
  assert.equal(changes.length, 1);
  index.apply(svc('ws-a', { ports: [3000], id: '99' }));
  assert.equal(changes.length, 2);
  assert.equal(index.routeForHost('3000-ws-a.zone')?.workspace.id, '99');
});

test('delete removes all hosts and the name; a delete for another uid is ignored', () => {
  const { index, changes } = setup();
  index.apply(svc('ws-a', { ports: [3000, 8080], uid: 'one' }));
  index.remove('ns', 'ws-a', 'other-uid');
  assert.ok(index.routeForHost('3000-ws-a.zone'));
  index.remove('ns', 'ws-a', 'one');
  assert.equal(index.routeForHost('3000-ws-a.zone'), undefined);
  assert.equal(index.routeForHost('8080-ws-a.zone'), undefined);
  assert.equal(index.workspaceByName('ws-a'), undefined);
  assert.deepEqual(changes.map((c) => c.type), ['added', 'removed']);
  assert.equal(index.workspaceCount(), 0);
  assert.equal(index.hostCount(), 0);
});

test('a Service missing an annotation is skipped with one log line; breaking an existing one removes it', () => {
  const { index, logs } = setup();
  const bad = svc('ws-bad', { template: null });
  index.apply(bad);
  index.replaceAll([bad]);
  const skips = logs.filter((l) => l.msg.startsWith('Service skipped'));
  assert.equal(skips.length, 1);
  assert.equal(skips[0]?.k8sService, 'ns/ws-bad');
  assert.match(String(skips[0]?.reason), /workspaces\.gitlab\.com\/host-template/);
  assert.equal(index.skippedCount(), 1);

  index.apply(svc('ws-good'));
  assert.ok(index.routeForHost('3000-ws-good.zone'));
  index.apply(svc('ws-good', { template: '{{.nope}}.zone' }));
  assert.equal(index.routeForHost('3000-ws-good.zone'), undefined);
  assert.equal(index.workspaceByName('ws-good'), undefined);
});

test('duplicate host: first keeps it, second is logged and gets it when the first lets go', () => {
  const { index, logs, changes } = setup();
  index.apply(svc('ws-a', { id: '1', template: '{{.port}}-shared.zone' }));
  index.apply(svc('ws-b', { id: '2', template: '{{.port}}-shared.zone', ns: 'other' }));
  assert.equal(index.routeForHost('3000-shared.zone')?.workspace.id, '1');
  const dup = logs.find((l) => l.msg.startsWith('host already routed'));
  assert.equal(dup?.k8sService, 'other/ws-b');
  assert.equal(dup?.owner, 'ns/ws-a');
  const b = index.workspaceByName('ws-b');
  assert.ok(b && b !== 'ambiguous');
  assert.deepEqual(b.hosts, []);

  changes.length = 0;
  index.remove('ns', 'ws-a');
  const r = index.routeForHost('3000-shared.zone');
  assert.equal(r?.workspace.id, '2');
  assert.deepEqual(r?.workspace.hosts, ['3000-shared.zone']);
  assert.deepEqual(changes.map((c) => c.type), ['removed', 'updated']);
});

test('duplicate host released by an update of the owner goes to the waiting Service', () => {
  const { index } = setup();
  index.apply(svc('ws-a', { id: '1', template: '{{.port}}-shared.zone' }));
  index.apply(svc('ws-b', { id: '2', template: '{{.port}}-shared.zone' }));
  index.apply(svc('ws-a', { id: '1', template: '{{.port}}-mine.zone' }));
  assert.equal(index.routeForHost('3000-shared.zone')?.workspace.id, '2');
  assert.equal(index.routeForHost('3000-mine.zone')?.workspace.id, '1');
});

test('same name in two namespaces is ambiguous (logged); one left is unambiguous again', () => {
  const { index, logs } = setup();
  index.apply(svc('ws-x', { ns: 'n1', id: '1' }));
  index.apply(svc('ws-x', { ns: 'n2', id: '2', template: '{{.port}}-ws-x2.zone' }));
  assert.equal(index.workspaceByName('ws-x'), 'ambiguous');
  assert.ok(logs.some((l) => l.msg.includes('several namespaces') && l.name === 'ws-x'));
  // HTTP routes are unaffected: hosts are unique.
  assert.equal(index.routeForHost('3000-ws-x2.zone')?.workspace.namespace, 'n2');
  index.remove('n1', 'ws-x');
  const w = index.workspaceByName('ws-x');
  assert.ok(w && w !== 'ambiguous');
  assert.equal(w.namespace, 'n2');
});

test('replaceAll (re-list) removes every Service absent from the list and applies the rest', () => {
  const { index, changes } = setup();
  index.apply(svc('ws-a'));
  index.apply(svc('ws-b'));
  index.apply(svc('ws-c'));
  changes.length = 0;
  index.replaceAll([svc('ws-b', { ports: [5000] }), svc('ws-d')]);
  assert.equal(index.routeForHost('3000-ws-a.zone'), undefined);
  assert.equal(index.routeForHost('3000-ws-c.zone'), undefined);
  assert.equal(index.routeForHost('3000-ws-b.zone'), undefined);
  assert.ok(index.routeForHost('5000-ws-b.zone'));
  assert.ok(index.routeForHost('3000-ws-d.zone'));
  assert.deepEqual(changes.map((c) => `${c.type}:${c.workspace.name}`).sort(), ['added:ws-d', 'removed:ws-a', 'removed:ws-c', 'updated:ws-b']);
  assert.equal(index.workspaceCount(), 2);
});

test('on a fresh list the older Service wins a duplicate host, whatever the list order', () => {
  const { index } = setup();
  const young = svc('a-young', { id: '1', template: '{{.port}}-shared.zone' });
  young.metadata!.creationTimestamp = new Date('2026-01-02T00:00:00Z');
  const old = svc('z-old', { id: '2', template: '{{.port}}-shared.zone' });
  old.metadata!.creationTimestamp = new Date('2026-01-01T00:00:00Z');
  index.replaceAll([young, old]);
  assert.equal(index.routeForHost('3000-shared.zone')?.workspace.name, 'z-old');
});

test('a re-created Service (new uid) is reported as an update with the new uid', () => {
  const { index, changes } = setup();
  index.apply(svc('ws-a', { uid: 'old', id: '1' }));
  index.apply(svc('ws-a', { uid: 'new', id: '2' }));
  const c = changes.at(-1);
  assert.equal(c?.type, 'updated');
  assert.ok(c?.type === 'updated' && c.before.uid === 'old' && c.workspace.uid === 'new' && c.workspace.id === '2');
});

test('a throwing listener does not break the index or other listeners', () => {
  const { index, changes } = setup();
  index.onChange(() => {
    throw new Error('boom');
  });
  index.apply(svc('ws-a'));
  assert.equal(changes.length, 1);
  assert.ok(index.routeForHost('3000-ws-a.zone'));
});
