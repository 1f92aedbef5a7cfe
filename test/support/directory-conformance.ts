// What every WorkspaceDirectory must do, run against each implementation (like oauth2-proxy's
// RunSessionStoreTests): the production index fed Kubernetes Services, and the in-memory directory the
// HTTP and SSH tests use. A behaviour added to one and not the other fails here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { WorkspaceChange, WorkspaceDirectory } from '../../proxy-image/src/discovery/types';

/** One workspace Service as the agent creates it: hosts are `<port>-<name>.<zone>`. */
export interface ServiceSpec {
  name: string;
  namespace: string;
  uid: string;
  id: string;
  clusterIP: string;
  ports: number[];
}

export const ZONE = 'conformance.test';

export interface DirectoryDriver {
  directory: Omit<WorkspaceDirectory, 'isReady'>;
  /** Adds the Service, or replaces the one with the same namespace and name. */
  put(s: ServiceSpec): void;
  remove(namespace: string, name: string): void;
}

const spec = (name: string, o: Partial<ServiceSpec> = {}): ServiceSpec => ({
  name, namespace: 'ns', uid: `uid-${o.namespace ?? 'ns'}-${name}`, id: '7', clusterIP: '10.0.0.9', ports: [3000], ...o,
});

export function directoryConformance(label: string, makeDriver: () => DirectoryDriver): void {
  test(`${label}: a host routes whatever its case, port or trailing dot`, () => {
    const d = makeDriver();
    d.put(spec('ws-a', { ports: [3000, 8080] }));
    for (const host of [`3000-ws-a.${ZONE}`, `3000-WS-A.${ZONE.toUpperCase()}`, `3000-ws-a.${ZONE}:443`, `3000-ws-a.${ZONE}.`, `3000-ws-a.${ZONE}.:8443`]) {
      const r = d.directory.routeForHost(host);
      assert.ok(r, host);
      assert.equal(r.host, `3000-ws-a.${ZONE}`, host);
      assert.deepEqual(r.target, { host: '10.0.0.9', port: 3000 }, host);
      assert.equal(r.workspace.id, '7');
    }
    assert.equal(d.directory.routeForHost(`8080-ws-a.${ZONE}`)?.target.port, 8080);
    assert.equal(d.directory.routeForHost(`9999-ws-a.${ZONE}`), undefined);
  });

  test(`${label}: the workspace carries name, namespace, uid, id, backend and its hosts`, () => {
    const d = makeDriver();
    d.put(spec('ws-b', { namespace: 'team', uid: 'u-1', id: '42', ports: [3000, 8080] }));
    const w = d.directory.workspaceByName('ws-b');
    assert.ok(w && w !== 'ambiguous');
    assert.equal(w.name, 'ws-b');
    assert.equal(w.namespace, 'team');
    assert.equal(w.uid, 'u-1');
    assert.equal(w.id, '42');
    assert.equal(w.backendHost, '10.0.0.9');
    assert.deepEqual([...w.hosts].sort(), [`3000-ws-b.${ZONE}`, `8080-ws-b.${ZONE}`]);
    assert.equal(d.directory.workspaceByName('nobody'), undefined);
  });

  test(`${label}: one name in two namespaces is ambiguous until one goes`, () => {
    const d = makeDriver();
    d.put(spec('twin', { namespace: 'a', ports: [3000] }));
    d.put(spec('twin', { namespace: 'b', ports: [4000] }));
    assert.equal(d.directory.workspaceByName('twin'), 'ambiguous');
    d.remove('a', 'twin');
    const w = d.directory.workspaceByName('twin');
    assert.ok(w && w !== 'ambiguous' && w.namespace === 'b');
  });

  test(`${label}: an update replaces every host and reports before and after; a delete removes them all`, () => {
    const d = makeDriver();
    const changes: WorkspaceChange[] = [];
    const stop = d.directory.onChange((c) => changes.push(c));
    d.put(spec('ws-c', { ports: [3000, 8080] }));
    d.put(spec('ws-c', { ports: [5000], id: '8' }));
    assert.equal(d.directory.routeForHost(`3000-ws-c.${ZONE}`), undefined);
    assert.equal(d.directory.routeForHost(`8080-ws-c.${ZONE}`), undefined);
    assert.equal(d.directory.routeForHost(`5000-ws-c.${ZONE}`)?.workspace.id, '8');
    d.remove('ns', 'ws-c');
    assert.equal(d.directory.routeForHost(`5000-ws-c.${ZONE}`), undefined);
    assert.equal(d.directory.workspaceByName('ws-c'), undefined);
    assert.deepEqual(changes.map((c) => c.type), ['added', 'updated', 'removed']);
    const updated = changes[1]!;
    assert.ok(updated.type === 'updated' && updated.before.id === '7' && updated.workspace.id === '8');
    stop();
    d.put(spec('ws-d'));
    assert.equal(changes.length, 3, 'no change reported after unsubscribing');
  });
}
