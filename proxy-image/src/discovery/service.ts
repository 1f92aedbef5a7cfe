// Turns one Kubernetes Service into what the proxy routes (docs/contract.md §3), or says why it cannot.
import { isIP } from 'node:net';
import type { V1Service } from '@kubernetes/client-node';
import { renderHost } from './template';

export const agentLabel = 'agent.gitlab.com/id';
export const hostTemplateAnnotation = 'workspaces.gitlab.com/host-template';
export const workspaceIdAnnotation = 'workspaces.gitlab.com/id';

export interface ServiceRoutes {
  key: string;
  name: string;
  namespace: string;
  uid: string;
  resourceVersion: string;
  id: string;
  backendHost: string;
  /** One per port, in port order, hosts unique within the Service. */
  routes: { host: string; port: number }[];
}

export type ParseResult = { ok: true; value: ServiceRoutes } | { ok: false; key: string; reason: string };

export const serviceKey = (namespace: string, name: string): string => `${namespace}/${name}`;

export function parseService(svc: V1Service): ParseResult {
  const name = svc.metadata?.name ?? '';
  const namespace = svc.metadata?.namespace ?? '';
  const key = serviceKey(namespace, name);
  if (!name || !namespace) return { ok: false, key, reason: 'Service has no name or namespace' };
  const annotations = svc.metadata?.annotations ?? {};
  const template = annotations[hostTemplateAnnotation];
  if (!template) return { ok: false, key, reason: `missing annotation ${hostTemplateAnnotation}` };
  const id = annotations[workspaceIdAnnotation]?.trim();
  if (!id) return { ok: false, key, reason: `missing annotation ${workspaceIdAnnotation}` };
  if (!/^\d+$/.test(id)) return { ok: false, key, reason: `annotation ${workspaceIdAnnotation} is not a number` };

  const clusterIP = svc.spec?.clusterIP;
  // Headless Services (clusterIP "None") and odd values fall back to the Service's DNS name.
  const backendHost = clusterIP && isIP(clusterIP) ? clusterIP : `${name}.${namespace}.svc`;

  const routes: { host: string; port: number }[] = [];
  const seen = new Set<string>();
  for (const p of svc.spec?.ports ?? []) {
    // A named targetPort cannot be resolved without the Pod, so the Service port is used instead.
    const port = typeof p.targetPort === 'number' ? p.targetPort
      : typeof p.targetPort === 'string' && /^\d+$/.test(p.targetPort) ? Number(p.targetPort) : p.port;
    const host = renderHost(template, port);
    if (!host.ok) return { ok: false, key, reason: `annotation ${hostTemplateAnnotation}: ${host.error}` };
    // A template without {{.port}} gives every port the same host: the first port keeps it.
    if (seen.has(host.value)) continue;
    seen.add(host.value);
    routes.push({ host: host.value, port });
  }
  return {
    ok: true,
    value: {
      key, name, namespace, uid: svc.metadata?.uid ?? '', resourceVersion: svc.metadata?.resourceVersion ?? '',
      id, backendHost, routes,
    },
  };
}
