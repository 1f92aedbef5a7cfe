// Child processes of the bench and what is measured on them: CPU time from /proc/<pid>/stat (user +
// system, all threads, so it is insensitive to how busy the rest of the box is) and memory after GC
// through the mem-probe preload.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';

const TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** CPU seconds (user + system) the process has used so far. */
export function cpuSeconds(pid: number): number {
  const { user, system } = cpuSplit(pid);
  return user + system;
}

/** User and system CPU seconds so far (system includes the loopback TCP work done on the sender's side). */
export function cpuSplit(pid: number): { user: number; system: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may hold spaces and parentheses: fields are counted after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(fields[11]) / TICKS_PER_SECOND, system: Number(fields[12]) / TICKS_PER_SECOND };
}

export interface MemoryReading {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

export interface BenchProcess {
  child: ChildProcess;
  pid: number;
  /** Memory after two full GCs. */
  memory(): Promise<MemoryReading>;
  stop(): Promise<void>;
}

/** A Node process with the memory probe preloaded and an IPC channel; `args` follow the node options. */
export function spawnProbed(args: string[], opts: { env?: NodeJS.ProcessEnv; nodeOptions?: string[] } = {}): BenchProcess {
  const child = spawn(process.execPath, ['--expose-gc', '--require', join(__dirname, 'mem-probe.cjs'), ...(opts.nodeOptions ?? []), ...args], {
    env: opts.env ?? process.env,
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  return {
    child,
    pid: child.pid!,
    memory() {
      return new Promise((resolve, reject) => {
        const onMessage = (m: { type?: string } & MemoryReading) => {
          if (m.type !== 'mem') return;
          child.off('message', onMessage);
          resolve({ rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers });
        };
        child.on('message', onMessage);
        if (!child.send('mem')) reject(new Error('memory probe not reachable'));
      });
    },
    stop() {
      if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      return exited.finally(() => clearTimeout(timer));
    },
  };
}

/** The first line a child prints on stdout (a port). */
export function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (d: Buffer) => {
      text += d.toString();
      const nl = text.indexOf('\n');
      if (nl >= 0) {
        child.stdout!.off('data', onData);
        child.stdout!.resume();
        resolve(text.slice(0, nl).trim());
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`child exited (${code}) before printing its port`)));
  });
}

/** This process's limit on open files (children inherit it). */
export function openFilesLimit(): number {
  const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  return m ? Number(m[1]) : Infinity;
}

/** TCP connections the process holds to 127.0.0.1:`remotePort`, by state name (ESTABLISHED, CLOSE_WAIT, …). */
export function connectionsTo(pid: number, remotePort: number): Record<string, number> {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  const states: Record<string, string> = { '01': 'ESTABLISHED', '06': 'TIME_WAIT', '08': 'CLOSE_WAIT', '04': 'FIN_WAIT1', '05': 'FIN_WAIT2', '09': 'LAST_ACK' };
  const out: Record<string, number> = {};
  const hexPort = remotePort.toString(16).toUpperCase().padStart(4, '0');
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || !inodes.has(f[9]!) || !f[2]!.endsWith(`:${hexPort}`)) continue;
      const state = states[f[3]!] ?? f[3]!;
      out[state] = (out[state] ?? 0) + 1;
    }
  }
  return out;
}
