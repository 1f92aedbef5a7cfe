// A self-managed GitLab signed by an internal CA (gitlab-org/gitlab#429346): the proxy must trust that
// CA for every call to GitLab (OAuth token exchange and OIDC discovery, GraphQL, REST) without
// weakening TLS anywhere. The bundle (public certificates, not a secret) goes into a ConfigMap mounted
// read-only, and NODE_EXTRA_CA_CERTS points Node at it: Node adds those certificates to its default
// trust store at start-up, which the global fetch (undici) that openid-client and the GitLab client use
// verifies against; the public roots stay trusted and verification stays on.
// The OAuth-app dynamic provider gets the same bundle (infra/components/oauth-app.ts).
import { createHash, X509Certificate } from 'node:crypto';
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import { z } from 'zod';

export const CA_DIR = '/etc/gitlab-workspaces/gitlab-ca';
export const CA_FILE = 'ca.crt';
export const CA_ENV = 'NODE_EXTRA_CA_CERTS';

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The PEM certificates of a bundle (anything between them, such as comments, is dropped). */
export function pemCertificates(bundle: string): string[] {
  return bundle.match(PEM_CERT) ?? [];
}

/** Stack config key `gitlabCaBundle`: one or more PEM CA certificates. */
export const caBundleSchema = z.string().superRefine((text, ctx) => {
  const certs = pemCertificates(text);
  if (certs.length === 0) {
    ctx.addIssue({ code: 'custom', message: 'must contain at least one PEM certificate (-----BEGIN CERTIFICATE-----)' });
    return;
  }
  certs.forEach((pem, i) => {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(pem);
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: `certificate ${i + 1} does not parse (${(e as Error).message})` });
      return;
    }
    if (!cert.ca) ctx.addIssue({ code: 'custom', message: `certificate ${i + 1} (${cert.subject.replace(/\n/g, ', ')}) is not a CA certificate` });
    if (Date.parse(cert.validTo) < Date.now()) ctx.addIssue({ code: 'custom', message: `certificate ${i + 1} expired on ${cert.validTo}` });
  });
});

export interface GitLabCaBundleArgs {
  namespace: pulumi.Input<string>;
  labels: Record<string, string>;
  bundle: string;
}

/** The ConfigMap holding the bundle, and what the proxy container needs to use it. */
export class GitLabCaBundle extends pulumi.ComponentResource {
  readonly configMapName: pulumi.Output<string>;
  readonly volume: k8s.types.input.core.v1.Volume;
  readonly volumeMount: k8s.types.input.core.v1.VolumeMount;
  readonly env: k8s.types.input.core.v1.EnvVar;
  /** sha256 of the mounted file: a pod-template annotation, so a new bundle rolls the pods. */
  readonly checksum: string;

  constructor(name: string, args: GitLabCaBundleArgs, opts?: pulumi.ComponentResourceOptions) {
    super('gitlab-workspaces:proxy:GitLabCaBundle', name, {}, opts);
    const file = `${pemCertificates(args.bundle).join('\n')}\n`;
    this.checksum = createHash('sha256').update(file).digest('hex');
    const cm = new k8s.core.v1.ConfigMap(
      name,
      {
        metadata: { name: 'gitlab-workspaces-gitlab-ca', namespace: args.namespace, labels: args.labels },
        data: { [CA_FILE]: file },
      },
      { parent: this },
    );
    this.configMapName = cm.metadata.name;
    this.volume = { name: 'gitlab-ca', configMap: { name: this.configMapName, defaultMode: 0o444, items: [{ key: CA_FILE, path: CA_FILE }] } };
    this.volumeMount = { name: 'gitlab-ca', mountPath: CA_DIR, readOnly: true };
    this.env = { name: CA_ENV, value: `${CA_DIR}/${CA_FILE}` };
    this.registerOutputs({ configMapName: this.configMapName });
  }
}
