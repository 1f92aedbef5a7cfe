// The ingress controller in front of the proxy: Traefik installed by Helm (or an existing controller),
// exposed by a LoadBalancer Service whose address feeds DNS and the stack outputs.
//
// Why Traefik (see docs/platform.md): ingress-nginx was retired in March 2026. Traefik is maintained,
// implements the standard Ingress API (so the proxy's routing needs no CRDs and works with any other
// Ingress controller too), proxies WebSockets natively and has no per-connection Lua/reload churn.
// Envoy Gateway was the alternative; it needs the Gateway API CRDs and two controllers, which is more
// moving parts for one proxy.
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import type { ControllerConfig } from './config';

export const TRAEFIK_REPO = 'https://traefik.github.io/charts';
/** Pod label the chart adds (deployment.podLabels) and our LoadBalancer Service selects on. */
export const CONTROLLER_POD_LABEL = 'gitlab-workspaces.gitlab.com/ingress-controller';
/** Port of the LoadBalancer Service that maps to Traefik's websecure entry point (8443 in the pod). */
export const WEBSECURE_EXPOSED_PORT = 443;

/** What a LoadBalancer Service reports: an IP (most clouds, kind/k3d) or a hostname (AWS ELB). */
export interface LoadBalancerAddress {
  ip?: string;
  hostname?: string;
}

/** First address in `status.loadBalancer.ingress` of a LoadBalancer Service. */
export function loadBalancerAddressOf(service: k8s.core.v1.Service): pulumi.Output<LoadBalancerAddress> {
  return service.status.apply((s) => {
    const first = s?.loadBalancer?.ingress?.[0];
    const out: LoadBalancerAddress = {};
    if (first?.ip) out.ip = first.ip;
    if (first?.hostname) out.hostname = first.hostname;
    return out;
  });
}

/** Printable form of an address (`""` while the cloud has not assigned one). */
export function addressText(a: LoadBalancerAddress): string {
  return a.ip ?? a.hostname ?? '';
}

/**
 * Traefik's Helm values (the chart validates them against its values.schema.json). Redirects and
 * timeouts are passed as static-config flags rather than `ports.*` values because the values layout
 * changed across chart majors (v34 replaced `redirectTo`) while the flags did not.
 */
export function traefikValues(cfg: ControllerConfig, serviceName: string, opts: { gatewayApi?: boolean } = {}): Record<string, unknown> {
  const idle = `${cfg.idleTimeoutSeconds}s`;
  const values: Record<string, unknown> = {
    deployment: {
      replicas: cfg.replicas,
      podLabels: { [CONTROLLER_POD_LABEL]: 'traefik' },
    },
    // We own the LoadBalancer Service (below) so that DNS records can depend on it and its address
    // is read from a resource Pulumi manages, not from something inside the release.
    service: { enabled: false },
    ingressClass: { enabled: true, isDefaultClass: false, name: cfg.ingressClassName },
    providers: {
      // Only Ingresses of our class; the chart's publishedService needs the chart's own Service,
      // so the address is published with the flag below instead.
      kubernetesIngress: { enabled: true, ingressClass: cfg.ingressClassName, publishedService: { enabled: false } },
      // No Traefik CRDs are needed: the proxy is routed with plain Ingress objects.
      kubernetesCRD: { enabled: false },
    },
    podDisruptionBudget: cfg.replicas > 1 ? { enabled: true, minAvailable: 1 } : { enabled: false },
    additionalArguments: [
      // Ingress status shows our Service's address (kubectl get ingress, external-dns...).
      `--providers.kubernetesingress.ingressendpoint.publishedservice=${cfg.namespace}/${serviceName}`,
      // `to=websecure` would take the port of websecure's *address* (:8443 in the chart), not the
      // exposed 443 (traefik pkg/provider/traefik/internal.go); the chart's own redirect renders :443.
      `--entryPoints.web.http.redirections.entryPoint.to=:${WEBSECURE_EXPOSED_PORT}`,
      '--entryPoints.web.http.redirections.entryPoint.scheme=https',
      // Traefik 3 defaults readTimeout to 60 s, which also cuts upgraded WebSocket connections and
      // long uploads: 0 = no limit. Idle client connections close after idleTimeoutSeconds.
      '--entryPoints.websecure.transport.respondingTimeouts.readTimeout=0s',
      '--entryPoints.websecure.transport.respondingTimeouts.writeTimeout=0s',
      `--entryPoints.websecure.transport.respondingTimeouts.idleTimeout=${idle}`,
      `--entryPoints.web.transport.respondingTimeouts.idleTimeout=${idle}`,
      // Let in-flight requests finish when a pod is rolled.
      '--entryPoints.websecure.transport.lifeCycle.graceTimeOut=30s',
    ],
  };
  if (opts.gatewayApi) {
    // Gateway API routing (routing.mode: gateway). Chart values as in traefik-helm-chart
    // traefik/values.yaml (providers.kubernetesGateway, gateway, gatewayClass): the chart's default
    // Gateway and GatewayClass are off because the program declares its own (infra/platform/gateway.ts).
    const providers = values.providers as Record<string, unknown>;
    providers.kubernetesGateway = { enabled: true };
    values.gateway = { enabled: false };
    values.gatewayClass = { enabled: false };
    // The chart renders the statusAddress.service flags only together with its own Service
    // (_podtemplate.tpl: `if (and .service.enabled $.Values.service.enabled)`), which is off: name ours.
    (values.additionalArguments as string[]).push(
      `--providers.kubernetesgateway.statusaddress.service.name=${serviceName}`,
      `--providers.kubernetesgateway.statusaddress.service.namespace=${cfg.namespace}`,
    );
  }
  return values;
}

export interface IngressControllerArgs {
  config: ControllerConfig;
  /** Gateway API routing: enable Traefik's Gateway provider; `crds` must exist before Traefik starts. */
  gatewayApi?: { crds?: pulumi.Resource };
  /** Production: protect the controller's LoadBalancer Service (its address is in DNS and allowlists). */
  protect?: boolean;
}

export class IngressController extends pulumi.ComponentResource {
  /** IngressClass for the proxy's Ingress objects. */
  readonly ingressClassName: pulumi.Output<string>;
  /** The controller's LoadBalancer Service (managed in `install` mode, read in `existing` mode). */
  readonly service: k8s.core.v1.Service;
  readonly release: k8s.helm.v3.Release | undefined;
  readonly namespace: k8s.core.v1.Namespace | undefined;
  readonly loadBalancer: pulumi.Output<LoadBalancerAddress>;
  /** IP or hostname of the load balancer. */
  readonly address: pulumi.Output<string>;

  constructor(name: string, args: IngressControllerArgs, opts?: pulumi.ComponentResourceOptions) {
    super('gitlab-workspaces:platform:IngressController', name, {}, opts);
    const cfg = args.config;
    const protect = args.protect ?? false;

    if (cfg.mode === 'existing') {
      // existingService is enforced by the config schema in this mode.
      const id = cfg.existingService as string;
      this.release = undefined;
      this.namespace = undefined;
      this.service = k8s.core.v1.Service.get(`${name}-lb`, id, { parent: this });
    } else {
      const serviceName = 'traefik';
      this.namespace = new k8s.core.v1.Namespace(
        `${name}-ns`,
        { metadata: { name: cfg.namespace, labels: { 'app.kubernetes.io/part-of': 'gitlab-workspaces' } } },
        { parent: this },
      );
      this.release = new k8s.helm.v3.Release(
        `${name}-traefik`,
        {
          name: 'traefik',
          chart: 'traefik',
          version: cfg.chartVersion,
          repositoryOpts: { repo: TRAEFIK_REPO },
          namespace: this.namespace.metadata.name,
          values: traefikValues(cfg, serviceName, { gatewayApi: args.gatewayApi !== undefined }),
          // Roll back a half-applied upgrade instead of leaving the edge broken.
          atomic: true,
          timeout: 600,
        },
        { parent: this, protect, dependsOn: args.gatewayApi?.crds ? [args.gatewayApi.crds] : [] },
      );
      this.service = new k8s.core.v1.Service(
        `${name}-lb`,
        {
          metadata: {
            name: serviceName,
            namespace: this.namespace.metadata.name,
            labels: { 'app.kubernetes.io/name': 'traefik', 'app.kubernetes.io/part-of': 'gitlab-workspaces' },
            annotations: cfg.serviceAnnotations,
          },
          spec: {
            type: 'LoadBalancer',
            externalTrafficPolicy: cfg.externalTrafficPolicy,
            selector: { [CONTROLLER_POD_LABEL]: 'traefik' },
            ports: [
              { name: 'web', port: 80, targetPort: 'web', protocol: 'TCP' },
              { name: 'websecure', port: WEBSECURE_EXPOSED_PORT, targetPort: 'websecure', protocol: 'TCP' },
            ],
          },
        },
        // A recreated Service gets a new address: DNS caches and firewall allowlists break.
        { parent: this, protect, dependsOn: [this.release] },
      );
    }

    this.ingressClassName = pulumi.output(cfg.ingressClassName);
    this.loadBalancer = loadBalancerAddressOf(this.service);
    this.address = this.loadBalancer.apply(addressText);
    this.registerOutputs({ ingressClassName: this.ingressClassName, address: this.address });
  }
}
