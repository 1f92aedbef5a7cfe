// How the bench measures: CPU time of the measured processes from /proc around a piece of work, rounds
// interleaved across the sides so that a change in machine load hits them all alike, medians over rounds.
import { cpuSeconds, cpuSplit } from './proc';

export const median = (xs: number[]): number => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** CPU seconds the processes `pids` spent while `fn` ran. */
export async function withCpu<T>(pids: number[], fn: () => Promise<T>): Promise<{ result: T; cpu: number }> {
  const split = () => pids.map((p) => cpuSplit(p)).reduce((a, c) => ({ user: a.user + c.user, system: a.system + c.system }), { user: 0, system: 0 });
  const before = split();
  const result = await fn();
  const after = split();
  if (process.env.BENCH_VERBOSE) console.error(`  pids ${pids.join(',')}: user ${(after.user - before.user).toFixed(2)} s, system ${(after.system - before.system).toFixed(2)} s`);
  return { result, cpu: after.user - before.user + after.system - before.system };
}

/** Waits (up to 10 s) until the processes are quiet: GC and timers left by the last run are not billed to the next. */
export async function settle(pids: number[]): Promise<void> {
  for (let i = 0; i < 20; i++) {
    const before = pids.reduce((a, p) => a + cpuSeconds(p), 0);
    await sleep(300);
    if (pids.reduce((a, p) => a + cpuSeconds(p), 0) - before <= 0.01) return;
  }
}

export interface Side {
  name: string;
  port: number;
  /** Headers every request of this side carries (Host, the session cookie). */
  headers: Record<string, string>;
  /** Processes whose CPU is this side's cost. */
  pids: number[];
}

/**
 * Runs `fn` on every side `rounds` times, interleaved (a, b, c, a, b, c, …; the order rotates each round), after
 * one unmeasured warm-up run each; returns each side's runs with their CPU seconds.
 */
export async function interleaved<R>(sides: Side[], rounds: number, fn: (s: Side) => Promise<R>, warmup = true): Promise<{ result: R; cpu: number }[][]> {
  const all = sides.flatMap((s) => s.pids);
  if (warmup) for (const s of sides) await fn(s);
  const runs: { result: R; cpu: number }[][] = sides.map(() => []);
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < sides.length; k++) {
      const i = (k + round) % sides.length;
      await settle(all);
      runs[i]!.push(await withCpu(sides[i]!.pids, () => fn(sides[i]!)));
    }
  }
  return runs;
}
