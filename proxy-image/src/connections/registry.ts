// The connection registry: every open WebSocket and SSH connection, re-authorized on
// auth.reauthorize_interval and closed when access is gone (docs/contract.md §6).
//
// Connections opened with the same credential on the same workspace form one batch: one timer and at
// most one GitLab call in flight per batch, however many connections it holds (a browser opening a
// thousand WebSockets costs one call per interval). The call itself is auth's (ownership check and
// confirmation, shared with HTTP and SSH logins); directory checks are local and run per connection.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { WorkspaceChange, WorkspaceDirectory } from '../discovery/types';
import type { ProxyConfig } from '../config';
import type { TokenRefresher } from '../auth/credential';
import { confirmOwnership } from '../auth/confirm';
import { createCredentialStore, type CredentialEntry } from '../auth/credential-store';
import type { OwnershipCheck } from '../auth/ownership';
import { RECHECK, REFRESH_TIMEOUT_MS, intervalMs, recheckRefreshMarginMs, withinGrace } from '../auth/policy';
import type { CloseReason, ConnectionRegistry, TrackedConnection } from './types';
import { createConnectionMetrics, type ReauthOutcome } from './metrics';
import { MAX_TIMER_MS, firstCheckDelayMs, nextCheckDelayMs } from './schedule';

export interface ConnectionRegistryOptions {
  config: { auth: Pick<ProxyConfig['auth'], 'reauthorize_interval' | 'max_session_duration'> };
  directory: Pick<WorkspaceDirectory, 'routeForHost' | 'workspaceByName' | 'onChange'>;
  /** The proxy's one ownership check (app.ts), so re-checks share calls and answers with HTTP and SSH. */
  ownership: OwnershipCheck;
  refresher: TokenRefresher;
  logger: Logger;
  registry: Registry;
  /** Clock in epoch ms (tests). */
  now?: () => number;
  /** Source of jitter in [0, 1) (tests). */
  random?: () => number;
}

interface Entry {
  conn: TrackedConnection;
  batch: Batch;
  since: number;
  deadlineTimer?: NodeJS.Timeout;
  closed: boolean;
}

interface Batch {
  key: string;
  workspaceId: string;
  credential: CredentialEntry;
  entries: Set<Entry>;
  timer?: NodeJS.Timeout;
  /** Set while a re-authorization runs: never two calls at once for one batch. */
  inFlightSince?: number;
  /** Start of the current run of unconfirmed checks (GitLab unreachable, 5xx, hanging). */
  failingSince?: number;
  retired: boolean;
}

const workspaceKey = (w: { namespace: string; name: string }): string => `${w.namespace}/${w.name}`;

export function createConnectionRegistry(opts: ConnectionRegistryOptions): ConnectionRegistry {
  const { directory, logger } = opts;
  const now = opts.now ?? Date.now;
  const random = opts.random ?? Math.random;
  const interval = intervalMs(opts.config.auth.reauthorize_interval);
  const maxDurationMs = opts.config.auth.max_session_duration * 1000;

  const entries = new Set<Entry>();
  const byWorkspace = new Map<string, Set<Entry>>();
  const batches = new Map<string, Batch>();
  let stopped = false;

  const metrics = createConnectionMetrics(opts.registry, (kind) => size(kind));
  const credentials = createCredentialStore({
    keyOf: opts.ownership.keyOf,
    refresher: opts.refresher,
    logger,
    timeoutMs: REFRESH_TIMEOUT_MS,
    onRefresh: (outcome) => metrics.refreshed(outcome),
  });

  function size(kind?: TrackedConnection['kind']): number {
    if (!kind) return entries.size;
    let n = 0;
    for (const e of entries) if (e.conn.kind === kind) n += 1;
    return n;
  }

  function arm(fn: () => void, delay: number): NodeJS.Timeout {
    const t = setTimeout(fn, Math.max(0, Math.min(delay, MAX_TIMER_MS)));
    // The listeners keep the process alive, not these timers; stop() clears them anyway.
    t.unref?.();
    return t;
  }

  // ---- the directory side: does the connection's host / SSH name still lead to the same Service?

  function stillRoutes(conn: TrackedConnection): boolean {
    const ws = conn.workspace;
    if (conn.kind === 'websocket' && conn.host !== undefined) {
      const route = directory.routeForHost(conn.host);
      const w = route?.workspace;
      return !!w && w.namespace === ws.namespace && w.name === ws.name && w.uid === ws.uid && w.id === ws.id;
    }
    const w = directory.workspaceByName(ws.name);
    if (w === undefined) return false;
    // Another namespace got a Service of the same name: new SSH logins to it are refused, but this
    // connection's own Service may well still be there. Its removal arrives as a change event.
    if (w === 'ambiguous') return true;
    return w.namespace === ws.namespace && w.uid === ws.uid && w.id === ws.id;
  }

  function onDirectoryChange(change: WorkspaceChange): void {
    const affected = new Set<Entry>();
    for (const w of change.type === 'updated' ? [change.before, change.workspace] : [change.workspace]) {
      for (const e of byWorkspace.get(workspaceKey(w)) ?? []) affected.add(e);
    }
    for (const e of affected) {
      const ws = e.conn.workspace;
      const removedItself = change.type === 'removed' && change.workspace.namespace === ws.namespace &&
        change.workspace.name === ws.name && change.workspace.uid === ws.uid;
      if (removedItself || !stillRoutes(e.conn)) closeEntry(e, 'workspace_gone');
    }
  }
  const unsubscribe = directory.onChange(onDirectoryChange);

  // ---- tracking

  function untrack(e: Entry): void {
    if (!entries.delete(e)) return;
    clearTimeout(e.deadlineTimer);
    const key = workspaceKey(e.conn.workspace);
    const set = byWorkspace.get(key);
    set?.delete(e);
    if (set?.size === 0) byWorkspace.delete(key);
    const b = e.batch;
    b.entries.delete(e);
    if (b.entries.size === 0) retire(b);
  }

  function closeEntry(e: Entry, reason: CloseReason): void {
    if (e.closed) return;
    e.closed = true;
    untrack(e);
    metrics.closed(e.conn.kind, reason);
    const ws = e.conn.workspace;
    logger.info(
      { kind: e.conn.kind, workspace: workspaceKey(ws), workspaceId: ws.id, reason, openSeconds: Math.round((now() - e.since) / 1000) },
      'closing connection',
    );
    try {
      e.conn.close(reason);
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'closing a connection failed');
    }
  }

  function closeBatch(b: Batch, reason: CloseReason): void {
    for (const e of [...b.entries]) closeEntry(e, reason);
  }

  function armDeadline(e: Entry): void {
    const limits: { at: number; reason: CloseReason }[] = [];
    if (e.conn.notAfter !== undefined) limits.push({ at: e.conn.notAfter, reason: 'session_expired' });
    if (maxDurationMs > 0) limits.push({ at: e.since + maxDurationMs, reason: 'max_duration' });
    if (limits.length === 0) return;
    const first = limits.reduce((a, b) => (b.at < a.at ? b : a));
    const fire = (): void => {
      if (e.closed) return;
      const left = first.at - now();
      // Deadlines beyond setTimeout's range are reached in several hops.
      if (left > 0) e.deadlineTimer = arm(fire, left);
      else closeEntry(e, first.reason);
    };
    e.deadlineTimer = arm(fire, first.at - now());
  }

  function batchFor(conn: TrackedConnection): Batch {
    const credential = credentials.acquire(conn.credential);
    const w = conn.workspace;
    const key = `${credential.key}\0${w.namespace}\0${w.name}\0${w.uid}\0${w.id}`;
    let b = batches.get(key);
    if (b) {
      credentials.release(credential); // the batch already holds a reference
      return b;
    }
    b = { key, workspaceId: w.id, credential, entries: new Set(), retired: false };
    batches.set(key, b);
    const batch = b;
    b.timer = arm(() => tick(batch), firstCheckDelayMs(interval, random));
    return b;
  }

  function retire(b: Batch): void {
    if (b.retired) return;
    b.retired = true;
    clearTimeout(b.timer);
    if (batches.get(b.key) === b) batches.delete(b.key);
    credentials.release(b.credential);
  }

  // ---- the GitLab side

  function tick(b: Batch): void {
    if (b.retired) return;
    b.timer = arm(() => tick(b), nextCheckDelayMs(interval, random));
    for (const e of [...b.entries]) if (!stillRoutes(e.conn)) closeEntry(e, 'workspace_gone');
    if (b.retired) return;
    if (b.inFlightSince !== undefined) {
      // The previous call has not come back within an interval: as good as unreachable.
      b.failingSince ??= b.inFlightSince;
      enforceGrace(b);
      return;
    }
    void reauthorize(b);
  }

  function enforceGrace(b: Batch): void {
    if (b.failingSince !== undefined && !withinGrace(b.failingSince, now(), opts.config.auth.reauthorize_interval)) {
      closeBatch(b, 'gitlab_unreachable');
    }
  }

  async function verdict(b: Batch): Promise<ReauthOutcome> {
    const c = await confirmOwnership(opts.ownership, b.credential, b.workspaceId, {
      reuse: RECHECK,
      refreshMarginMs: recheckRefreshMarginMs(opts.config.auth.reauthorize_interval),
      now: now(),
    });
    return c.outcome;
  }

  async function reauthorize(b: Batch): Promise<void> {
    const t0 = performance.now();
    b.inFlightSince = now();
    let outcome: ReauthOutcome;
    try {
      outcome = await verdict(b);
    } catch (err) {
      // Not expected (every step catches its own errors); never a reason to cut connections at once.
      logger.error({ err: (err as Error).message }, 're-authorization failed unexpectedly');
      outcome = 'unavailable';
    } finally {
      b.inFlightSince = undefined;
    }
    metrics.reauthorized(outcome, (performance.now() - t0) / 1000);
    if (b.retired) return; // every connection went away (or stop()) while GitLab was asked
    switch (outcome) {
      case 'owner':
        b.failingSince = undefined;
        break;
      case 'not_owner':
      case 'credential_invalid':
        closeBatch(b, outcome);
        break;
      case 'unavailable':
        // From when the failure was seen, not when the call began: the grace is never shortened by a
        // call that was sent while GitLab was still fine.
        b.failingSince ??= now();
        enforceGrace(b);
        break;
    }
  }

  return {
    track(conn) {
      if (stopped) {
        // Too late to supervise it: it must not live on unchecked.
        queueMicrotask(() => {
          try { conn.close('shutdown'); } catch { /* the owner's close must be idempotent; nothing left to do */ }
        });
        return () => {};
      }
      const e: Entry = { conn, batch: undefined as unknown as Batch, since: now(), closed: false };
      e.batch = batchFor(conn);
      e.batch.entries.add(e);
      entries.add(e);
      const key = workspaceKey(conn.workspace);
      let set = byWorkspace.get(key);
      if (!set) byWorkspace.set(key, (set = new Set()));
      set.add(e);
      armDeadline(e);
      return () => {
        e.closed = true;
        untrack(e);
      };
    },
    closeAll(reason) {
      for (const e of [...entries]) closeEntry(e, reason);
    },
    size,
    stop() {
      if (stopped) return;
      stopped = true;
      unsubscribe();
      // Anything still open would go on without re-authorization: close it.
      for (const e of [...entries]) closeEntry(e, 'shutdown');
      for (const b of [...batches.values()]) retire(b);
    },
  };
}
