// agentk in the cluster: its namespace, the Secret holding the agent token, and the `gitlab-agent`
// Helm chart from charts.gitlab.io (pinned). The token reaches the chart only as the name of that
// Secret (`config.secretName`): never inline in the values, which Helm keeps in its release Secret
// and which `helm get values` prints. The chart mounts the Secret's `token` key at
// /etc/agentk/secrets/token (chart templates/deployment.yaml `--token-file`).
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';

export const AGENT_CHART_REPO = 'https://charts.gitlab.io';
export const AGENT_CHART = 'gitlab-agent';
/** Release name: the chart names its objects after it (fullname = release name when it contains the chart's). */
export const AGENT_RELEASE = 'gitlab-agent';

export interface AgentkArgs {
  namespace: string;
  labels: Record<string, string>;
  chartVersion: string;
  replicas: number;
  kasAddress: string;
  /** The agent token (secret). */
  token: pulumi.Input<string>;
  /** Id of that token (not secret): a new one rolls the pods, so agentk reads the new file. */
  tokenId: pulumi.Input<string>;
  /** PEM bundle agentk trusts for KAS (self-managed GitLab with an internal CA). */
  kasCaCert?: pulumi.Input<string>;
}

/** Helm values; exported for the tests. */
export function agentkValues(a: { kasAddress: string; secretName: pulumi.Input<string>; replicas: number; tokenId: pulumi.Input<string>; kasCaCert?: pulumi.Input<string> }): Record<string, unknown> {
  return {
    replicas: a.replicas,
    config: {
      kasAddress: a.kasAddress,
      secretName: a.secretName,
      ...(a.kasCaCert ? { kasCaCert: a.kasCaCert } : {}),
    },
    podAnnotations: { 'gitlab-workspaces.gitlab.com/agent-token-id': a.tokenId },
  };
}

export class Agentk extends pulumi.ComponentResource {
  readonly namespace: k8s.core.v1.Namespace;
  readonly tokenSecret: k8s.core.v1.Secret;
  readonly release: k8s.helm.v3.Release;

  constructor(name: string, args: AgentkArgs, opts?: pulumi.ComponentResourceOptions) {
    super('gitlab-workspaces:agent:Agentk', name, {}, opts);
    this.namespace = new k8s.core.v1.Namespace(name, { metadata: { name: args.namespace, labels: args.labels } }, { parent: this });
    this.tokenSecret = new k8s.core.v1.Secret(
      `${name}-token`,
      {
        metadata: { namespace: this.namespace.metadata.name, labels: args.labels },
        type: 'Opaque',
        stringData: { token: pulumi.secret(args.token) },
      },
      { parent: this },
    );
    this.release = new k8s.helm.v3.Release(
      name,
      {
        name: AGENT_RELEASE,
        chart: AGENT_CHART,
        version: args.chartVersion,
        repositoryOpts: { repo: AGENT_CHART_REPO },
        namespace: this.namespace.metadata.name,
        values: agentkValues({
          kasAddress: args.kasAddress,
          secretName: this.tokenSecret.metadata.name,
          replicas: args.replicas,
          tokenId: args.tokenId,
          kasCaCert: args.kasCaCert,
        }),
        atomic: true,
        timeout: 300,
      },
      // The component's dependsOn (the config file) is not inherited by children: the release waits itself.
      { parent: this, dependsOn: opts?.dependsOn },
    );
    this.registerOutputs({ namespace: this.namespace.metadata.name, release: this.release.name });
  }
}
