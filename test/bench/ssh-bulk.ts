// SSH bulk transfers with the real OpenSSH clients, through the proxy and straight to the workspace sshd:
// download (`head -c N /dev/zero` remotely), upload (`wc -c` remotely) and scp (a sparse file of N bytes to the
// sshd user's directory). Each checks the byte count it was meant to move.
import { spawn } from 'node:child_process';
import { rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClientKit } from '../support/sshd';

export interface SshEndpoint {
  port: number;
  user: string;
  /** Password for the askpass helper: a GitLab token through the proxy, empty for the sshd directly. */
  password: string;
}

export type SshTransfer = 'download' | 'upload' | 'scp';

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

export interface TransferRun {
  seconds: number;
  /** CPU seconds of the local side (the OpenSSH client and the local head/wc), from the shell's `times`. */
  clientCpu: number;
}

/** Parses the children's line of dash's `times` ("0m1.230000s 0m0.450000s"): user + system seconds. */
function childrenCpu(line: string | undefined): number {
  const m = /^(\d+)m([\d.]+)s (\d+)m([\d.]+)s$/.exec(line?.trim() ?? '');
  return m ? Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4]) : NaN;
}

/** One transfer of `bytes`: how long it took and the CPU the local client side spent on it. */
export async function sshTransfer(kit: ClientKit, e: SshEndpoint, kind: SshTransfer, bytes: number, remoteDir: string): Promise<TransferRun> {
  const opts = kit.commonOptions().map(q).join(' ');
  const local = join(kit.dir, 'bulk.bin');
  let script: string;
  if (kind === 'download') script = `ssh ${opts} -p ${e.port} ${q(e.user)}@127.0.0.1 'head -c ${bytes} /dev/zero' | wc -c`;
  else if (kind === 'upload') script = `head -c ${bytes} /dev/zero | ssh ${opts} -p ${e.port} ${q(e.user)}@127.0.0.1 'wc -c'`;
  else {
    writeFileSync(local, '');
    truncateSync(local, bytes);
    script = `scp -q ${opts} -P ${e.port} ${q(local)} ${q(`${e.user}@127.0.0.1:${remoteDir}/bulk.bin`)} && echo ${bytes}`;
  }
  const env = kit.env([e.password]);
  const started = performance.now();
  const { code, out, err } = await new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
    const child = spawn('sh', ['-c', `${script}; times`], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('close', (c) => resolve({ code: c, out, err }));
  });
  const seconds = (performance.now() - started) / 1000;
  if (kind === 'scp') rmSync(local, { force: true });
  const lines = out.trim().split('\n');
  if (code !== 0 || Number(lines[0]) !== bytes) throw new Error(`ssh ${kind} of ${bytes} bytes failed (exit ${code}, got ${lines[0]}): ${err.trim()}`);
  return { seconds, clientCpu: childrenCpu(lines.at(-1)) };
}
