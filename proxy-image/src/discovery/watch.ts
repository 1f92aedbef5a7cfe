// Keeps a client-node informer on workspace Services running. client-node 1.x's informer stops for good
// after a watch or list error (NOTES.md), so on every error the informer is thrown away and a new one
// started after a backoff; the new one lists first, and that list replaces the whole index, so no host of
// a Service deleted meanwhile survives. A watch the server ends cleanly is resumed by the informer itself
// from its last resourceVersion (the apiserver replays what happened, or answers 410 and it re-lists).
// A watch can also get stuck without an error (a proxy or load balancer in between that keeps the stream
// open but passes nothing on): every resync interval the informer is replaced by a fresh one, whose list
// replaces the index, so a lost event is repaired within one interval.
import { CoreV1Api, ListWatch, Watch, type KubeConfig, type V1Service } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { agentLabel } from './service';

export interface ServiceWatchOptions {
  kubeConfig: KubeConfig;
  logger: Logger;
  /** A complete list, in the order the API gave it. */
  onList(services: V1Service[]): void;
  onUpsert(svc: V1Service): void;
  onDelete(svc: V1Service): void;
  /** Called before each restart after an error. */
  onRestart?(): void;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Full re-list period, catching a silently stuck watch (default 5 minutes; 0: never). */
  resyncIntervalMs?: number;
}

/** One list of the labelled Services every 5 minutes is cheap for the API server and bounds how long a lost event can last. */
export const DEFAULT_RESYNC_INTERVAL_MS = 5 * 60_000;
/** Short enough that changes made during an API server outage are applied within seconds after it. */
export const DEFAULT_MAX_BACKOFF_MS = 5_000;

export interface ServiceWatch {
  stop(): void;
}

/**
 * client-node's ListWatch.stop() cannot abort a watch whose request is still being opened: the stream
 * would stay open after stop. This Watch aborts such a request as soon as it is open.
 */
class StoppableWatch extends Watch {
  stopped = false;
  override async watch(...args: Parameters<Watch['watch']>): Promise<AbortController> {
    const controller = await super.watch(...args);
    if (this.stopped) controller.abort();
    return controller;
  }
}

export function startServiceWatch(opts: ServiceWatchOptions): ServiceWatch {
  const { logger } = opts;
  const initial = opts.initialBackoffMs ?? 500;
  const max = opts.maxBackoffMs ?? DEFAULT_MAX_BACKOFF_MS;
  const resyncMs = opts.resyncIntervalMs ?? DEFAULT_RESYNC_INTERVAL_MS;
  let resync: NodeJS.Timeout | undefined;
  const api = opts.kubeConfig.makeApiClient(CoreV1Api);
  let generation = 0;
  let informer: { listWatch: ListWatch<V1Service>; watch: StoppableWatch } | undefined;
  let timer: NodeJS.Timeout | undefined;
  let failures = 0;
  let startedAt = 0;
  let stopped = false;

  function run(): void {
    const gen = ++generation;
    const current = () => gen === generation && !stopped;
    startedAt = Date.now();
    const list = async () => {
      const result = await api.listServiceForAllNamespaces({ labelSelector: agentLabel });
      // Stopped or replaced meanwhile: failing here keeps this informer from opening a watch.
      if (!current()) throw new Error('superseded');
      opts.onList(result.items);
      return result;
    };
    const watch = new StoppableWatch(opts.kubeConfig);
    const inf = new ListWatch<V1Service>('/api/v1/services', watch, list, false, agentLabel);
    informer = { listWatch: inf, watch };
    const upsert = (svc: V1Service): void => {
      if (current()) opts.onUpsert(svc);
      // ListWatch caches this very object (list items too: it reports each new one as an 'add'): keep only
      // what the cache reads.
      svc.metadata = cacheEntry(svc).metadata;
      svc.spec = undefined;
      svc.status = undefined;
    };
    inf.on('add', upsert);
    inf.on('update', upsert);
    inf.on('delete', (svc) => current() && opts.onDelete(svc));
    inf.on('error', (err: unknown) => {
      if (current()) restart(err);
    });
    inf.start().catch((err: unknown) => {
      if (current()) restart(err);
    });
    if (resyncMs > 0) {
      // Jittered, so replicas started together do not list together.
      resync = setTimeout(() => {
        if (!current()) return;
        logger.debug('periodic re-list of workspace Services');
        halt();
        run();
      }, resyncMs * (0.9 + Math.random() * 0.2));
    }
  }

  function restart(err: unknown): void {
    halt();
    // A watch that ran for a while before failing starts the backoff again from the beginning.
    if (Date.now() - startedAt > 60_000) failures = 0;
    const delay = Math.min(max, initial * 2 ** failures) * (0.8 + Math.random() * 0.4);
    failures++;
    logger.warn({ err: describe(err), retryInMs: Math.round(delay) }, 'Kubernetes Service watch failed: re-listing after a pause');
    opts.onRestart?.();
    timer = setTimeout(() => {
      timer = undefined;
      if (!stopped) run();
    }, delay);
  }

  function halt(): void {
    generation++;
    clearTimeout(resync);
    if (informer) {
      informer.watch.stopped = true;
      void informer.listWatch.stop();
    }
    informer = undefined;
  }

  run();
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      halt();
    },
  };
}

/**
 * What the informer's own cache keeps of a Service once the index has it: ListWatch files objects by namespace
 * and name, compares resourceVersion to skip unchanged updates, and hands a cached object to the delete
 * callback (which reads the uid). Whole Services (spec, annotations, managedFields on a real cluster) would sit
 * there a second time beside the index, for nothing: at 10,000 Services that was most of discovery's heap.
 */
function cacheEntry(svc: V1Service): V1Service {
  const m = svc.metadata;
  return { metadata: { name: m?.name, namespace: m?.namespace, uid: m?.uid, resourceVersion: m?.resourceVersion } };
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { statusCode?: number; code?: number | string }).statusCode ?? (err as { code?: number | string }).code;
    // client-node's API errors carry the response headers after the first lines: keep the status only.
    const message = err.message.split('\n').slice(0, 2).join(' ');
    return code !== undefined ? `${message} (${code})` : message;
  }
  return String(err);
}
