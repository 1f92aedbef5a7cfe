// The bench's workspace backend in its own process, so the load generator, the proxy and the workspace
// each have their own event loop (as in production). Prints its port on stdout.
import { startSampleWorkspace } from '../support/sample-workspace';

void startSampleWorkspace().then((w) => {
  process.stdout.write(`${w.port}\n`);
  process.on('SIGTERM', () => void w.close().then(() => process.exit(0)));
});
