// The GitLabWorkspaces component used the way another Pulumi program uses it (test/consumer/program.ts:
// imported by package name, with the program's own Kubernetes provider, an existing controller and, in
// gateway mode, an existing Gateway), in both routing modes, under mocks: every object valid against
// the Kubernetes, Gateway API and cert-manager schemas, every Kubernetes object through the caller's
// provider, Pulumi's component conventions, and settings checked before anything is declared.
/* eslint-disable @typescript-eslint/no-explicit-any -- assertions dig into the untyped inputs the mocks captured */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as pulumi from '@pulumi/pulumi';
import { parse } from 'yaml';
import { GitLabWorkspaces, StackConfigError, WORKSPACES_TYPE } from 'gitlab-workspaces-access';
import { resourcePolicies, stackPolicies } from '../../infra/policy/policies';
import { consumerProgram, type RoutingMode } from '../consumer/program';
import { validateAll } from '../support/k8s-validate';
import { runPulumiProgram, type CapturedResource, type RunResult } from '../support/pulumi-mocks';

const LB = { overrides: { 'kubernetes:core/v1:Service': (a: { id?: string }) => (a.id === 'edge/edge-lb' ? { status: { loadBalancer: { ingress: [{ ip: '198.51.100.30' }] } } } : {}) } };

function run(mode: RoutingMode): Promise<RunResult> {
  return runPulumiProgram(consumerProgram(mode), { project: 'platform', stack: 'prod', aliasUrns: true, ...LB });
}

const ancestors = (r: RunResult, x: CapturedResource): CapturedResource[] => {
  const out: CapturedResource[] = [];
  for (let p = r.parentOf(x); p; p = r.parentOf(p)) out.push(p);
  return out;
};

/** Mandatory policies of the policy pack (advisory ones depend on the stack). */
async function mandatoryViolations(r: RunResult): Promise<string[]> {
  const out: string[] = [];
  const noop = { stackTags: new Map(), getConfig: () => ({}) as never, notApplicable: () => { throw new Error('n/a'); } };
  const pr = (x: CapturedResource) => ({ type: x.type, name: x.name, urn: x.urn, props: x.inputs, opts: { protect: x.options.protect } }) as any;
  for (const x of r.resources) {
    for (const p of resourcePolicies.filter((q) => q.enforcementLevel === 'mandatory')) {
      const fns = Array.isArray(p.validateResource) ? p.validateResource : [p.validateResource];
      for (const fn of fns) await fn?.({ ...pr(x), ...noop }, (m: string) => out.push(`${p.name} ${x.name}: ${m}`));
    }
  }
  for (const p of stackPolicies) await p.validateStack({ resources: r.resources.map(pr), ...noop } as never, (m: string) => out.push(`${p.name}: ${m}`));
  return out;
}

for (const mode of ['ingress', 'gateway'] as const) {
  describe(`a consumer program, ${mode} routing`, () => {
    it('every object is valid, goes through the caller\'s provider, and follows the component conventions', async () => {
      const r = await run(mode);
      assert.equal(r.error, undefined);
      assert.deepEqual(await validateAll(r.resources), {});
      assert.deepEqual(await mandatoryViolations(r), []);

      const provider = r.find('pulumi:providers:kubernetes', 'platform-cluster');
      const component = r.find(WORKSPACES_TYPE, 'workspaces');
      assert.equal(r.parentOf(component)?.type, 'pulumi:pulumi:Stack');
      assert.equal(component.custom, false);
      const k8sObjects = r.resources.filter((y) => y.custom && y.type.startsWith('kubernetes:'));
      assert.ok(k8sObjects.length > 10);
      for (const x of k8sObjects) {
        assert.ok(x.options.provider.startsWith(`${provider.urn}::`), `${x.type}/${x.name} uses the caller's provider, not ${x.options.provider}`);
        assert.ok(ancestors(r, x).includes(component), `${x.type}/${x.name} is inside the component`);
      }
      for (const child of r.children(component)) assert.match(child.name, /^workspaces-/, 'children are named after the component');
      // No alias to the stack's root (those are for this repository's own stacks).
      for (const x of r.resources) {
        for (const a of x.options.aliasUrns ?? []) assert.ok(a.includes(`::${WORKSPACES_TYPE}$`), `${x.name}: alias ${a} leaves the component`);
      }

      const kinds = r.resources.map((x) => x.type);
      if (mode === 'gateway') {
        const routes = r.ofType('kubernetes:gateway.networking.k8s.io/v1:HTTPRoute');
        assert.equal(routes.length, 2);
        assert.ok(!kinds.some((t) => t.endsWith(':Ingress') || t === 'kubernetes:gateway.networking.k8s.io/v1:Gateway' || t.includes('helm.sh')));
        for (const route of routes) {
          assert.deepEqual((route.inputs.spec as any).parentRefs.map((p: any) => [p.namespace, p.name]), [['edge', 'shared']]);
          assert.equal((route.inputs.metadata as any).namespace, 'dev-workspaces');
        }
      } else {
        const ingress = r.ofType('kubernetes:networking.k8s.io/v1:Ingress');
        assert.ok(ingress.length >= 1);
        for (const i of ingress) assert.equal((i.inputs.spec as any).ingressClassName, 'edge');
        assert.ok(!kinds.some((t) => t.includes('gateway.networking.k8s.io')));
        // ACME certificates through cert-manager (validated against its schemas above); no controller installed.
        assert.ok(kinds.includes('kubernetes:cert-manager.io/v1:Certificate') && kinds.includes('kubernetes:cert-manager.io/v1:ClusterIssuer'));
        assert.deepEqual(r.ofType('kubernetes:helm.sh/v3:Release').map((x) => x.inputs.chart), ['cert-manager']);
      }
      // The caller's secret stays a secret down to the config Secret.
      const config = r.ofType('kubernetes:core/v1:Secret').find((s) => s.name === 'workspaces-proxy-config');
      assert.ok(config && config.secretPaths.includes('stringData'), 'the proxy config Secret holds the OAuth secret as a secret');

      assert.equal(r.outputs.proxyUrl, 'https://workspaces.platform.example.org');
      assert.equal(r.outputs.loadBalancerAddress, '198.51.100.30');
      const rd = (parse(String(r.outputs.agentConfig)) as any).remote_development;
      assert.deepEqual([rd.dns_zone, rd.gitlab_workspaces_proxy.namespace], ['workspaces.platform.example.org', 'dev-workspaces']);
      assert.match(String(r.outputs.sshEndpoint), /^ssh -p 2222 <workspace-name>@ssh\.workspaces\.platform\.example\.org {2}\(host key SHA256:/);
      assert.match((r.outputs.verification as Record<string, string>).pods ?? '', mode === 'gateway' ? /httproutes/ : /ingress/);
    });
  });
}

describe('component settings', () => {
  it('a bad setting names itself and declares nothing', async () => {
    const r = await runPulumiProgram(
      () =>
        new GitLabWorkspaces('ws', {
          proxyDomain: 'Not A Domain',
          gitlabUrl: 'ftp://gitlab.example.org',
          oauth: { mode: 'managed' },
          image: 'registry.example.org/proxy:latest',
          routing: { mode: 'gateway', gateway: { existing: 'no-slash' } },
        }),
      { project: 'platform', stack: 'prod', expectError: true },
    );
    assert.ok(r.error instanceof StackConfigError, String(r.error));
    const problems = (r.error as StackConfigError).problems.join('\n');
    for (const re of [/GitLabWorkspaces ws\.proxyDomain: must be a lower-case DNS name/, /GitLabWorkspaces ws\.gitlabUrl: /, /GitLabWorkspaces ws\.image: must be pinned by digest/, /GitLabWorkspaces ws\.routing\.gateway\.existing: /, /GitLabWorkspaces ws\.gitlabAdminToken: required when oauth\.mode is managed/]) {
      assert.match(problems, re);
    }
    assert.deepEqual(r.resources.filter((x) => x.type !== 'pulumi:pulumi:Stack'), [], 'nothing declared');
  });

  it('two instances in one program (two namespaces) do not collide', async () => {
    const r = await runPulumiProgram(
      async () => {
        const common = {
          gitlabUrl: 'https://gitlab.example.org',
          oauth: { mode: 'provided' as const },
          oauthClientId: 'id',
          image: `registry.example.org/proxy@sha256:${'c'.repeat(64)}`,
          controller: { mode: 'existing' as const, existingService: 'edge/edge-lb' },
          secrets: { oauthClientSecret: pulumi.secret('s') },
        };
        new GitLabWorkspaces('team-a', { ...common, proxyDomain: 'a.example.org', namespace: 'team-a' });
        new GitLabWorkspaces('team-b', { ...common, proxyDomain: 'b.example.org', namespace: 'team-b' });
        return {};
      },
      { project: 'platform', stack: 'prod', ...LB },
    );
    assert.equal(r.error, undefined);
    assert.equal(new Set(r.resources.map((x) => x.urn)).size, r.resources.length);
    assert.deepEqual(await validateAll(r.resources), {});
  });
});
