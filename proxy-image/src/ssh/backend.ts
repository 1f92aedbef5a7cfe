// The proxy's own SSH connection to a workspace's sshd: `<backendHost>:<ssh.backend_port>` as
// `ssh.backend_username` with an empty password (the workspace image's sshd allows exactly that, and only
// the cluster network reaches it).
import { Client } from 'ssh2';

export interface BackendTarget {
  host: string;
  port: number;
  username: string;
}

export class BackendError extends Error {
  constructor(
    message: string,
    readonly kind: 'unreachable' | 'refused_login' | 'aborted',
  ) {
    super(message);
  }
}

export interface BackendOptions {
  /** Connect + handshake + login must finish within this (a stopped workspace must not hang the user). */
  timeoutMs: number;
  /** Keepalive towards the workspace sshd, so a vanished pod is noticed. */
  keepaliveIntervalMs: number;
  /** Abandons the attempt (the user left while it ran): the half-made connection is ended at once. */
  signal?: AbortSignal;
}

export function connectBackend(target: BackendTarget, opts: BackendOptions): Promise<Client> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    let settled = false;
    const fail = (err: BackendError): void => {
      if (settled) return;
      settled = true;
      // Nobody waits for an abandoned login: cut it rather than say goodbye.
      if (err.kind === 'aborted') client.destroy();
      else client.end();
      reject(err);
    };
    client.once('ready', () => {
      if (settled) return;
      settled = true;
      resolve(client);
    });
    client.on('error', (err: Error & { level?: string }) => {
      if (err.level === 'client-authentication') {
        fail(new BackendError('the workspace sshd refused the login', 'refused_login'));
      } else {
        fail(new BackendError(err.message, 'unreachable'));
      }
    });
    client.once('close', () => fail(new BackendError('connection closed during login', 'unreachable')));
    const abort = (): void => fail(new BackendError('abandoned: the user left', 'aborted'));
    if (opts.signal?.aborted) return abort();
    opts.signal?.addEventListener('abort', abort, { once: true });
    client.once('close', () => opts.signal?.removeEventListener('abort', abort));
    try {
      client.connect({
        host: target.host,
        port: target.port,
        username: target.username,
        password: '',
        // The workspace's host key is generated per workspace and reached over the cluster network only;
        // there is nothing to pin it against (the upstream proxy does not check it either).
        hostVerifier: () => true,
        readyTimeout: opts.timeoutMs,
        keepaliveInterval: opts.keepaliveIntervalMs,
        keepaliveCountMax: 3,
      });
    } catch (err) {
      fail(new BackendError((err as Error).message, 'unreachable'));
    }
  });
}
