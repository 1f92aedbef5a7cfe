import { Agent, request } from 'node:http';
import { startHarness, loginAs } from './support/http-harness';
async function run(port: number, host: string, path: string, cookie?: string, n = 300) {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const sockets = new Set();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await new Promise<void>((res, rej) => { const r = request({ host: '127.0.0.1', port, path, agent, headers: { host, ...(cookie ? { cookie } : {}) } }, (s) => { sockets.add(s.socket); s.resume(); s.on('end', () => res()); }); r.on('error', rej); r.end(); });
  agent.destroy();
  return ((performance.now() - t0) / n).toFixed(3) + ' ms/req, sockets ' + sockets.size;
}
(async () => {
  const h = await startHarness();
  const { jar } = await loginAs(h, h.alice, h.url(h.hostA, '/'));
  for (const p of ['/bytes?size=1024', '/bytes?size=1048576']) {
    console.log(p, 'direct', await run(h.workspace.port, 'x', p));
    console.log(p, 'proxied', await run(h.port, `${h.hostA}:${h.port}`, p, jar.header(h.hostA)));
  }
  await h.close();
})();
