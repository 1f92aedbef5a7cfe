// A platform team's own Pulumi program (not this repository's stacks): it owns the cluster (its own
// Kubernetes provider), already runs an edge controller and, for Gateway API, a shared Gateway, and adds
// GitLab workspaces access with the component, imported by package name as any consumer would.
// Run under mocks by test/infra/component-consumer.test.ts in both routing modes.
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import { GitLabWorkspaces } from 'gitlab-workspaces-access';

export type RoutingMode = 'ingress' | 'gateway';

export function consumerProgram(mode: RoutingMode) {
  return async () => {
    const cluster = new k8s.Provider('platform-cluster', { kubeconfig: 'apiVersion: v1\nkind: Config\n', enableServerSideApply: true });
    // The team keeps its secrets in its own config; an output stands in for config.requireSecret().
    const oauthSecret = pulumi.secret(pulumi.output('gloas-consumer-secret'));
    const workspaces = new GitLabWorkspaces('workspaces', {
      kubernetesProvider: cluster,
      namespace: 'dev-workspaces',
      proxyDomain: 'workspaces.platform.example.org',
      gitlabUrl: 'https://gitlab.platform.example.org',
      oauth: { mode: 'provided' },
      oauthClientId: 'platform-app-id',
      image: `registry.platform.example.org/gitlab-workspaces-proxy@sha256:${'b'.repeat(64)}`,
      controller: { mode: 'existing', ingressClassName: 'edge', existingService: 'edge/edge-lb' },
      routing: mode === 'gateway' ? { mode: 'gateway', gateway: { existing: 'edge/shared' } } : { mode: 'ingress' },
      // Ingress: certificates from cert-manager (ACME); an existing Gateway brings its own.
      tls: mode === 'gateway' ? { mode: 'self-signed' } : { mode: 'acme', acme: { server: 'staging', email: 'platform@example.org' } },
      ssh: { servicePort: 2222 },
      secrets: {
        oauthClientSecret: oauthSecret,
        // cert-manager's DNS-01 solver (ACME); unused with the existing Gateway.
        ...(mode === 'ingress' ? { cloudflareApiToken: pulumi.secret(pulumi.output('consumer-cloudflare-token-0000000000000')) } : {}),
      },
    });
    return {
      proxyUrl: workspaces.outputs.proxyUrl,
      agentConfig: workspaces.outputs.agentConfig,
      sshEndpoint: workspaces.outputs.sshEndpoint,
      loadBalancerAddress: workspaces.outputs.loadBalancerAddress,
      verification: workspaces.outputs.verification,
    };
  };
}
