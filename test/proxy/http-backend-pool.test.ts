// Regression test for the backend connection pool (issue 15): browsers that abort downloads midway must not
// leave backend connections stuck (http-proxy 1.x with a keep-alive agent leaked one per abort,
// node-http-proxy#1582, until the proxy served nothing). Behaviour only: the pool ends up with no request in
// flight and no more connections than it may hold, and it keeps serving; no timings are asserted.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent } from 'undici';
import { abortedDownload, startHarness, loginAs, send, type Harness } from '../support/http-harness';

const POOL = 2;
const ABORTS = 1000;
const MIB = 1048576;

/** undici's per-origin pool counters (Agent.stats). */
interface PoolCounters {
  connected: number;
  free: number;
  pending: number;
  running: number;
}

describe('HTTP proxy backend pool after aborted downloads', () => {
  let h: Harness;
  const pool = new Agent({ connections: POOL });
  let cookie: string;
  before(async () => {
    h = await startHarness({ backendDispatcher: pool });
    cookie = (await loginAs(h, h.alice, h.url(h.hostA, '/'))).jar.header(h.hostA)!;
  });
  after(() => h.close());

  const abortedOne = () => abortedDownload(h.port, `/bytes?size=${MIB}`, { host: `${h.hostA}:${h.port}`, cookie });

  /** Connections the workspace has open (all of them are the proxy's pool). */
  const backendConnections = () => new Promise<number>((resolve, reject) => h.workspace.server.getConnections((err, n) => (err ? reject(err) : resolve(n))));

  test(`${ABORTS} aborted 1 MiB downloads: no request left in flight, connections within the pool, still serving`, { timeout: 240_000 }, async () => {
    for (let i = 0; i < ABORTS; i += 10) await Promise.all(Array.from({ length: 10 }, abortedOne));

    // Every aborted request has left the pool: none running, none waiting for a connection.
    const origin = `http://127.0.0.1:${h.workspace.port}`;
    for (let i = 0; i < 200; i++) {
      const s = pool.stats[origin] as PoolCounters | undefined;
      if (s && s.running === 0 && s.pending === 0) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    const stats = pool.stats[origin] as PoolCounters;
    assert.equal(stats.running, 0, 'no aborted request is still running on a backend connection');
    assert.equal(stats.pending, 0, 'nothing queued behind a stuck connection');
    assert.ok(stats.connected <= POOL, `at most ${POOL} backend connections (${stats.connected})`);

    // The pool still serves, and many requests at once share its connections (a leak would queue them forever).
    const answers = await Promise.all(Array.from({ length: 20 }, () => send(h.url(h.hostA, '/bytes?size=65536'), { headers: { cookie } })));
    assert.deepEqual(answers.map((a) => a.status), Array(20).fill(200));
    assert.ok((await backendConnections()) <= POOL, 'the workspace sees no more connections than the pool holds');
    const after = pool.stats[origin] as PoolCounters;
    assert.ok(after.connected >= 1 && after.free === after.connected, 'finished requests hand their connections back as free');
  });
});
