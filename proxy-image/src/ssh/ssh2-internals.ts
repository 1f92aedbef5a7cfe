// The few things ssh2 1.17 has no public API for, kept in one place so an ssh2 upgrade has one file to check.
// ssh2 is pinned with --save-exact, and test/proxy/ssh-internals.test.ts drives each function below against
// ssh2 itself, so an upgrade that moves these internals fails there by name, not silently in production:
// - a DISCONNECT carrying a description, so the user sees *why* ("workspace not reachable", "proxy going
//   away") instead of a bare "Connection closed" (ssh2's own end() always sends an empty description);
// - exit-status/exit-signal after EOF, the order OpenSSH's sshd uses (ssh2's Channel.exit() refuses once EOF
//   has been sent, which would force us to hold back EOF until the process exits);
// - the state of a connection's socket and of a channel's sending side;
// - the bookkeeping of writes that wait for the SSH window (repairWindowWaits, discardQueuedOutput).
import type { Connection, ServerChannel } from 'ssh2';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const protocolUtils = require('ssh2/lib/protocol/utils.js') as {
  sendPacket?: (proto: unknown, packet: Buffer, bypass?: boolean) => boolean;
};

const MESSAGE_DISCONNECT = 1;
const DISCONNECT_BY_APPLICATION = 11;
export const DISCONNECT_NO_MORE_AUTH_METHODS = 14;

/** Internals missing from the installed ssh2 that can be checked without a connection (logged at start). */
export function missingSsh2Internals(): string[] {
  return typeof protocolUtils.sendPacket === 'function' ? [] : ['ssh2/lib/protocol/utils.js sendPacket'];
}

interface PacketWriter {
  allocStartKEX: number;
  alloc(len: number, forceNoCompression?: boolean): Buffer;
  finalize(packet: Buffer, forceNoCompression?: boolean): Buffer;
}
interface ProtocolLike {
  _packetRW?: { write?: PacketWriter };
  exitStatus?(chan: number, status: number): void;
  exitSignal?(chan: number, name: string, coreDumped: boolean, msg: string): void;
}
interface SocketLike {
  writable?: boolean;
  destroyed?: boolean;
  end(): void;
  destroy(): void;
  once(event: 'close', listener: () => void): unknown;
}
interface ConnectionInternals {
  _protocol?: ProtocolLike;
  _sock?: SocketLike;
}

/** How long a disconnected client may take to close its side before the socket is destroyed. */
const DISCONNECT_LINGER_MS = 10_000;

export interface DisconnectOptions {
  /** SSH disconnect reason code (default: by application). */
  reason?: number;
  lingerMs?: number;
}

/**
 * Sends SSH_MSG_DISCONNECT with a human-readable description, then ends the socket. OpenSSH prints it as
 * "Received disconnect from <host> port <port>:11: <text>". Falls back to ssh2's plain end().
 */
export function disconnectWithMessage(conn: Connection, text: string, opts: DisconnectOptions = {}): void {
  const internals = conn as unknown as ConnectionInternals;
  const sock = internals._sock;
  const writer = internals._protocol?._packetRW?.write;
  if (sock && (!sock.writable || sock.destroyed)) return; // already going
  try {
    if (!sock || !writer || typeof protocolUtils.sendPacket !== 'function') throw new Error('ssh2 internals missing');
    const desc = Buffer.from(text.slice(0, 200), 'utf8');
    let p = writer.allocStartKEX;
    const len = 1 + 4 + 4 + desc.length + 4;
    const packet = writer.alloc(len, true);
    packet[p] = MESSAGE_DISCONNECT;
    packet.writeUInt32BE(opts.reason ?? DISCONNECT_BY_APPLICATION, ++p);
    packet.writeUInt32BE(desc.length, (p += 4));
    desc.copy(packet, (p += 4));
    packet.writeUInt32BE(0, p + desc.length); // empty language tag
    protocolUtils.sendPacket(internals._protocol, writer.finalize(packet, true), true);
    sock.end();
  } catch {
    conn.end();
  }
  if (!sock) return;
  // end() only half-closes: a client that never closes its side would hold the socket (and its slot in the
  // proxy) forever, which is exactly what a client we just threw out might do.
  const cut = setTimeout(() => sock.destroy(), opts.lingerMs ?? DISCONNECT_LINGER_MS);
  cut.unref();
  sock.once('close', () => clearTimeout(cut));
}

/** Whether the connection's socket can still take data (ssh2 keeps it private). */
export function connectionWritable(conn: Connection): boolean {
  const sock = (conn as unknown as ConnectionInternals)._sock;
  return !!sock && !sock.destroyed && sock.writable !== false;
}

/** Cuts the connection at once, without a goodbye (shutdown of a connection that would not go). */
export function destroyConnection(conn: Connection): void {
  (conn as unknown as ConnectionInternals)._sock?.destroy();
}

interface ChannelInternals {
  outgoing?: { id: number; state: string };
  _client?: { _protocol?: ProtocolLike };
}

/** Exit status or signal of the workspace process, as the backend reported it. */
export type ExitInfo = { code: number } | { signal: string; coreDumped: boolean; description: string };

/** Sends exit-status / exit-signal on a server channel, also after EOF (but not after CLOSE). */
export function sendExit(channel: ServerChannel, exit: ExitInfo): void {
  const internals = channel as unknown as ChannelInternals;
  const state = internals.outgoing?.state;
  try {
    if (state === 'open') {
      if ('code' in exit) channel.exit(exit.code);
      else channel.exit(exit.signal, exit.coreDumped, exit.description);
      return;
    }
    const proto = internals._client?._protocol;
    const id = internals.outgoing?.id;
    if (state !== 'eof' || !proto || id === undefined) return;
    if ('code' in exit) proto.exitStatus?.(id, exit.code);
    else proto.exitSignal?.(id, exit.signal, exit.coreDumped, exit.description);
  } catch {
    // An unknown signal name makes ssh2 throw; the client still gets the channel close.
  }
}

/** Whether the SSH side of a channel can still take data from us. */
export function channelOutgoingOpen(channel: unknown): boolean {
  return (channel as ChannelInternals).outgoing?.state === 'open';
}

interface WindowWaitInternals {
  _write?: (data: Buffer, encoding: unknown, cb: (err?: Error | null) => void) => void;
  _chunk?: Buffer;
  _chunkcb?: () => void;
  _chunkErr?: Buffer;
  _chunkcbErr?: () => void;
  outgoing?: { window: number };
  stderr?: { _write?: (data: Buffer, encoding: unknown, cb: (err?: Error | null) => void) => void };
  [REPAIRED]?: true;
}
const REPAIRED = Symbol('wsp-window-waits-repaired');

/**
 * Makes a server channel's stderr writes survive waiting for the SSH window. ssh2 1.17 keeps the stdout
 * write that waited for the window (`_chunk`, `_chunkcb`) after it has gone out, and on every later window
 * adjust serves that stale chunk before a waiting stderr write: once stdout had waited, a stderr write that
 * has to wait is never sent (and the stale stdout chunk goes out twice, its callback called twice). Under
 * output this lost the proxy's close notice and the workspace's own stderr. Each write now starts by
 * forgetting the previous wait, and a stderr write left waiting behind stdout goes out as soon as stdout
 * leaves window for it. Idempotent; a channel without these internals is left alone.
 */
export function repairWindowWaits(channel: ServerChannel): void {
  const ch = channel as unknown as WindowWaitInternals;
  const err = ch.stderr;
  const writeOut = ch._write;
  const writeErr = err?._write;
  if (ch[REPAIRED] || !err || typeof writeOut !== 'function' || typeof writeErr !== 'function') return;
  ch[REPAIRED] = true;
  const resumeStderr = (): void => {
    if (ch._chunk !== undefined || ch._chunkErr === undefined || (ch.outgoing?.window ?? 0) <= 0) return;
    const data = ch._chunkErr;
    const cb = ch._chunkcbErr ?? (() => {});
    err._write!(data, null, cb);
  };
  ch._write = (data, encoding, cb) => {
    ch._chunk = undefined;
    ch._chunkcb = undefined;
    writeOut.call(ch, data, encoding, cb);
    resumeStderr();
  };
  err._write = (data, encoding, cb) => {
    ch._chunkErr = undefined;
    ch._chunkcbErr = undefined;
    writeErr.call(err, data, encoding, cb);
  };
}

/**
 * Drops the output queued on a server channel and not yet sent (the write waiting for the SSH window and
 * everything buffered behind it), and any later write to its stdout: the proxy is closing the channel and
 * the user must get the reason without first waiting for megabytes of output a slow client has not read.
 * Needs repairWindowWaits on the channel (ssh2 keeps stale waiting writes otherwise); without it, only
 * later writes are dropped.
 */
export function discardQueuedOutput(channel: ServerChannel): void {
  const ch = channel as unknown as WindowWaitInternals;
  if (typeof ch._write !== 'function') return;
  const waiting = ch[REPAIRED] && ch._chunk !== undefined ? ch._chunkcb : undefined;
  ch._write = (_data, _encoding, cb) => cb();
  ch._chunk = undefined;
  ch._chunkcb = undefined;
  // Completing the waiting write lets the stream hand its buffered chunks to the discarding _write.
  waiting?.();
}
