// The CrossGuard policies, called directly on the resources the mocks captured from the real program
// (every shipped stack passes) and on deliberately weakened copies (each rule catches its case).
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import type { PolicyResource, ResourceValidationPolicy, StackValidationPolicy } from '@pulumi/policy';
import { resourcePolicies, stackPolicies } from '../../infra/policy/policies';
import type { CapturedResource, RunResult } from '../support/pulumi-mocks';
import { runStack, STACKS } from '../support/stack-fixtures';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- manifests are navigated field by field
type Obj = Record<string, any>;

function toPolicyResource(r: CapturedResource, props: Obj = r.inputs): PolicyResource {
  return {
    type: r.type,
    name: r.name,
    urn: r.urn,
    props,
    opts: {
      protect: r.options.protect,
      ignoreChanges: r.options.ignoreChanges,
      deleteBeforeReplace: r.options.deleteBeforeReplace,
      aliases: [],
      customTimeouts: { createSeconds: 0, updateSeconds: 0, deleteSeconds: 0 },
      additionalSecretOutputs: r.options.additionalSecretOutputs,
      parent: r.parentUrn,
    },
    dependencies: [],
    propertyDependencies: {},
    isType: () => false,
    asType: () => undefined,
  } as unknown as PolicyResource;
}

async function violationsOf(policy: ResourceValidationPolicy, r: CapturedResource, props?: Obj): Promise<string[]> {
  const out: string[] = [];
  const pr = toPolicyResource(r, props);
  const validate = policy.validateResource;
  const fns = Array.isArray(validate) ? validate : validate ? [validate] : [];
  for (const fn of fns) {
    await fn(
      { ...pr, stackTags: new Map(), getConfig: () => ({}) as never, notApplicable: () => { throw new Error('n/a'); } } as never,
      (message: string) => out.push(message),
    );
  }
  return out;
}

async function allViolations(run: RunResult): Promise<string[]> {
  const out: string[] = [];
  for (const r of run.resources) {
    for (const p of resourcePolicies) for (const v of await violationsOf(p, r)) out.push(`${p.name} ${r.type}/${r.name}: ${v}`);
  }
  for (const p of stackPolicies) {
    await p.validateStack(
      { resources: run.resources.map((r) => toPolicyResource(r)), stackTags: new Map(), getConfig: () => ({}) as never, notApplicable: () => { throw new Error('n/a'); } } as never,
      (message: string) => out.push(`${p.name}: ${message}`),
    );
  }
  return out;
}

const policy = (name: string) => {
  const p = resourcePolicies.find((x) => x.name === name);
  assert.ok(p, name);
  return p;
};

describe('CrossGuard policies on every shipped stack', () => {
  for (const stack of STACKS) {
    it(`${stack}: no mandatory violation`, async () => {
      const run = await runStack(stack);
      const mandatory = new Set([...resourcePolicies, ...stackPolicies].filter((p) => p.enforcementLevel === 'mandatory').map((p) => p.name));
      const violations = (await allViolations(run)).filter((v) => mandatory.has(v.split(' ')[0]?.replace(/:$/, '') as string));
      assert.deepEqual(violations, []);
    });
  }
});

describe('each policy catches what it is about', () => {
  let run: RunResult;
  let deployment: CapturedResource;
  const mutate = (f: (d: Obj) => void): Obj => {
    const copy = structuredClone(deployment.inputs) as Obj;
    f(copy);
    return copy;
  };
  const container = (d: Obj) => d.spec.template.spec.containers[0] as Obj;

  before(async () => {
    run = await runStack('prod');
    deployment = run.find('kubernetes:apps/v1:Deployment');
  });

  it('pods-run-as-non-root', async () => {
    const p = policy('pods-run-as-non-root');
    assert.deepEqual(await violationsOf(p, deployment), []);
    const v = await violationsOf(p, deployment, mutate((d) => { delete container(d).securityContext.runAsNonRoot; delete d.spec.template.spec.securityContext.runAsNonRoot; }));
    assert.match(v.join(), /runAsNonRoot must be true/);
    assert.match((await violationsOf(p, deployment, mutate((d) => { container(d).securityContext.runAsUser = 0; }))).join(), /runAsUser must not be 0/);
  });

  it('containers-locked-down', async () => {
    const p = policy('containers-locked-down');
    const cases: [(c: Obj) => void, RegExp][] = [
      [(c) => { c.securityContext.readOnlyRootFilesystem = false; }, /readOnlyRootFilesystem/],
      [(c) => { delete c.securityContext.allowPrivilegeEscalation; }, /allowPrivilegeEscalation/],
      [(c) => { c.securityContext.capabilities = { drop: ['NET_RAW'] }; }, /drop must include ALL/],
      [(c) => { c.securityContext.capabilities.add = ['NET_ADMIN']; }, /must not add/],
      [(c) => { c.securityContext.privileged = true; }, /privileged/],
      [(c) => { c.securityContext.seccompProfile = { type: 'Unconfined' }; }, /seccompProfile/],
    ];
    for (const [f, re] of cases) assert.match((await violationsOf(p, deployment, mutate((d) => f(container(d))))).join(), re);
  });

  it('no-host-namespaces', async () => {
    const v = await violationsOf(policy('no-host-namespaces'), deployment, mutate((d) => { d.spec.template.spec.hostNetwork = true; d.spec.template.spec.volumes.push({ name: 'h', hostPath: { path: '/' } }); }));
    assert.equal(v.length, 2);
  });

  it('secrets-as-files-only', async () => {
    const p = policy('secrets-as-files-only');
    assert.match((await violationsOf(p, deployment, mutate((d) => container(d).env.push({ name: 'CLIENT_SECRET', value: 'x' })))).join(), /plain text/);
    assert.match((await violationsOf(p, deployment, mutate((d) => container(d).env.push({ name: 'X', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } })))).join(), /from a Secret/);
    assert.match((await violationsOf(p, deployment, mutate((d) => { container(d).args = ['--client_secret=abc']; }))).join(), /command line/);
  });

  it('image-pinned-by-digest', async () => {
    const v = await violationsOf(policy('image-pinned-by-digest'), deployment, mutate((d) => { container(d).image = 'registry.example.com/proxy:latest'; }));
    assert.match(v.join(), /not pinned by digest/);
  });

  it('resources-declared', async () => {
    const v = await violationsOf(policy('resources-declared'), deployment, mutate((d) => { delete container(d).resources.limits; }));
    assert.match(v.join(), /limits\.memory/);
  });

  it('proxy-drains-gracefully', async () => {
    const p = policy('proxy-drains-gracefully');
    const v = await violationsOf(p, deployment, mutate((d) => { d.spec.template.spec.terminationGracePeriodSeconds = 10; delete container(d).readinessProbe; }));
    // The drain floor, the missing probe, and (the program's 5 s preStop sleep) the pause on top.
    assert.equal(v.length, 3);
    for (const re of [/shorter than the proxy's drain/, /readinessProbe is required/, /after its 5 s preStop sleep/]) assert.match(v.join('\n'), re);
    // A preStop pause is spent before SIGTERM, out of the same grace period.
    const short = await violationsOf(p, deployment, mutate((d) => {
      d.spec.template.spec.terminationGracePeriodSeconds = 32;
      container(d).lifecycle = { preStop: { sleep: { seconds: 5 } } };
    }));
    assert.match(short.join(), /preStop/);
    const enough = await violationsOf(p, deployment, mutate((d) => {
      d.spec.template.spec.terminationGracePeriodSeconds = 35;
      container(d).lifecycle = { preStop: { sleep: { seconds: 5 } } };
    }));
    assert.deepEqual(enough, []);
  });

  it('rbac-least-privilege', async () => {
    const p = policy('rbac-least-privilege');
    const role = run.find('kubernetes:rbac.authorization.k8s.io/v1:ClusterRole');
    assert.deepEqual(await violationsOf(p, role), []);
    const props = structuredClone(role.inputs) as Obj;
    props.rules = [{ apiGroups: [''], resources: ['secrets', 'pods'], verbs: ['get', 'delete'] }, { apiGroups: ['*'], resources: ['*'], verbs: ['*'] }];
    const v = await violationsOf(p, role, props);
    for (const re of [/wildcard/, /grants delete/, /access to secrets/, /only read services/]) assert.match(v.join('\n'), re);
  });

  it('only-ssh-on-load-balancers', async () => {
    const p = policy('only-ssh-on-load-balancers');
    const ssh = run.find('kubernetes:core/v1:Service', 'proxy-ssh');
    assert.deepEqual(await violationsOf(p, ssh), []);
    const http = run.find('kubernetes:core/v1:Service', 'proxy-http');
    const props = structuredClone(http.inputs) as Obj;
    props.spec.type = 'LoadBalancer';
    assert.match((await violationsOf(p, http, props)).join(), /exposed outside the cluster/);
  });

  it('ingress-tls-for-every-host', async () => {
    const ingress = run.find('kubernetes:networking.k8s.io/v1:Ingress');
    const props = structuredClone(ingress.inputs) as Obj;
    props.spec.tls.pop();
    assert.match((await violationsOf(policy('ingress-tls-for-every-host'), ingress, props)).join(), /\*\.workspaces\.example\.com has no TLS/);
  });

  it('ssh-host-key-strength and ssh-host-key-protected', async () => {
    const key = run.find('tls:index/privateKey:PrivateKey', 'ssh-host-key');
    assert.deepEqual(await violationsOf(policy('ssh-host-key-protected'), key), [], 'prod protects it');
    assert.match((await violationsOf(policy('ssh-host-key-strength'), key, { algorithm: 'RSA', rsaBits: 2048 })).join(), /too weak/);
    const dev = await runStack('dev');
    const devKey = dev.find('tls:index/privateKey:PrivateKey', 'ssh-host-key');
    assert.match((await violationsOf(policy('ssh-host-key-protected'), devKey)).join(), /not protected/);
  });

  it('proxy-has-network-policy', async () => {
    const p = stackPolicies[0] as StackValidationPolicy;
    const out: string[] = [];
    const withoutPolicy = run.resources.filter((r) => r.type !== 'kubernetes:networking.k8s.io/v1:NetworkPolicy').map((r) => toPolicyResource(r));
    await p.validateStack({ resources: withoutPolicy, stackTags: new Map(), getConfig: () => ({}) as never, notApplicable: () => { throw new Error('n/a'); } } as never, (m: string) => out.push(m));
    assert.match(out.join(), /has no NetworkPolicy/);
  });
});
