// Several BUILT proxy processes sharing one config (only their listen ports differ, as pods differ only in
// their IP), behind round-robin TCP balancers: the stack's HTTP port (the public one, in auth.redirect_uri)
// is the HTTP balancer's, and SSH gets a balancer of its own. Used by the reliability tests.
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import type { Stack } from './proxy-stack';
import { freePorts, spawnProxy, type Ports, type SpawnedProxy } from './spawn-proxy';
import { startTcpBalancer, type TcpBalancer } from './tcp-balancer';

export interface Replica {
  name: string;
  ports: Ports;
  proxy: SpawnedProxy;
}

export interface ReplicaSetOptions {
  /** Extra keys under `auth` (e.g. reauthorize_interval) for every replica. */
  auth?: Record<string, unknown>;
  /** SSH settings (host_key, backend_port, backend_username): enables SSH and its balancer. */
  ssh?: Record<string, unknown>;
}

export interface ReplicaSet {
  http: TcpBalancer;
  ssh?: TcpBalancer;
  replicas: Map<string, Replica>;
  /** Starts a replica, waits until its /readyz is 200, then puts it in rotation. */
  start(name: string): Promise<Replica>;
  /** Takes it out of rotation (the endpoint goes), then SIGTERM; resolves with the exit. */
  stop(name: string): Promise<{ code: number | null }>;
  close(): Promise<void>;
}

export async function startReplicaSet(stack: Stack, names: string[], opts: ReplicaSetOptions = {}): Promise<ReplicaSet> {
  const base = parse(readFileSync(stack.configPath, 'utf8')) as Record<string, Record<string, unknown>>;
  const http = await startTcpBalancer([], { port: stack.httpPort });
  const ssh = opts.ssh ? await startTcpBalancer([]) : undefined;
  const replicas = new Map<string, Replica>();

  async function start(name: string): Promise<Replica> {
    const ports = await freePorts();
    const config = {
      ...base,
      auth: { ...base.auth, ...opts.auth },
      http: { ...base.http, port: ports.http, internal_port: ports.internal },
      ...(opts.ssh ? { ssh: { enabled: true, port: ports.ssh, ...opts.ssh } } : {}),
      log_level: 'info',
    };
    const proxy = spawnProxy({ config, kubeconfigPath: stack.kubeconfigPath });
    const replica = { name, ports, proxy };
    replicas.set(name, replica);
    const until = Date.now() + 90_000; // a cold start of node under the test load on a busy 2-core box
    for (;;) {
      if (proxy.child.exitCode !== null) throw new Error(`replica ${name} exited with ${proxy.child.exitCode}: ${proxy.stderr()}`);
      const ok = await fetch(`http://127.0.0.1:${ports.internal}/readyz`).then((r) => r.status === 200, () => false);
      if (ok) break;
      if (Date.now() > until) throw new Error(`replica ${name} not ready within 90 s`);
      await new Promise((r) => setTimeout(r, 50));
    }
    http.add({ name, port: ports.http });
    ssh?.add({ name, port: ports.ssh });
    return replica;
  }

  for (const name of names) await start(name);
  return {
    http,
    ssh,
    replicas,
    start,
    async stop(name) {
      const r = replicas.get(name);
      if (!r) throw new Error(`no replica ${name}`);
      http.remove(name);
      ssh?.remove(name);
      const exit = await r.proxy.stop('SIGTERM', 40_000);
      return { code: exit.code };
    },
    async close() {
      for (const r of replicas.values()) await r.proxy.cleanup();
      await http.close();
      await ssh?.close();
    },
  };
}
