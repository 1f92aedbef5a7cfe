// Discovery at scale: a proxy process started against a Kubernetes API stand-in holding N workspace Services
// (3 ports each): time from the list request reaching the API to /readyz answering 200, RSS once ready, and
// how long new Services take to route while they arrive at a steady rate. Plus the host lookup cost of the
// index itself at 10 and 10,000 workspaces (in this process, the proxy's own index module).
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { renderConfigYaml, type ProxyConfigInput } from '../../proxy-image/src/config';
import { createWorkspaceIndex } from '../../proxy-image/src/discovery/index-store';
import { startKubeApiStandIn, workspaceService } from '../support/kube-api-stand-in';
import { writeKubeconfig } from '../support/kubeconfig';
import { pickPort } from '../support/ports';
import { send } from '../support/http-harness';
import { median, sleep } from './measure';
import { spawnProbed } from './proc';

const ZONE = 'scale.test';
const service = (i: number) =>
  workspaceService({ name: `ws-${i}`, namespace: `ns-${i % 50}`, workspaceId: String(i), zone: ZONE, ports: [3000, 8080, 60022], clusterIP: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` });

/** Quiet time before the settled memory reading: V8's memory reducer starts 8 s after allocation slows. */
const SETTLE_MS = 12_000;

export interface DiscoveryRun {
  services: number;
  /** From the list request reaching the API to /readyz 200. */
  listToReadyMs: number;
  /** Right after ready, after GC. */
  rssMiB: number;
  heapMiB: number;
  /** After the events and SETTLE_MS without load, after GC. */
  settledRssMiB: number;
  settledHeapMiB: number;
  /** Event-to-routing lag of Services added at `eventsPerSecond` (ms). */
  lagP50Ms: number;
  lagMaxMs: number;
  events: number;
}

async function get(url: string, host: string): Promise<number> {
  return (await send(url, { headers: { host } }).catch(() => ({ status: 0 }))).status;
}

/** One proxy process against `n` Services; then `eventsPerSecond` new Services for `eventSeconds`. */
export async function discoveryRun(main: string, nodeOptions: string[], auth: ProxyConfigInput['auth'], n: number, eventsPerSecond: number, eventSeconds: number): Promise<DiscoveryRun> {
  const kube = await startKubeApiStandIn();
  const dir = mkdtempSync(join(tmpdir(), 'bench-discovery-'));
  for (let i = 0; i < n; i++) kube.addService(service(i));
  const httpPort = await pickPort();
  const internalPort = await pickPort();
  const configPath = join(dir, 'config.yaml');
  writeFileSync(configPath, renderConfigYaml({ auth, http: { port: httpPort, internal_port: internalPort }, log_level: 'silent' }), { mode: 0o600 });
  const proxy = spawnProbed([main, '-config', configPath, '-kubeconfig', writeKubeconfig(kube.url, dir)], {
    env: { ...process.env, WORKSPACES_PROXY_LISTEN_HOST: '127.0.0.1' },
    nodeOptions,
  });
  proxy.child.stdout!.resume();
  try {
    let listedAt = 0;
    let readyAt = 0;
    for (let i = 0; i < 6000 && !readyAt; i++) {
      if (!listedAt && kube.count('list') > 0) listedAt = performance.now();
      if (listedAt && (await get(`http://127.0.0.1:${internalPort}/readyz`, `127.0.0.1:${internalPort}`)) === 200) readyAt = performance.now();
      else await sleep(5);
    }
    if (!readyAt) throw new Error(`proxy with ${n} Services not ready within 30 s`);
    const mem = await proxy.memory();
    // Events: new Services at a steady rate; each is probed until its host routes (a login redirect, not 400).
    const lags: number[] = [];
    const probes: Promise<void>[] = [];
    const total = Math.round(eventsPerSecond * eventSeconds);
    const start = performance.now();
    for (let k = 0; k < total; k++) {
      const due = start + (k * 1000) / eventsPerSecond;
      if (due > performance.now()) await sleep(due - performance.now());
      const i = n + k;
      const at = performance.now();
      kube.addService(service(i));
      const host = `3000-ws-${i}.${ZONE}:${httpPort}`;
      probes.push(
        (async () => {
          while (performance.now() - at < 10_000) {
            if ((await get(`http://127.0.0.1:${httpPort}/`, host)) === 302) return void lags.push(performance.now() - at);
            await sleep(20);
          }
          lags.push(Infinity);
        })(),
      );
    }
    await Promise.all(probes);
    // V8 grows the young generation while the list is parsed and gives it back once allocation calms down
    // (its memory reducer, ~8 s after): read again after a quiet spell for the footprint that stays.
    await sleep(SETTLE_MS);
    const settled = await proxy.memory();
    lags.sort((a, b) => a - b);
    return {
      services: n,
      listToReadyMs: readyAt - listedAt,
      rssMiB: mem.rss / 1048576,
      heapMiB: mem.heapUsed / 1048576,
      settledRssMiB: settled.rss / 1048576,
      settledHeapMiB: settled.heapUsed / 1048576,
      lagP50Ms: lags[Math.floor(lags.length / 2)] ?? NaN,
      lagMaxMs: lags[lags.length - 1] ?? NaN,
      events: total,
    };
  } finally {
    await proxy.stop();
    await kube.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * ns per host lookup (hits and misses alternating) in the proxy's index holding each of `sizes` Services:
 * every index is built first, then the sizes take turns for `rounds` rounds (the first unmeasured, for the
 * JIT) and each size's median is returned, so a burst of load on the machine hits all sizes alike.
 */
export function lookupCosts(sizes: number[], rounds = 5, lookups = 5_000_000): number[] {
  const setups = sizes.map((n) => {
    const index = createWorkspaceIndex(pino({ level: 'silent' }));
    index.replaceAll(Array.from({ length: n }, (_, i) => service(i)));
    const hosts = Array.from({ length: 1024 }, (_, k) => (k % 2 ? `3000-ws-${(k * 7919) % n}.${ZONE}` : `3000-nope-${k}.${ZONE}`));
    return { index, hosts };
  });
  const runs: number[][] = sizes.map(() => []);
  for (let round = 0; round <= rounds; round++) {
    setups.forEach(({ index, hosts }, i) => {
      let found = 0;
      const t0 = process.hrtime.bigint();
      for (let k = 0; k < lookups; k++) if (index.routeForHost(hosts[k & 1023]!)) found++;
      const ns = Number(process.hrtime.bigint() - t0) / lookups;
      if (found === 0) throw new Error('lookup found nothing');
      if (round > 0) runs[i]!.push(ns);
    });
  }
  return runs.map((r) => median(r));
}
