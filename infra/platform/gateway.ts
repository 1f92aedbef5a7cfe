// Gateway API routing (`routing.mode: gateway`): the standard-channel CRDs, Traefik's GatewayClass and
// a Gateway in the proxy's namespace with one HTTPS listener for the proxy domain and one for the
// wildcard domain (a wildcard listener does not match its apex, RFC 6125 §6.4.3 as Gateway API's
// Listener.hostname docs state), or a reference to an existing Gateway of the caller's. The
// HTTPRoutes themselves are the proxy part's (infra/components/routing.ts).
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import type { ControllerConfig, RoutingConfig } from './config';

export const GATEWAY_API_GROUP = 'gateway.networking.k8s.io';
export const GATEWAY_API_VERSION_V1 = `${GATEWAY_API_GROUP}/v1`;
/** Traefik's controller name (doc.traefik.io, "Kubernetes Gateway API" provider: GatewayClass example). */
export const TRAEFIK_GATEWAY_CONTROLLER = 'traefik.io/gateway-controller';
/** Name of the Gateway the program creates in the proxy's namespace. */
export const GATEWAY_NAME = 'gitlab-workspaces';
/** Listener names, used by the HTTPRoutes' parentRefs (sectionName). */
export const PROXY_LISTENER = 'proxy';
export const WORKSPACES_LISTENER = 'workspaces';
/**
 * Traefik matches a Gateway listener to the entry point with the same port, and the chart's
 * websecure entry point listens on 8443 inside the pod (exposed as 443 by the Service): the chart's
 * own Gateway template uses `ports.websecure.port` for its HTTPS listener (traefik-helm-chart
 * traefik/templates/gateway.yaml, values.yaml `gateway.listeners`).
 */
export const TRAEFIK_WEBSECURE_PORT = 8443;

/** The routing settings with their mode-dependent defaults applied. */
export interface GatewaySettings {
  className: string;
  /** An existing Gateway of the caller's. */
  existing?: { namespace: string; name: string };
  listenerPort: number;
  installCrds: boolean;
  crdVersion: string;
}

export function gatewaySettings(routing: RoutingConfig, controller: Pick<ControllerConfig, 'mode'>): GatewaySettings {
  const g = routing.gateway;
  const installed = controller.mode === 'install';
  const [namespace, name] = (g.existing ?? '').split('/');
  return {
    className: g.className,
    existing: g.existing ? { namespace: namespace as string, name: name as string } : undefined,
    listenerPort: g.listenerPort ?? (installed ? TRAEFIK_WEBSECURE_PORT : 443),
    installCrds: g.installCrds ?? installed,
    crdVersion: g.crdVersion,
  };
}

/** The release asset holding a Gateway API version's standard-channel CRDs. */
export function gatewayApiCrdsUrl(version: string): string {
  return `https://github.com/kubernetes-sigs/gateway-api/releases/download/${version}/standard-install.yaml`;
}

/**
 * The standard-channel CRDs (GatewayClass, Gateway, HTTPRoute, GRPCRoute, ReferenceGrant...), pinned.
 * Cluster-wide: `protect` keeps them in production, like cert-manager's CRDs.
 */
export class GatewayApiCrds extends pulumi.ComponentResource {
  readonly manifest: k8s.yaml.v2.ConfigFile;

  constructor(name: string, args: { version: string; protect?: boolean }, opts?: pulumi.ComponentResourceOptions) {
    super('gitlab-workspaces:platform:GatewayApiCrds', name, {}, opts);
    this.manifest = new k8s.yaml.v2.ConfigFile(`${name}-standard`, { file: gatewayApiCrdsUrl(args.version) }, { parent: this, protect: args.protect ?? false });
    this.registerOutputs({});
  }
}

/** A parentRef for the proxy's HTTPRoutes. */
export interface GatewayParentRef {
  group: string;
  kind: 'Gateway';
  name: string;
  namespace: string;
  sectionName?: string;
}

export interface ProxyGatewayArgs {
  settings: GatewaySettings;
  /** Namespace of the proxy: the Gateway lives there, next to the TLS Secrets its listeners reference. */
  namespace: pulumi.Input<string>;
  labels: Record<string, string>;
  proxyDomain: string;
  wildcardDomain: string;
  proxyTlsSecretName: pulumi.Input<string>;
  wildcardTlsSecretName: pulumi.Input<string>;
  /** acme mode: cert-manager issues the listeners' certificates from this ClusterIssuer (gateway-shim). */
  clusterIssuer?: pulumi.Input<string>;
  /** Create Traefik's GatewayClass (the program installs Traefik). */
  createClass: boolean;
}

/** Annotations cert-manager's gateway-shim reads on a Gateway (cert-manager.io docs, "Supported Annotations"). */
export function certManagerAnnotations(clusterIssuer: string): Record<string, string> {
  return {
    'cert-manager.io/cluster-issuer': clusterIssuer,
    // The same key and renewal policy as the Certificates of ingress mode (infra/platform/tls.ts).
    'cert-manager.io/private-key-algorithm': 'ECDSA',
    'cert-manager.io/private-key-size': '256',
    'cert-manager.io/private-key-rotation-policy': 'Always',
    'cert-manager.io/renew-before': '720h0m0s',
  };
}

/**
 * The Gateway in front of the proxy (or a reference to an existing one). Exposes the parentRefs the
 * proxy's HTTPRoutes attach to: one per listener, so each route lands on the listener with its
 * certificate.
 */
export class ProxyGateway extends pulumi.ComponentResource {
  readonly gatewayClass: k8s.apiextensions.CustomResource | undefined;
  readonly gateway: k8s.apiextensions.CustomResource | undefined;
  /** parentRefs for the route of the proxy domain and for the route of the wildcard domain. */
  readonly proxyParentRef: pulumi.Output<GatewayParentRef>;
  readonly workspacesParentRef: pulumi.Output<GatewayParentRef>;
  readonly gatewayName: pulumi.Output<string>;
  readonly gatewayNamespace: pulumi.Output<string>;

  constructor(name: string, args: ProxyGatewayArgs, opts?: pulumi.ComponentResourceOptions) {
    super('gitlab-workspaces:platform:Gateway', name, {}, opts);
    const s = args.settings;
    // Children do not inherit the component's dependsOn (CRDs, controller, certificates): pass it on.
    const childOpts = { parent: this, dependsOn: opts?.dependsOn };
    this.gatewayClass = undefined;
    this.gateway = undefined;

    if (s.existing) {
      const ref = { group: GATEWAY_API_GROUP, kind: 'Gateway' as const, name: s.existing.name, namespace: s.existing.namespace };
      // No sectionName: the caller's listeners are unknown here; the routes' hostnames select them.
      this.proxyParentRef = pulumi.output(ref);
      this.workspacesParentRef = pulumi.output(ref);
      this.gatewayName = pulumi.output(s.existing.name);
      this.gatewayNamespace = pulumi.output(s.existing.namespace);
    } else {
      if (args.createClass) {
        this.gatewayClass = new k8s.apiextensions.CustomResource(
          `${name}-class`,
          {
            apiVersion: GATEWAY_API_VERSION_V1,
            kind: 'GatewayClass',
            metadata: { name: s.className, labels: args.labels },
            spec: { controllerName: TRAEFIK_GATEWAY_CONTROLLER },
          },
          childOpts,
        );
      }
      const listener = (listenerName: string, hostname: string, secretName: pulumi.Input<string>) => ({
        name: listenerName,
        hostname,
        port: s.listenerPort,
        protocol: 'HTTPS',
        tls: { mode: 'Terminate', certificateRefs: [{ group: '', kind: 'Secret', name: secretName }] },
        // Only the proxy's own routes (same namespace) may attach.
        allowedRoutes: { namespaces: { from: 'Same' }, kinds: [{ group: GATEWAY_API_GROUP, kind: 'HTTPRoute' }] },
      });
      const annotations = args.clusterIssuer === undefined ? undefined : pulumi.output(args.clusterIssuer).apply(certManagerAnnotations);
      this.gateway = new k8s.apiextensions.CustomResource(
        name,
        {
          apiVersion: GATEWAY_API_VERSION_V1,
          kind: 'Gateway',
          metadata: { name: GATEWAY_NAME, namespace: args.namespace, labels: args.labels, ...(annotations ? { annotations } : {}) },
          spec: {
            gatewayClassName: this.gatewayClass ? this.gatewayClass.metadata.name : s.className,
            listeners: [
              listener(PROXY_LISTENER, args.proxyDomain, args.proxyTlsSecretName),
              listener(WORKSPACES_LISTENER, args.wildcardDomain, args.wildcardTlsSecretName),
            ],
          },
        },
        childOpts,
      );
      const gw = this.gateway;
      const refTo = (section: string) =>
        pulumi.all([gw.metadata.name, gw.metadata.namespace]).apply(([n, ns]) => ({ group: GATEWAY_API_GROUP, kind: 'Gateway' as const, name: n, namespace: ns, sectionName: section }));
      this.proxyParentRef = refTo(PROXY_LISTENER);
      this.workspacesParentRef = refTo(WORKSPACES_LISTENER);
      this.gatewayName = gw.metadata.name;
      this.gatewayNamespace = gw.metadata.namespace;
    }
    this.registerOutputs({ gatewayName: this.gatewayName, gatewayNamespace: this.gatewayNamespace });
  }
}
