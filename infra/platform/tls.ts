// Certificates for the proxy domain and the wildcard domain, as kubernetes.io/tls Secrets in the
// proxy's namespace (the Ingress objects reference them by name). Three modes, see docs/platform.md.
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import * as tls from '@pulumi/tls';
import type { TlsConfig } from './config';

export const JETSTACK_REPO = 'https://charts.jetstack.io';
export const ACME_SERVERS = {
  staging: 'https://acme-staging-v02.api.letsencrypt.org/directory',
  production: 'https://acme-v02.api.letsencrypt.org/directory',
} as const;
/** Secret names in the proxy namespace; fixed so that routing can reference them before they exist. */
export const PROXY_TLS_SECRET = 'gitlab-workspaces-proxy-tls';
export const WILDCARD_TLS_SECRET = 'gitlab-workspaces-wildcard-tls';
const CLOUDFLARE_TOKEN_SECRET = 'cloudflare-api-token';
const CLOUDFLARE_TOKEN_KEY = 'api-token';

export interface TlsSecretsInput {
  cloudflareApiToken?: pulumi.Input<string>;
  tlsProxyCert?: pulumi.Input<string>;
  tlsProxyKey?: pulumi.Input<string>;
  tlsWildcardCert?: pulumi.Input<string>;
  tlsWildcardKey?: pulumi.Input<string>;
}

export interface CertificatesArgs {
  config: TlsConfig;
  /** The proxy domain, e.g. workspaces.example.dev. */
  proxyDomain: string;
  /** The wildcard domain workspaces are served on, e.g. `*.workspaces.example.dev`. */
  wildcardDomain: string;
  /** Namespace of the proxy (where the Ingress objects and so the TLS Secrets live). */
  namespace: pulumi.Input<string>;
  secrets?: TlsSecretsInput;
  /** Production: protect the cert-manager release (uninstalling it drops every Certificate it manages). */
  protect?: boolean;
  /**
   * Gateway API routing (acme mode): cert-manager issues the listeners' certificates itself from the
   * Gateway's `cert-manager.io/cluster-issuer` annotation, so no Certificate objects are declared.
   * `crds`: the Gateway API CRDs when the program installs them (cert-manager must start after them).
   */
  gatewayApi?: { crds?: pulumi.Resource };
}

/**
 * cert-manager's Gateway API support (cert-manager >= 1.15; docs: cert-manager.io/docs/usage/gateway/,
 * `helm install ... --set config.apiVersion=controller.config.cert-manager.io/v1alpha1
 * --set config.kind=ControllerConfiguration --set config.enableGatewayAPI=true`).
 */
export const CERT_MANAGER_GATEWAY_CONFIG = {
  apiVersion: 'controller.config.cert-manager.io/v1alpha1',
  kind: 'ControllerConfiguration',
  enableGatewayAPI: true,
} as const;

export class Certificates extends pulumi.ComponentResource {
  readonly mode: TlsConfig['mode'];
  readonly proxyTlsSecretName: pulumi.Output<string>;
  readonly wildcardTlsSecretName: pulumi.Output<string>;
  /** self-signed mode: the local CA certificate (PEM) a person adds to their trust store. */
  readonly caCertificate: pulumi.Output<string> | undefined;
  /** acme mode: the cert-manager release, the ClusterIssuer and the Certificates (for dependsOn). */
  readonly certManager: k8s.helm.v3.Release | undefined;
  readonly clusterIssuerName: pulumi.Output<string> | undefined;

  constructor(name: string, args: CertificatesArgs, opts?: pulumi.ComponentResourceOptions) {
    super('gitlab-workspaces:platform:Certificates', name, {}, opts);
    this.mode = args.config.mode;
    const domain = args.proxyDomain;
    const wildcard = args.wildcardDomain;
    let proxy: pulumi.Output<string>;
    let wild: pulumi.Output<string>;
    this.caCertificate = undefined;
    this.certManager = undefined;
    this.clusterIssuerName = undefined;

    switch (args.config.mode) {
      case 'self-signed': {
        const ca = selfSignedCa(name, domain, this);
        this.caCertificate = ca.cert.certPem;
        const leaf = (suffix: string, dnsName: string, secretName: string) => {
          const key = new tls.PrivateKey(`${name}-${suffix}-key`, { algorithm: 'ECDSA', ecdsaCurve: 'P256' }, { parent: this });
          const csr = new tls.CertRequest(
            `${name}-${suffix}-csr`,
            { privateKeyPem: key.privateKeyPem, subject: { commonName: dnsName, organization: 'GitLab workspaces (local)' }, dnsNames: [dnsName] },
            { parent: this },
          );
          const cert = new tls.LocallySignedCert(
            `${name}-${suffix}-cert`,
            {
              certRequestPem: csr.certRequestPem,
              caPrivateKeyPem: ca.key.privateKeyPem,
              caCertPem: ca.cert.certPem,
              validityPeriodHours: args.config.validityHours,
              // `pulumi up` within this window before expiry replaces the certificate.
              earlyRenewalHours: args.config.earlyRenewalHours,
              allowedUses: ['digital_signature', 'key_encipherment', 'server_auth'],
            },
            { parent: this },
          );
          return tlsSecret(name, suffix, secretName, args.namespace, pulumi.concat(cert.certPem, ca.cert.certPem), key.privateKeyPem, this, ca.cert.certPem).metadata.name;
        };
        proxy = leaf('proxy', domain, PROXY_TLS_SECRET);
        wild = leaf('wildcard', wildcard, WILDCARD_TLS_SECRET);
        break;
      }
      case 'provided': {
        const s = args.secrets ?? {};
        const need = (v: pulumi.Input<string> | undefined, key: string) => {
          if (v === undefined) throw new Error(`${key} is required (secret) when tls.mode is provided`);
          return v;
        };
        proxy = tlsSecret(name, 'proxy', PROXY_TLS_SECRET, args.namespace, need(s.tlsProxyCert, 'tlsProxyCert'), need(s.tlsProxyKey, 'tlsProxyKey'), this).metadata.name;
        wild = tlsSecret(name, 'wildcard', WILDCARD_TLS_SECRET, args.namespace, need(s.tlsWildcardCert, 'tlsWildcardCert'), need(s.tlsWildcardKey, 'tlsWildcardKey'), this).metadata.name;
        break;
      }
      case 'acme': {
        const acme = args.config.acme;
        const token = args.secrets?.cloudflareApiToken;
        if (!acme) throw new Error('tls.acme is required when tls.mode is acme');
        if (token === undefined) throw new Error('cloudflareApiToken is required (secret) when tls.mode is acme');
        const cm = args.config.certManager;
        const protect = args.protect ?? false;
        const ns = new k8s.core.v1.Namespace(`${name}-cert-manager-ns`, { metadata: { name: cm.namespace } }, { parent: this });
        const release = new k8s.helm.v3.Release(
          `${name}-cert-manager`,
          {
            name: 'cert-manager',
            chart: 'cert-manager',
            version: cm.chartVersion,
            repositoryOpts: { repo: JETSTACK_REPO },
            namespace: ns.metadata.name,
            values: {
              // keep=true (production) leaves the CRDs on uninstall: deleting them deletes every
              // Certificate in the cluster, including ones this stack does not own.
              crds: { enabled: true, keep: protect },
              // Deleting a Certificate deletes its Secret too, so `pulumi destroy` leaves no key behind.
              enableCertificateOwnerRef: true,
              // Check DNS-01 propagation against public resolvers, not a split-horizon cluster DNS.
              dns01RecursiveNameserversOnly: true,
              dns01RecursiveNameservers: '1.1.1.1:53,8.8.8.8:53',
              ...(args.gatewayApi ? { config: CERT_MANAGER_GATEWAY_CONFIG } : {}),
            },
            atomic: true,
            timeout: 600,
          },
          // The Gateway API CRDs must exist when cert-manager starts, or it does not watch Gateways.
          { parent: this, protect, dependsOn: args.gatewayApi?.crds ? [args.gatewayApi.crds] : [] },
        );
        this.certManager = release;
        // cert-manager reads a ClusterIssuer's secrets from its own namespace.
        const tokenSecret = new k8s.core.v1.Secret(
          `${name}-cloudflare-token`,
          {
            metadata: { name: CLOUDFLARE_TOKEN_SECRET, namespace: ns.metadata.name },
            type: 'Opaque',
            stringData: { [CLOUDFLARE_TOKEN_KEY]: pulumi.secret(token) },
          },
          { parent: this },
        );
        const issuerName = `gitlab-workspaces-letsencrypt-${acme.server}`;
        const issuer = new k8s.apiextensions.CustomResource(
          `${name}-issuer`,
          {
            apiVersion: 'cert-manager.io/v1',
            kind: 'ClusterIssuer',
            metadata: { name: issuerName },
            spec: {
              acme: {
                server: ACME_SERVERS[acme.server],
                email: acme.email,
                privateKeySecretRef: { name: `${issuerName}-account-key` },
                solvers: [
                  {
                    selector: { dnsZones: [...new Set([domain, wildcard.replace(/^\*\./, '')])] },
                    dns01: { cloudflare: { apiTokenSecretRef: { name: tokenSecret.metadata.name, key: CLOUDFLARE_TOKEN_KEY } } },
                  },
                ],
              },
            },
          },
          // The CRD and the webhook come with the release: create after it, delete before it.
          { parent: this, dependsOn: [release, tokenSecret] },
        );
        this.clusterIssuerName = issuer.metadata.name;
        const certificate = (suffix: string, dnsName: string, secretName: string) =>
          new k8s.apiextensions.CustomResource(
            `${name}-${suffix}`,
            {
              apiVersion: 'cert-manager.io/v1',
              kind: 'Certificate',
              metadata: { name: secretName, namespace: args.namespace },
              spec: {
                secretName,
                dnsNames: [dnsName],
                issuerRef: { group: 'cert-manager.io', kind: 'ClusterIssuer', name: issuer.metadata.name },
                privateKey: { algorithm: 'ECDSA', size: 256, rotationPolicy: 'Always' },
                // Let's Encrypt issues 90-day certificates; renew with 30 days left.
                renewBefore: '720h0m0s',
              },
            },
            { parent: this, dependsOn: [release, issuer] },
          );
        if (args.gatewayApi) {
          // gateway-shim names each Certificate (and its Secret) after the listener's certificateRef.
          proxy = pulumi.output(PROXY_TLS_SECRET);
          wild = pulumi.output(WILDCARD_TLS_SECRET);
        } else {
          proxy = certificate('proxy', domain, PROXY_TLS_SECRET).metadata.name;
          wild = certificate('wildcard', wildcard, WILDCARD_TLS_SECRET).metadata.name;
        }
        break;
      }
    }
    this.proxyTlsSecretName = proxy;
    this.wildcardTlsSecretName = wild;
    // caCertificate only where it exists: an undefined output makes `pulumi up` print a warning.
    this.registerOutputs({ proxyTlsSecretName: proxy, wildcardTlsSecretName: wild, ...(this.caCertificate ? { caCertificate: this.caCertificate } : {}) });
  }
}

function selfSignedCa(name: string, domain: string, parent: pulumi.Resource) {
  const key = new tls.PrivateKey(`${name}-ca-key`, { algorithm: 'ECDSA', ecdsaCurve: 'P256' }, { parent });
  const cert = new tls.SelfSignedCert(
    `${name}-ca`,
    {
      privateKeyPem: key.privateKeyPem,
      isCaCertificate: true,
      subject: { commonName: `GitLab workspaces local CA (${domain})`, organization: 'GitLab workspaces (local)' },
      // Five years, renewed on `pulumi up` in the last 30 days; a new CA must be trusted again.
      validityPeriodHours: 43_800,
      earlyRenewalHours: 720,
      allowedUses: ['cert_signing', 'crl_signing', 'digital_signature'],
    },
    { parent },
  );
  return { key, cert };
}

function tlsSecret(
  name: string,
  suffix: string,
  secretName: string,
  namespace: pulumi.Input<string>,
  certPem: pulumi.Input<string>,
  keyPem: pulumi.Input<string>,
  parent: pulumi.Resource,
  caPem?: pulumi.Input<string>,
): k8s.core.v1.Secret {
  const data: Record<string, pulumi.Input<string>> = {
    'tls.crt': certPem,
    'tls.key': pulumi.secret(keyPem),
  };
  if (caPem !== undefined) data['ca.crt'] = caPem;
  return new k8s.core.v1.Secret(
    `${name}-${suffix}-secret`,
    { metadata: { name: secretName, namespace }, type: 'kubernetes.io/tls', stringData: data },
    // A fixed name can't be created next to the old one: delete first on replacement.
    { parent, deleteBeforeReplace: true },
  );
}
