// The proxy's namespace. Its name must match the GitLab agent's
// remote_development.gitlab_workspaces_proxy.namespace (see the agentConfig output).
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';

export class ProxyNamespace extends pulumi.ComponentResource {
  readonly namespace: k8s.core.v1.Namespace;
  readonly name: pulumi.Output<string>;

  constructor(name: string, args: { name: string; labels: Record<string, string> }, opts?: pulumi.ComponentResourceOptions) {
    super('gitlab-workspaces:proxy:Namespace', name, {}, opts);
    this.namespace = new k8s.core.v1.Namespace(
      name,
      {
        metadata: {
          name: args.name,
          // The proxy pods meet the "restricted" Pod Security Standard; enforce it for the namespace.
          labels: { ...args.labels, 'pod-security.kubernetes.io/enforce': 'restricted', 'pod-security.kubernetes.io/enforce-version': 'latest' },
        },
      },
      { parent: this },
    );
    this.name = this.namespace.metadata.name;
    this.registerOutputs({ name: this.name });
  }
}
