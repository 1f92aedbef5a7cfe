// HTTP(S) routing to the proxy for the proxy domain (OAuth callback) and the wildcard domain (every
// workspace host). `ingress` mode: one Ingress of the controller's IngressClass. `gateway` mode: two
// HTTPRoutes (Gateway API), each attached to the Gateway listener that carries its certificate. The
// controller, the Gateway and the certificates are the platform part's (infra/platform); this takes
// their names as inputs.
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import { APP_NAME } from './workload';
import { GATEWAY_API_VERSION_V1, type GatewayParentRef } from '../platform/gateway';

interface CommonRoutingArgs {
  namespace: pulumi.Input<string>;
  labels: Record<string, string>;
  proxyDomain: string;
  wildcardDomain: string;
  serviceName: pulumi.Input<string>;
  servicePort: number;
}

export interface IngressRoutingArgs extends CommonRoutingArgs {
  mode?: 'ingress';
  ingressClassName: pulumi.Input<string>;
  proxyTlsSecretName: pulumi.Input<string>;
  wildcardTlsSecretName: pulumi.Input<string>;
}

export interface GatewayRoutingArgs extends CommonRoutingArgs {
  mode: 'gateway';
  /** Where the route of the proxy domain and the route of the wildcard domain attach. */
  proxyParentRef: pulumi.Input<GatewayParentRef>;
  workspacesParentRef: pulumi.Input<GatewayParentRef>;
}

export type RoutingArgs = IngressRoutingArgs | GatewayRoutingArgs;

export class ProxyRouting extends pulumi.ComponentResource {
  readonly ingress: k8s.networking.v1.Ingress | undefined;
  readonly httpRoutes: k8s.apiextensions.CustomResource[];

  constructor(name: string, args: RoutingArgs, opts?: pulumi.ComponentResourceOptions) {
    super('gitlab-workspaces:proxy:Routing', name, {}, opts);
    // Children do not inherit the component's dependsOn: pass it on, so the routes are created
    // after (and deleted before) the controller, Gateway and certificates they are given.
    const childOpts = { parent: this, dependsOn: opts?.dependsOn };
    this.ingress = undefined;
    this.httpRoutes = [];
    if (args.mode === 'gateway') {
      const route = (suffix: string, routeName: string, hostname: string, parentRef: pulumi.Input<GatewayParentRef>) =>
        new k8s.apiextensions.CustomResource(
          `${name}-${suffix}`,
          {
            apiVersion: GATEWAY_API_VERSION_V1,
            kind: 'HTTPRoute',
            metadata: { name: routeName, namespace: args.namespace, labels: args.labels },
            spec: {
              parentRefs: [parentRef],
              hostnames: [hostname],
              rules: [
                {
                  matches: [{ path: { type: 'PathPrefix', value: '/' } }],
                  backendRefs: [{ group: '', kind: 'Service', name: args.serviceName, port: args.servicePort }],
                },
              ],
            },
          },
          childOpts,
        );
      this.httpRoutes = [
        route('proxy', APP_NAME, args.proxyDomain, args.proxyParentRef),
        route('workspaces', `${APP_NAME}-workspaces`, args.wildcardDomain, args.workspacesParentRef),
      ];
      this.registerOutputs({ httpRouteNames: this.httpRoutes.map((r) => r.metadata.name) });
      return;
    }
    const backend = { service: { name: args.serviceName, port: { number: args.servicePort } } };
    const rule = (host: string) => ({ host, http: { paths: [{ path: '/', pathType: 'Prefix', backend }] } });
    this.ingress = new k8s.networking.v1.Ingress(
      name,
      {
        metadata: { name: APP_NAME, namespace: args.namespace, labels: args.labels },
        spec: {
          ingressClassName: args.ingressClassName,
          tls: [
            { hosts: [args.proxyDomain], secretName: args.proxyTlsSecretName },
            { hosts: [args.wildcardDomain], secretName: args.wildcardTlsSecretName },
          ],
          rules: [rule(args.proxyDomain), rule(args.wildcardDomain)],
        },
      },
      childOpts,
    );
    this.registerOutputs({ ingressName: this.ingress.metadata.name });
  }
}
