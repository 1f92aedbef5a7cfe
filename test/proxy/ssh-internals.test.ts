// The guard on ssh2 internals (proxy-image/src/ssh/ssh2-internals.ts): each function is driven against ssh2
// itself, client and server in this process, so an ssh2 upgrade that moves an internal fails here by name
// instead of silently costing users their disconnect reasons or exit statuses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect as tcpConnect, type AddressInfo } from 'node:net';
import { Client, Server, type Connection, type ServerChannel } from 'ssh2';
import {
  DISCONNECT_NO_MORE_AUTH_METHODS, channelOutgoingOpen, connectionWritable, destroyConnection, discardQueuedOutput,
  disconnectWithMessage, missingSsh2Internals, repairWindowWaits, sendExit,
} from '../../proxy-image/src/ssh/ssh2-internals';
import { ed25519OpenSsh } from '../support/ssh-keygen';

const hostKey = ed25519OpenSsh().private;

/** An ssh2 server on 127.0.0.1 that accepts any password; `onReady` gets each authenticated connection. */
async function withServer(
  onConnection: (conn: Connection) => void,
  body: (port: number) => Promise<void>,
): Promise<void> {
  const server = new Server({ hostKeys: [hostKey] }, (conn) => {
    conn.on('error', () => {});
    conn.on('authentication', (ctx) => ctx.accept());
    onConnection(conn);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    await body((server.address() as AddressInfo).port);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
}

function connectClient(port: number): Promise<Client> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    client.once('ready', () => resolve(client));
    client.once('error', reject);
    client.connect({ host: '127.0.0.1', port, username: 'u', password: 'p' });
  });
}

test('the internals checkable without a connection are present', () => {
  assert.deepEqual(missingSsh2Internals(), []);
});

test('a disconnect carries its description to the client', async () => {
  let serverConn: Connection | undefined;
  await withServer((conn) => {
    serverConn = conn;
    conn.on('ready', () => disconnectWithMessage(conn, 'workspace ws-1 is not reachable', { reason: DISCONNECT_NO_MORE_AUTH_METHODS }));
  }, async (port) => {
    const client = new Client();
    // ssh2's client reports a disconnect other than "by application" as an error with the description.
    const err = await new Promise<Error & { code?: number }>((resolve) => {
      client.once('error', resolve);
      client.connect({ host: '127.0.0.1', port, username: 'u', password: 'p' });
    });
    assert.equal(err.message, 'workspace ws-1 is not reachable');
    assert.equal(err.code, DISCONNECT_NO_MORE_AUTH_METHODS);
    await new Promise((r) => client.once('close', () => r(undefined)));
    assert.equal(serverConn && connectionWritable(serverConn), false);
  });
});

test('a client that never closes its side after the disconnect is cut off', { timeout: 30_000 }, async () => {
  let serverClosed!: Promise<unknown>;
  await withServer((conn) => {
    serverClosed = new Promise((r) => conn.once('close', () => r(undefined)));
    disconnectWithMessage(conn, 'go away', { lingerMs: 50 });
  }, async (port) => {
    // A raw TCP peer that sends its identification (ssh2 reports a connection only then) and nothing more,
    // and keeps its side open.
    const sock = tcpConnect({ host: '127.0.0.1', port, allowHalfOpen: true });
    sock.write('SSH-2.0-stubborn\r\n');
    let received = Buffer.alloc(0);
    sock.on('data', (d: Buffer) => (received = Buffer.concat([received, d])));
    sock.on('error', () => {});
    await new Promise((r) => sock.once('end', r));
    // Before key exchange the packet is plain text: the description is in it.
    assert.ok(received.includes('go away'), received.toString('latin1'));
    // The proxy's side goes although this peer never closes its own.
    await serverClosed;
    sock.destroy();
  });
});

test('exit status and exit signal still reach the client after EOF', async () => {
  const exits: ({ code: number } | { signal: string })[] = [{ code: 7 }, { signal: 'TERM' }];
  let n = 0;
  await withServer((conn) => {
    conn.on('session', (accept) => {
      accept().on('exec', (acceptExec) => {
        const ch: ServerChannel = acceptExec();
        assert.equal(channelOutgoingOpen(ch), true);
        ch.write('out');
        ch.eof();
        assert.equal(channelOutgoingOpen(ch), false);
        const exit = exits[n++];
        assert.ok(exit);
        sendExit(ch, 'code' in exit ? exit : { signal: exit.signal, coreDumped: false, description: '' });
        ch.end();
      });
    });
  }, async (port) => {
    const client = await connectClient(port);
    try {
      // ssh2's client reports signals with the SIG prefix.
      for (const expected of [{ code: 7 }, { signal: 'SIGTERM' }]) {
        const got = await new Promise<{ out: string; exit: unknown[] }>((resolve, reject) => {
          client.exec('x', (err, ch) => {
            if (err) return reject(err);
            let out = '';
            let exit: unknown[] = [];
            ch.on('data', (d: Buffer) => (out += d.toString()));
            ch.on('exit', (...args: unknown[]) => (exit = args));
            ch.on('close', () => resolve({ out, exit }));
          });
        });
        assert.equal(got.out, 'out');
        if ('code' in expected) assert.equal(got.exit[0], expected.code);
        else assert.deepEqual(got.exit.slice(0, 2), [null, expected.signal]);
      }
    } finally {
      client.end();
    }
  });
});

test('a connection can be told apart as writable, and destroyed', async () => {
  let resolveReady!: (conn: Connection) => void;
  const ready = new Promise<Connection>((r) => (resolveReady = r));
  await withServer((conn) => conn.on('ready', () => resolveReady(conn)), async (port) => {
    const client = await connectClient(port);
    const conn = await ready;
    assert.equal(connectionWritable(conn), true);
    const closed = new Promise((r) => client.once('close', () => r(undefined)));
    client.on('error', () => {});
    destroyConnection(conn);
    await closed;
    assert.equal(connectionWritable(conn), false);
  });
});

/** The client's window for one channel (ssh2's MAX_WINDOW): a paused client grants no more than this. */
const CLIENT_WINDOW = 2 * 1024 * 1024;

/**
 * Runs `serve` on the server side of an exec channel while the client is paused (it reads nothing, so no
 * window comes back), then lets the client read; resolves with what the client got once the channel closed.
 */
async function pausedClientExec(
  serve: (ch: ServerChannel) => void,
  resumeWhen: Promise<void>,
): Promise<{ stdout: number; stderr: string }> {
  let result!: { stdout: number; stderr: string };
  await withServer((conn) => {
    conn.on('session', (accept) => accept().on('exec', (acceptExec) => serve(acceptExec())));
  }, async (port) => {
    const client = await connectClient(port);
    try {
      result = await new Promise((resolve, reject) => {
        client.exec('x', (err, ch) => {
          if (err) return reject(err);
          let stdout = 0;
          let stderr = '';
          ch.pause();
          ch.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
          ch.on('close', () => resolve({ stdout, stderr }));
          void resumeWhen.then(() => ch.on('data', (d: Buffer) => (stdout += d.length)).resume());
        });
      });
    } finally {
      client.end();
    }
  });
  return result;
}

test('a stderr write that waits for the window behind stdout still goes out (repairWindowWaits)', { timeout: 30_000 }, async () => {
  // ssh2 1.17 alone: the window adjust resumes the waiting stdout write only, and the stderr write queued
  // behind it is never sent, so the channel never ends (this test then times out).
  let queued!: () => void;
  const bothQueued = new Promise<void>((r) => (queued = r));
  const got = await pausedClientExec((ch) => {
    repairWindowWaits(ch);
    ch.write(Buffer.alloc(CLIENT_WINDOW + 1000, 0x61)); // more than the window: waits
    ch.stderr.write('the reason\n', () => ch.end());
    queued();
  }, bothQueued);
  assert.equal(got.stdout, CLIENT_WINDOW + 1000);
  assert.equal(got.stderr, 'the reason\n');
});

test('output queued behind the window is dropped so a notice goes out next (discardQueuedOutput)', { timeout: 30_000 }, async () => {
  let discarded!: () => void;
  const done = new Promise<void>((r) => (discarded = r));
  const got = await pausedClientExec((ch) => {
    repairWindowWaits(ch);
    ch.write(Buffer.alloc(CLIENT_WINDOW + 1000, 0x61));
    ch.write(Buffer.alloc(1024 * 1024, 0x62)); // buffered behind it
    discardQueuedOutput(ch);
    ch.stderr.write('the reason\n', () => ch.end());
    discarded();
  }, done);
  // What fitted in the window before the client paused is delivered; the rest is not.
  assert.equal(got.stdout, CLIENT_WINDOW);
  assert.equal(got.stderr, 'the reason\n');
});
