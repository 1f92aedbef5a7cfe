// Stack config sections owned by the platform part (controller, TLS, DNS, lifetime of a stack).
// infra/config.ts merges these zod schemas into the one stack schema and validates everything
// before any resource is declared; the platform components take the parsed (defaulted) values.
import { z } from 'zod';

/** Default chart versions: pinned so that `pulumi up` is reproducible; override per stack. */
export const TRAEFIK_CHART_VERSION = '41.5.0';
export const CERT_MANAGER_CHART_VERSION = 'v1.19.1';
/**
 * Gateway API release whose standard-channel CRDs gateway mode installs (Traefik's chart no longer
 * ships them since chart 40.2). Traefik 3.7's Kubernetes Gateway provider implements the v1.6
 * standard channel (doc.traefik.io reference: providers/kubernetes/kubernetes-gateway, and the
 * kubernetes-sigs/gateway-api conformance/reports/v1.6/traefik-traefik report).
 */
export const GATEWAY_API_VERSION = 'v1.6.1';

const k8sName = z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be a Kubernetes name (RFC 1123 label)');

/**
 * `controller`: the ingress controller carrying HTTP and WebSocket traffic to the proxy.
 * `install` (default) installs Traefik with Helm; `existing` uses a controller already in the cluster.
 */
export const controllerConfigSchema = z
  .strictObject({
    mode: z.enum(['install', 'existing']).default('install'),
    /** IngressClass the proxy's Ingress objects use (created by the chart in `install` mode). */
    ingressClassName: k8sName.default('traefik'),
    namespace: k8sName.default('traefik'),
    chartVersion: z.string().min(1).default(TRAEFIK_CHART_VERSION),
    replicas: z.number().int().min(1).max(20).default(1),
    /** Idle timeout of client connections, seconds; WebSockets idle longer than this are cut. */
    idleTimeoutSeconds: z.number().int().min(60).default(3600),
    /** Annotations for the LoadBalancer Service (cloud-specific: internal LB, static IP pool...). */
    serviceAnnotations: z.record(z.string(), z.string()).default({}),
    /** `Local` keeps client source IPs (useful in logs) at the cost of uneven spreading. */
    externalTrafficPolicy: z.enum(['Cluster', 'Local']).default('Cluster'),
    /** `existing` mode: the controller's LoadBalancer Service as `namespace/name`. */
    existingService: z
      .string()
      .regex(/^[a-z0-9-]+\/[a-z0-9-]+$/, 'must be namespace/name')
      .optional(),
  })
  .superRefine((c, ctx) => {
    if (c.mode === 'existing' && !c.existingService) {
      ctx.addIssue({ code: 'custom', path: ['existingService'], message: 'required when controller.mode is existing' });
    }
  });

/**
 * `tls`: certificates for the proxy domain and the wildcard domain.
 * `self-signed` (default) local CA from @pulumi/tls; `acme` cert-manager + Let's Encrypt DNS-01 on
 * Cloudflare; `provided` PEMs from secret config (the seed's way).
 */
export const tlsConfigSchema = z
  .strictObject({
    mode: z.enum(['self-signed', 'acme', 'provided']).default('self-signed'),
    /** self-signed: leaf validity and how early `pulumi up` replaces a certificate before expiry. */
    validityHours: z.number().int().min(24).default(2160),
    earlyRenewalHours: z.number().int().min(1).default(720),
    acme: z
      .strictObject({
        server: z.enum(['staging', 'production']).default('staging'),
        email: z.email(),
      })
      .optional(),
    certManager: z
      .strictObject({
        namespace: k8sName.default('cert-manager'),
        chartVersion: z.string().min(1).default(CERT_MANAGER_CHART_VERSION),
      })
      .prefault({}),
  })
  .superRefine((c, ctx) => {
    if (c.mode === 'acme' && !c.acme) {
      ctx.addIssue({ code: 'custom', path: ['acme'], message: 'required when tls.mode is acme (acme.email, acme.server)' });
    }
    if (c.earlyRenewalHours >= c.validityHours) {
      ctx.addIssue({ code: 'custom', path: ['earlyRenewalHours'], message: 'must be less than tls.validityHours' });
    }
  });

/**
 * `routing`: how HTTP(S) reaches the proxy. `ingress` (default): an Ingress of
 * `controller.ingressClassName`. `gateway`: Gateway API, a Gateway with one HTTPS listener for the
 * proxy domain and one for the wildcard, and HTTPRoutes to the proxy; or only the HTTPRoutes,
 * attached to an `existing` Gateway of yours. SSH stays a LoadBalancer Service either way.
 */
export const routingConfigSchema = z
  .strictObject({
    mode: z.enum(['ingress', 'gateway']).default('ingress'),
    gateway: z
      .strictObject({
        /** GatewayClass of the Gateway the program creates (created for Traefik in `controller.mode: install`). */
        className: k8sName.default('traefik'),
        /** An existing Gateway (`namespace/name`): routes attach to it; no Gateway and no certificates are created. */
        existing: z
          .string()
          .regex(/^[a-z0-9-]+\/[a-z0-9-]+$/, 'must be namespace/name')
          .optional(),
        /** Port of the HTTPS listeners; default 8443 (Traefik's websecure entry point) with `controller.mode: install`, else 443. */
        listenerPort: z.number().int().min(1).max(65535).optional(),
        /**
         * Install the Gateway API standard-channel CRDs (pinned). Default: with `controller.mode: install`
         * only; set false when the cluster has them (they are cluster-wide: destroying the stack that
         * installed them deletes every Gateway API object in the cluster).
         */
        installCrds: z.boolean().optional(),
        crdVersion: z
          .string()
          .regex(/^v\d+\.\d+\.\d+$/, 'must be a Gateway API release such as v1.6.1')
          .default(GATEWAY_API_VERSION),
      })
      .prefault({}),
  })
  .superRefine((c, ctx) => {
    if (c.mode !== 'gateway' && c.gateway.existing) {
      ctx.addIssue({ code: 'custom', path: ['gateway', 'existing'], message: 'only used when routing.mode is gateway' });
    }
  });

/** `dns`: `cloudflare` manages the records; `none` lists in the outputs the records to create by hand. */
export const dnsConfigSchema = z
  .strictObject({
    mode: z.enum(['none', 'cloudflare']).default('none'),
    /** Cloudflare zone id of the zone holding the proxy domain. */
    zoneId: z.string().regex(/^[0-9a-f]{32}$/, 'must be a 32-character Cloudflare zone id').optional(),
  })
  .superRefine((c, ctx) => {
    if (c.mode === 'cloudflare' && !c.zoneId) {
      ctx.addIssue({ code: 'custom', path: ['zoneId'], message: 'required when dns.mode is cloudflare' });
    }
  });

/**
 * `ttl`: lifetime of a short-lived stack (review apps), e.g. `72h`, `3d`, `90m`. `npm run teardown
 * -- --expired` destroys stacks older than this (counted from the last update, or from the
 * `gitlab-workspaces:expires-at` stack tag when set). Unset = never expires.
 */
export const ttlSchema = z.string().regex(/^\d+(m|h|d)$/, 'must be a duration such as 90m, 72h or 3d');

/** Secret config keys of the platform part (set with `pulumi config set --secret`). */
export const PLATFORM_SECRET_KEYS = [
  'cloudflareApiToken',
  'tlsProxyCert',
  'tlsProxyKey',
  'tlsWildcardCert',
  'tlsWildcardKey',
] as const;
export type PlatformSecretKey = (typeof PLATFORM_SECRET_KEYS)[number];

const pem = (kind: 'CERTIFICATE' | 'PRIVATE KEY') =>
  z.string().refine((s) => new RegExp(`-----BEGIN [A-Z ]*${kind}-----`).test(s), `must be a PEM ${kind.toLowerCase()}`);

/** Shapes of the secret values (validated while still plain, then wrapped with pulumi.secret). */
export const platformSecretsSchema = z.object({
  cloudflareApiToken: z.string().min(20, 'must be a Cloudflare API token').optional(),
  tlsProxyCert: pem('CERTIFICATE').optional(),
  tlsProxyKey: pem('PRIVATE KEY').optional(),
  tlsWildcardCert: pem('CERTIFICATE').optional(),
  tlsWildcardKey: pem('PRIVATE KEY').optional(),
});

/** Everything the platform part reads from the stack config, after defaults. */
export const platformConfigSchema = z
  .object({
    controller: controllerConfigSchema.prefault({}),
    tls: tlsConfigSchema.prefault({}),
    dns: dnsConfigSchema.prefault({}),
    routing: routingConfigSchema.prefault({}),
    ttl: ttlSchema.optional(),
    /** Production stacks: protect the things whose loss means an outage (see docs/platform.md). */
    protect: z.boolean().default(false),
  })
  .extend(platformSecretsSchema.shape)
  .superRefine(refinePlatform);

/**
 * Cross-section rules (which secret each mode needs). Exported so that infra/config.ts can apply
 * it when it merges the sections into its own schema; issue paths are top-level config keys.
 */
export function refinePlatform(
  c: {
    tls: { mode: string };
    dns: { mode: string };
    routing?: { gateway: { existing?: string } };
  } & Partial<Record<PlatformSecretKey, string | undefined>>,
  ctx: z.RefinementCtx,
): void {
  const need = (key: PlatformSecretKey, why: string) => {
    if (!c[key]) ctx.addIssue({ code: 'custom', path: [key], message: `required (secret) when ${why}` });
  };
  if (c.tls.mode === 'acme') need('cloudflareApiToken', 'tls.mode is acme');
  if (c.dns.mode === 'cloudflare') need('cloudflareApiToken', 'dns.mode is cloudflare');
  if (c.tls.mode === 'provided') {
    for (const k of ['tlsProxyCert', 'tlsProxyKey', 'tlsWildcardCert', 'tlsWildcardKey'] as const) {
      need(k, 'tls.mode is provided');
    }
  }
  // An existing Gateway's listeners carry their own certificates; the program creates none.
  if (c.routing?.gateway.existing && c.tls.mode !== 'self-signed') {
    ctx.addIssue({ code: 'custom', path: ['tls', 'mode'], message: 'not used with routing.gateway.existing (that Gateway terminates TLS with its own certificates): leave it unset' });
  }
}

export type ControllerConfig = z.output<typeof controllerConfigSchema>;
export type TlsConfig = z.output<typeof tlsConfigSchema>;
export type DnsConfig = z.output<typeof dnsConfigSchema>;
export type RoutingConfig = z.output<typeof routingConfigSchema>;
export type PlatformSecrets = z.output<typeof platformSecretsSchema>;
export type PlatformConfig = z.output<typeof platformConfigSchema>;
export type PlatformConfigInput = z.input<typeof platformConfigSchema>;

/** Parses a duration of {@link ttlSchema} into milliseconds. */
export function ttlToMs(ttl: string): number {
  const m = /^(\d+)(m|h|d)$/.exec(ttl);
  if (!m) throw new Error(`invalid ttl ${JSON.stringify(ttl)}: expected e.g. 90m, 72h, 3d`);
  const unit = { m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'm' | 'h' | 'd'];
  return Number(m[1]) * unit;
}
