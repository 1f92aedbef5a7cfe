// The workspace directory's behaviour, held against both implementations: the production index
// (discovery/index-store.ts, fed Services as the watch feeds it) and the in-memory directory of the tests.
import type { V1Service } from '@kubernetes/client-node';
import pino from 'pino';
import { createWorkspaceIndex } from '../../proxy-image/src/discovery/index-store';
import { createMemoryDirectory } from '../support/memory-directory';
import { directoryConformance, ZONE, type ServiceSpec } from '../support/directory-conformance';

function service(s: ServiceSpec): V1Service {
  return {
    metadata: {
      name: s.name, namespace: s.namespace, uid: s.uid, labels: { 'agent.gitlab.com/id': '1' },
      annotations: { 'workspaces.gitlab.com/id': s.id, 'workspaces.gitlab.com/host-template': `{{.port}}-${s.name}.${ZONE}` },
    },
    spec: { clusterIP: s.clusterIP, ports: s.ports.map((p) => ({ port: p, targetPort: p })) },
  };
}

directoryConformance('discovery index', () => {
  const index = createWorkspaceIndex(pino({ level: 'silent' }));
  return { directory: index, put: (s) => index.apply(service(s)), remove: (ns, name) => index.remove(ns, name) };
});

directoryConformance('memory directory', () => {
  const memory = createMemoryDirectory();
  return {
    directory: memory,
    put: (s) => memory.add({
      name: s.name, namespace: s.namespace, uid: s.uid, id: s.id, backendHost: s.clusterIP,
      routes: Object.fromEntries(s.ports.map((p) => [`${p}-${s.name}.${ZONE}`, p])),
    }),
    remove: (ns, name) => memory.remove(name, ns),
  };
});
