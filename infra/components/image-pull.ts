// How the cluster's nodes pull the proxy image. The registry login in `build` only lets the build
// push; the kubelet pulls with the pod's imagePullSecrets (or node-level credentials), so a private
// registry needs a `kubernetes.io/dockerconfigjson` Secret in the proxy's namespace. Long-lived
// credentials only: a GitLab deploy token with read_registry, never CI_REGISTRY_PASSWORD (it dies with
// the job that printed it, and the next pod restart could no longer pull).
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import { z } from 'zod';

const k8sName = z.string().regex(/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/, 'must be a Kubernetes Secret name');
const registryHost = z.string().regex(/^[a-z0-9.-]+(:\d+)?$/, 'must be a registry host such as registry.example.com or localhost:5001');

/** Stack config section `imagePull`. */
export const imagePullSchema = z.strictObject({
  /** An existing kubernetes.io/dockerconfigjson Secret in the proxy namespace. */
  existingSecret: k8sName.optional(),
  /** Pull user (a deploy token's username); its password is the secret key imagePullPassword. */
  username: z.string().min(1).optional(),
  /** Registry host the credential is for; default: the registry of build.repository or image. */
  registry: registryHost.optional(),
  /** The nodes pull without a Secret (public image, or node credentials such as ECR/GKE/a mirror). */
  anonymous: z.boolean().default(false),
});
export type ImagePullConfig = z.output<typeof imagePullSchema>;

/** Cross-key rules of `imagePull`; issue paths are top-level config keys. */
export function refineImagePull(
  c: { imagePull: ImagePullConfig; imagePullPassword?: string; build?: { username?: string } },
  ctx: z.RefinementCtx,
): void {
  const p = c.imagePull;
  const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
  if (p.existingSecret && p.username) issue(['imagePull', 'existingSecret'], 'set either imagePull.existingSecret or imagePull.username, not both');
  if (p.anonymous && (p.existingSecret || p.username)) issue(['imagePull', 'anonymous'], 'cannot be true together with a pull credential');
  if (p.username && !c.imagePullPassword) issue(['imagePullPassword'], 'required when imagePull.username is set (secret: a deploy token with read_registry)');
  // A registry that needs a login to push almost always needs one to pull: without a credential the
  // Deployment never becomes ready and `pulumi up` times out, so say it before anything is created.
  if (c.build?.username && !p.existingSecret && !p.username && !p.anonymous) {
    issue(
      ['imagePull'],
      'required when build.username is set: give the nodes a pull credential (imagePull.username and the secret imagePullPassword, ' +
        'or imagePull.existingSecret), or set imagePull.anonymous: true if they pull without one',
    );
  }
}

/** Registry host of an image repository (`registry.example.com/group/img` → `registry.example.com`). */
export function registryOf(repository: string): string {
  const first = repository.split('/')[0] ?? '';
  return /[.:]/.test(first) || first === 'localhost' ? first : 'docker.io';
}

/**
 * `.dockerconfigjson` for one registry. Docker Hub's key is its v1 URL, which is what the kubelet's
 * keyring (pkg/credentialprovider) and `docker login` use for it.
 */
export function dockerConfigJson(registry: string, username: string, password: string): string {
  const key = registry === 'docker.io' || registry === 'index.docker.io' ? 'https://index.docker.io/v1/' : registry;
  const auth = Buffer.from(`${username}:${password}`).toString('base64');
  return JSON.stringify({ auths: { [key]: { username, password, auth } } });
}

export interface ImagePullSecretArgs {
  namespace: pulumi.Input<string>;
  labels: Record<string, string>;
  registry: string;
  username: string;
  password: pulumi.Input<string>;
}

/** The pull Secret the proxy's pods reference (`imagePullSecrets`). */
export class ImagePullSecret extends pulumi.ComponentResource {
  readonly secretName: pulumi.Output<string>;

  constructor(name: string, args: ImagePullSecretArgs, opts?: pulumi.ComponentResourceOptions) {
    super('gitlab-workspaces:proxy:ImagePullSecret', name, {}, opts);
    const secret = new k8s.core.v1.Secret(
      name,
      {
        metadata: { name: 'gitlab-workspaces-proxy-pull', namespace: args.namespace, labels: args.labels },
        type: 'kubernetes.io/dockerconfigjson',
        stringData: { '.dockerconfigjson': pulumi.secret(pulumi.output(args.password).apply((p) => dockerConfigJson(args.registry, args.username, p))) },
      },
      { parent: this },
    );
    this.secretName = secret.metadata.name;
    this.registerOutputs({ secretName: this.secretName });
  }
}
