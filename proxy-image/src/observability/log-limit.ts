// A fixed-window limit for log lines that outsiders can trigger at will (a scanner trying hostnames, a
// client guessing SSH passwords): the first few per window are logged, the rest counted and reported
// with the next logged line. Metrics still count every event; only the lines are limited.
import type { Logger } from 'pino';

export interface LogGate {
  /** Whether this event may be logged now; `suppressed` is how many were dropped since the last logged one. */
  (): { allowed: boolean; suppressed: number };
}

export function createLogGate(opts: { max: number; windowMs: number; now?: () => number }): LogGate {
  const now = opts.now ?? Date.now;
  let windowStart = -Infinity;
  let used = 0;
  let suppressed = 0;
  return () => {
    const t = now();
    if (t - windowStart >= opts.windowMs) {
      windowStart = t;
      used = 0;
    }
    if (used >= opts.max) {
      suppressed++;
      return { allowed: false, suppressed };
    }
    used++;
    const dropped = suppressed;
    suppressed = 0;
    return { allowed: true, suppressed: dropped };
  };
}

/**
 * One line through `gate`: dropped when over the limit, else written with `suppressed` (lines dropped
 * since the last one written) when there were any.
 */
export function gatedLog(gate: LogGate, logger: Logger, level: 'info' | 'warn', fields: Record<string, unknown>, msg: string): void {
  const g = gate();
  if (!g.allowed) return;
  logger[level](g.suppressed ? { ...fields, suppressed: g.suppressed } : fields, msg);
}
