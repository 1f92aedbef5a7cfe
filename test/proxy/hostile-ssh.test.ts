// Hostile input on the SSH port (issue 13): clients that connect and send nothing, garbage, or an
// identification and then nothing are closed after the login grace while a real login (OpenSSH) goes
// through; thousands of wrong passwords from one address (ssh2's client) meet the per-address limit, so
// GitLab sees a bounded number of calls, the failure lines are rate-limited (metrics count them all),
// another address is unaffected, nothing crashes and memory stays bounded.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { Client, utils } from 'ssh2';
import { heapAfterGc, MiB } from '../support/heap';
import { startSshHarness, WORKSPACE, type SshHarness } from '../support/ssh-harness';
import { ed25519OpenSsh } from '../support/ssh-keygen';
import { MAX_KEY_ATTEMPTS } from '../../proxy-image/src/ssh';


/** Lines a minute the proxy allows per kind of outsider line (ssh/index.ts OUTSIDER_LINES_PER_MINUTE). */
const LINES_PER_MINUTE = 20;

async function metric(h: SshHarness, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = (await h.registry.getMetricsAsJSON()).find((x) => x.name === name);
  return (m?.values ?? [])
    .filter((v) => Object.entries(labels).every(([k, val]) => (v.labels as Record<string, unknown>)[k] === val))
    .reduce((sum, v) => sum + v.value, 0);
}

/** Waits (bounded) until the proxy counts no open SSH connection: every refused client was let go. */
async function connectionsGone(h: SshHarness): Promise<void> {
  const deadline = Date.now() + 30_000;
  let open = 0;
  while ((open = await metric(h, 'workspaces_proxy_ssh_connections_open')) > 0) {
    assert.ok(Date.now() < deadline, `${open} SSH connections still open 30 s after their clients were done`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('SSH clients that never log in', () => {
  const GRACE_MS = 3_000;
  let h: SshHarness;
  before(async () => {
    h = await startSshHarness({ tuning: { loginGraceMs: GRACE_MS } });
  });
  after(() => h?.close());

  test('silent, garbage and identify-then-stall clients are closed after the login grace; a real login goes through meanwhile', { timeout: 90_000 }, async () => {
    const heapBefore = heapAfterGc();
    interface Hostile { kind: string; openedAt: number; closedAt?: number; closed: Promise<void>; socket: Socket }
    const open = (kind: string, send?: () => Buffer | string): Promise<Hostile> =>
      new Promise((resolve, reject) => {
        const socket = connect(h.port, '127.0.0.1');
        const c: Hostile = { kind, socket, openedAt: 0, closed: new Promise((r) => socket.once('close', () => r())) };
        socket.on('error', () => {});
        socket.resume();
        socket.once('close', () => (c.closedAt = Date.now()));
        socket.once('connect', () => {
          c.openedAt = Date.now();
          if (send) socket.write(send());
          resolve(c);
        });
        socket.once('error', reject);
      });
    const garbageLines = () => Array.from({ length: 20 }, () => randomBytes(20).toString('base64')).join('\r\n') + '\r\n';
    const clients: Hostile[] = [];
    for (let i = 0; i < 80; i++) clients.push(await open('silent'));
    for (let i = 0; i < 40; i++) clients.push(await open('binary garbage', () => randomBytes(200).toString('latin1').replace(/SSH-/g, '')));
    for (let i = 0; i < 40; i++) clients.push(await open('garbage lines', garbageLines));
    for (let i = 0; i < 40; i++) clients.push(await open('identifies, then nothing', () => 'SSH-2.0-Hostile_1.0\r\n'));
    for (let i = 0; i < 40; i++) clients.push(await open('identifies, then garbage', () => Buffer.concat([Buffer.from('SSH-2.0-Hostile_1.0\r\n'), randomBytes(300)])));

    const run = await h.ssh({ tokens: [h.aliceToken], command: ['echo in'] });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'in\n');

    await Promise.all(clients.map((c) => c.closed));
    for (const c of clients) {
      const lived = c.closedAt! - c.openedAt;
      assert.ok(lived <= 2 * GRACE_MS + 1_000, `${c.kind}: closed after ${lived} ms`);
    }
    const byKind = new Map<string, number[]>();
    for (const c of clients) byKind.set(c.kind, [...(byKind.get(c.kind) ?? []), c.closedAt! - c.openedAt]);
    console.log(`never-login clients, longest life per kind (ms): ${JSON.stringify(Object.fromEntries([...byKind].map(([k, v]) => [k, Math.max(...v)])))}`);

    await connectionsGone(h);
    // One line per dropped client would let anyone fill the log: a few a minute, the rest counted.
    const graceLines = h.logs().filter((l) => /login grace time/.test(String(l.msg)));
    assert.ok(graceLines.length >= 1 && graceLines.length <= 2 * LINES_PER_MINUTE, `${graceLines.length} grace lines`);
    assert.deepEqual(h.logs().filter((l) => Number(l.level) >= 50), [], 'nothing logged as an error');
    const again = await h.ssh({ tokens: [h.aliceToken], command: ['echo again'] });
    assert.equal(again.stdout, 'again\n');
    const grown = (heapAfterGc() - heapBefore) / MiB;
    console.log(`never-login clients: heap grew ${grown.toFixed(1)} MiB`);
    assert.ok(grown < 32, `heap grew ${grown.toFixed(1)} MiB`);
  });
});

describe('odd usernames and passwords', () => {
  let h: SshHarness;
  before(async () => {
    h = await startSshHarness({ tuning: { failureDelayMs: 20 } });
  });
  after(() => h?.close());

  test('huge, empty, binary and unicode credentials are refused without a GitLab call for unknown names, and nothing breaks', { timeout: 60_000 }, async () => {
    const odd = ['', ' ', '\0', 'a'.repeat(10_000), 'ws-alice\0', 'WS-ALICE', '../ws-alice', 'ws-alice ', '漢字', '\u202e', '%s%n', '${jndi:x}', "ws'; --"];
    h.gitlab.resetCounts();
    const results = await Promise.all(odd.map((username, i) => new Promise<string>((resolve) => {
      const c = new Client();
      let tries = 0;
      c.on('error', (err: Error) => resolve(`refused: ${err.message}`));
      // Name and password past the largest packet: the connection is closed, which is a refusal too.
      c.on('close', () => resolve('refused: closed'));
      c.on('ready', () => {
        c.end();
        resolve('ACCEPTED');
      });
      c.connect({
        host: '127.0.0.1', port: h.port, localAddress: '127.0.0.3', username, readyTimeout: 30_000, hostVerifier: () => true,
        authHandler: (_m, _p, next) => {
          if (tries++ >= 1) return next(false as never);
          // A password as large as one packet allows, or odd bytes.
          next({ type: 'password', username, password: i % 2 ? 'p'.repeat(30_000) : '\0\r\n\u00ff漢' });
        },
      });
    })));
    assert.ok(results.every((r) => r.startsWith('refused')), JSON.stringify(results));
    assert.equal(h.gitlab.count('graphql'), 0, 'no GitLab call for a workspace that does not exist');
    await connectionsGone(h);
    assert.deepEqual(h.logs().filter((l) => Number(l.level) >= 50), []);
    const ok = await h.ssh({ tokens: [h.aliceToken], command: ['echo in'] });
    assert.equal(ok.stdout, 'in\n');
  });
});

describe('a password flood from one address', () => {
  const BUDGET = 20;
  const REFILL_MS = 30_000;
  let h: SshHarness;
  before(async () => {
    // Production budget and refill; a short failure delay only so thousands of tries fit in seconds.
    h = await startSshHarness({ tuning: { failureDelayMs: 20, addressFailureBudget: BUDGET, addressFailureRefillMs: REFILL_MS } });
  });
  after(() => h?.close());

  /** One connection from `localAddress` trying wrong passwords until the proxy hangs up; resolves with the tries made. */
  function guesser(localAddress: string, id: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const c = new Client();
      let tries = 0;
      c.on('error', () => {});
      c.on('ready', () => reject(new Error('a wrong password was accepted')));
      c.on('close', () => resolve(tries));
      c.connect({
        host: '127.0.0.1', port: h.port, localAddress, username: WORKSPACE, readyTimeout: 30_000,
        hostVerifier: () => true,
        authHandler: (_methodsLeft, _partial, next) => {
          if (tries >= 5) return next(false as never); // the proxy should have hung up after 3
          tries++;
          next({ type: 'password', username: WORKSPACE, password: `glpat-guess-${id}-${tries}` });
        },
      });
    });
  }

  test('thousands of wrong passwords: GitLab sees the budget, the log a few lines, another address gets in', { timeout: 110_000 }, async () => {
    const heapBefore = heapAfterGc();
    const rssBefore = process.memoryUsage().rss;
    h.gitlab.resetCounts();
    const linesBefore = h.logs().filter((l) => l.msg === 'ssh authentication failed').length;
    const started = Date.now();
    const TARGET_TRIES = 2_000;
    let tries = 0;
    let connections = 0;
    let maxTriesPerConnection = 0;
    let legit: Awaited<ReturnType<SshHarness['ssh']>> | undefined;
    let legitRun: Promise<void> | undefined;
    const worker = async (w: number) => {
      while (tries < TARGET_TRIES) {
        const n = await guesser('127.0.0.2', w * 100_000 + connections++);
        tries += n;
        maxTriesPerConnection = Math.max(maxTriesPerConnection, n);
        // Once the flood is well under way, a real user from another address logs in.
        if (!legitRun && tries > 200) {
          const token = h.gitlab.createPersonalAccessToken(h.alice);
          legitRun = h.ssh({ tokens: [token], command: ['echo in'] }).then((r) => void (legit = r));
        }
      }
    };
    await Promise.all(Array.from({ length: 24 }, (_, w) => worker(w)));
    await legitRun;
    const elapsed = Date.now() - started;
    const graphql = h.gitlab.count('graphql');
    const lines = h.logs().filter((l) => l.msg === 'ssh authentication failed').length - linesBefore;
    const counted = await metric(h, 'workspaces_proxy_ssh_auth_total', { result: 'failure' });
    console.log(`flood: ${tries} wrong passwords on ${connections} connections in ${elapsed} ms; GitLab calls ${graphql}, ` +
      `failure lines ${lines}, failures counted ${counted}`);

    assert.equal(legit?.code, 0, legit?.stderr);
    assert.equal(legit?.stdout, 'in\n', 'a user from another address is not locked out');
    assert.ok(maxTriesPerConnection <= 3, `a connection got ${maxTriesPerConnection} tries`);
    // The budget, one refill per REFILL_MS, and the real user's one check.
    const allowed = BUDGET + Math.floor(elapsed / REFILL_MS) + 1;
    assert.ok(graphql <= allowed, `GitLab saw ${graphql} calls, at most ${allowed} allowed`);
    assert.ok(graphql >= BUDGET, 'the budget was used first');
    assert.ok(await metric(h, 'workspaces_proxy_ssh_auth_total', { result: 'failure', reason: 'rate_limited' }) >= tries - allowed);
    assert.ok(counted >= tries, 'metrics count every failure');
    const minutes = Math.ceil(elapsed / 60_000) + 1;
    assert.ok(lines <= LINES_PER_MINUTE * minutes, `${lines} failure lines for ${tries} failures`);
    assert.ok(lines >= 1);

    await connectionsGone(h);
    assert.deepEqual(h.logs().filter((l) => Number(l.level) >= 50), [], 'nothing logged as an error');
    const grown = (heapAfterGc() - heapBefore) / MiB;
    console.log(`flood: heap grew ${grown.toFixed(1)} MiB, RSS ${((process.memoryUsage().rss - rssBefore) / MiB).toFixed(1)} MiB`);
    assert.ok(grown < 32, `heap grew ${grown.toFixed(1)} MiB over ${connections} connections`);
  });
});

describe('a public-key flood from one address', () => {
  let h: SshHarness;
  before(async () => {
    h = await startSshHarness({ serviceToken: true, tuning: { failureDelayMs: 20 } });
  });
  after(() => h?.close());

  test("hundreds of keys that are not the owner's: GitLab is asked once per reuse window, the log a few lines", { timeout: 90_000 }, async () => {
    const keys = Array.from({ length: 60 }, () => ed25519OpenSsh().private);
    // ssh2's client skips a key it cannot parse and asks authHandler for the next one without asking the
    // proxy, which this test would count as a refusal the proxy never made (10 a run, each key being offered
    // by 10 connections): the keys must all be usable.
    for (const key of keys) assert.ok(!(utils.parseKey(key) instanceof Error), 'a test key ssh2 cannot parse');
    const REUSE_MS = 10_000; // auth/policy.ts NEW_CONNECTION_REUSE_MS: owner and key lookups reused for new logins
    h.gitlab.resetCounts();
    const linesBefore = h.logs().filter((l) => l.msg === 'ssh public key refused').length;
    const started = Date.now();
    let offered = 0;
    let refused = 0;
    const connection = (n: number) => new Promise<void>((resolve, reject) => {
      const c = new Client();
      let i = 0;
      c.on('error', () => {});
      c.on('ready', () => reject(new Error('a stranger key was accepted')));
      c.on('close', () => resolve());
      c.connect({
        host: '127.0.0.1', port: h.port, localAddress: '127.0.0.4', username: WORKSPACE, readyTimeout: 30_000, hostVerifier: () => true,
        authHandler: (_m, _p, next) => {
          // Called again only once the previous offer was refused.
          if (i > 0) refused++;
          // 12 keys a connection: past the proxy's 10 it refuses without asking GitLab.
          if (i >= 12) return next(false as never);
          offered++;
          next({ type: 'publickey', username: WORKSPACE, key: keys[(n * 12 + i++) % keys.length]! });
        },
      });
    });
    const connections = 50;
    for (let round = 0; round < connections / 10; round++) await Promise.all(Array.from({ length: 10 }, (_, k) => connection(round * 10 + k)));
    const elapsed = Date.now() - started;
    const lookups = { owner: h.gitlab.count('graphql'), keys: h.gitlab.count('user_keys') };
    const lines = h.logs().filter((l) => l.msg === 'ssh public key refused').length - linesBefore;
    console.log(`key flood: ${offered} keys offered (${refused} refusals seen) in ${elapsed} ms; GitLab owner lookups ${lookups.owner}, key listings ${lookups.keys}, refused-key lines ${lines}`);
    const windows = Math.floor(elapsed / REUSE_MS) + 1;
    assert.ok(lookups.owner <= windows, `${lookups.owner} owner lookups in ${windows} reuse windows`);
    assert.ok(lookups.keys <= windows, `${lookups.keys} key listings in ${windows} reuse windows`);
    assert.equal(offered, connections * 12);
    assert.equal(refused, offered, 'every offer was answered with a refusal');
    // Every refusal is counted: the first 10 a connection after a key lookup, the rest without one.
    const looked = await metric(h, 'workspaces_proxy_ssh_key_auth_total', { result: 'failure', reason: 'unknown_key' });
    assert.equal(looked, connections * MAX_KEY_ATTEMPTS, 'metrics count every looked-up refusal');
    const past = await metric(h, 'workspaces_proxy_ssh_key_auth_total', { result: 'failure', reason: 'too_many_keys' });
    assert.equal(past, connections * (12 - MAX_KEY_ATTEMPTS), 'metrics count every refusal past the 10 keys a connection');
    assert.equal(await metric(h, 'workspaces_proxy_ssh_key_auth_total'), refused, 'metrics count every refusal the clients saw');
    assert.ok(lines >= 1 && lines <= LINES_PER_MINUTE * (Math.ceil(elapsed / 60_000) + 1), `${lines} refused-key lines for ${offered} keys`);
    await connectionsGone(h);
    assert.deepEqual(h.logs().filter((l) => Number(l.level) >= 50), []);
  });
});
