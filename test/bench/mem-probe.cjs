// Preloaded (with --expose-gc) into the bench's proxy processes: on an IPC "mem" message, collect garbage
// and answer with process.memoryUsage(), so idle-connection costs are read after GC, not mid-allocation.
// Bench only; never part of the proxy image.
/* global process, global */
'use strict';
if (typeof process.send === 'function') {
  process.on('message', (m) => {
    if (m !== 'mem') return;
    if (typeof global.gc === 'function') {
      global.gc();
      global.gc();
    }
    process.send({ type: 'mem', ...process.memoryUsage() });
  });
  // The channel must not keep the proxy alive on its own.
  process.channel?.unref();
}
