// `npm run bench`: the built proxy (its own process, as in production) against the same sample workspace
// reached directly (the ceiling) and through a bare, equally configured http-proxy-3 with no
// authentication (the floor this proxy is built on: bare-proxy.cjs), measured in the same run and
// reported as ratios. Load generator, workspace and each proxy are separate processes on loopback.
// CPU time per request/MiB is read from /proc for the proxy processes: it is what the proxy itself costs,
// and much less sensitive to a busy machine than throughput. Memory is read after GC (mem-probe.cjs)
// with many idle WebSockets and SSH sessions open, reported per connection. About 3.5 minutes.
//   BENCH_SECONDS (2, per measurement), BENCH_ROUNDS (3, interleaved measurements per target and workload),
//   BENCH_WARMUP (0.5 s unmeasured per target and workload),
//   BENCH_CONCURRENCY (16), BENCH_STREAM_MIB (128 per stream), BENCH_IDLE_WS (1000), BENCH_IDLE_SSH (100, 0 = skip),
//   BENCH_PHASES (memory,requests,streams), BENCH_VERBOSE=1 (user/system CPU of each phase on stderr),
//   BENCH_PROXY_NODE_OPTIONS='--flag ...' (extra node options for this proxy, to try V8 settings;
//   BENCH_BARE_NODE_OPTIONS the same for the bare one),
//   BENCH_PAUSE=<s> (wait after start-up, to attach strace or perf to the printed pids),
//   BENCH_PROXY_MAIN=<path to another build's main.js> (A/B against a previous build),
//   BENCH_PROF=<dir>: both proxies run with --cpu-prof into <dir> (proxy.cpuprofile, bare.cpuprofile).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ProxyConfigInput } from '../../proxy-image/src/config';
import { renderConfigYaml } from '../../proxy-image/src/config';
import { startStack, type Stack } from '../support/proxy-stack';
import { workspaceService } from '../support/kube-api-stand-in';
import { browse, send, CookieJar } from '../support/http-harness';
import { startWorkspaceSshd, type TestSshd } from '../support/sshd';

import { testHostKey } from '../support/ssh-harness';
import { cpuSeconds, cpuSplit, firstLine, spawnProbed, type BenchProcess, type MemoryReading } from './proc';
import { closeSsh, closeWebSockets, download, httpLoad, idleSsh, idleWebSockets, upload, wsRoundTrips, type RateResult, type StreamResult, type Target } from './load';
import { pickPort } from '../support/ports';

const num = (name: string, fallback: number) => (process.env[name] !== undefined ? Number(process.env[name]) : fallback);
const seconds = num('BENCH_SECONDS', 2);
const rounds = Math.max(1, num('BENCH_ROUNDS', 3));
const warmup = num('BENCH_WARMUP', 0.5);
const concurrency = num('BENCH_CONCURRENCY', 16);
const streamBytes = num('BENCH_STREAM_MIB', 128) * 1048576;
const idleWs = num('BENCH_IDLE_WS', 1000);
const idleSshN = num('BENCH_IDLE_SSH', 100);
/** Comma list of phases to run: memory, requests, streams (default all). */
const phases = new Set((process.env.BENCH_PHASES ?? 'memory,requests,streams').split(','));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** CPU seconds `proc` spent while `fn` ran. */
async function withCpu<T>(proc: BenchProcess | undefined, fn: () => Promise<T>): Promise<{ result: T; cpu: number }> {
  const before = proc ? cpuSplit(proc.pid) : undefined;
  const result = await fn();
  if (!proc || !before) return { result, cpu: NaN };
  const after = cpuSplit(proc.pid);
  if (process.env.BENCH_VERBOSE) console.error(`pid ${proc.pid}: user ${(after.user - before.user).toFixed(2)} s, system ${(after.system - before.system).toFixed(2)} s`);
  return { result, cpu: cpuSeconds(proc.pid) - before.user - before.system };
}

interface Side<T> {
  result: T;
  /** Proxy CPU µs per request (rates) or per MiB (streams). */
  cpuPerUnit: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Runs `fn` against every target `rounds` times, interleaved, with the proxy process's CPU time of each run. */
async function interleavedRounds<R>(
  fn: (t: Target) => Promise<R>, targets: [Target, BenchProcess | undefined][], settle: () => Promise<void>,
): Promise<{ result: R; cpu: number }[][]> {
  const runs: { result: R; cpu: number }[][] = targets.map(() => []);
  for (let round = 0; round < rounds; round++) {
    for (const [i, [t, proc]] of targets.entries()) {
      await settle();
      runs[i]!.push(await withCpu(proc, () => fn(t)));
    }
  }
  return runs;
}

/**
 * Each target measured `rounds` times, interleaved (direct, bare, proxy, direct, …) so that a change in
 * machine load hits all three alike; per-unit CPU is the median over rounds, throughput pools the rounds.
 */
async function rateRow(fn: (t: Target) => Promise<RateResult>, targets: [Target, BenchProcess | undefined][], settle: () => Promise<void>): Promise<Side<RateResult>[]> {
  for (const [t] of targets) if (warmup > 0) await fn(t).catch(() => undefined); // JIT and pools warm, not measured
  const runs = await interleavedRounds(fn, targets, settle);
  return runs.map((rs) => {
    const count = rs.reduce((a, r) => a + r.result.count, 0);
    const secs = rs.reduce((a, r) => a + r.result.seconds, 0);
    const byLatency = (k: 'p50' | 'p99') => median(rs.map((r) => r.result[k]));
    return {
      result: { count, seconds: secs, perSecond: count / secs, p50: byLatency('p50'), p99: byLatency('p99') },
      cpuPerUnit: median(rs.map((r) => (r.cpu * 1e6) / r.result.count)),
    };
  });
}

async function streamRow(fn: (t: Target) => Promise<StreamResult>, targets: [Target, BenchProcess | undefined][], settle: () => Promise<void>): Promise<Side<StreamResult>[]> {
  const runs = await interleavedRounds(fn, targets, settle);
  return runs.map((rs) => {
    const bytes = rs.reduce((a, r) => a + r.result.bytes, 0);
    const secs = rs.reduce((a, r) => a + r.result.seconds, 0);
    return {
      result: { bytes, seconds: secs, mibPerSecond: bytes / 1048576 / secs },
      cpuPerUnit: median(rs.map((r) => (r.cpu * 1e6) / (r.result.bytes / 1048576))),
    };
  });
}

/** Memory per connection: after GC with `open()`'s connections idle, minus the same process's idle baseline. */
async function perConnection<C>(proc: BenchProcess, n: number, open: () => Promise<C>, close: (c: C) => Promise<void>) {
  const before = await proc.memory();
  const conns = await open();
  await sleep(1000);
  const after = await proc.memory();
  await close(conns);
  // The relay keeps a closed WebSocket referenced by its close-grace timer (5 s): let those run, so the
  // next measurement on this process starts from a clean baseline.
  await sleep(6000);
  const kib = (k: keyof MemoryReading) => (after[k] - before[k]) / 1024 / n;
  return { rss: kib('rss'), heap: kib('heapUsed'), external: kib('external'), baseRssMiB: before.rss / 1048576 };
}

async function main(): Promise<void> {
  const started = performance.now();
  const stack: Stack = await startStack({ startInProcess: false });
  const stops: (() => Promise<void>)[] = [() => stack.close()];
  try {
    const backend = spawnProbed(['--import', 'tsx', join(__dirname, 'backend.ts')]);
    stops.unshift(() => backend.stop());
    const backendPort = Number(await firstLine(backend.child));
    stack.gitlab.setWorkspaceOwner('1', stack.alice);
    stack.kube.addService(workspaceService({ name: 'bench', workspaceId: '1', zone: stack.zone, ports: [backendPort], clusterIP: '127.0.0.1' }));
    const host = `${backendPort}-bench.${stack.zone}`;

    let sshd: TestSshd | undefined;
    const sshPort = await pickPort();
    if (idleSshN > 0 && phases.has('memory')) {
      sshd = await startWorkspaceSshd();
      stops.unshift(() => sshd!.stop());
    }
    const c = stack.config;
    const input: ProxyConfigInput = {
      auth: { ...c.auth },
      http: { ...c.http },
      ssh: sshd
        ? { enabled: true, port: sshPort, host_key: testHostKey(), backend_port: sshd.port, backend_username: sshd.user.name }
        : { enabled: false },
      log_level: 'silent',
    };
    const configPath = join(stack.configPath, '..', 'bench-config.yaml');
    writeFileSync(configPath, renderConfigYaml(input), { mode: 0o600 });

    const prof = process.env.BENCH_PROF;
    const main = process.env.BENCH_PROXY_MAIN ?? join(__dirname, '..', '..', 'proxy-image', 'dist', 'main.js');
    const proxy = spawnProbed([main, '-config', configPath, '-kubeconfig', stack.kubeconfigPath], {
      env: { ...process.env, WORKSPACES_PROXY_LISTEN_HOST: '127.0.0.1' },
      nodeOptions: [
        ...(prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`, '--cpu-prof-name=proxy.cpuprofile'] : []),
        ...(process.env.BENCH_PROXY_NODE_OPTIONS?.split(' ').filter(Boolean) ?? []),
      ],
    });
    if (process.env.BENCH_VERBOSE) proxy.child.stdout!.pipe(process.stderr);
    else proxy.child.stdout!.resume();
    stops.unshift(() => proxy.stop());
    const bare = spawnProbed([join(__dirname, 'bare-proxy.cjs'), String(backendPort)], {
      nodeOptions: [
        ...(prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`, '--cpu-prof-name=bare.cpuprofile'] : []),
        ...(process.env.BENCH_BARE_NODE_OPTIONS?.split(' ').filter(Boolean) ?? []),
      ],
    });
    stops.unshift(() => bare.stop());
    const barePort = Number(await firstLine(bare.child));
    if (process.env.BENCH_VERBOSE) console.error(`pids: proxy ${proxy.pid}, bare ${bare.pid}, workspace ${backend.pid}`);
    if (process.env.BENCH_PAUSE) await sleep(Number(process.env.BENCH_PAUSE) * 1000); // time to attach strace or perf

    for (let i = 0; i < 200 && (await send(stack.url(host, '/')).catch(() => ({ status: 0 }))).status !== 302; i++) await sleep(50);
    stack.gitlab.autoLoginAs(stack.alice);
    const jar = new CookieJar();
    const { final } = await browse(stack.url(host, '/'), jar);
    if (final.status !== 200) throw new Error(`login failed: ${final.status}`);

    const direct: Target = { port: backendPort, host: `127.0.0.1:${backendPort}` };
    const floor: Target = { port: barePort, host: `127.0.0.1:${backendPort}` };
    const proxied: Target = { port: stack.httpPort, host: `${host}:${stack.httpPort}`, cookie: jar.header(host) };
    const targets: [Target, BenchProcess | undefined][] = [[direct, undefined], [floor, bare], [proxied, proxy]];

    console.log(
      `bench: ${rounds} interleaved rounds of ${seconds} s per target (+${warmup} s warm-up), ${concurrency} keep-alive connections, ${streamBytes / 1048576} MiB streams, ` +
        `loopback, Node ${process.version}, ${(await import('node:os')).cpus().length} CPUs`,
    );

    /** Proxy CPU while nothing is sent (timers, keepalives, discovery): ms per second. */
    const idleCpu = async () => {
      const before = cpuSeconds(proxy.pid);
      await sleep(2000);
      return ((cpuSeconds(proxy.pid) - before) * 1000) / 2;
    };
    /**
     * Waits (up to 10 s) until both proxies are quiet before each measurement: closing 1000 WebSockets or a
     * burst of 1 MiB responses leaves GC and timer work behind, which would be billed to the next one.
     */
    const settle = async () => {
      for (let i = 0; i < 20; i++) {
        const before = cpuSeconds(proxy.pid) + cpuSeconds(bare.pid);
        await sleep(500);
        if (cpuSeconds(proxy.pid) + cpuSeconds(bare.pid) - before <= 0.01) return;
      }
    };
    await settle();
    const idleAtStart = await idleCpu();

    // Memory first, while both proxies are fresh.
    // SSH first: 100 connections are a small signal, best read before 1000 WebSockets churned the heap.
    let sshMem: Awaited<ReturnType<typeof perConnection>> | undefined;
    if (sshd && phases.has('memory')) {
      const token = stack.gitlab.createPersonalAccessToken(stack.alice);
      await closeSsh(await idleSsh(sshPort, 'bench', token, 5)); // first-use costs (JIT, crypto) are not per connection
      await settle();
      sshMem = await perConnection(proxy, idleSshN, () => idleSsh(sshPort, 'bench', token, idleSshN), closeSsh);
    }

    const wsMem: { label: string; m: Awaited<ReturnType<typeof perConnection>> }[] = [];
    if (idleWs > 0 && phases.has('memory')) {
      for (const [label, t, proc, deflate] of [
        ['bare http-proxy-3', floor, bare, false],
        ['this proxy', proxied, proxy, false],
        ['this proxy, client offers permessage-deflate', proxied, proxy, true],
      ] as const) {
        await closeWebSockets(await idleWebSockets(t, 20, deflate)); // the same for WebSockets
        await sleep(6000);
        await settle();
        wsMem.push({ label, m: await perConnection(proc, idleWs, () => idleWebSockets(t, idleWs, deflate), closeWebSockets) });
      }
    }
    const rates: [string, Side<RateResult>[]][] = !phases.has('requests') ? [] : [
      ['GET 1 KiB', await rateRow((t) => httpLoad(t, '/bytes?size=1024', seconds, concurrency), targets, settle)],
      ['GET 1 MiB', await rateRow((t) => httpLoad(t, '/bytes?size=1048576', seconds, concurrency), targets, settle)],
      ['WebSocket 256 B echo, sequential', await rateRow((t) => wsRoundTrips(t, seconds), targets, settle)],
      ['same, client offers permessage-deflate', await rateRow((t) => wsRoundTrips(t, seconds, true), targets, settle)],
    ];
    const streams: [string, Side<StreamResult>[]][] = !phases.has('streams') ? [] : [
      ['download, one connection', await streamRow((t) => download(t, streamBytes), targets, settle)],
      ['upload, one connection', await streamRow((t) => upload(t, streamBytes), targets, settle)],
    ];

    await sleep(6000); // close-grace timers (5 s) of the last WebSockets have run
    const idleAtEnd = await idleCpu();

    const f = (n: number) => (Number.isFinite(n) ? n.toFixed(n < 10 ? 2 : 0) : '-');
    const r = (a: number, b: number) => (a / b).toFixed(2);
    console.log('\nRequests (higher /s is better; CPU = µs of proxy-process CPU per request, lower is better)\n');
    console.log('| workload | direct /s | bare http-proxy-3 /s | this proxy /s | vs direct | vs bare | bare CPU µs/req | proxy CPU µs/req | CPU vs bare | direct p50 ms | proxy p50 ms | proxy p99 ms |');
    console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const [name, [d, b, p]] of rates) {
      console.log(
        `| ${name} | ${f(d!.result.perSecond)} | ${f(b!.result.perSecond)} | ${f(p!.result.perSecond)} | ${r(p!.result.perSecond, d!.result.perSecond)} | ` +
          `${r(p!.result.perSecond, b!.result.perSecond)} | ${f(b!.cpuPerUnit)} | ${f(p!.cpuPerUnit)} | ${r(p!.cpuPerUnit, b!.cpuPerUnit)} | ` +
          `${d!.result.p50.toFixed(3)} | ${p!.result.p50.toFixed(3)} | ${p!.result.p99.toFixed(3)} |`,
      );
    }
    console.log('\nStreams (MiB/s; CPU = µs of proxy-process CPU per MiB)\n');
    console.log('| workload | direct MiB/s | bare MiB/s | this proxy MiB/s | vs direct | vs bare | bare CPU µs/MiB | proxy CPU µs/MiB | CPU vs bare |');
    console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const [name, [d, b, p]] of streams) {
      console.log(
        `| ${name} | ${f(d!.result.mibPerSecond)} | ${f(b!.result.mibPerSecond)} | ${f(p!.result.mibPerSecond)} | ${r(p!.result.mibPerSecond, d!.result.mibPerSecond)} | ` +
          `${r(p!.result.mibPerSecond, b!.result.mibPerSecond)} | ${f(b!.cpuPerUnit)} | ${f(p!.cpuPerUnit)} | ${r(p!.cpuPerUnit, b!.cpuPerUnit)} |`,
      );
    }
    console.log('\nIdle connections (KiB per connection after GC, over the same process idle; bare pipes WebSocket bytes raw)\n');
    console.log('| connections | process | idle RSS MiB | RSS KiB/conn | JS heap KiB/conn | external KiB/conn |');
    console.log('| --- | --- | ---: | ---: | ---: | ---: |');
    for (const { label, m } of wsMem) {
      console.log(`| ${idleWs} WebSockets | ${label} | ${f(m.baseRssMiB)} | ${f(m.rss)} | ${f(m.heap)} | ${f(m.external)} |`);
    }
    if (sshMem) console.log(`| ${idleSshN} SSH sessions | this proxy | ${f(sshMem.baseRssMiB)} | ${f(sshMem.rss)} | ${f(sshMem.heap)} | ${f(sshMem.external)} |`);
    console.log(`\nProxy CPU while idle: ${idleAtStart.toFixed(0)} ms/s at start, ${idleAtEnd.toFixed(0)} ms/s after all phases (10 ms resolution).`);
    console.log(`(${((performance.now() - started) / 1000).toFixed(0)} s)`);
  } finally {
    for (const stop of stops) await stop().catch((err: unknown) => console.error(err));
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
