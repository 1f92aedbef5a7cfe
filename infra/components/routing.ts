// HTTP(S) routing from the ingress controller to the proxy for the proxy domain (OAuth callback)
// and the wildcard domain (every workspace host). The controller and the certificates are the
// platform part's (infra/platform); this takes the IngressClass and TLS Secret names as inputs.
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import { APP_NAME } from './workload';

export interface RoutingArgs {
  namespace: pulumi.Input<string>;
  labels: Record<string, string>;
  ingressClassName: pulumi.Input<string>;
  proxyDomain: string;
  wildcardDomain: string;
  proxyTlsSecretName: pulumi.Input<string>;
  wildcardTlsSecretName: pulumi.Input<string>;
  serviceName: pulumi.Input<string>;
  servicePort: number;
}

export class ProxyRouting extends pulumi.ComponentResource {
  readonly ingress: k8s.networking.v1.Ingress;

  constructor(name: string, args: RoutingArgs, opts?: pulumi.ComponentResourceOptions) {
    super('gitlab-workspaces:proxy:Routing', name, {}, opts);
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
      // Children do not inherit the component's dependsOn: pass it on, so the Ingress is created
      // after (and deleted before) the controller and the certificates it is given.
      { parent: this, dependsOn: opts?.dependsOn },
    );
    this.registerOutputs({ ingressName: this.ingress.metadata.name });
  }
}
