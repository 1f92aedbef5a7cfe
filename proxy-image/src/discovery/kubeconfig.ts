// Where the proxy's Kubernetes credentials come from (docs/contract.md §1): an explicit -kubeconfig file; else
// the in-cluster service account (what the pod uses); else KUBECONFIG / ~/.kube/config (local runs).
// Unlike client-node's loadFromDefault, nothing silently falls back to http://localhost:8080.
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';

const serviceAccountToken = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/** Test seams; the environment variables themselves are read from process.env, as client-node does. */
export interface KubeConfigEnvironment {
  home?: string;
  /** Path of the service account token that marks "running in a cluster" (tests point it elsewhere). */
  serviceAccountTokenPath?: string;
}

export function loadKubeConfig(path?: string, environment: KubeConfigEnvironment = {}): KubeConfig {
  const env = process.env;
  const kc = new KubeConfig();
  if (path) {
    kc.loadFromFile(path);
  } else if (env.KUBERNETES_SERVICE_HOST && existsSync(environment.serviceAccountTokenPath ?? serviceAccountToken)) {
    kc.loadFromCluster();
  } else if (env.KUBECONFIG) {
    const files = env.KUBECONFIG.split(delimiter).filter(Boolean);
    kc.loadFromFile(files[0] ?? '');
    for (const file of files.slice(1)) {
      const more = new KubeConfig();
      more.loadFromFile(file);
      kc.mergeConfig(more);
    }
  } else {
    const file = join(environment.home ?? homedir(), '.kube', 'config');
    if (!existsSync(file)) {
      throw new Error('no Kubernetes configuration: not running in a cluster, KUBECONFIG is unset and ~/.kube/config does not exist (use -kubeconfig <file>)');
    }
    kc.loadFromFile(file);
  }
  if (!kc.getCurrentCluster()) throw new Error('Kubernetes configuration has no current cluster');
  return kc;
}
