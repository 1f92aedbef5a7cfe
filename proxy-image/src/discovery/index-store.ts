// The in-memory workspace index: hosts -> routes and names -> workspaces, all Maps so every lookup is
// O(1). It is fed whole Services (apply/remove/replaceAll) and works out the differences itself, so a
// re-list and a watch event go through the same code.
//
// Host conflicts (docs/contract.md §3): every Service keeps an ordered claim on each host it renders; the first
// claimant routes it, later ones are logged and wait. When the owner lets go (update or delete), the next
// claimant still claiming it takes over and gets an 'updated' change.
import type { Logger } from 'pino';
import type { V1Service } from '@kubernetes/client-node';
import type { Route, Workspace, WorkspaceChange, WorkspaceDirectory } from './types';
import { parseService, serviceKey, type ServiceRoutes } from './service';
import { normaliseHost } from './template';

interface Entry {
  spec: ServiceRoutes;
  /** Current immutable snapshot; `hosts` lists the hosts this Service actually routes. */
  workspace: Workspace;
}

export type WorkspaceIndex = Omit<WorkspaceDirectory, 'isReady'> & {
  /** Adds or updates one Service. */
  apply(svc: V1Service): void;
  /** Removes a Service; with `uid`, only if the known Service has that uid. */
  remove(namespace: string, name: string, uid?: string): void;
  /** A complete list: Services absent from it are removed, the others applied. */
  replaceAll(services: V1Service[]): void;
  workspaceCount(): number;
  hostCount(): number;
  skippedCount(): number;
};

export function createWorkspaceIndex(logger: Logger): WorkspaceIndex {
  const entries = new Map<string, Entry>();
  const routes = new Map<string, Route>();
  /** host -> keys of the Services rendering it, in claim order; the first one routes it. */
  const claims = new Map<string, string[]>();
  const byName = new Map<string, Map<string, Entry>>();
  /** key -> resourceVersion of a skipped Service, so one bad Service is logged once, not on every re-list. */
  const skipped = new Map<string, string>();
  const listeners = new Set<(change: WorkspaceChange) => void>();

  let pending: WorkspaceChange[] = [];
  function flush(): void {
    const changes = pending;
    pending = [];
    for (const change of changes) {
      for (const listener of listeners) {
        try {
          listener(change);
        } catch (err) {
          logger.error({ err }, 'workspace change listener failed');
        }
      }
    }
  }

  function ownedHosts(spec: ServiceRoutes): string[] {
    return spec.routes.filter((r) => claims.get(r.host)?.[0] === spec.key).map((r) => r.host);
  }

  function snapshot(spec: ServiceRoutes): Workspace {
    return {
      name: spec.name, namespace: spec.namespace, uid: spec.uid, id: spec.id,
      backendHost: spec.backendHost, hosts: ownedHosts(spec),
    };
  }

  /** Rebuilds an entry's snapshot and the routes it owns. */
  function refresh(entry: Entry): void {
    entry.workspace = snapshot(entry.spec);
    for (const r of entry.spec.routes) {
      if (claims.get(r.host)?.[0] === entry.spec.key) {
        routes.set(r.host, { host: r.host, workspace: entry.workspace, target: { host: entry.spec.backendHost, port: r.port } });
      }
    }
  }

  /** Drops `key`'s claim on `host`; returns the key of a Service that now owns it, if ownership moved. */
  function release(host: string, key: string): string | undefined {
    const list = claims.get(host);
    if (!list) return undefined;
    const wasOwner = list[0] === key;
    const rest = list.filter((k) => k !== key);
    if (rest.length === 0) {
      claims.delete(host);
      routes.delete(host);
      return undefined;
    }
    claims.set(host, rest);
    if (!wasOwner) return undefined;
    routes.delete(host);
    const next = rest[0] ?? '';
    logger.info({ host, k8sService: next }, 'host released by its previous Service, now routed to the next claimant');
    return next;
  }

  function claim(host: string, key: string): void {
    const list = claims.get(host);
    if (!list) {
      claims.set(host, [key]);
      return;
    }
    if (list.includes(key)) return;
    list.push(key);
    logger.warn({ host, k8sService: key, owner: list[0] }, 'host already routed to another Service: ignored for this Service until the other lets it go');
  }

  function setName(entry: Entry): void {
    let m = byName.get(entry.spec.name);
    if (!m) byName.set(entry.spec.name, (m = new Map()));
    const wasAmbiguous = m.size > 1;
    m.set(entry.spec.key, entry);
    if (m.size > 1 && !wasAmbiguous) {
      logger.warn({ name: entry.spec.name, services: [...m.keys()] }, 'workspace name exists in several namespaces: SSH to it is refused as ambiguous');
    }
  }

  function unsetName(spec: ServiceRoutes): void {
    const m = byName.get(spec.name);
    if (!m) return;
    m.delete(spec.key);
    if (m.size === 0) byName.delete(spec.name);
  }

  /** Entries whose snapshot must be rebuilt (they gained hosts), collected during one operation. */
  function promote(keys: (string | undefined)[], except?: string): void {
    for (const k of new Set(keys)) {
      if (!k || k === except) continue;
      const e = entries.get(k);
      if (!e) continue;
      const before = e.workspace;
      refresh(e);
      pending.push({ type: 'updated', before, workspace: e.workspace });
    }
  }

  function removeKey(key: string): void {
    const entry = entries.get(key);
    if (!entry) return;
    entries.delete(key);
    unsetName(entry.spec);
    const promoted = entry.spec.routes.map((r) => release(r.host, key));
    pending.push({ type: 'removed', workspace: entry.workspace });
    promote(promoted);
    logger.info({ k8sService: key, workspaceId: entry.spec.id }, 'workspace removed');
  }

  function applyOne(svc: V1Service): void {
    const parsed = parseService(svc);
    if (!parsed.ok) {
      const rv = svc.metadata?.resourceVersion ?? '';
      if (skipped.get(parsed.key) !== rv) {
        logger.warn({ k8sService: parsed.key, reason: parsed.reason }, `Service skipped: ${parsed.reason}`);
        skipped.set(parsed.key, rv);
      }
      // An update that breaks a Service takes its hosts away.
      removeKey(parsed.key);
      return;
    }
    skipped.delete(parsed.value.key);
    const spec = parsed.value;
    const old = entries.get(spec.key);
    if (old && old.spec.uid === spec.uid && old.spec.resourceVersion === spec.resourceVersion && spec.resourceVersion) return;
    // A new version that changes nothing the proxy uses (labels, status, ...) is not a change.
    if (old && sameRouting(old.spec, spec)) {
      old.spec = spec;
      return;
    }

    const newHosts = new Set(spec.routes.map((r) => r.host));
    const promoted: (string | undefined)[] = [];
    if (old) {
      for (const r of old.spec.routes) if (!newHosts.has(r.host)) promoted.push(release(r.host, spec.key));
      if (old.spec.name !== spec.name) unsetName(old.spec);
    }
    for (const r of spec.routes) claim(r.host, spec.key);
    const entry: Entry = { spec, workspace: snapshot(spec) };
    entries.set(spec.key, entry);
    refresh(entry);
    setName(entry);
    if (old) pending.push({ type: 'updated', before: old.workspace, workspace: entry.workspace });
    else pending.push({ type: 'added', workspace: entry.workspace });
    promote(promoted, spec.key);
    logger.info({ k8sService: spec.key, workspaceId: spec.id, hosts: entry.workspace.hosts }, old ? 'workspace updated' : 'workspace added');
  }

  return {
    routeForHost(host) {
      const route = routes.get(host);
      if (route) return route;
      // Callers mostly pass a normalised host already (HTTP does): then a miss needs no second lookup.
      const normal = normaliseHost(host);
      return normal === host ? undefined : routes.get(normal);
    },
    workspaceByName(name) {
      const m = byName.get(name);
      if (!m) return undefined;
      if (m.size > 1) return 'ambiguous';
      return m.values().next().value?.workspace;
    },
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    apply(svc) {
      applyOne(svc);
      flush();
    },
    remove(namespace, name, uid) {
      const key = serviceKey(namespace, name);
      skipped.delete(key);
      const entry = entries.get(key);
      if (entry && uid && entry.spec.uid && entry.spec.uid !== uid) return;
      removeKey(key);
      flush();
    },
    replaceAll(services) {
      const present = new Set(services.map((s) => serviceKey(s.metadata?.namespace ?? '', s.metadata?.name ?? '')));
      for (const key of [...entries.keys()]) if (!present.has(key)) removeKey(key);
      for (const key of [...skipped.keys()]) if (!present.has(key)) skipped.delete(key);
      // Oldest first, so that after a proxy restart the Service created first still wins a duplicate host
      // (a list comes in namespace/name order). Hosts already claimed keep their claim order.
      const ordered = [...services].sort((a, b) => created(a) - created(b));
      for (const svc of ordered) applyOne(svc);
      flush();
    },
    workspaceCount: () => entries.size,
    hostCount: () => routes.size,
    skippedCount: () => skipped.size,
  };
}

function created(svc: V1Service): number {
  const t = svc.metadata?.creationTimestamp;
  const ms = t === undefined ? NaN : new Date(t).getTime();
  return Number.isNaN(ms) ? 0 : ms;
}

function sameRouting(a: ServiceRoutes, b: ServiceRoutes): boolean {
  return a.uid === b.uid && a.id === b.id && a.backendHost === b.backendHost && a.routes.length === b.routes.length
    && a.routes.every((r, i) => r.host === b.routes[i]?.host && r.port === b.routes[i]?.port);
}
