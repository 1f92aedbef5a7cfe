// A Kubernetes API server stand-in for Services, enough for the real @kubernetes/client-node 1.x informer.
// FOR LOCAL TESTS AND `npm run demo` ONLY: plain HTTP on 127.0.0.1, in-memory, no real authorization.
//
// Usage:
//   const kube = await startKubeApiStandIn();                   // { url: 'http://127.0.0.1:<port>' }
//   const kubeconfigPath = writeKubeconfig(kube.url, tmpDir);   // from ./kubeconfig (insecure-skip-tls-verify)
//   const svc = kube.addService(workspaceService({ name: 'ws-1', namespace: 'ns1', workspaceId: '7',
//     zone: 'workspaces.test', ports: [3000, 60022], clusterIP: '127.0.0.1' }));
//   kube.updateService({ ...svc, metadata: { ...svc.metadata, annotations: { ... } } }); // bumps resourceVersion
//   kube.deleteService('ns1', 'ws-1');
//   kube.breakWatches();              // destroys open watch connections abruptly (client sees an error)
//   kube.breakWatches({ graceful: true }); // ends them cleanly (as the apiserver does on timeout)
//   kube.expireResourceVersion();     // compaction: open watches get an ERROR 410 event and close, and any
//                                     // watch from an older resourceVersion is answered 410 -> client re-lists
//   kube.expireResourceVersion({ as: 'status' }); // open watches just end; the reconnect gets HTTP 410
//   kube.deleteService('ns1', 'ws-1', { silent: true }); // a lost event: in history, not sent to open watches
//   kube.failWith(500); kube.failWith(null);  // list and watch requests answer that status
//   kube.count('list'); kube.count('watch'); kube.openWatches();
//   await kube.close();
//
// Served (core/v1 Services only): GET /api/v1/services and /api/v1/namespaces/{ns}/services (list, or watch
// with ?watch=true|1), honouring labelSelector (=, ==, !=, exists, !key, in, notin), resourceVersion
// (replays the event history after it; '' or '0' starts with ADDED for every current object),
// timeoutSeconds and allowWatchBookmarks (bookmark() sends one); GET /api/v1/namespaces/{ns}/services/{name}.
// Watch events are newline-delimited JSON `{"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":...}`;
// objects leaving or entering a label selector are DELETED/ADDED for that watcher, as the apiserver does.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import type { V1Service, V1ServicePort } from '@kubernetes/client-node';

export interface KubeApiStandInOptions {
  /** Require `Authorization: Bearer <token>` (writeKubeconfig can put it in the kubeconfig). */
  token?: string;
  /** Server-side watch timeout when the client gives no timeoutSeconds (default: never). */
  watchTimeoutSeconds?: number;
}

export interface KubeApiStandIn {
  readonly url: string;
  /** Adds a Service (namespace defaults to 'default'); fills uid, resourceVersion, creationTimestamp.
   *  `silent`: the event is kept in history but not sent to open watches (a lost event). */
  addService(svc: V1Service, opts?: { silent?: boolean }): V1Service;
  /** Replaces an existing Service (matched by namespace/name) and bumps its resourceVersion. */
  updateService(svc: V1Service, opts?: { silent?: boolean }): V1Service;
  deleteService(namespace: string, name: string, opts?: { silent?: boolean }): void;
  /** Current Services. */
  services(): V1Service[];
  breakWatches(opts?: { graceful?: boolean }): void;
  /** Compacts history: all resourceVersions so far become too old (410 Gone). */
  expireResourceVersion(opts?: { as?: 'event' | 'status' }): void;
  /** Sends a BOOKMARK with the current resourceVersion to watches that allowed bookmarks. */
  bookmark(): void;
  failWith(status: number | null): void;
  count(kind: 'list' | 'watch' | 'get'): number;
  openWatches(): number;
  close(): Promise<void>;
}

type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';
interface HistoryEvent {
  rv: number;
  type: EventType;
  object: V1Service;
  previous?: V1Service;
}

interface Watcher {
  res: ServerResponse;
  namespace?: string;
  selector: (labels: Record<string, string>) => boolean;
  bookmarks: boolean;
  timer?: NodeJS.Timeout;
}

/** A GitLab-agent-like workspace Service (label agent.gitlab.com/id, host-template and id annotations). */
export function workspaceService(o: {
  name: string;
  namespace?: string;
  workspaceId: string;
  zone?: string;
  /** Numbers (port = targetPort) or full port objects. */
  ports: (number | V1ServicePort)[];
  clusterIP?: string;
  hostTemplate?: string;
  agentId?: string;
}): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: o.name,
      namespace: o.namespace ?? 'default',
      labels: { 'agent.gitlab.com/id': o.agentId ?? '1' },
      annotations: {
        'workspaces.gitlab.com/host-template': o.hostTemplate ?? `{{.port}}-${o.name}.${o.zone ?? 'workspaces.test'}`,
        'workspaces.gitlab.com/id': o.workspaceId,
      },
    },
    spec: {
      clusterIP: o.clusterIP ?? '127.0.0.1',
      ports: o.ports.map((p) => (typeof p === 'number' ? { name: `port-${p}`, port: p, targetPort: p, protocol: 'TCP' } : p)) as V1ServicePort[],
    },
  };
}

/** Parses a Kubernetes label selector into a predicate; throws on syntax it does not know. */
export function parseLabelSelector(selector: string): (labels: Record<string, string>) => boolean {
  const tests: ((l: Record<string, string>) => boolean)[] = [];
  // Split on commas that are not inside parentheses.
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of selector) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
  for (const raw of parts.map((p) => p.trim()).filter(Boolean)) {
    let m: RegExpExecArray | null;
    if ((m = /^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(raw))) {
      const [, key = '', op, list = ''] = m;
      const values = list.split(',').map((v) => v.trim());
      tests.push(op === 'in' ? (l) => key in l && values.includes(l[key] ?? '') : (l) => !(key in l) || !values.includes(l[key] ?? ''));
    } else if ((m = /^([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)$/.exec(raw))) {
      const [, key = '', op, value = ''] = m;
      tests.push(op === '!=' ? (l) => l[key] !== value : (l) => l[key] === value);
    } else if ((m = /^!([\w./-]+)$/.exec(raw))) {
      const key = m[1] ?? '';
      tests.push((l) => !(key in l));
    } else if ((m = /^([\w./-]+)$/.exec(raw))) {
      const key = m[1] ?? '';
      tests.push((l) => key in l);
    } else {
      throw new Error(`unable to parse requirement: ${raw}`);
    }
  }
  return (labels) => tests.every((t) => t(labels));
}

function status(code: number, reason: string, message: string): Record<string, unknown> {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

const clone = <T>(v: T): T => structuredClone(v);

export async function startKubeApiStandIn(opts: KubeApiStandInOptions = {}): Promise<KubeApiStandIn> {
  const services = new Map<string, V1Service>();
  const history: HistoryEvent[] = [];
  const watchers = new Set<Watcher>();
  const counts = { list: 0, watch: 0, get: 0 };
  let rv = 1000;
  /** Watches from a resourceVersion below this get 410 Gone. */
  let compactedBelow = 0;
  let expiredAs: 'event' | 'status' = 'event';
  let failStatus: number | null = null;

  const key = (ns: string, name: string) => `${ns}/${name}`;
  const labelsOf = (s: V1Service) => s.metadata?.labels ?? {};
  const withKind = (s: V1Service): V1Service => ({ apiVersion: 'v1', kind: 'Service', ...clone(s) });

  function send(w: Watcher, type: string, object: unknown): void {
    if (!w.res.destroyed && !w.res.writableEnded) w.res.write(`${JSON.stringify({ type, object })}\n`);
  }

  /** What one watcher sees of an event: selector transitions become ADDED/DELETED. */
  function deliver(w: Watcher, ev: HistoryEvent): void {
    if (w.namespace && ev.object.metadata?.namespace !== w.namespace) return;
    const now = w.selector(labelsOf(ev.object));
    const before = ev.previous ? w.selector(labelsOf(ev.previous)) : false;
    if (ev.type === 'ADDED') {
      if (now) send(w, 'ADDED', withKind(ev.object));
    } else if (ev.type === 'DELETED') {
      if (now) send(w, 'DELETED', withKind(ev.object));
    } else if (now && before) send(w, 'MODIFIED', withKind(ev.object));
    else if (now) send(w, 'ADDED', withKind(ev.object));
    else if (before) send(w, 'DELETED', withKind(ev.object));
  }

  function record(type: EventType, object: V1Service, previous: V1Service | undefined, silent = false): void {
    const ev: HistoryEvent = { rv: Number(object.metadata?.resourceVersion), type, object: clone(object), previous };
    history.push(ev);
    if (!silent) for (const w of watchers) deliver(w, ev);
  }

  function endWatcher(w: Watcher, how: 'end' | 'destroy'): void {
    if (w.timer) clearTimeout(w.timer);
    watchers.delete(w);
    if (how === 'destroy') w.res.socket?.destroy();
    else w.res.end();
  }

  function json(res: ServerResponse, code: number, body: unknown): void {
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://stand-in');
    const m = /^\/api\/v1(?:\/namespaces\/([^/]+))?\/services(?:\/([^/]+))?$/.exec(url.pathname);
    const [, namespace, name] = m ?? [];
    const watch = url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1';
    if (m) counts[name !== undefined ? 'get' : watch ? 'watch' : 'list']++;
    if (opts.token !== undefined && req.headers.authorization !== `Bearer ${opts.token}`) {
      json(res, 401, status(401, 'Unauthorized', 'Unauthorized'));
      return;
    }
    if (!m || req.method !== 'GET') {
      json(res, 404, status(404, 'NotFound', 'the server could not find the requested resource'));
      return;
    }
    if (name !== undefined) {
      if (failStatus !== null) return json(res, failStatus, status(failStatus, 'InternalError', 'stand-in told to fail'));
      const svc = namespace ? services.get(key(namespace, name)) : undefined;
      if (!svc) return json(res, 404, status(404, 'NotFound', `services "${name}" not found`));
      return json(res, 200, withKind(svc));
    }
    if (failStatus !== null) return json(res, failStatus, status(failStatus, 'InternalError', 'stand-in told to fail'));
    let selector: (l: Record<string, string>) => boolean;
    try {
      selector = parseLabelSelector(url.searchParams.get('labelSelector') ?? '');
    } catch (err) {
      return json(res, 400, status(400, 'BadRequest', (err as Error).message));
    }
    const matching = () => [...services.values()].filter((s) => (!namespace || s.metadata?.namespace === namespace) && selector(labelsOf(s)));

    if (!watch) {
      json(res, 200, {
        kind: 'ServiceList', apiVersion: 'v1', metadata: { resourceVersion: String(rv) },
        items: matching().map((s) => clone(s)),
      });
      return;
    }

    const fromRaw = url.searchParams.get('resourceVersion') ?? '';
    const from = fromRaw === '' || fromRaw === '0' ? undefined : Number(fromRaw);
    if (from !== undefined && (!Number.isFinite(from) || from < compactedBelow)) {
      const gone = status(410, 'Expired', `too old resource version: ${fromRaw} (${compactedBelow})`);
      if (expiredAs === 'status') return json(res, 410, gone);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify({ type: 'ERROR', object: gone })}\n`);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache, private' });
    res.flushHeaders();
    const w: Watcher = { res, namespace, selector, bookmarks: url.searchParams.get('allowWatchBookmarks') === 'true' };
    watchers.add(w);
    res.on('close', () => {
      if (w.timer) clearTimeout(w.timer);
      watchers.delete(w);
    });
    const timeout = Number(url.searchParams.get('timeoutSeconds') ?? opts.watchTimeoutSeconds ?? 0);
    if (timeout > 0) w.timer = setTimeout(() => endWatcher(w, 'end'), timeout * 1000);
    if (from === undefined) {
      for (const s of matching()) send(w, 'ADDED', withKind(s));
    } else {
      for (const ev of history) if (ev.rv > from) deliver(w, ev);
    }
  }

  const sockets = new Set<Socket>();
  const server = createServer(handle);
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  function stamp(svc: V1Service, previous?: V1Service): V1Service {
    const s = clone(svc);
    s.metadata = { ...s.metadata, namespace: s.metadata?.namespace ?? 'default' };
    s.metadata.uid = previous?.metadata?.uid ?? s.metadata.uid ?? randomUUID();
    s.metadata.creationTimestamp = previous?.metadata?.creationTimestamp ?? s.metadata.creationTimestamp ?? new Date();
    s.metadata.resourceVersion = String(++rv);
    delete s.kind;
    delete s.apiVersion;
    return s;
  }

  return {
    url,
    addService(svc, o = {}) {
      const k = key(svc.metadata?.namespace ?? 'default', svc.metadata?.name ?? '');
      if (!svc.metadata?.name) throw new Error('Service needs metadata.name');
      if (services.has(k)) throw new Error(`service ${k} already exists`);
      const s = stamp(svc);
      services.set(k, s);
      record('ADDED', s, undefined, o.silent);
      return withKind(s);
    },
    updateService(svc, o = {}) {
      const k = key(svc.metadata?.namespace ?? 'default', svc.metadata?.name ?? '');
      const previous = services.get(k);
      if (!previous) throw new Error(`service ${k} does not exist`);
      const s = stamp(svc, previous);
      services.set(k, s);
      record('MODIFIED', s, previous, o.silent);
      return withKind(s);
    },
    deleteService(namespace, name, o = {}) {
      const k = key(namespace, name);
      const previous = services.get(k);
      if (!previous) throw new Error(`service ${k} does not exist`);
      services.delete(k);
      const s = clone(previous);
      s.metadata = { ...s.metadata, resourceVersion: String(++rv) };
      record('DELETED', s, previous, o.silent);
    },
    services: () => [...services.values()].map(withKind),
    breakWatches(o = {}) {
      for (const w of [...watchers]) endWatcher(w, o.graceful ? 'end' : 'destroy');
    },
    expireResourceVersion(o = {}) {
      expiredAs = o.as ?? 'event';
      // The current version moves on, so a fresh list gives a resourceVersion that can be watched from.
      compactedBelow = ++rv;
      history.length = 0;
      // 'event': open watches get an ERROR 410 event (client-node then re-lists); 'status': they just end,
      // and their reconnect from the old resourceVersion gets HTTP 410.
      const gone = status(410, 'Expired', 'too old resource version');
      for (const w of [...watchers]) {
        if (expiredAs === 'event') send(w, 'ERROR', gone);
        endWatcher(w, 'end');
      }
    },
    bookmark() {
      for (const w of watchers) {
        if (w.bookmarks) send(w, 'BOOKMARK', { kind: 'Service', apiVersion: 'v1', metadata: { resourceVersion: String(rv) } });
      }
    },
    failWith(s) {
      failStatus = s;
    },
    count: (kind) => counts[kind],
    openWatches: () => watchers.size,
    async close() {
      for (const w of [...watchers]) endWatcher(w, 'destroy');
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
