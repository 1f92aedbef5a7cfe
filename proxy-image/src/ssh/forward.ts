// Everything an authenticated user does over SSH, relayed to the workspace sshd: session channels (shell,
// exec, subsystems such as sftp, with pty, env, window-change and signals), `ssh -L` (direct-tcpip) and
// `ssh -R` (tcpip-forward, forwarded-tcpip). Each channel and request is handled on its own, so one slow
// channel never holds up another. Global requests we do not relay (keepalive@openssh.com, and the
// workspace's hostkeys-00@openssh.com, which would make clients warn about a host key that is not the
// proxy's) are answered by ssh2 itself.
import type {
  Client, ClientChannel, Connection, PseudoTtyInfo, ServerChannel, Session, TcpConnectionDetails,
} from 'ssh2';
import { endWithNotice, spliceChannels, writeNotice, type NoticeClose, type SpliceHooks, type StopOutput } from './splice';
import { sendExit } from './ssh2-internals';

/** A session channel (shell, exec, subsystem) the user has open. */
export interface OpenSession {
  /** Stops relaying the workspace's output, tells the user why on stderr, closes the channel. */
  closeWithNotice(text: string): NoticeClose;
}

export interface ForwardHooks {
  bytes: SpliceHooks['bytes'];
  debug(msg: string, extra?: Record<string, unknown>): void;
  /** Reports each session as it starts, so a close reason can reach its stderr; returns the call for its end. */
  sessionOpened(session: OpenSession): () => void;
}

type Splice = (front: ServerChannel, back: ClientChannel) => StopOutput;

type OpenBackChannel = (cb: (err: Error | undefined, channel: ClientChannel) => void) => void;

/** Wires the user's connection to the backend connection. Call before accepting authentication. */
export function forwardConnection(front: Connection, back: Client, hooks: ForwardHooks): void {
  const splice: Splice = (f, b) =>
    spliceChannels(f, b, {
      bytes: hooks.bytes,
      debug: (msg, err) => hooks.debug(msg, { err: (err as Error | undefined)?.message }),
    });

  front.on('session', (accept) => {
    const session = accept();
    handleSession(session, back, hooks, splice);
  });

  front.on('tcpip', (accept, reject, info) => {
    // Open the workspace side first: if nothing listens there, the user's `ssh -L` gets a proper
    // "open failed" instead of a channel that closes at once.
    try {
      back.forwardOut(info.srcIP, info.srcPort, info.destIP, info.destPort, (err, channel) => {
        if (err) {
          hooks.debug('direct-tcpip refused by workspace', { dest: `${info.destIP}:${info.destPort}`, err: err.message });
          reject();
          return;
        }
        splice(accept(), channel);
      });
    } catch {
      // ssh2 throws when the workspace connection is already gone.
      reject();
    }
  });

  front.on('request', (accept, reject, name, info) => {
    const bind = info as { bindAddr?: string; bindPort?: number };
    const { bindAddr, bindPort } = bind;
    if ((name !== 'tcpip-forward' && name !== 'cancel-tcpip-forward') || bindAddr === undefined || bindPort === undefined) {
      reject?.();
      return;
    }
    try {
      if (name === 'tcpip-forward') {
        back.forwardIn(bindAddr, bindPort, (err, port) => (err ? reject?.() : accept?.(port)));
      } else {
        back.unforwardIn(bindAddr, bindPort, (err) => (err ? reject?.() : accept?.()));
      }
    } catch {
      reject?.();
    }
  });

  // A connection to a port the user had the workspace listen on (`ssh -R`): relay it to the user.
  back.on('tcp connection', (details: TcpConnectionDetails, acceptBack: () => ClientChannel, rejectBack: () => void) => {
    try {
      front.forwardOut(details.destIP, details.destPort, details.srcIP, details.srcPort, (err, channel) => {
        if (err) {
          rejectBack();
          return;
        }
        splice(channel, acceptBack());
      });
    } catch {
      rejectBack();
    }
  });
}

function handleSession(
  session: Session,
  back: Client,
  hooks: ForwardHooks,
  splice: Splice,
): void {
  // Requests that come before shell/exec/subsystem are remembered and sent with it: ssh2's client opens
  // the workspace channel and sends them in one go.
  let pty: PseudoTtyInfo | undefined;
  const env: Record<string, string> = {};
  let backChannel: ClientChannel | undefined;
  let started = false;

  session.on('pty', (accept, _reject, info) => {
    pty = info;
    accept?.();
  });
  session.on('env', (accept, _reject, info) => {
    env[info.key] = info.val;
    accept?.();
  });
  session.on('window-change', (accept, _reject, info) => {
    if (backChannel) backChannel.setWindow(info.rows, info.cols, info.height, info.width);
    else if (pty) pty = { ...pty, rows: info.rows, cols: info.cols, width: info.width, height: info.height };
    accept?.();
  });
  session.on('signal', (accept, _reject, info) => {
    try {
      backChannel?.signal(info.name);
    } catch {
      // ssh2 throws on a signal name it does not know; nothing to relay then.
    }
    accept?.();
  });
  // Agent and X11 forwarding are not relayed (see docs/ssh.md).
  session.on('x11', (_accept, reject) => reject?.());
  session.on('auth-agent', (_accept, reject) => reject?.());

  // Accept the user's request at once (ssh2 drops data that arrives on a session before that), then open
  // the workspace side; the user's input waits in the channel's buffer meanwhile.
  const start = (front: ServerChannel, open: OpenBackChannel): void => {
    started = true;
    front.on('error', (err: Error) => hooks.debug('client channel error', { err: err.message }));
    front.stderr.on('error', () => {});
    let stopOutput: StopOutput | undefined;
    /** Set once the channel is closed or the proxy is closing it: a late workspace channel is not joined. */
    let ending = false;
    const untrack = hooks.sessionOpened({
      closeWithNotice(text) {
        ending = true;
        stopOutput?.();
        return endWithNotice(front, text);
      },
    });
    front.once('close', () => {
      ending = true;
      untrack();
    });
    const refuse = (text: string): void => {
      writeNotice(front, text);
      sendExit(front, { code: 255 });
      front.end();
    };
    try {
      open((err, channel) => {
        if (err) {
          hooks.debug('workspace refused the session request', { err: err.message });
          refuse(`the workspace refused the request (${err.message})`);
          return;
        }
        if (ending) {
          channel.close();
          return;
        }
        backChannel = channel;
        stopOutput = splice(front, channel);
      });
    } catch (err) {
      // ssh2 throws when the workspace connection is already gone.
      refuse(`the workspace connection is gone (${(err as Error).message})`);
    }
  };

  session.on('shell', (accept, reject) => {
    if (started) return reject?.();
    start(accept(), (cb) => back.shell(pty ?? false, { env }, cb));
  });
  session.on('exec', (accept, reject, info) => {
    if (started) return reject?.();
    start(accept(), (cb) => back.exec(info.command, pty ? { env, pty } : { env }, cb));
  });
  session.on('subsystem', (accept, reject, info) => {
    if (started) return reject?.();
    start(accept(), (cb) => back.subsys(info.name, cb));
  });
}
