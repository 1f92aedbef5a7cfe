// Child processes of the bench and what is measured on them: CPU time from /proc/<pid>/stat (user +
// system, all threads, so it is insensitive to how busy the rest of the box is) and memory after GC
// through the mem-probe preload.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
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
