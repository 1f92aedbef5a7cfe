// An in-memory WorkspaceDirectory for unit tests of the HTTP side (the real one watches Kubernetes).
// test/proxy/directory-conformance.test.ts holds it to the same behaviour as the real index; host
// normalisation is the production function, so the two cannot drift apart.
import { randomUUID } from 'node:crypto';
import type { Route, Workspace, WorkspaceChange, WorkspaceDirectory } from '../../proxy-image/src/discovery/types';
import { normaliseHost } from '../../proxy-image/src/discovery/template';

export interface MemoryWorkspace {
  name: string;
  namespace?: string;
  uid?: string;
  id: string;
  backendHost?: string;
  /** host (no port) → backend port */
  routes: Record<string, number>;
}

export interface MemoryDirectory extends WorkspaceDirectory {
  add(ws: MemoryWorkspace): Workspace;
  remove(name: string, namespace?: string): void;
  setReady(ready: boolean): void;
}

export function createMemoryDirectory(opts: { ready?: boolean } = {}): MemoryDirectory {
  const byHost = new Map<string, Route>();
  const byKey = new Map<string, Workspace>();
  const listeners = new Set<(c: WorkspaceChange) => void>();
  let ready = opts.ready ?? true;
  const emit = (c: WorkspaceChange) => listeners.forEach((l) => l(c));
  function drop(w: Workspace) {
    for (const h of w.hosts) if (byHost.get(h)?.workspace === w) byHost.delete(h);
  }
  return {
    add(m) {
      const key = `${m.namespace ?? 'default'}/${m.name}`;
      const before = byKey.get(key);
      const w: Workspace = {
        name: m.name,
        namespace: m.namespace ?? 'default',
        uid: m.uid ?? randomUUID(),
        id: m.id,
        backendHost: m.backendHost ?? '127.0.0.1',
        hosts: Object.keys(m.routes).map(normaliseHost),
      };
      if (before) drop(before);
      byKey.set(key, w);
      for (const [host, port] of Object.entries(m.routes)) {
        byHost.set(normaliseHost(host), { host: normaliseHost(host), workspace: w, target: { host: w.backendHost, port } });
      }
      emit(before ? { type: 'updated', before, workspace: w } : { type: 'added', workspace: w });
      return w;
    },
    remove(name, namespace = 'default') {
      const w = byKey.get(`${namespace}/${name}`);
      if (!w) return;
      byKey.delete(`${namespace}/${name}`);
      drop(w);
      emit({ type: 'removed', workspace: w });
    },
    setReady(r) {
      ready = r;
    },
    routeForHost: (host) => byHost.get(normaliseHost(host)),
    workspaceByName(name) {
      const found = [...byKey.values()].filter((w) => w.name === name);
      return found.length > 1 ? 'ambiguous' : found[0];
    },
    isReady: () => ready,
    onChange(l) {
      listeners.add(l);
      return () => listeners.delete(l);
    },
  };
}
