// Writes a kubeconfig file pointing at a Kubernetes API stand-in (see kube-api-stand-in.ts).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';

/**
 * Writes `<dir>/kubeconfig` for `url` and returns its path. client-node 1.x refuses a plain-http cluster
 * unless `insecure-skip-tls-verify: true` is set (NOTES.md), so it is, which is fine for a loopback stand-in.
 */
export function writeKubeconfig(url: string, dir: string, opts: { token?: string; namespace?: string } = {}): string {
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'stand-in', cluster: { server: url, 'insecure-skip-tls-verify': true } }],
    users: [{ name: 'stand-in', user: opts.token ? { token: opts.token } : {} }],
    contexts: [{ name: 'stand-in', context: { cluster: 'stand-in', user: 'stand-in', namespace: opts.namespace ?? 'default' } }],
    'current-context': 'stand-in',
  };
  const path = join(dir, 'kubeconfig');
  writeFileSync(path, stringify(config), { mode: 0o600 });
  return path;
}
