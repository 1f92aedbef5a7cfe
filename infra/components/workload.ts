// The proxy's Kubernetes workload: identity and RBAC, Deployment, Services, disruption budget,
// autoscaler and network policy. Security settings follow the Kubernetes "restricted" Pod Security
// Standard; infra/policy checks the same rules.
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import { CONFIG_DIR, CONFIG_FILE, HTTP_PORT, INTERNAL_PORT, SSH_PORT } from './proxy-config';

export const APP_NAME = 'gitlab-workspaces-proxy';
export const PROXY_UID = 10001;
/**
 * On deletion the pod keeps serving for PRE_STOP_SECONDS (the ingress controller and kube-proxy need
 * a moment to drop the endpoint; SIGTERM at once would refuse requests still routed here), then gets
 * SIGTERM and drains for up to 25 s (docs/contract.md §1). The grace period covers both plus a margin.
 */
export const PRE_STOP_SECONDS = 5;
export const TERMINATION_GRACE_SECONDS = 35;

export interface WorkloadArgs {
  namespace: pulumi.Input<string>;
  labels: Record<string, string>;
  image: pulumi.Input<string>;
  configSecretName: pulumi.Input<string>;
  replicas: number;
  autoscaling: { enabled: boolean; maxReplicas: number; targetCpuUtilization: number };
  resources: { requests: { cpu: string; memory: string }; limits: { cpu?: string; memory: string } };
  ssh: { enabled: boolean; servicePort: number; serviceAnnotations: Record<string, string>; loadBalancerSourceRanges: string[] };
  networkPolicy: {
    enabled: boolean;
    /** Namespace of the ingress controller: the only source of HTTP traffic. */
    controllerNamespace: string;
    apiServerCidrs: string[];
    apiServerPorts: number[];
    gitlabCidrs: string[];
    gitlabPort: number;
    workspaceNamespaceLabels: Record<string, string>;
  };
}

export class ProxyWorkload extends pulumi.ComponentResource {
  readonly serviceAccount: k8s.core.v1.ServiceAccount;
  readonly clusterRole: k8s.rbac.v1.ClusterRole;
  readonly clusterRoleBinding: k8s.rbac.v1.ClusterRoleBinding;
  readonly deployment: k8s.apps.v1.Deployment;
  readonly httpService: k8s.core.v1.Service;
  readonly sshService: k8s.core.v1.Service | undefined;
  readonly podDisruptionBudget: k8s.policy.v1.PodDisruptionBudget;
  readonly autoscaler: k8s.autoscaling.v2.HorizontalPodAutoscaler | undefined;
  readonly networkPolicy: k8s.networking.v1.NetworkPolicy | undefined;
  readonly httpServiceName: pulumi.Output<string>;
  readonly httpServicePort = 80;
  /** Label selector of the proxy pods (`key=value,...`). */
  readonly podSelector: string;

  constructor(name: string, args: WorkloadArgs, opts?: pulumi.ComponentResourceOptions) {
    super('gitlab-workspaces:proxy:Workload', name, {}, opts);
    const parent = { parent: this };
    const ns = args.namespace;
    const selector = { 'app.kubernetes.io/name': APP_NAME, 'app.kubernetes.io/instance': args.labels['app.kubernetes.io/instance'] ?? name };
    const labels = { ...args.labels, ...selector };
    this.podSelector = Object.entries(selector).map(([k, v]) => `${k}=${v}`).join(',');

    this.serviceAccount = new k8s.core.v1.ServiceAccount(
      name,
      // The token is mounted into the pod only (automountServiceAccountToken on the pod spec).
      { metadata: { name: APP_NAME, namespace: ns, labels }, automountServiceAccountToken: false },
      parent,
    );

    // Workspaces live in namespaces the agent creates: watching Services cluster-wide is the least
    // that works. Read-only, and Services only (no Secrets, no Pods, no exec).
    this.clusterRole = new k8s.rbac.v1.ClusterRole(
      name,
      {
        metadata: { name: pulumi.interpolate`${APP_NAME}-${ns}`, labels },
        rules: [{ apiGroups: [''], resources: ['services'], verbs: ['get', 'list', 'watch'] }],
      },
      parent,
    );
    this.clusterRoleBinding = new k8s.rbac.v1.ClusterRoleBinding(
      name,
      {
        metadata: { name: pulumi.interpolate`${APP_NAME}-${ns}`, labels },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: this.clusterRole.metadata.name },
        subjects: [{ kind: 'ServiceAccount', name: this.serviceAccount.metadata.name, namespace: ns }],
      },
      parent,
    );

    const resources = {
      requests: { cpu: args.resources.requests.cpu, memory: args.resources.requests.memory },
      limits: { memory: args.resources.limits.memory, ...(args.resources.limits.cpu ? { cpu: args.resources.limits.cpu } : {}) },
    };
    const ports = [
      { name: 'http', containerPort: HTTP_PORT, protocol: 'TCP' },
      { name: 'internal', containerPort: INTERNAL_PORT, protocol: 'TCP' },
      ...(args.ssh.enabled ? [{ name: 'ssh', containerPort: SSH_PORT, protocol: 'TCP' }] : []),
    ];
    this.deployment = new k8s.apps.v1.Deployment(
      name,
      {
        metadata: { name: APP_NAME, namespace: ns, labels },
        spec: {
          replicas: args.replicas,
          selector: { matchLabels: selector },
          // Never below the wanted capacity during a rollout: long-lived connections drain slowly.
          strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
          template: {
            metadata: { labels },
            spec: {
              serviceAccountName: this.serviceAccount.metadata.name,
              // The proxy watches Services through the API server, so it needs its token.
              automountServiceAccountToken: true,
              enableServiceLinks: false,
              terminationGracePeriodSeconds: TERMINATION_GRACE_SECONDS,
              securityContext: {
                runAsNonRoot: true,
                runAsUser: PROXY_UID,
                runAsGroup: PROXY_UID,
                fsGroup: PROXY_UID,
                seccompProfile: { type: 'RuntimeDefault' },
              },
              topologySpreadConstraints: [
                { maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: selector } },
                { maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: selector } },
              ],
              containers: [
                {
                  name: 'proxy',
                  image: args.image,
                  imagePullPolicy: 'IfNotPresent',
                  args: ['-config', `${CONFIG_DIR}/${CONFIG_FILE}`],
                  ports,
                  env: [{ name: 'NODE_ENV', value: 'production' }],
                  resources,
                  securityContext: {
                    allowPrivilegeEscalation: false,
                    readOnlyRootFilesystem: true,
                    runAsNonRoot: true,
                    privileged: false,
                    capabilities: { drop: ['ALL'] },
                    seccompProfile: { type: 'RuntimeDefault' },
                  },
                  // The kubelet's own sleep (Kubernetes >= 1.30): no shell or binary needed in the image.
                  lifecycle: { preStop: { sleep: { seconds: PRE_STOP_SECONDS } } },
                  livenessProbe: { httpGet: { path: '/healthz', port: 'internal' }, periodSeconds: 10, timeoutSeconds: 3, failureThreshold: 3 },
                  // Ready only after the first complete list of workspace Services (docs/contract.md §1).
                  readinessProbe: { httpGet: { path: '/readyz', port: 'internal' }, periodSeconds: 5, timeoutSeconds: 3, failureThreshold: 2 },
                  startupProbe: { httpGet: { path: '/healthz', port: 'internal' }, periodSeconds: 2, failureThreshold: 30 },
                  volumeMounts: [
                    { name: 'config', mountPath: CONFIG_DIR, readOnly: true },
                    { name: 'tmp', mountPath: '/tmp' },
                  ],
                },
              ],
              volumes: [
                { name: 'config', secret: { secretName: args.configSecretName, defaultMode: 0o440, items: [{ key: CONFIG_FILE, path: CONFIG_FILE }] } },
                { name: 'tmp', emptyDir: { medium: 'Memory', sizeLimit: '16Mi' } },
              ],
            },
          },
        },
      },
      // With an autoscaler, the HPA owns the replica count after creation.
      { ...parent, ignoreChanges: args.autoscaling.enabled ? ['spec.replicas'] : [] },
    );

    this.httpService = new k8s.core.v1.Service(
      `${name}-http`,
      {
        metadata: { name: APP_NAME, namespace: ns, labels },
        spec: { type: 'ClusterIP', selector, ports: [{ name: 'http', port: this.httpServicePort, targetPort: 'http', protocol: 'TCP' }] },
      },
      parent,
    );
    this.httpServiceName = this.httpService.metadata.name;

    this.sshService = args.ssh.enabled
      ? new k8s.core.v1.Service(
          `${name}-ssh`,
          {
            metadata: { name: `${APP_NAME}-ssh`, namespace: ns, labels, annotations: args.ssh.serviceAnnotations },
            spec: {
              type: 'LoadBalancer',
              selector,
              ports: [{ name: 'ssh', port: args.ssh.servicePort, targetPort: 'ssh', protocol: 'TCP' }],
              ...(args.ssh.loadBalancerSourceRanges.length ? { loadBalancerSourceRanges: args.ssh.loadBalancerSourceRanges } : {}),
            },
          },
          parent,
        )
      : undefined;

    // maxUnavailable rather than minAvailable: a single-replica stack must still let nodes drain.
    this.podDisruptionBudget = new k8s.policy.v1.PodDisruptionBudget(
      name,
      { metadata: { name: APP_NAME, namespace: ns, labels }, spec: { maxUnavailable: 1, selector: { matchLabels: selector } } },
      parent,
    );

    this.autoscaler = args.autoscaling.enabled
      ? new k8s.autoscaling.v2.HorizontalPodAutoscaler(
          name,
          {
            metadata: { name: APP_NAME, namespace: ns, labels },
            spec: {
              scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: this.deployment.metadata.name },
              minReplicas: args.replicas,
              maxReplicas: args.autoscaling.maxReplicas,
              metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: args.autoscaling.targetCpuUtilization } } }],
              // Scaling down closes the WebSocket/SSH sessions of the removed pods: do it slowly.
              behavior: { scaleDown: { stabilizationWindowSeconds: 600, policies: [{ type: 'Pods', value: 1, periodSeconds: 300 }] } },
            },
          },
          parent,
        )
      : undefined;

    const np = args.networkPolicy;
    this.networkPolicy = np.enabled
      ? new k8s.networking.v1.NetworkPolicy(
          name,
          {
            metadata: { name: APP_NAME, namespace: ns, labels },
            spec: {
              podSelector: { matchLabels: selector },
              policyTypes: ['Ingress', 'Egress'],
              ingress: [
                {
                  from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': np.controllerNamespace } } }],
                  ports: [{ port: HTTP_PORT, protocol: 'TCP' }],
                },
                ...(args.ssh.enabled ? [{ ports: [{ port: SSH_PORT, protocol: 'TCP' }] }] : []),
              ],
              egress: [
                {
                  to: [{ namespaceSelector: {}, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }],
                  ports: [
                    { port: 53, protocol: 'UDP' },
                    { port: 53, protocol: 'TCP' },
                  ],
                },
                { to: np.apiServerCidrs.map((cidr) => ({ ipBlock: { cidr } })), ports: np.apiServerPorts.map((port) => ({ port, protocol: 'TCP' })) },
                { to: np.gitlabCidrs.map((cidr) => ({ ipBlock: { cidr } })), ports: [{ port: np.gitlabPort, protocol: 'TCP' }] },
                // Workspace Services: any port (their ports are chosen by each devfile).
                { to: [{ namespaceSelector: { matchLabels: np.workspaceNamespaceLabels } }] },
              ],
            },
          },
          parent,
        )
      : undefined;

    this.registerOutputs({ httpServiceName: this.httpServiceName, podSelector: this.podSelector });
  }
}
