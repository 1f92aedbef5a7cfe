// The SSH side of the proxy (docs/contract.md §5): `ssh <workspace-name>@<proxy-host>` with a GitLab personal access
// token as the password; once GitLab confirms the token's user owns that workspace, the connection is joined
// to the workspace's own sshd and everything an IDE does over SSH is relayed.
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { Server, type AuthenticationType, type Client, type Connection, type PublicKeyAuthContext } from 'ssh2';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { ProxyConfig } from '../config';
import type { WorkspaceDirectory } from '../discovery/types';
import type { Auth } from '../auth';
import { NEW_CONNECTION_REUSE_MS, newConnectionReuse } from '../auth/policy';
import { closeReasonText, type CloseReason, type ConnectionRegistry } from '../connections/types';
import { createAddressLimiter } from './address-limiter';
import { createSshAuthorizer, type AuthDecision, type KeyDecision } from './authorize';
import { offeredBlob, signatureValid } from './publickey';
import { BackendError, connectBackend } from './backend';
import { forwardConnection, type OpenSession } from './forward';
import { createSshMetrics } from './metrics';
import {
  DISCONNECT_NO_MORE_AUTH_METHODS, connectionWritable, destroyConnection, disconnectWithMessage, missingSsh2Internals,
} from './ssh2-internals';
import { listenOn } from '../net/listen';
import { createLogGate, gatedLog, type LogGate } from '../observability/log-limit';
import { createConnectionLog, type ConnectionRecord } from '../observability/connection-log';

/** How long a closing connection waits for its close notices to go out (a client that reads nothing gives no window). */
const NOTICE_SEND_WAIT_MS = 3_000;
/** Then how long it waits for the client to close its sessions (it does once it has printed everything) before the disconnect. */
const CLOSE_CHANNELS_WAIT_MS = 2_000;

/**
 * Lines any outsider can cause at will (failed logins, refused keys, clients dropped at the login grace):
 * at most this many of each kind a minute, the rest counted in the next line (metrics count them all).
 * More than HTTP's unknown hosts (5): a mistyped token is worth seeing, and a real user makes a few.
 */
const OUTSIDER_LINES_PER_MINUTE = 20;

/** Fixed by docs/contract.md §5. */
export const MAX_PASSWORD_TRIES = 3;

/** Public keys one connection may offer (OpenSSH's MaxAuthTries is 6 for all methods; keys do not use up
 *  password tries here, so they get their own bound). Further keys are refused without a lookup. */
export const MAX_KEY_ATTEMPTS = 10;

/** Timings and limits; the defaults are what production uses, tests may shorten them. */
export interface SshTuning {
  /** A failed attempt is answered no sooner than this after it arrived, so an unknown workspace (no GitLab
   *  call) and a wrong token (one GitLab call) take about as long. */
  failureDelayMs: number;
  /** How long a positive GitLab answer is reused for new connections; capped at auth.reauthorize_interval. */
  authCacheTtlMs: number;
  /** Failed password attempts one client address may make in a burst ... */
  addressFailureBudget: number;
  /** ... and how often one of them is forgiven. */
  addressFailureRefillMs: number;
  /** Time to reach the workspace sshd and log in (a stopped workspace must not leave the user hanging). */
  backendTimeoutMs: number;
  /** A connection must have authenticated within this (OpenSSH's LoginGraceTime). */
  loginGraceMs: number;
  /** Keepalive towards users and workspaces, so dead peers are noticed and their resources freed. */
  keepaliveIntervalMs: number;
  /** How long shutdown() waits for connections to go after telling them "going away". */
  shutdownTimeoutMs: number;
}

export const defaultSshTuning: SshTuning = {
  failureDelayMs: 500,
  authCacheTtlMs: NEW_CONNECTION_REUSE_MS,
  addressFailureBudget: 20,
  addressFailureRefillMs: 30_000,
  backendTimeoutMs: 10_000,
  loginGraceMs: 60_000,
  keepaliveIntervalMs: 30_000,
  shutdownTimeoutMs: 5_000,
};

export interface SshProxyDeps {
  config: ProxyConfig;
  directory: WorkspaceDirectory;
  auth: Pick<Auth, 'ownership' | 'sshKeys'>;
  connections: ConnectionRegistry;
  registry: Registry;
  logger: Logger;
  tuning?: Partial<SshTuning>;
}

export interface SshProxy {
  listen(port: number, host?: string): Promise<AddressInfo>;
  /** Stops accepting, tells every open connection "going away" and waits (bounded) for them to go. */
  shutdown(): Promise<void>;
}

const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits for `p`, at most `ms`; true when `p` settled in time. The timer never outlives the wait. */
async function settledWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([p.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export function createSshProxy(deps: SshProxyDeps): SshProxy {
  const { config, logger } = deps;
  const tuning: SshTuning = { ...defaultSshTuning, ...deps.tuning };
  const metrics = createSshMetrics(deps.registry);
  const authorizer = createSshAuthorizer({
    directory: deps.directory,
    ownership: deps.auth.ownership,
    reuse: newConnectionReuse(config.auth.reauthorize_interval, tuning.authCacheTtlMs),
    sshKeys: deps.auth.sshKeys,
  });
  // What the client is told it may try next: keys first when the proxy can look them up.
  const methods: AuthenticationType[] = deps.auth.sshKeys ? ['publickey', 'password'] : ['password'];
  logger.info(
    { publicKeys: deps.auth.sshKeys !== undefined },
    deps.auth.sshKeys ? 'ssh: GitLab SSH keys and personal access tokens accepted'
      : `ssh: personal access tokens only (${config.ssh.public_key_auth ? 'no auth.service_token' : 'ssh.public_key_auth is false'})`,
  );
  const limiter = createAddressLimiter({ budget: tuning.addressFailureBudget, refillMs: tuning.addressFailureRefillMs });
  const open = new Set<{ close(reason: CloseReason): void; destroy(): void; gone: Promise<void> }>();
  const connectionLog = createConnectionLog(logger);
  const gate = (): LogGate => createLogGate({ max: OUTSIDER_LINES_PER_MINUTE, windowMs: 60_000 });
  const outsiderLines = { authFailed: gate(), keyRefused: gate(), graceOver: gate() };
  let stopping = false;

  if (!config.ssh.host_key) throw new Error('ssh.host_key is required when ssh.enabled is true');
  const missing = missingSsh2Internals();
  if (missing.length > 0) {
    logger.warn({ missing }, 'this ssh2 version lacks internals the proxy uses: disconnect reasons will not reach users');
  }
  const server = new Server({
    // Already checked, and converted from PKCS#8 where needed, by the config parser.
    hostKeys: [config.ssh.host_key],
    ident: 'gitlab-workspaces-proxy',
    keepaliveInterval: tuning.keepaliveIntervalMs,
    keepaliveCountMax: 4,
  });

  // ssh2 reports a connection only once the client has sent its identification line; until then it sets no
  // timer of its own. So the proxy accepts the TCP connections itself and hands them to ssh2: a client that
  // connects and stays silent is dropped after the login grace time, and shutdown does not wait for it.
  const silent = new Map<string, { socket: Socket; timer: NodeJS.Timeout }>();
  const remoteKey = (ip: string | undefined, port: number | undefined): string => `${ip}:${port}`;
  const listener = createServer((socket) => {
    if (stopping) {
      socket.destroy();
      return;
    }
    const key = remoteKey(socket.remoteAddress, socket.remotePort);
    const timer = setTimeout(() => {
      gatedLog(outsiderLines.graceOver, logger, 'info', { client: key }, 'ssh client sent no identification within the login grace time');
      socket.destroy();
    }, tuning.loginGraceMs);
    timer.unref();
    silent.set(key, { socket, timer });
    socket.once('close', () => spoke(key, socket));
    server.injectSocket(socket);
  });
  listener.on('error', (err: Error) => logger.error({ err: err.message }, 'ssh listener error'));

  /** The client at `key` identified itself (or went): its silence timer is over. */
  function spoke(key: string, socket?: Socket): void {
    const s = silent.get(key);
    if (!s || (socket && s.socket !== socket)) return;
    clearTimeout(s.timer);
    silent.delete(key);
  }

  server.on('connection', (conn: Connection, info: { ip: string; port: number }) => {
    spoke(remoteKey(info.ip, info.port));
    if (stopping) {
      // Identified itself while the proxy was stopping: no handshake yet, so just hang up.
      conn.on('error', () => {});
      conn.end();
      return;
    }
    handleConnection(conn, info.ip, info.port);
  });

  function handleConnection(conn: Connection, address: string, port: number): void {
    const log = logger.child({ client: `${address}:${port}` });
    let tries = 0;
    let keyAttempts = 0;
    let authenticated = false;
    let backend: Client | undefined;
    let untrack: (() => void) | undefined;
    let closedBy: CloseReason | undefined;
    /** The connection-log line of an authorized connection, written when it ends. */
    let record: ConnectionRecord | undefined;
    let connGone = false;
    const openSessions = new Set<OpenSession>();
    /** Abandons a workspace login still in progress when the user leaves. */
    const left = new AbortController();

    metrics.connectionOpened();
    let resolveGone!: () => void;
    const entry = {
      close,
      destroy: () => destroyConnection(conn),
      gone: new Promise<void>((r) => (resolveGone = r)),
    };
    open.add(entry);

    const grace = setTimeout(() => {
      if (authenticated) return;
      gatedLog(outsiderLines.graceOver, log, 'info', { tries }, 'ssh login grace time over');
      disconnectWithMessage(conn, 'authentication timed out');
    }, tuning.loginGraceMs);
    grace.unref();

    conn.on('error', (err: Error) => log.debug({ err: err.message }, 'ssh client connection error'));
    conn.on('close', () => {
      connGone = true;
      left.abort();
      clearTimeout(grace);
      metrics.connectionClosed();
      open.delete(entry);
      untrack?.();
      backend?.end();
      if (authenticated) log.info({ reason: closedBy ?? 'client_closed' }, 'ssh connection closed');
      if (closedBy) record?.reason(closedBy);
      record?.end('client_closed');
      resolveGone();
    });

    /** Ends the connection with a reason the user sees (session stderr and the disconnect message). */
    function close(reason: CloseReason): void {
      if (closedBy) return;
      closedBy = reason;
      closeWith(closeReasonText[reason]);
    }

    /**
     * Tells the user why, then ends the connection. Open sessions get the text on stderr and a channel
     * close first. The disconnect follows only after the notices went out, once the client has closed the
     * sessions (or after a bound): OpenSSH drops output it has not yet written out when a disconnect
     * arrives, so a disconnect right behind the notice would lose the reason.
     */
    function closeWith(text: string): void {
      const closing = [...openSessions].map((s) => s.closeWithNotice(text));
      void (async () => {
        if (closing.length > 0) {
          const sent = await settledWithin(Promise.all(closing.map((c) => c.sent)), NOTICE_SEND_WAIT_MS);
          const closed = await settledWithin(Promise.all(closing.map((c) => c.closed)), CLOSE_CHANNELS_WAIT_MS);
          if (!sent || !closed) log.debug({ sessions: closing.length, sent, closed }, 'sessions not closed by the client in time: disconnecting anyway');
        }
        disconnectWithMessage(conn, text);
        backend?.end();
      })();
    }

    conn.on('authentication', (ctx) => {
      if (ctx.method === 'publickey' && deps.auth.sshKeys) {
        onPublicKey(ctx);
        return;
      }
      if (ctx.method !== 'password') {
        // `none` and key attempts are not password tries: just say what is accepted.
        ctx.reject(methods);
        return;
      }
      tries += 1;
      if (tries > MAX_PASSWORD_TRIES) {
        // OpenSSH stops after 3 prompts by itself; anything else gets no further GitLab call.
        metrics.authFailed('too_many_tries');
        gatedLog(outsiderLines.authFailed, log, 'warn', { username: ctx.username, reason: 'too_many_tries', attempt: tries }, 'ssh authentication failed');
        disconnectWithMessage(conn, 'too many authentication failures', { reason: DISCONNECT_NO_MORE_AUTH_METHODS });
        return;
      }
      const attempt = tries;
      const username = ctx.username;
      const started = Date.now();
      void decide(username, ctx.password).then(async (decision) => {
        if (decision.ok) {
          await onAuthorized(decision, () => ctx.accept(), username, 'password');
          return;
        }
        metrics.authFailed(decision.reason);
        gatedLog(outsiderLines.authFailed, log, 'warn',
          { username, reason: decision.reason, attempt, ...(decision.userId ? { gitlabUserId: decision.userId } : {}),
            ...(decision.error ? { err: decision.error } : {}) },
          'ssh authentication failed',
        );
        // Answer every failure after the same minimum time: whether a workspace exists is not told by timing.
        const wait = tuning.failureDelayMs - (Date.now() - started);
        if (wait > 0) await delay(wait);
        // The last answers are a disconnect with the reason, not an auth failure: OpenSSH prompts for the
        // next password on any failure, even one that lists no methods left.
        if (decision.reason === 'gitlab_unavailable') {
          // Not the user's fault and not a verdict on the token: say so instead of prompting again.
          disconnectWithMessage(conn, 'could not confirm access with GitLab, try again later');
          return;
        }
        if (attempt >= MAX_PASSWORD_TRIES) {
          disconnectWithMessage(conn, 'too many authentication failures', { reason: DISCONNECT_NO_MORE_AUTH_METHODS });
          return;
        }
        if (!connGone) ctx.reject(methods);
      }).catch((err: unknown) => {
        // Never let one connection's trouble become an unhandled rejection of the whole proxy.
        log.warn({ err: (err as Error).message }, 'ssh authentication handling failed');
        conn.end();
      });
    });

    /**
     * A public key: accepted when it is one of the workspace owner's GitLab keys (not expired, not for
     * signing only) and, once signed, the signature checks out against that GitLab key. Refusals look like
     * a wrong password (same minimum delay, same methods listed) and use up no password try, so the client
     * goes on to its next key or to the PAT prompt in the same connection.
     */
    function onPublicKey(ctx: PublicKeyAuthContext): void {
      keyAttempts += 1;
      const username = ctx.username;
      const started = Date.now();
      const signed = ctx.signature !== undefined;
      void decideKey(username, offeredBlob(ctx)).then(async (decision): Promise<void> => {
        if (decision.ok && !signed) {
          ctx.accept(); // "this key would do": the client now signs with it
          return;
        }
        if (decision.ok && signatureValid(decision.key, ctx)) {
          await onAuthorized({ ...decision, cached: false }, () => ctx.accept(), username, 'publickey');
          return;
        }
        const reason = decision.ok ? 'bad_signature' : decision.reason;
        metrics.keyAuth('failure', reason);
        // Offering keys that do not fit is what clients with several keys do: info, not warn.
        gatedLog(outsiderLines.keyRefused, log, 'info',
          { username, method: 'publickey', reason, keyType: ctx.key.algo, signed,
            ...(!decision.ok && decision.userId ? { gitlabUserId: decision.userId } : {}),
            ...(!decision.ok && decision.error ? { err: decision.error } : {}) },
          'ssh public key refused',
        );
        const wait = tuning.failureDelayMs - (Date.now() - started);
        if (wait > 0) await delay(wait);
        if (!connGone) ctx.reject(methods);
      }).catch((err: unknown) => {
        log.warn({ err: (err as Error).message }, 'ssh authentication handling failed');
        conn.end();
      });
    }

    async function decideKey(username: string, blob: string): Promise<KeyDecision> {
      if (keyAttempts > MAX_KEY_ATTEMPTS) return { ok: false, reason: 'too_many_keys' };
      // Key attempts use up no budget, but an address that has used up its budget is refused keys too.
      if (!limiter.take(address)) return { ok: false, reason: 'rate_limited' };
      limiter.giveBack(address);
      return authorizer.authorizeKey(username, blob).catch(
        (err: unknown): KeyDecision => ({ ok: false, reason: 'gitlab_unavailable', error: (err as Error).message }),
      );
    }

    async function decide(username: string, token: string): Promise<AuthDecision> {
      if (!limiter.take(address)) return { ok: false, reason: 'rate_limited' };
      const decision = await authorizer.authorize(username, token).catch(
        (err: unknown): AuthDecision => ({ ok: false, reason: 'gitlab_unavailable', error: (err as Error).message }),
      );
      if (decision.ok || decision.reason === 'gitlab_unavailable') limiter.giveBack(address);
      return decision;
    }

    async function onAuthorized(
      decision: Extract<AuthDecision, { ok: true }>, accept: () => void, username: string, method: 'password' | 'publickey',
    ): Promise<void> {
      if (closedBy || !connectionWritable(conn)) return;
      const ws = decision.workspace;
      const wlog = log.child({ workspace: `${ws.namespace}/${ws.name}`, workspaceId: ws.id });
      let client: Client;
      try {
        client = await connectBackend(
          { host: ws.backendHost, port: config.ssh.backend_port, username: config.ssh.backend_username },
          { timeoutMs: tuning.backendTimeoutMs, keepaliveIntervalMs: tuning.keepaliveIntervalMs, signal: left.signal },
        );
      } catch (err) {
        const kind = err instanceof BackendError ? err.kind : 'unreachable';
        if (kind === 'aborted') {
          wlog.info('user left while the workspace sshd was being joined');
          return;
        }
        metrics.backendFailed(kind);
        wlog.warn({ err: (err as Error).message, kind, backend: `${ws.backendHost}:${config.ssh.backend_port}` },
          'workspace sshd not reachable');
        disconnectWithMessage(conn, kind === 'refused_login'
          ? `workspace ${username} refused the proxy's login to its sshd`
          : `workspace ${username} is not reachable over SSH (is it running?)`);
        return;
      }
      if (closedBy || stopping || !connectionWritable(conn)) {
        client.end();
        if (stopping && !closedBy) close('shutdown');
        return;
      }
      backend = client;
      client.on('error', (err: Error) => wlog.debug({ err: err.message }, 'workspace connection error'));
      client.on('close', () => {
        // The workspace went away under us (pod stopped, sshd restarted).
        if (!closedBy && !connGone) {
          record?.reason('workspace_closed');
          closedBy = 'workspace_gone';
          wlog.info('workspace sshd closed the connection');
          closeWith('the workspace closed the connection');
        }
      });
      record = connectionLog.open({
        kind: 'ssh', userId: decision.userId, workspace: { name: ws.name, namespace: ws.namespace, id: ws.id },
        auth: 'personal_access_token', client: `${address}:${port}`,
      });
      const counted = record;
      forwardConnection(conn, client, {
        bytes: (direction, n) => {
          metrics.bytes(direction, n);
          if (direction === 'to_workspace') counted.toWorkspace(n);
          else counted.fromWorkspace(n);
        },
        debug: (msg, extra) => wlog.debug(extra ?? {}, msg),
        sessionOpened: (session) => {
          openSessions.add(session);
          return () => openSessions.delete(session);
        },
      });
      authenticated = true;
      clearTimeout(grace);
      // The credential is kept (in memory only) because the connection registry re-checks it every interval.
      untrack = deps.connections.track({
        kind: 'ssh',
        workspace: { name: ws.name, namespace: ws.namespace, uid: ws.uid, id: ws.id },
        credential: decision.credential,
        close,
      });
      if (method === 'password') metrics.authSucceeded(decision.cached);
      else metrics.keyAuth('success', 'verified');
      wlog.info({ gitlabUserId: decision.userId, cached: decision.cached, method }, 'ssh connection authorized');
      if (!connGone) accept();
    }
  }

  return {
    listen(port, host) {
      return listenOn(listener, port, host);
    },
    async shutdown() {
      stopping = true;
      const closed = new Promise<void>((resolve) => listener.close(() => resolve()));
      for (const { socket } of silent.values()) socket.destroy();
      const all = [...open];
      for (const c of all) c.close('shutdown');
      if (!(await settledWithin(Promise.all(all.map((c) => c.gone)), tuning.shutdownTimeoutMs))) {
        logger.warn({ open: open.size }, 'ssh connections still open after shutdown timeout: cutting them');
        for (const c of open) c.destroy();
      }
      await closed;
    },
  };
}
