// Heap measurement for the flood tests (hostile-*.test.ts): the heap in use after full collections is what a
// leak grows, so "before vs after" with a generous bound catches one without timing anything.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
// A fresh context created after the flag is set sees `gc` even though the process started without it.
const gc = runInNewContext('gc') as () => void;

export const MiB = 1024 * 1024;

/** Heap in use after full collections, in bytes. */
export function heapAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}
