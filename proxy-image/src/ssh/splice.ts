// Joins a channel the user opened to the proxy (`front`, ssh2 server side) with its twin on the workspace
// sshd (`back`, ssh2 client side) and copies both ways.
//
// Flow control comes from stream backpressure: ssh2 only grows a channel's SSH window when its readable side
// is read, and pipe() stops reading when the other channel's writable buffer is full, so a slow reader on
// one side stops the writer on the other side instead of filling the proxy's memory.
//
// Ordering follows OpenSSH's sshd, so scp, pipes and `ssh host cmd < file` finish properly:
//   user EOF            -> EOF to the workspace (the command sees end of stdin, the channel stays open);
//   workspace data, EOF -> all data and stderr flushed to the user, then EOF;
//   workspace exit-*    -> forwarded after the data it follows;
//   workspace CLOSE     -> CLOSE to the user, after all of the above.
// A CLOSE from the user closes the workspace channel.
import type { ClientChannel, ServerChannel } from 'ssh2';
import { channelOutgoingOpen, discardQueuedOutput, repairWindowWaits, sendExit, type ExitInfo } from './ssh2-internals';

export interface SpliceHooks {
  bytes(direction: 'to_workspace' | 'from_workspace', n: number): void;
  debug(msg: string, err?: unknown): void;
}

/** Returned by spliceChannels: stops copying workspace output to the user (before the proxy ends the channel). */
export type StopOutput = () => void;

/**
 * Resolves once everything written to `w` so far has been handed to the SSH connection. Only meaningful while
 * the channel is open: ssh2 never completes a write after EOF, so callers race it with the channel's close.
 */
function flushed(w: NodeJS.WritableStream & { writableEnded?: boolean; destroyed?: boolean }): Promise<void> {
  if (w.writableEnded || w.destroyed) return Promise.resolve();
  // Writes complete in order, so an empty write's callback fires after every earlier chunk went out.
  return new Promise((resolve) => w.write(Buffer.alloc(0), () => resolve()));
}

/** Writes a line of the proxy's own to the user's stderr, if the channel still takes data. */
export function writeNotice(channel: ServerChannel, text: string): void {
  const err = channel.stderr;
  if (!err.writable || err.writableEnded || err.destroyed || !channelOutgoingOpen(channel)) return;
  err.write(`\r\ngitlab-workspaces-proxy: ${text}\r\n`);
}

/** What ending a channel with a notice reports: when the notice went out, and when the channel is closed. */
export interface NoticeClose {
  /** The notice was handed to the connection (or the channel can take no data: nothing will be sent). */
  sent: Promise<void>;
  /** The channel is closed (the user answered the CLOSE, or the connection went). */
  closed: Promise<void>;
}

/**
 * Closes a channel the proxy decided to end, with `text` on the user's stderr. The caller must have stopped
 * relaying into it first. Order, under back-pressure too: output queued and not yet sent is dropped (the
 * user would otherwise wait for megabytes a slow client has not read before the reason), the notice goes out
 * with the next window, then EOF and CLOSE. The caller disconnects only after `sent`, and gives the client
 * time to close: OpenSSH drops what it has not yet printed when a disconnect arrives.
 */
export function endWithNotice(channel: ServerChannel, text: string): NoticeClose {
  const closed = new Promise<void>((resolve) => channel.once('close', () => resolve()));
  const sent = (async () => {
    // After the workspace's EOF no data can be sent at all; then only the CLOSE is left to send.
    if (channelOutgoingOpen(channel)) {
      discardQueuedOutput(channel);
      writeNotice(channel, text);
      await Promise.race([flushed(channel.stderr), closed]);
    }
    if (!channel.writableEnded) channel.end();
  })();
  return { sent, closed };
}

function ended(r: NodeJS.ReadableStream & { readableEnded?: boolean }): Promise<void> {
  if (r.readableEnded) return Promise.resolve();
  return new Promise((resolve) => {
    r.once('end', resolve);
    r.once('close', resolve);
  });
}

export function spliceChannels(front: ServerChannel, back: ClientChannel, hooks: SpliceHooks): StopOutput {
  let exit: ExitInfo | undefined;
  /** The proxy is ending the user's channel itself (or it is closed): the workspace's ending is not relayed. */
  let stopped = false;
  // Under output, stderr (the workspace's, and the proxy's close notice) must still get through.
  repairWindowWaits(front);

  front.on('data', (chunk: Buffer) => hooks.bytes('to_workspace', chunk.length));
  back.on('data', (chunk: Buffer) => hooks.bytes('from_workspace', chunk.length));
  back.stderr.on('data', (chunk: Buffer) => hooks.bytes('from_workspace', chunk.length));

  // user -> workspace; the user's EOF ends the workspace side's writable, which sends EOF only
  // (ssh2 client channels are half-open).
  front.pipe(back);
  // workspace -> user; ending is ours to do, in the right order (below).
  back.pipe(front, { end: false });
  back.stderr.pipe(front.stderr, { end: false });
  const stopOutput = (): void => {
    stopped = true;
    back.unpipe(front);
    back.stderr.unpipe(front.stderr);
  };

  back.on('exit', (code: number | null, signal?: string, coreDumped?: boolean, description?: string) => {
    exit = code === null || code === undefined
      ? { signal: signal ?? 'SIGKILL', coreDumped: !!coreDumped, description: description ?? '' }
      : { code };
  });

  const backEof = Promise.all([ended(back), ended(back.stderr)]).then(async () => {
    await Promise.all([flushed(front), flushed(front.stderr)]);
    if (!stopped && channelOutgoingOpen(front)) front.eof();
  });
  const backClose = new Promise<void>((resolve) => back.once('close', () => resolve()));
  void Promise.all([backEof, backClose]).then(() => {
    if (stopped) return;
    if (exit) sendExit(front, exit);
    // end() sends EOF (already sent) and CLOSE on a server channel.
    if (!front.writableEnded) front.end();
  });

  front.once('close', () => {
    stopOutput();
    // Resume so a backend that is still sending does not stall its whole connection's flow.
    back.resume();
    back.stderr.resume();
    back.close();
  });

  // Writes racing a close end in 'error' events on the stderr streams: nothing to do about them.
  front.stderr.on('error', (err: unknown) => hooks.debug('client stderr error', err));
  back.stderr.on('error', (err: unknown) => hooks.debug('workspace stderr error', err));
  front.on('error', (err: unknown) => {
    hooks.debug('client channel error', err);
    front.close();
  });
  back.on('error', (err: unknown) => {
    hooks.debug('workspace channel error', err);
    back.close();
  });
  return stopOutput;
}
