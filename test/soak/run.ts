// Soak (issue 13): mixed HTTP, WebSocket and SSH load through two BUILT proxy replicas behind the round-robin
// balancer (test/support/replicas.ts), for `--minutes N` (default 10). Every minute one row of the curve:
// requests, messages, SSH echoes, errors, and each replica's RSS and open file descriptors. It fails (exit 1)
// on any error, when the last minute's RSS is above RSS_GROWTH_LIMIT × the RSS at minute 3 (minute 1 on runs
// shorter than 4 minutes), or when open file descriptors do not come back to their idle count (± FD_SLACK)
// once every client connection is closed.
//
//   npm run soak                  # 10 minutes (CI runs this after the tests: test/run.sh)
//   npm run soak -- --minutes 2   # a short run
import { readFileSync, readdirSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { startStack } from '../support/proxy-stack';
import { startReplicaSet, type ReplicaSet } from '../support/replicas';
import { browse, CookieJar, send } from '../support/http-harness';
import { openEchoWebSocket, openSshSession, type EchoWebSocket, type SshSession } from '../support/session-clients';

/** The last minute's RSS may be at most this many times the RSS at the reference minute. */
export const RSS_GROWTH_LIMIT = 1.5;
/** Open descriptors allowed above the idle count once the load is over (pools, GitLab keep-alive). */
export const FD_SLACK = 8;
const LONG_WEBSOCKETS = 10;
const LONG_SSH = 2;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function parseMinutes(argv: string[]): number {
  const i = argv.indexOf('--minutes');
  if (i < 0) return 10;
  const n = Number(argv[i + 1]);
  if (!Number.isFinite(n) || n < 1 || n > 120) {
    console.error(`soak: --minutes must be a number from 1 to 120 (got ${argv[i + 1] ?? 'nothing'})`);
    process.exit(2);
  }
  return Math.round(n);
}

function rssMiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}
const openFds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

interface Counters {
  requests: number;
  messages: number;
  sshEchoes: number;
  errors: number;
}

async function main(): Promise<void> {
  const minutes = parseMinutes(process.argv.slice(2));
  const refMinute = minutes >= 4 ? 3 : 1;
  console.log(`soak: ${minutes} min of mixed HTTP/WebSocket/SSH load through 2 replicas behind a round-robin balancer`);
  const stack = await startStack({ ssh: true, startInProcess: false, auth: { reauthorize_interval: 5 } });
  let set: ReplicaSet | undefined;
  const failures: string[] = [];
  const firstErrors: string[] = [];
  const c: Counters = { requests: 0, messages: 0, sshEchoes: 0, errors: 0 };
  const error = (what: string, err: unknown) => {
    c.errors++;
    if (firstErrors.length < 10) firstErrors.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
  };
  try {
    set = await startReplicaSet(stack, ['r1', 'r2'], {
      auth: { reauthorize_interval: 5 },
      ssh: { host_key: stack.config.ssh.host_key, backend_port: stack.config.ssh.backend_port, backend_username: stack.config.ssh.backend_username },
    });
    const replicas = [...set.replicas.values()];
    const host = stack.addWorkspace('soak-ws', '900', stack.alice);
    for (const r of replicas) {
      const until = Date.now() + 30_000;
      while ((await send(`http://${host}:${r.ports.http}/`)).status === 400) {
        if (Date.now() > until) throw new Error(`replica ${r.name} does not route ${host}`);
        await sleep(100);
      }
    }
    stack.gitlab.autoLoginAs(stack.alice);
    const jar = new CookieJar();
    const login = await browse(stack.url(host, '/'), jar);
    if (login.final.status !== 200) throw new Error(`login failed: ${login.final.status}`);
    const cookie = jar.header(host)!;
    const hostHeader = `${host}:${stack.httpPort}`;
    const sshPort = set.ssh!.port;
    const sshLogin = { port: sshPort, username: 'soak-ws', password: stack.ssh!.alicePat };

    // Idle counts: both replicas warmed up by the login and one request each, no client connection open.
    for (let i = 0; i < 2; i++) await send(stack.url(host, '/echo-request'), { jar });
    await sleep(1000);
    const idleFds = replicas.map((r) => openFds(r.proxy.pid));

    let running = true;
    const loops: Promise<void>[] = [];
    const loop = (what: string, pauseMs: number, body: () => Promise<void>) => {
      loops.push((async () => {
        while (running) {
          try {
            await body();
          } catch (err) {
            error(what, err);
          }
          await sleep(pauseMs);
        }
      })());
    };
    const expect200 = async (p: Promise<{ status: number }>) => {
      const r = await p;
      c.requests++;
      if (r.status !== 200) throw new Error(`status ${r.status}`);
    };

    // HTTP over keep-alive connections (a browser's), small JSON, 64 KiB bodies and a short SSE stream.
    const keepAlive = new Agent({ keepAlive: true, maxSockets: 4 });
    const get = (path: string) => new Promise<{ status: number }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: stack.httpPort, path, headers: { host: hostHeader, cookie }, agent: keepAlive }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0 }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.setTimeout(30_000, () => req.destroy(new Error('no answer within 30 s')));
      req.end();
    });
    for (let w = 0; w < 2; w++) loop('keep-alive GET', 10, () => expect200(get('/echo-request')));
    loop('keep-alive 64 KiB', 50, () => expect200(get('/bytes?size=65536')));
    loop('SSE', 200, () => expect200(get('/events?count=3&interval=20')));
    // HTTP on a new connection each time.
    loop('new-connection GET', 50, () => expect200(send(stack.url(host, '/echo-request'), { jar })));
    // Long-lived WebSockets echoing, and WebSockets opened and closed.
    const longWs: EchoWebSocket[] = [];
    for (let i = 0; i < LONG_WEBSOCKETS; i++) longWs.push(await openEchoWebSocket({ port: stack.httpPort, host: hostHeader, cookie }));
    longWs.forEach((ws, i) => loop(`WebSocket ${i}`, 200, async () => {
      await ws.echo(`m${c.messages}`);
      c.messages++;
    }));
    loop('WebSocket churn', 500, async () => {
      const ws = await openEchoWebSocket({ port: stack.httpPort, host: hostHeader, cookie });
      try {
        await ws.echo('short-lived');
        c.messages++;
      } finally {
        ws.end();
      }
    });
    // Long-lived SSH sessions echoing, and sessions opened and closed.
    const longSsh: SshSession[] = [];
    for (let i = 0; i < LONG_SSH; i++) longSsh.push(await openSshSession(sshLogin));
    longSsh.forEach((s, i) => loop(`SSH ${i}`, 1000, async () => {
      await s.echo(`line ${c.sshEchoes}`);
      c.sshEchoes++;
    }));
    loop('SSH churn', 2000, async () => {
      const s = await openSshSession(sshLogin);
      try {
        await s.echo('short-lived');
        c.sshEchoes++;
      } finally {
        await s.end();
      }
    });

    const rss: number[][] = [];
    const header = `${'minute'.padStart(6)} ${'requests'.padStart(9)} ${'ws msgs'.padStart(8)} ${'ssh'.padStart(6)} ${'errors'.padStart(6)}` +
      replicas.map((r) => ` ${`rss ${r.name} MiB`.padStart(12)} ${`fds ${r.name}`.padStart(7)}`).join('');
    console.log(`soak: idle fds ${replicas.map((r, i) => `${r.name} ${idleFds[i]}`).join(', ')}`);
    console.log(header);
    for (let minute = 1; minute <= minutes; minute++) {
      await sleep(60_000);
      // The stand-ins' own logs of what they saw would grow with the load: this process is not under test.
      stack.workspace.requests.length = 0;
      stack.workspace.upgrades.length = 0;
      stack.gitlab.resetCounts();
      const row = replicas.map((r) => ({ rss: rssMiB(r.proxy.pid), fds: openFds(r.proxy.pid) }));
      rss.push(row.map((x) => x.rss));
      console.log(`${String(minute).padStart(6)} ${String(c.requests).padStart(9)} ${String(c.messages).padStart(8)} ${String(c.sshEchoes).padStart(6)} ${String(c.errors).padStart(6)}` +
        row.map((x) => ` ${String(x.rss).padStart(12)} ${String(x.fds).padStart(7)}`).join(''));
    }

    running = false;
    await Promise.all(loops);
    for (const ws of longWs) ws.end();
    for (const s of longSsh) await s.end();
    keepAlive.destroy();
    for (const ws of longWs) if (ws.closedWith()?.[0] === 1008) failures.push(`a WebSocket was closed by the proxy: ${ws.closedWith()!.join(' ')}`);

    // Descriptors back to idle once the clients are gone (backend pools idle out within ~30 s).
    const until = Date.now() + 45_000;
    let fds = replicas.map((r) => openFds(r.proxy.pid));
    while (fds.some((n, i) => n > idleFds[i]! + FD_SLACK) && Date.now() < until) {
      await sleep(1000);
      fds = replicas.map((r) => openFds(r.proxy.pid));
    }
    console.log(`soak: fds after every client closed ${replicas.map((r, i) => `${r.name} ${fds[i]} (idle ${idleFds[i]})`).join(', ')}`);
    fds.forEach((n, i) => {
      if (n > idleFds[i]! + FD_SLACK) failures.push(`${replicas[i]!.name} keeps ${n} open descriptors, idle was ${idleFds[i]} (+${FD_SLACK} allowed)`);
    });
    replicas.forEach((r, i) => {
      const ref = rss[refMinute - 1]![i]!;
      const last = rss.at(-1)![i]!;
      if (last > RSS_GROWTH_LIMIT * ref) failures.push(`${r.name} RSS grew from ${ref} MiB (minute ${refMinute}) to ${last} MiB (more than ${RSS_GROWTH_LIMIT}×)`);
    });
    if (c.errors > 0) failures.push(`${c.errors} errors; first: ${firstErrors.join(' | ')}`);
    if (c.requests === 0 || c.messages === 0 || c.sshEchoes === 0) failures.push('some kind of load never succeeded');
    console.log(`soak: ${c.requests} requests, ${c.messages} WebSocket messages, ${c.sshEchoes} SSH echoes, ${c.errors} errors`);
  } finally {
    await set?.close();
    await stack.close();
  }
  if (failures.length) {
    for (const f of failures) console.error(`soak: FAILED: ${f}`);
    process.exit(1);
  }
  console.log('soak: OK (RSS levelled off, descriptors back to idle, no error)');
  process.exit(0);
}

main().catch((err: unknown) => {
  console.error(`soak: FAILED: ${err instanceof Error ? err.stack : String(err)}`);
  process.exit(1);
});
