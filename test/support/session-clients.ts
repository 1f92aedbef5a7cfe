// Long-lived connections through the proxy, driven in-process, each with an echo() that proves it still
// carries data both ways: a WebSocket to the sample workspace's echo, and an SSH session (ssh2, password
// login with a personal access token, then `cat` on the workspace; no ssh binary per session). Used by the
// reliability tests and the soak (test/soak/run.ts).
import { Client, type ClientChannel } from 'ssh2';
import { WebSocket } from 'ws';

const ECHO_TIMEOUT_MS = 10_000;

export interface EchoWebSocket {
  echo(text: string): Promise<void>;
  isClosed(): boolean;
  /** Close code and reason, once closed. */
  closedWith(): [number, string] | undefined;
  end(): void;
}

/** A WebSocket to `/echo` on `host` (the Host header) through the proxy at 127.0.0.1:`port`. */
export async function openEchoWebSocket(o: { port: number; host: string; cookie: string }): Promise<EchoWebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${o.port}/echo`, ['echo.v1'], { headers: { host: o.host, cookie: o.cookie } });
  let closed: [number, string] | undefined;
  ws.on('close', (code, why) => (closed = [code, why.toString()]));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`WebSocket refused with ${res.statusCode}`)));
  });
  ws.on('error', () => {});
  return {
    echo(text) {
      return new Promise<void>((resolve, reject) => {
        const onMessage = (data: Buffer) => {
          if (data.toString() !== text) return;
          finish();
          resolve();
        };
        const onClose = () => {
          finish();
          reject(new Error(`WebSocket closed before "${text}" came back (${closed?.join(' ') ?? ''})`));
        };
        const timer = setTimeout(() => {
          finish();
          reject(new Error(`"${text}" did not come back over the WebSocket within ${ECHO_TIMEOUT_MS} ms`));
        }, ECHO_TIMEOUT_MS);
        const finish = () => {
          clearTimeout(timer);
          ws.off('message', onMessage);
          ws.off('close', onClose);
        };
        if (closed) return onClose();
        ws.on('message', onMessage);
        ws.once('close', onClose);
        ws.send(text);
      });
    },
    isClosed: () => closed !== undefined,
    closedWith: () => closed,
    end: () => ws.terminate(),
  };
}

export interface SshSession {
  /** Sends a line and resolves when it comes back; rejects if the session closes or 10 s pass first. */
  echo(text: string): Promise<void>;
  /** True once the proxy or the workspace closed the session. */
  isClosed(): boolean;
  /** The disconnect reason the proxy sent, if any. */
  closeReason(): string | undefined;
  end(): Promise<void>;
}

export async function openSshSession(o: { port: number; username: string; password: string; readyTimeoutMs?: number }): Promise<SshSession> {
  const client = new Client();
  let closed = false;
  let reason: string | undefined;
  let received = '';
  const waiters = new Set<() => void>();
  const onChange = () => waiters.forEach((w) => w());
  client.on('close', () => {
    closed = true;
    onChange();
  });
  // ssh2 reports the server's SSH_MSG_DISCONNECT description as an error with `description`.
  client.on('error', (err: Error & { description?: string }) => {
    reason ??= err.description ?? err.message;
  });
  await new Promise<void>((resolve, reject) => {
    client.once('ready', () => resolve());
    client.once('error', reject);
    client.connect({
      host: '127.0.0.1', port: o.port, username: o.username, password: o.password,
      tryKeyboard: false, hostVerifier: () => true, readyTimeout: o.readyTimeoutMs ?? 30_000,
    });
  });
  const channel = await new Promise<ClientChannel>((resolve, reject) =>
    client.exec('cat', (err, ch) => (err ? reject(err) : resolve(ch))));
  channel.setEncoding('utf8');
  channel.on('data', (d: string) => {
    received += d;
    onChange();
  });
  channel.on('close', () => {
    closed = true;
    onChange();
  });

  return {
    echo(text) {
      const line = `${text}\n`;
      return new Promise<void>((resolve, reject) => {
        const check = () => {
          const at = received.indexOf(line);
          if (at >= 0) {
            received = received.slice(at + line.length);
            finish();
            resolve();
          } else if (closed) {
            finish();
            reject(new Error(`SSH session closed before "${text}" came back (${reason ?? 'no reason'})`));
          }
        };
        const timer = setTimeout(() => {
          finish();
          reject(new Error(`"${text}" did not come back over SSH within ${ECHO_TIMEOUT_MS} ms`));
        }, ECHO_TIMEOUT_MS);
        const finish = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        channel.write(line);
        check();
      });
    },
    isClosed: () => closed,
    closeReason: () => reason,
    end() {
      if (closed) return Promise.resolve();
      return new Promise<void>((resolve) => {
        client.once('close', () => resolve());
        channel.end();
        client.end();
      });
    },
  };
}
