// The proxy's config.yaml as a Kubernetes Secret. Rendered by the proxy's own config module
// (renderConfigYaml validates with the schema the proxy parses with: one source of truth), inside
// an apply so the secret values never leave Pulumi's secret handling, and mounted as a file: nothing
// secret goes into args, env, labels or annotations.
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import { DEFAULT_PORTS, DEFAULTS, renderConfigYaml, type ProxyConfigInput } from 'gitlab-workspaces-proxy/config';

/** Container ports: the proxy's own defaults (the SSH Service maps 22 to SSH_PORT). */
export const HTTP_PORT = DEFAULT_PORTS.http;
export const INTERNAL_PORT = DEFAULT_PORTS.internal;
export const SSH_PORT = DEFAULT_PORTS.ssh;
export const CONFIG_DIR = '/app/config';
export const CONFIG_FILE = 'config.yaml';

/** What the stack decides about the proxy's config.yaml, as plain values (declared once). */
export interface ProxyConfigValues {
  gitlabUrl: string;
  redirectUri: string;
  clientId: string;
  clientSecret: string;
  signingKey: string;
  protocol: NonNullable<ProxyConfigInput['auth']['protocol']>;
  reauthorizeInterval: number;
  maxSessionDuration: number;
  logLevel: ProxyConfigInput['log_level'];
  ssh: { enabled: boolean; hostKey: string; backendPort: number; backendUsername: string; publicKeyAuth?: boolean };
  /** auth.service_token (SSH key logins); omitted from the file when unset. */
  serviceToken?: string;
}

type SecretKeys = 'clientId' | 'clientSecret' | 'signingKey' | 'serviceToken';

/** The same values with the secrets as Pulumi inputs (they stay secret end to end), plus where the Secret goes. */
export interface ProxyConfigArgs extends Omit<ProxyConfigValues, SecretKeys | 'ssh'> {
  namespace: pulumi.Input<string>;
  labels: Record<string, string>;
  clientId: pulumi.Input<string>;
  clientSecret: pulumi.Input<string>;
  signingKey: pulumi.Input<string>;
  serviceToken?: pulumi.Input<string>;
  ssh: Omit<ProxyConfigValues['ssh'], 'hostKey'> & { hostKey: pulumi.Input<string> };
}

/** Builds the config object (pure; exported for tests). */
export function proxyConfigObject(v: ProxyConfigValues): ProxyConfigInput {
  return {
    auth: {
      client_id: v.clientId,
      client_secret: v.clientSecret,
      host: v.gitlabUrl,
      redirect_uri: v.redirectUri,
      signing_key: v.signingKey,
      protocol: v.protocol,
      reauthorize_interval: v.reauthorizeInterval,
      max_session_duration: v.maxSessionDuration,
      ...(v.serviceToken ? { service_token: v.serviceToken } : {}),
    },
    http: { enabled: true, port: HTTP_PORT, internal_port: INTERNAL_PORT },
    ssh: {
      enabled: v.ssh.enabled,
      port: SSH_PORT,
      ...(v.ssh.enabled ? { host_key: v.ssh.hostKey } : {}),
      backend_port: v.ssh.backendPort,
      backend_username: v.ssh.backendUsername,
      public_key_auth: v.ssh.publicKeyAuth ?? true,
    },
    metrics_path: DEFAULTS.metricsPath,
    log_level: v.logLevel,
  };
}

export class ProxyConfigSecret extends pulumi.ComponentResource {
  readonly secret: k8s.core.v1.Secret;
  /** Generated name: a changed config gets a new Secret, so the Deployment rolls out. */
  readonly secretName: pulumi.Output<string>;
  /** The rendered file (secret). */
  readonly configYaml: pulumi.Output<string>;

  constructor(name: string, args: ProxyConfigArgs, opts?: pulumi.ComponentResourceOptions) {
    super('gitlab-workspaces:proxy:ConfigSecret', name, {}, opts);
    const yaml = pulumi
      .all([args.clientId, args.clientSecret, args.signingKey, args.ssh.hostKey, args.serviceToken])
      .apply(([clientId, clientSecret, signingKey, hostKey, serviceToken]) =>
        renderConfigYaml(
          proxyConfigObject({
            ...args,
            clientId,
            clientSecret,
            signingKey,
            ssh: { ...args.ssh, hostKey },
            serviceToken,
          }),
        ),
      );
    this.configYaml = pulumi.secret(yaml);
    this.secret = new k8s.core.v1.Secret(
      name,
      {
        metadata: { namespace: args.namespace, labels: args.labels },
        type: 'Opaque',
        stringData: { [CONFIG_FILE]: this.configYaml },
      },
      { parent: this },
    );
    this.secretName = this.secret.metadata.name;
    this.registerOutputs({ secretName: this.secretName });
  }
}
