// The seed tutorial's last section ("check it works"), adapted to a stack and printed as outputs.
import type { TlsConfig } from './config';

export interface VerificationInput {
  domain: string;
  /** Namespace of the proxy. */
  namespace: string;
  /** Label selector of the proxy pods, e.g. app.kubernetes.io/name=gitlab-workspaces-proxy. */
  podSelector: string;
  tlsMode: TlsConfig['mode'];
  acmeServer?: 'staging' | 'production';
  /** Name of the stack, for the `pulumi stack output` hint in self-signed mode. */
  stack: string;
  /** SSH endpoint, when SSH is enabled. */
  ssh?: { host: string; port: number };
}

/** Shell commands a person runs after `pulumi up`, each with what it should show. */
export function verificationChecks(v: VerificationInput): Record<string, string> {
  // Trust for curl: the stack's own CA (self-signed) or none for Let's Encrypt staging, whose
  // root is deliberately not in any trust store.
  const trust =
    v.tlsMode === 'self-signed'
      ? `pulumi stack output --stack ${v.stack} caCertificate > ${v.stack}-ca.pem && curl --verbose --location --cacert ${v.stack}-ca.pem`
      : v.tlsMode === 'acme' && v.acmeServer === 'staging'
        ? 'curl --verbose --location --insecure'
        : 'curl --verbose --location';
  const checks: Record<string, string> = {
    proxy: `${trust} https://${v.domain}/  # expect 400 Bad Request until a workspace exists`,
    logs: `kubectl -n ${v.namespace} logs -f -l ${v.podSelector}  # shows the request above as an unknown host`,
    pods: `kubectl -n ${v.namespace} get pods,ingress  # pods Running, Ingress with the load balancer address`,
  };
  if (v.tlsMode === 'acme') {
    checks.certificates = `kubectl -n ${v.namespace} get certificates  # READY True within a few minutes`;
  }
  if (v.ssh) {
    checks.ssh = `ssh -p ${v.ssh.port} <workspace-name>@${v.ssh.host}  # password: a GitLab personal access token`;
  }
  return checks;
}
