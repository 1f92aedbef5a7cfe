// The two things ssh2 1.17 has no public API for, kept in one place so an ssh2 upgrade has one file to check
// (ssh2 is pinned with --save-exact; test/proxy/ssh*.test.ts exercise both paths against real OpenSSH):
// - a DISCONNECT carrying a description, so the user sees *why* ("workspace not reachable", "proxy going
//   away") instead of a bare "Connection closed" (ssh2's own end() always sends an empty description);
// - exit-status/exit-signal after EOF, the order OpenSSH's sshd uses (ssh2's Channel.exit() refuses once EOF
//   has been sent, which would force us to hold back EOF until the process exits).
import type { Connection, ServerChannel } from 'ssh2';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const protocolUtils = require('ssh2/lib/protocol/utils.js') as {
  sendPacket?: (proto: unknown, packet: Buffer, bypass?: boolean) => boolean;
};

const MESSAGE_DISCONNECT = 1;
export const DISCONNECT_BY_APPLICATION = 11;
export const DISCONNECT_TOO_MANY_CONNECTIONS = 12;
export const DISCONNECT_NO_MORE_AUTH_METHODS = 14;

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
interface ConnectionInternals {
  _protocol?: ProtocolLike;
  _sock?: { writable?: boolean; end(): void; destroy(): void };
}

/**
 * Sends SSH_MSG_DISCONNECT with a human-readable description, then ends the socket. OpenSSH prints it as
 * "Received disconnect from <host> port <port>:11: <text>". Falls back to ssh2's plain end().
 */
export function disconnectWithMessage(conn: Connection, text: string, reason = DISCONNECT_BY_APPLICATION): void {
  const internals = conn as unknown as ConnectionInternals;
  const sock = internals._sock;
  const writer = internals._protocol?._packetRW?.write;
  if (!sock || !sock.writable) return;
  if (!writer || typeof protocolUtils.sendPacket !== 'function') {
    conn.end();
    return;
  }
  try {
    const desc = Buffer.from(text.slice(0, 200), 'utf8');
    let p = writer.allocStartKEX;
    const len = 1 + 4 + 4 + desc.length + 4;
    const packet = writer.alloc(len, true);
    packet[p] = MESSAGE_DISCONNECT;
    packet.writeUInt32BE(reason, ++p);
    packet.writeUInt32BE(desc.length, (p += 4));
    desc.copy(packet, (p += 4));
    packet.writeUInt32BE(0, p + desc.length); // empty language tag
    protocolUtils.sendPacket(internals._protocol, writer.finalize(packet, true), true);
    sock.end();
  } catch {
    conn.end();
  }
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
