// Writes `bytes` filler bytes in 64 KiB chunks, waiting for 'drain' so a slow reader is never outrun,
// then ends the stream. Shared by the sample workspace's /bytes answer and the bench's uploads.
import type { Writable } from 'node:stream';

export function writeBytes(out: Writable, bytes: number, fill: number): void {
  const chunk = Buffer.alloc(Math.min(bytes, 64 * 1024), fill);
  let left = bytes;
  const pump = (): void => {
    while (left > 0) {
      const n = Math.min(left, chunk.length);
      left -= n;
      if (!out.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void out.once('drain', pump);
    }
    out.end();
  };
  pump();
}
