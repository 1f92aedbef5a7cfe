// The proxy's config.yaml as a Kubernetes Secret. Rendered by the proxy's own config module
// (renderConfigYaml validates with the schema the proxy parses with: one source of truth), inside
// an apply so the secret values never leave Pulumi's secret handling, and mounted as a file: nothing
// secret goes into args, env, labels or annotations.
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import { renderConfigYaml } from '../../proxy-image/src/config/render';
import type { ProxyConfigInput } from '../../proxy-image/src/config/schema';

/** Container ports (unprivileged; the SSH Service maps 22 to SSH_PORT). */
export const HTTP_PORT = 9876;
export const INTERNAL_PORT = 9877;
export const SSH_PORT = 2222;
export const CONFIG_DIR = '/app/config';
export const CONFIG_FILE = 'config.yaml';

export interface ProxyConfigArgs {
  namespace: pulumi.Input<string>;
  labels: Record<string, string>;
  gitlabUrl: string;
  redirectUri: string;
  clientId: pulumi.Input<string>;
  clientSecret: pulumi.Input<string>;
  signingKey: pulumi.Input<string>;
  protocol: 'https' | 'http';
  reauthorizeInterval: number;
  maxSessionDuration: number;
  logLevel: ProxyConfigInput['log_level'];
  ssh: { enabled: boolean; hostKey: pulumi.Input<string>; backendPort: number; backendUsername: string; publicKeyAuth?: boolean };
  /** auth.service_token (SSH key logins); omitted from the file when unset. */
  serviceToken?: pulumi.Input<string>;
}

/** Builds the config object (pure; exported for tests). */
export function proxyConfigObject(v: {
  gitlabUrl: string;
  redirectUri: string;
  clientId: string;
  clientSecret: string;
  signingKey: string;
  protocol: 'https' | 'http';
  reauthorizeInterval: number;
  maxSessionDuration: number;
  logLevel: ProxyConfigInput['log_level'];
  ssh: { enabled: boolean; hostKey: string; backendPort: number; backendUsername: string; publicKeyAuth?: boolean };
  serviceToken?: string;
}): ProxyConfigInput {
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
    metrics_path: '/metrics',
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
            gitlabUrl: args.gitlabUrl,
            redirectUri: args.redirectUri,
            clientId,
            clientSecret,
            signingKey,
            protocol: args.protocol,
            reauthorizeInterval: args.reauthorizeInterval,
            maxSessionDuration: args.maxSessionDuration,
            logLevel: args.logLevel,
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
