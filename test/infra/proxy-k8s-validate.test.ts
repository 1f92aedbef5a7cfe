// Every Kubernetes object the program declares, for every shipped stack, against the Kubernetes
// schemas (kubernetes-models, cert-manager and Gateway API models) plus the checks they miss.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { validateAll, validateK8sResource, toApiKind } from '../support/k8s-validate';
import type { CapturedResource } from '../support/pulumi-mocks';
import { runStack, STACKS } from '../support/stack-fixtures';

describe('Kubernetes objects of each stack', () => {
  for (const stack of STACKS) {
    it(`${stack}: all valid`, async () => {
      const run = await runStack(stack);
      const objects = run.resources.filter((r) => toApiKind(r) !== null);
      const kinds = new Set(objects.map((r) => toApiKind(r)?.kind));
      for (const kind of ['Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Deployment', 'Service', 'Secret', 'PodDisruptionBudget', 'NetworkPolicy', 'Ingress']) {
        assert.ok(kinds.has(kind), `${kind} validated`);
      }
      assert.deepEqual(await validateAll(run.resources), {});
    });
  }
});

// The validator itself must catch what it claims to; otherwise the test above proves nothing.
function fake(type: string, inputs: Record<string, unknown>): CapturedResource {
  return {
    type, name: 'x', urn: 'urn:x', id: 'x', custom: true, parentUrn: undefined, dependencies: [], inputs, secretPaths: [],
    state: {}, options: { protect: false, retainOnDelete: false, deleteBeforeReplace: false, ignoreChanges: [], replaceOnChanges: [], additionalSecretOutputs: [], deletedWith: '', provider: '' },
  };
}
const deployment = (container: Record<string, unknown>) =>
  fake('kubernetes:apps/v1:Deployment', {
    metadata: { name: 'proxy' },
    spec: { selector: { matchLabels: { a: 'b' } }, template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'img@sha256:1', ...container }] } } },
  });

describe('k8s-validate', () => {
  it('accepts a minimal valid Deployment', async () => {
    assert.deepEqual(await validateK8sResource(deployment({ ports: [{ name: 'http', containerPort: 80 }], readinessProbe: { httpGet: { path: '/', port: 'http' } } })), []);
  });
  it('reports schema errors (wrong type)', async () => {
    const problems = await validateK8sResource(deployment({ ports: [{ containerPort: '80' }] }));
    assert.ok(problems.some((p) => p.startsWith('schema:') && p.includes('containerPort')), problems.join('; '));
  });
  it('reports a port out of range, a missing image and a probe on a port the container lacks', async () => {
    const problems = await validateK8sResource(deployment({ image: '', ports: [{ name: 'http', containerPort: 70000 }], livenessProbe: { httpGet: { path: '/', port: 'metrics' } } }));
    assert.ok(problems.some((p) => /containerPort 70000 out of range/.test(p)));
    assert.ok(problems.some((p) => /image is missing/.test(p)));
    assert.ok(problems.some((p) => /livenessProbe port metrics/.test(p)));
  });
  it('reports Service ports out of range and bad names', async () => {
    const problems = await validateK8sResource(fake('kubernetes:core/v1:Service', { metadata: { name: 'Bad_Name' }, spec: { ports: [{ port: 0, targetPort: 70000 }] } }));
    assert.ok(problems.some((p) => /Service port 0/.test(p)));
    assert.ok(problems.some((p) => /targetPort 70000/.test(p)));
    assert.ok(problems.some((p) => /DNS-1123/.test(p)));
  });
  it('validates custom resources and rejects unknown kinds', async () => {
    const cert = fake('kubernetes:apiextensions.k8s.io:CustomResource', { apiVersion: 'cert-manager.io/v1', kind: 'Certificate', metadata: { name: 'c' }, spec: { secretName: 7 } });
    assert.ok((await validateK8sResource(cert)).some((p) => p.startsWith('schema:')));
    const typo = fake('kubernetes:apiextensions.k8s.io:CustomResource', { apiVersion: 'cert-manager.io/v1', kind: 'Certifikate', metadata: { name: 'c' } });
    assert.deepEqual(await validateK8sResource(typo), ['no schema known for cert-manager.io/v1 Certifikate']);
  });
});
