/**
 * Schema validation for Kubernetes objects a Pulumi program declares (captured by pulumi-mocks.ts).
 *
 * API
 *   const problems = await validateK8sResource(resource);   // string[]; empty when valid
 *   const all = await validateAll(run.resources);           // { 'type/name': problems } for every k8s object
 *   toManifest(resource)                                    // { apiVersion, kind, metadata, spec, ... }
 *
 * Built-in kinds are checked with kubernetes-models, custom resources (cert-manager, Gateway API)
 * with @kubernetes-models/cert-manager and @kubernetes-models/gateway-api; an apiVersion/kind that no
 * package knows is itself a problem (so a typo is not silently accepted). On top of the schema, checks
 * the schema misses: every port number in 1..65535, every container has a non-empty image, probe ports
 * (number or name) exist among the container's ports, Service targetPorts name a port of the pods they
 * select when they are named, and metadata.name is a DNS-1123 name.
 * Helm Releases, ConfigFile/ConfigGroup and providers are not Kubernetes objects and are skipped.
 */
import type { CapturedResource } from './pulumi-mocks';

/** Pulumi type token → apiVersion/kind; null for things that are not Kubernetes objects. */
export function toApiKind(r: CapturedResource): { apiVersion: string; kind: string } | null {
  if (!r.type.startsWith('kubernetes:') || !r.custom) return null;
  if (r.type === 'kubernetes:apiextensions.k8s.io:CustomResource') {
    return { apiVersion: String(r.inputs.apiVersion), kind: String(r.inputs.kind) };
  }
  const m = /^kubernetes:([^:]+):([A-Za-z]+)$/.exec(r.type);
  if (!m) return null;
  const [, groupVersion = '', kind = ''] = m;
  if (groupVersion.startsWith('helm.sh') || groupVersion.startsWith('yaml') || kind.endsWith('Patch')) return null;
  const apiVersion = groupVersion.startsWith('core/') ? groupVersion.slice('core/'.length) : groupVersion;
  return { apiVersion, kind };
}

export function toManifest(r: CapturedResource): Record<string, unknown> {
  const ak = toApiKind(r);
  if (!ak) throw new Error(`${r.type} is not a Kubernetes object`);
  const manifest: Record<string, unknown> = { ...r.inputs, apiVersion: ak.apiVersion, kind: ak.kind };
  // The provider fills metadata.name when the program leaves it out (auto-naming).
  const metadata = { ...((r.inputs.metadata as Record<string, unknown>) ?? {}) };
  if (!metadata.name) metadata.name = (r.state.metadata as Record<string, unknown> | undefined)?.name ?? r.name;
  manifest.metadata = metadata;
  return manifest;
}

const PACKAGES = ['kubernetes-models', '@kubernetes-models/cert-manager', '@kubernetes-models/gateway-api'];

async function modelClass(apiVersion: string, kind: string): Promise<(new (o: unknown) => { validate(): void }) | undefined> {
  for (const pkg of PACKAGES) {
    try {
      const mod = (await import(`${pkg}/${apiVersion}`)) as Record<string, unknown>;
      const cls = mod[kind];
      if (typeof cls === 'function') return cls as new (o: unknown) => { validate(): void };
    } catch {
      // not in this package; try the next
    }
  }
  return undefined;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- manifests are navigated field by field
type Obj = Record<string, any>;

function podSpecOf(manifest: Obj): Obj | undefined {
  if (manifest.kind === 'Pod') return manifest.spec;
  if (manifest.kind === 'CronJob') return manifest.spec?.jobTemplate?.spec?.template?.spec;
  return manifest.spec?.template?.spec;
}

const validPort = (p: unknown) => typeof p === 'number' && Number.isInteger(p) && p >= 1 && p <= 65535;

function ownChecks(manifest: Obj): string[] {
  const problems: string[] = [];
  const name = String(manifest.metadata?.name ?? '');
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name) || name.length > 253) problems.push(`metadata.name "${name}" is not a DNS-1123 name`);

  const pod = podSpecOf(manifest);
  if (pod) {
    const containers: Obj[] = [...(pod.containers ?? []), ...(pod.initContainers ?? [])];
    if ((pod.containers ?? []).length === 0) problems.push('pod spec has no containers');
    for (const c of containers) {
      const where = `container ${c.name}`;
      if (typeof c.image !== 'string' || c.image.trim() === '') problems.push(`${where}: image is missing`);
      const ports: Obj[] = c.ports ?? [];
      for (const p of ports) if (!validPort(p.containerPort)) problems.push(`${where}: containerPort ${p.containerPort} out of range`);
      const names = new Set(ports.map((p) => p.name).filter(Boolean));
      const numbers = new Set(ports.map((p) => p.containerPort));
      for (const probeName of ['livenessProbe', 'readinessProbe', 'startupProbe']) {
        const probe = c[probeName];
        const port = probe?.httpGet?.port ?? probe?.tcpSocket?.port ?? probe?.grpc?.port;
        if (port === undefined) continue;
        const ok = typeof port === 'number' ? validPort(port) && numbers.has(port) : names.has(port);
        if (!ok) problems.push(`${where}: ${probeName} port ${port} is not a port of the container`);
      }
    }
  }
  if (manifest.kind === 'Service') {
    for (const p of (manifest.spec?.ports ?? []) as Obj[]) {
      if (!validPort(p.port)) problems.push(`Service port ${p.port} out of range`);
      if (typeof p.targetPort === 'number' && !validPort(p.targetPort)) problems.push(`Service targetPort ${p.targetPort} out of range`);
      if (p.nodePort !== undefined && !(p.nodePort >= 30000 && p.nodePort <= 32767)) problems.push(`Service nodePort ${p.nodePort} out of range`);
    }
  }
  if (manifest.kind === 'NetworkPolicy') {
    for (const rule of [...(manifest.spec?.ingress ?? []), ...(manifest.spec?.egress ?? [])] as Obj[]) {
      for (const p of (rule.ports ?? []) as Obj[]) {
        if (typeof p.port === 'number' && !validPort(p.port)) problems.push(`NetworkPolicy port ${p.port} out of range`);
      }
    }
  }
  return problems;
}

export async function validateK8sResource(r: CapturedResource): Promise<string[]> {
  const ak = toApiKind(r);
  if (!ak) return [];
  const manifest = toManifest(r);
  const problems: string[] = [];
  const Model = await modelClass(ak.apiVersion, ak.kind);
  if (!Model) {
    problems.push(`no schema known for ${ak.apiVersion} ${ak.kind}`);
  } else {
    try {
      new Model(manifest).validate();
    } catch (e) {
      problems.push(`schema: ${(e as Error).message}`);
    }
  }
  problems.push(...ownChecks(manifest));
  return problems;
}

/** Validates every Kubernetes object in the list; the result only has entries with problems. */
export async function validateAll(resources: CapturedResource[]): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const r of resources) {
    const problems = await validateK8sResource(r);
    if (problems.length > 0) out[`${r.type}/${r.name}`] = problems;
  }
  return out;
}
