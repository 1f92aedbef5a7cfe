// loadKubeConfig's order (docs/contract.md §1): explicit file; in-cluster service account; KUBECONFIG; ~/.kube/config.
import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadKubeConfig } from '../../proxy-image/src/discovery/kubeconfig';
import { writeKubeconfig } from '../support/kubeconfig';

let dir: string;
const saved = { KUBECONFIG: process.env.KUBECONFIG, KUBERNETES_SERVICE_HOST: process.env.KUBERNETES_SERVICE_HOST, KUBERNETES_SERVICE_PORT: process.env.KUBERNETES_SERVICE_PORT };

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'kubeconfig-test-'));
  delete process.env.KUBECONFIG;
  delete process.env.KUBERNETES_SERVICE_HOST;
  delete process.env.KUBERNETES_SERVICE_PORT;
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

function configIn(sub: string, server: string): string {
  const d = join(dir, sub);
  mkdirSync(d, { recursive: true });
  return writeKubeconfig(server, d);
}

test('an explicit file wins over everything', () => {
  const explicit = configIn('explicit', 'http://127.0.0.1:1001');
  process.env.KUBECONFIG = configIn('env', 'http://127.0.0.1:1002');
  const kc = loadKubeConfig(explicit, { home: join(dir, 'nohome') });
  assert.equal(kc.getCurrentCluster()?.server, 'http://127.0.0.1:1001');
  assert.equal(kc.getCurrentCluster()?.skipTLSVerify, true);
});

test('in a cluster (service host set and a token mounted) the service account comes before KUBECONFIG', () => {
  const token = join(dir, 'token');
  writeFileSync(token, 'x');
  process.env.KUBERNETES_SERVICE_HOST = '10.96.0.1';
  process.env.KUBERNETES_SERVICE_PORT = '443';
  process.env.KUBECONFIG = configIn('env', 'http://127.0.0.1:1002');
  const kc = loadKubeConfig(undefined, { serviceAccountTokenPath: token, home: join(dir, 'nohome') });
  assert.equal(kc.getCurrentCluster()?.server, 'https://10.96.0.1:443');
});

test('outside a cluster: KUBECONFIG, then ~/.kube/config, else a clear error', () => {
  const noToken = join(dir, 'no-token');
  process.env.KUBERNETES_SERVICE_HOST = '10.96.0.1'; // set, but no token mounted: not in a cluster
  process.env.KUBECONFIG = configIn('env', 'http://127.0.0.1:1002');
  const home = join(dir, 'home');
  mkdirSync(join(home, '.kube'), { recursive: true });
  writeFileSync(join(home, '.kube', 'config'), '');
  const fromEnv = loadKubeConfig(undefined, { serviceAccountTokenPath: noToken, home });
  assert.equal(fromEnv.getCurrentCluster()?.server, 'http://127.0.0.1:1002');

  delete process.env.KUBECONFIG;
  const homeConfig = configIn('h', 'http://127.0.0.1:1003');
  writeFileSync(join(home, '.kube', 'config'), readFileSync(homeConfig, 'utf8'));
  const fromHome = loadKubeConfig(undefined, { serviceAccountTokenPath: noToken, home });
  assert.equal(fromHome.getCurrentCluster()?.server, 'http://127.0.0.1:1003');

  assert.throws(() => loadKubeConfig(undefined, { serviceAccountTokenPath: noToken, home: join(dir, 'empty-home') }), /no Kubernetes configuration/);
});
