// CrossGuard rules for the proxy's security posture, checked on every `pulumi preview/up` with
// `--policy-pack infra/policy`. The same rules the components follow, so a later edit (or a
// transformation) that weakens them fails the deployment instead of reaching the cluster.
// Exported as plain arrays so tests can call each validateResource/validateStack directly
// (constructing a PolicyPack starts a gRPC server).
import type {
  PolicyResource,
  ReportViolation,
  ResourceValidationArgs,
  ResourceValidationPolicy,
  StackValidationArgs,
  StackValidationPolicy,
} from '@pulumi/policy';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- manifests are navigated field by field
type Obj = Record<string, any>;

const WORKLOAD_TYPES: Record<string, (props: Obj) => Obj | undefined> = {
  'kubernetes:apps/v1:Deployment': (p) => p.spec?.template?.spec,
  'kubernetes:apps/v1:StatefulSet': (p) => p.spec?.template?.spec,
  'kubernetes:apps/v1:DaemonSet': (p) => p.spec?.template?.spec,
  'kubernetes:batch/v1:Job': (p) => p.spec?.template?.spec,
  'kubernetes:core/v1:Pod': (p) => p.spec,
};

const GATEWAY_TYPE = 'kubernetes:gateway.networking.k8s.io/v1:Gateway';
const HTTPROUTE_TYPE = 'kubernetes:gateway.networking.k8s.io/v1:HTTPRoute';
const PROXY_NAME_LABEL = 'app.kubernetes.io/name';
const PROXY_NAME = 'gitlab-workspaces-proxy';
/** The proxy drains for 25 s on SIGTERM; Kubernetes must wait at least that long plus margin. */
export const MIN_TERMINATION_GRACE_SECONDS = 30;

function podSpec(args: { type: string; props: Obj }): Obj | undefined {
  return WORKLOAD_TYPES[args.type]?.(args.props);
}

function containersOf(pod: Obj): Obj[] {
  return [...(pod.initContainers ?? []), ...(pod.containers ?? [])];
}

function isProxy(props: Obj): boolean {
  return props.metadata?.labels?.[PROXY_NAME_LABEL] === PROXY_NAME;
}

function forEachContainer(args: ResourceValidationArgs, report: ReportViolation, check: (c: Obj, pod: Obj) => string | undefined): void {
  const pod = podSpec(args);
  if (!pod) return;
  for (const c of containersOf(pod)) {
    const problem = check(c, pod);
    if (problem) report(`container "${c.name}": ${problem}`);
  }
}

export const resourcePolicies: ResourceValidationPolicy[] = [
  {
    name: 'pods-run-as-non-root',
    description: 'Containers run as a non-root user (pod or container securityContext.runAsNonRoot: true, no runAsUser 0).',
    enforcementLevel: 'mandatory',
    validateResource: (args, report) =>
      forEachContainer(args, report, (c, pod) => {
        const nonRoot = c.securityContext?.runAsNonRoot ?? pod.securityContext?.runAsNonRoot;
        const uid = c.securityContext?.runAsUser ?? pod.securityContext?.runAsUser;
        if (nonRoot !== true) return 'runAsNonRoot must be true';
        if (uid === 0) return 'runAsUser must not be 0';
        return undefined;
      }),
  },
  {
    name: 'containers-locked-down',
    description:
      'Containers have a read-only root filesystem, no privilege escalation, drop ALL capabilities, are not privileged and use the RuntimeDefault (or Localhost) seccomp profile.',
    enforcementLevel: 'mandatory',
    validateResource: (args, report) =>
      forEachContainer(args, report, (c, pod) => {
        const sc = c.securityContext ?? {};
        if (sc.readOnlyRootFilesystem !== true) return 'readOnlyRootFilesystem must be true';
        if (sc.allowPrivilegeEscalation !== false) return 'allowPrivilegeEscalation must be false';
        if (sc.privileged === true) return 'must not be privileged';
        if (!(sc.capabilities?.drop ?? []).includes('ALL')) return 'capabilities.drop must include ALL';
        if ((sc.capabilities?.add ?? []).length > 0) return 'must not add capabilities';
        const seccomp = sc.seccompProfile?.type ?? pod.securityContext?.seccompProfile?.type;
        if (seccomp !== 'RuntimeDefault' && seccomp !== 'Localhost') return 'seccompProfile.type must be RuntimeDefault';
        return undefined;
      }),
  },
  {
    name: 'no-host-namespaces',
    description: 'Pods do not share the host network, PID or IPC namespace and mount no hostPath volumes.',
    enforcementLevel: 'mandatory',
    validateResource: (args, report) => {
      const pod = podSpec(args);
      if (!pod) return;
      for (const f of ['hostNetwork', 'hostPID', 'hostIPC']) if (pod[f] === true) report(`${f} must not be true`);
      for (const v of pod.volumes ?? []) if (v.hostPath) report(`volume "${v.name}" must not be a hostPath`);
    },
  },
  {
    name: 'secrets-as-files-only',
    description: 'Secrets reach containers only as mounted files: no env from Secrets and no literal secret-looking env values.',
    enforcementLevel: 'mandatory',
    validateResource: (args, report) =>
      forEachContainer(args, report, (c) => {
        for (const e of c.env ?? []) {
          if (e.valueFrom?.secretKeyRef) return `env ${e.name} comes from a Secret; mount it as a file instead`;
          if (e.value !== undefined && /(SECRET|TOKEN|PASSWORD|PRIVATE|SIGNING|_KEY$)/i.test(String(e.name))) {
            return `env ${e.name} looks like a secret in plain text`;
          }
        }
        if ((c.envFrom ?? []).some((s: Obj) => s.secretRef)) return 'envFrom a Secret; mount it as a file instead';
        if ((c.args ?? []).concat(c.command ?? []).some((a: unknown) => /secret|token|signing_key|client_secret/i.test(String(a)))) {
          return 'command line mentions a secret (arguments are visible to anyone who can list pods)';
        }
        return undefined;
      }),
  },
  {
    name: 'image-pinned-by-digest',
    description: 'Container images are referenced by digest (repo@sha256:...), so pods run exactly what was deployed.',
    enforcementLevel: 'mandatory',
    validateResource: (args, report) =>
      forEachContainer(args, report, (c) => (/@sha256:[0-9a-f]{64}$/.test(String(c.image ?? '')) ? undefined : `image "${c.image}" is not pinned by digest`)),
  },
  {
    name: 'resources-declared',
    description: 'Containers declare CPU and memory requests and a memory limit.',
    enforcementLevel: 'mandatory',
    validateResource: (args, report) =>
      forEachContainer(args, report, (c) => {
        const r = c.resources ?? {};
        if (!r.requests?.cpu || !r.requests?.memory) return 'resources.requests.cpu and .memory are required';
        if (!r.limits?.memory) return 'resources.limits.memory is required';
        return undefined;
      }),
  },
  {
    name: 'proxy-drains-gracefully',
    description: `The proxy Deployment has liveness and readiness probes and terminationGracePeriodSeconds >= ${MIN_TERMINATION_GRACE_SECONDS} (its drain time) plus any preStop sleep.`,
    enforcementLevel: 'mandatory',
    validateResource: (args, report) => {
      if (args.type !== 'kubernetes:apps/v1:Deployment' || !isProxy(args.props)) return;
      const pod = podSpec(args) ?? {};
      const grace = pod.terminationGracePeriodSeconds ?? 30;
      if (grace < MIN_TERMINATION_GRACE_SECONDS) report(`terminationGracePeriodSeconds ${grace} is shorter than the proxy's drain`);
      for (const c of pod.containers ?? []) {
        // A preStop pause runs before SIGTERM and is taken from the same grace period.
        const pause = Number(c.lifecycle?.preStop?.sleep?.seconds ?? 0);
        if (pause > 0 && grace < MIN_TERMINATION_GRACE_SECONDS + pause) {
          report(`container "${c.name}": terminationGracePeriodSeconds ${grace} leaves less than ${MIN_TERMINATION_GRACE_SECONDS} s to drain after its ${pause} s preStop sleep`);
        }
        if (!c.livenessProbe) report(`container "${c.name}": livenessProbe is required`);
        if (!c.readinessProbe) report(`container "${c.name}": readinessProbe is required`);
      }
    },
  },
  {
    name: 'rbac-least-privilege',
    description: 'Roles declared by the program never grant wildcards, write verbs, or access to Secrets; the proxy only reads Services.',
    enforcementLevel: 'mandatory',
    validateResource: (args, report) => {
      if (!/^kubernetes:rbac\.authorization\.k8s\.io\/v1:(Cluster)?Role$/.test(args.type)) return;
      for (const rule of (args.props.rules ?? []) as Obj[]) {
        const verbs: string[] = rule.verbs ?? [];
        const resources: string[] = rule.resources ?? [];
        if (verbs.includes('*') || resources.includes('*') || (rule.apiGroups ?? []).includes('*')) report('rule uses a wildcard');
        const writes = verbs.filter((v) => !['get', 'list', 'watch'].includes(v));
        if (writes.length) report(`rule grants ${writes.join(', ')} (read-only expected)`);
        if (resources.some((r) => r === 'secrets' || r.startsWith('pods/exec'))) report(`rule grants access to ${resources.join(', ')}`);
        if (isProxy(args.props) && resources.some((r) => r !== 'services')) report('the proxy role may only read services');
      }
    },
  },
  {
    name: 'only-ssh-on-load-balancers',
    description: 'A proxy Service of type LoadBalancer exposes only the SSH port; HTTP goes through the ingress controller (TLS).',
    enforcementLevel: 'mandatory',
    validateResource: (args, report) => {
      if (args.type !== 'kubernetes:core/v1:Service' || !isProxy(args.props)) return;
      const spec = args.props.spec ?? {};
      if (spec.type !== 'LoadBalancer' && spec.type !== 'NodePort') return;
      for (const p of spec.ports ?? []) if (p.targetPort !== 'ssh' && p.targetPort !== 2222) report(`port ${p.port} → ${p.targetPort} is exposed outside the cluster`);
    },
  },
  {
    name: 'ingress-tls-for-every-host',
    description: 'Every host an Ingress routes is covered by a TLS entry with a Secret.',
    enforcementLevel: 'mandatory',
    validateResource: (args, report) => {
      if (args.type !== 'kubernetes:networking.k8s.io/v1:Ingress') return;
      const tls = (args.props.spec?.tls ?? []) as Obj[];
      const covered = new Set(tls.filter((t) => t.secretName).flatMap((t) => t.hosts ?? []));
      for (const rule of args.props.spec?.rules ?? []) if (!covered.has(rule.host)) report(`host ${rule.host ?? '(any)'} has no TLS`);
    },
  },
  {
    name: 'gateway-listeners-terminate-tls',
    description: 'Every listener of a Gateway the program declares is HTTPS (or TLS) terminating TLS with a certificate; no plain-HTTP listener serves the proxy.',
    enforcementLevel: 'mandatory',
    validateResource: (args, report) => {
      if (args.type !== GATEWAY_TYPE) return;
      for (const l of (args.props.spec?.listeners ?? []) as Obj[]) {
        const what = `listener "${l.name}" (${l.hostname ?? 'any host'})`;
        if (l.protocol !== 'HTTPS' && l.protocol !== 'TLS') report(`${what} serves ${l.protocol}, not HTTPS`);
        else if ((l.tls?.mode ?? 'Terminate') !== 'Terminate') report(`${what} passes TLS through instead of terminating it`);
        else if ((l.tls?.certificateRefs ?? []).length === 0) report(`${what} has no certificateRefs`);
      }
    },
  },
  {
    name: 'ssh-host-key-strength',
    description: 'SSH host keys are Ed25519, ECDSA, or RSA of at least 3072 bits.',
    enforcementLevel: 'mandatory',
    validateResource: (args, report) => {
      if (args.type !== 'tls:index/privateKey:PrivateKey' || !/ssh/.test(args.name)) return;
      if (args.props.algorithm === 'RSA' && Number(args.props.rsaBits ?? 2048) < 3072) report(`RSA host key of ${args.props.rsaBits ?? 2048} bits is too weak`);
    },
  },
  {
    name: 'ssh-host-key-protected',
    description: 'The SSH host key is protected from deletion (a new key breaks every known_hosts). Advisory; make it mandatory for production.',
    enforcementLevel: 'advisory',
    validateResource: (args, report) => {
      if (args.type !== 'tls:index/privateKey:PrivateKey' || !/ssh/.test(args.name)) return;
      if (!args.opts.protect) report('the SSH host key is not protected');
    },
  },
];

/** Gateway API hostname matching: exact, or `*.zone` matching names below zone (never the apex itself). */
function hostMatches(listenerHost: string | undefined, routeHost: string): boolean {
  if (!listenerHost || listenerHost === routeHost) return true;
  if (!listenerHost.startsWith('*.')) return false;
  const suffix = listenerHost.slice(1);
  return !routeHost.startsWith('*.') && routeHost.endsWith(suffix) && routeHost.length > suffix.length;
}

export const stackPolicies: StackValidationPolicy[] = [
  {
    name: 'proxy-has-network-policy',
    description: 'Every namespace running the proxy has a NetworkPolicy selecting its pods for both Ingress and Egress.',
    enforcementLevel: 'mandatory',
    validateStack: (args: StackValidationArgs, report) => {
      const deployments = args.resources.filter((r: PolicyResource) => r.type === 'kubernetes:apps/v1:Deployment' && isProxy(r.props));
      const policies = args.resources.filter((r: PolicyResource) => r.type === 'kubernetes:networking.k8s.io/v1:NetworkPolicy');
      for (const d of deployments) {
        const podLabels: Obj = d.props.spec?.template?.metadata?.labels ?? {};
        const ok = policies.some((p) => {
          if (p.props.metadata?.namespace !== d.props.metadata?.namespace) return false;
          const types: string[] = p.props.spec?.policyTypes ?? [];
          const match: Obj = p.props.spec?.podSelector?.matchLabels ?? {};
          return types.includes('Ingress') && types.includes('Egress') && Object.entries(match).every(([k, v]) => podLabels[k] === v);
        });
        if (!ok) report(`Deployment ${d.props.metadata?.name} in ${d.props.metadata?.namespace} has no NetworkPolicy for Ingress and Egress`, d.urn);
      }
    },
  },
  {
    name: 'httproute-tls-for-every-host',
    description:
      'Every HTTPRoute names its hostnames, and each one is served by an HTTPS listener with a certificate on every Gateway of the program it attaches to (Gateways of others are theirs to check).',
    enforcementLevel: 'mandatory',
    validateStack: (args: StackValidationArgs, report) => {
      const gateways = args.resources.filter((r: PolicyResource) => r.type === GATEWAY_TYPE);
      for (const route of args.resources.filter((r: PolicyResource) => r.type === HTTPROUTE_TYPE)) {
        const where = `HTTPRoute ${route.props.metadata?.name}`;
        const hosts: string[] = route.props.spec?.hostnames ?? [];
        if (hosts.length === 0) report(`${where} has no hostnames (it would take every host of its listeners)`, route.urn);
        for (const ref of (route.props.spec?.parentRefs ?? []) as Obj[]) {
          const ns = ref.namespace ?? route.props.metadata?.namespace;
          const gw = gateways.find((g) => g.props.metadata?.name === ref.name && g.props.metadata?.namespace === ns);
          if (!gw) continue;
          const listeners = ((gw.props.spec?.listeners ?? []) as Obj[]).filter((l) => !ref.sectionName || l.name === ref.sectionName);
          for (const host of hosts) {
            const ok = listeners.some((l) => l.protocol === 'HTTPS' && (l.tls?.certificateRefs ?? []).length > 0 && hostMatches(l.hostname, host));
            if (!ok) report(`${where}: host ${host} has no HTTPS listener with a certificate on Gateway ${ns}/${ref.name}${ref.sectionName ? ` (section ${ref.sectionName})` : ''}`, route.urn);
          }
        }
      }
    },
  },
];

export const policies: (ResourceValidationPolicy | StackValidationPolicy)[] = [...resourcePolicies, ...stackPolicies];
