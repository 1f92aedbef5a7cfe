// Gateway API routing (routing.mode: gateway) through the whole program under mocks: every shipped
// stack in every TLS mode, an existing controller, an existing Gateway; every object validated against
// the Kubernetes, Gateway API and cert-manager schemas; the policies on the result and on weakened copies.
/* eslint-disable @typescript-eslint/no-explicit-any -- assertions dig into the untyped inputs the mocks captured */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PolicyResource, ResourceValidationPolicy, StackValidationPolicy } from '@pulumi/policy';
import { parseStackConfig, StackConfigError } from '../../infra/config';
import { gatewayApiCrdsUrl, GATEWAY_API_VERSION, traefikValues, controllerConfigSchema } from '../../infra/platform';
import { resourcePolicies, stackPolicies } from '../../infra/policy/policies';
import { validateAll, validateK8sResource } from '../support/k8s-validate';
import type { CapturedResource, RunOptions, RunResult } from '../support/pulumi-mocks';
import { runStack, SECRET_FIXTURES, STACKS } from '../support/stack-fixtures';

const P = 'gitlab-workspaces';
const GW = 'kubernetes:gateway.networking.k8s.io/v1:Gateway';
const GW_CLASS = 'kubernetes:gateway.networking.k8s.io/v1:GatewayClass';
const ROUTE = 'kubernetes:gateway.networking.k8s.io/v1:HTTPRoute';
const CRDS = 'kubernetes:yaml/v2:ConfigFile';
const RELEASE = 'kubernetes:helm.sh/v3:Release';
const INGRESS = 'kubernetes:networking.k8s.io/v1:Ingress';
const CERTIFICATE = 'kubernetes:cert-manager.io/v1:Certificate';
const ISSUER = 'kubernetes:cert-manager.io/v1:ClusterIssuer';
const SECRET = 'kubernetes:core/v1:Secret';
const SERVICE = 'kubernetes:core/v1:Service';
const TLS_MODES = ['self-signed', 'acme', 'provided'] as const;

function run(stack: string, overrides: Record<string, unknown>, opts: Omit<RunOptions, 'config' | 'secretKeys' | 'stack'> = {}): Promise<RunResult> {
  const extra: Record<string, string> = { ...SECRET_FIXTURES };
  for (const [k, v] of Object.entries(overrides)) extra[`${P}:${k}`] = typeof v === 'string' ? v : JSON.stringify(v);
  return runStack(stack, extra, { ...opts, extraSecretKeys: Object.keys(SECRET_FIXTURES) });
}

const tlsFor = (mode: (typeof TLS_MODES)[number]) => ({ mode, acme: { server: 'staging', email: 'ops@example.com' } });
const meta = (r: CapturedResource) => r.inputs.metadata as { name: string; namespace?: string; annotations?: Record<string, string> };
const spec = (r: CapturedResource) => r.inputs.spec as any;
const dependsOn = (a: CapturedResource, b: CapturedResource) => a.dependencies.includes(b.urn);
/** Helm releases of the platform part (the managed GitLab agent's agentk release is not one). */
const platformReleases = (r: RunResult) => r.ofType(RELEASE).filter((x) => x.inputs.chart !== 'gitlab-agent').map((x) => String(x.inputs.chart));

function policyResource(r: CapturedResource, props: any = r.inputs): PolicyResource {
  return { type: r.type, name: r.name, urn: r.urn, props, opts: { protect: r.options.protect } } as unknown as PolicyResource;
}
const noop = { stackTags: new Map(), getConfig: () => ({}) as never, notApplicable: () => { throw new Error('n/a'); } };

async function resourceViolations(p: ResourceValidationPolicy, r: CapturedResource, props?: any): Promise<string[]> {
  const out: string[] = [];
  const fns = Array.isArray(p.validateResource) ? p.validateResource : [p.validateResource];
  for (const fn of fns) await fn?.({ ...policyResource(r, props), ...noop } as never, (m: string) => out.push(m));
  return out;
}

async function stackViolations(resources: PolicyResource[]): Promise<string[]> {
  const out: string[] = [];
  for (const p of stackPolicies as StackValidationPolicy[]) await p.validateStack({ resources, ...noop } as never, (m: string) => out.push(`${p.name}: ${m}`));
  return out;
}

/** Mandatory policies only (advisory ones, such as a protected SSH key, depend on the stack). */
async function allViolations(r: RunResult): Promise<string[]> {
  const out: string[] = [];
  const mandatory = resourcePolicies.filter((p) => p.enforcementLevel === 'mandatory');
  for (const x of r.resources) for (const p of mandatory) for (const v of await resourceViolations(p, x)) out.push(`${p.name} ${x.name}: ${v}`);
  return [...out, ...(await stackViolations(r.resources.map((x) => policyResource(x))))];
}

for (const stackName of STACKS) {
  describe(`gateway mode, stack ${stackName}`, () => {
    for (const mode of TLS_MODES) {
      it(`tls ${mode}: Gateway with two HTTPS listeners, HTTPRoutes to the proxy, all objects valid, policies pass`, async () => {
        const r = await run(stackName, { routing: { mode: 'gateway' }, tls: tlsFor(mode) });
        assert.deepEqual(await validateAll(r.resources), {});
        assert.deepEqual(await allViolations(r), []);
        assert.equal(r.ofType(INGRESS).length, 0, 'no Ingress in gateway mode');

        // CRDs: the pinned standard channel, before Traefik and cert-manager.
        const crds = r.find(CRDS);
        assert.equal(crds.inputs.file, `https://github.com/kubernetes-sigs/gateway-api/releases/download/${GATEWAY_API_VERSION}/standard-install.yaml`);
        const traefik = r.find(RELEASE, 'controller-traefik');
        assert.ok(dependsOn(traefik, crds), 'Traefik starts after the CRDs exist');
        const values = traefik.inputs.values as any;
        assert.equal(values.providers.kubernetesGateway.enabled, true);
        assert.equal(values.gateway.enabled, false, "the chart's default Gateway is off");
        assert.equal(values.gatewayClass.enabled, false, "the chart's GatewayClass is off (the program declares it)");
        const lb = r.find(SERVICE, 'controller-lb');
        assert.ok(values.additionalArguments.includes(`--providers.kubernetesgateway.statusaddress.service.name=${meta(lb).name}`));

        // GatewayClass for Traefik; Gateway in the proxy namespace.
        const cls = r.find(GW_CLASS);
        assert.equal(spec(cls).controllerName, 'traefik.io/gateway-controller');
        const gw = r.find(GW);
        const proxyNs = meta(r.find('kubernetes:core/v1:Namespace', 'proxy')).name;
        assert.equal(meta(gw).namespace, proxyNs);
        assert.equal(spec(gw).gatewayClassName, meta(cls).name);
        const listeners = spec(gw).listeners as any[];
        const domain = String((r.outputs.proxyUrl as string).replace('https://', ''));
        assert.deepEqual(listeners.map((l) => [l.name, l.hostname, l.protocol, l.port, l.tls.mode]), [
          ['proxy', domain, 'HTTPS', 8443, 'Terminate'],
          ['workspaces', `*.${domain}`, 'HTTPS', 8443, 'Terminate'],
        ]);
        // 8443 is the Traefik chart's websecure entry point (exposed as 443 by the LoadBalancer Service).
        assert.ok((spec(lb).ports as any[]).some((p) => p.port === 443 && p.targetPort === 'websecure'));
        const refs = listeners.map((l) => l.tls.certificateRefs[0].name);
        assert.deepEqual(refs, ['gitlab-workspaces-proxy-tls', 'gitlab-workspaces-wildcard-tls']);

        // TLS per mode: Secrets the listeners reference, or cert-manager's gateway-shim.
        const release = r.ofType(RELEASE).find((x) => x.inputs.chart === 'cert-manager');
        if (mode === 'acme') {
          assert.equal(r.ofType(CERTIFICATE).length, 0, 'gateway-shim creates the Certificates from the listeners');
          const issuer = r.find(ISSUER);
          assert.equal(meta(gw).annotations?.['cert-manager.io/cluster-issuer'], meta(issuer).name);
          assert.ok(dependsOn(gw, issuer), 'the Gateway waits for its issuer');
          assert.deepEqual((release?.inputs.values as any).config, {
            apiVersion: 'controller.config.cert-manager.io/v1alpha1',
            kind: 'ControllerConfiguration',
            enableGatewayAPI: true,
          });
          assert.ok(release && dependsOn(release, crds), 'cert-manager starts after the Gateway API CRDs');
        } else {
          assert.equal(release, undefined);
          assert.equal(meta(gw).annotations, undefined);
          const tlsSecrets = r.ofType(SECRET).filter((s) => s.inputs.type === 'kubernetes.io/tls');
          assert.deepEqual(tlsSecrets.map((s) => [meta(s).name, meta(s).namespace]).sort(), refs.map((n) => [n, proxyNs]).sort());
        }

        // One route per listener, to the proxy's HTTP Service.
        const routes = r.ofType(ROUTE);
        const http = r.find(SERVICE, 'proxy-http');
        assert.deepEqual(
          routes.map((x) => [spec(x).hostnames, spec(x).parentRefs.map((p: any) => `${p.namespace}/${p.name}#${p.sectionName}`)]),
          [
            [[domain], [`${proxyNs}/${meta(gw).name}#proxy`]],
            [[`*.${domain}`], [`${proxyNs}/${meta(gw).name}#workspaces`]],
          ],
        );
        for (const x of routes) {
          assert.ok(dependsOn(x, gw), 'routes after (and deleted before) the Gateway');
          assert.equal(meta(x).namespace, proxyNs);
          assert.deepEqual(spec(x).rules[0].backendRefs, [{ group: '', kind: 'Service', name: meta(http).name, port: (spec(http).ports as any[])[0].port }]);
          assert.equal(r.parentOf(x)?.type, 'gitlab-workspaces:proxy:Routing');
        }
        const verification = r.outputs.verification as Record<string, string>;
        assert.match(verification.pods ?? '', /get pods,httproutes/);
        assert.match(verification.gateway ?? '', new RegExp(`-n ${proxyNs} get gateway ${meta(gw).name} .*PROGRAMMED True`));
        assert.equal(r.outputs.loadBalancerAddress, '203.0.113.10');
      });
    }
  });
}

describe('gateway mode with what the cluster already has', () => {
  const existingController = { mode: 'existing', existingService: 'edge/envoy-lb' };
  // The existing controller's LoadBalancer Service, as read from the cluster.
  const lbStatus: Pick<RunOptions, 'overrides'> = { overrides: { [SERVICE]: (a) => (a.id === 'edge/envoy-lb' ? { status: { loadBalancer: { ingress: [{ ip: '198.51.100.7' }] } } } : {}) } };

  it('an existing controller: a Gateway of the given class on port 443, no GatewayClass, no CRDs, no Traefik', async () => {
    const r = await run('dev', { controller: existingController, routing: { mode: 'gateway', gateway: { className: 'eg' } }, tls: tlsFor('self-signed') }, lbStatus);
    assert.deepEqual(await validateAll(r.resources), {});
    assert.deepEqual(await allViolations(r), []);
    assert.deepEqual(platformReleases(r), [], 'no Traefik');
    assert.equal(r.ofType(CRDS).length, 0, 'the cluster is expected to have the CRDs (routing.gateway.installCrds: false by default here)');
    assert.equal(r.ofType(GW_CLASS).length, 0);
    const gw = r.find(GW);
    assert.equal(spec(gw).gatewayClassName, 'eg');
    assert.deepEqual((spec(gw).listeners as any[]).map((l) => l.port), [443, 443]);
  });

  it('installCrds: true installs them with an existing controller too', async () => {
    const r = await run('dev', { controller: existingController, routing: { mode: 'gateway', gateway: { installCrds: true, crdVersion: 'v1.5.0' } }, tls: tlsFor('self-signed') }, lbStatus);
    assert.equal(r.find(CRDS).inputs.file, gatewayApiCrdsUrl('v1.5.0'));
  });

  it("an existing Gateway: only HTTPRoutes, attached to it; no Gateway, no certificates", async () => {
    const r = await run('dev', {
      controller: existingController,
      routing: { mode: 'gateway', gateway: { existing: 'edge/shared' } },
      tls: { mode: 'self-signed' },
    }, lbStatus);
    assert.deepEqual(await validateAll(r.resources), {});
    assert.deepEqual(await allViolations(r), []);
    for (const t of [GW, GW_CLASS, CRDS, CERTIFICATE]) assert.equal(r.ofType(t).length, 0, t);
    assert.deepEqual(platformReleases(r), [], 'no Traefik, no cert-manager');
    assert.equal(r.ofType(SECRET).filter((s) => s.inputs.type === 'kubernetes.io/tls').length, 0);
    const routes = r.ofType(ROUTE);
    assert.equal(routes.length, 2);
    for (const x of routes) assert.deepEqual(spec(x).parentRefs, [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'shared', namespace: 'edge' }]);
    assert.equal(r.outputs.caCertificate, null);
    assert.equal(r.outputs.loadBalancerAddress, '198.51.100.7');
    assert.match((r.outputs.verification as Record<string, string>).gateway ?? '', /-n edge get gateway shared/);
  });

  it('ingress mode (the default) declares no Gateway API object', async () => {
    const r = await run('local', {});
    for (const t of [GW, GW_CLASS, ROUTE, CRDS]) assert.equal(r.ofType(t).length, 0, t);
    assert.equal(r.ofType(INGRESS).length, 1);
    assert.equal((r.find(RELEASE, 'controller-traefik').inputs.values as any).providers.kubernetesGateway, undefined);
  });
});

describe('gateway mode: checks that can fail', () => {
  it('the schema validation catches a broken Gateway and HTTPRoute (the validator really looks)', async () => {
    const r = await run('local', { routing: { mode: 'gateway' } });
    const gw = structuredClone(r.find(GW));
    (gw.inputs.spec as any).listeners[0].tls.mode = 'Decrypt';
    assert.match((await validateK8sResource(gw)).join(), /schema/);
    const route = structuredClone(r.ofType(ROUTE)[0] as CapturedResource);
    (route.inputs.spec as any).rules[0].matches[0].path.type = 'Glob';
    assert.match((await validateK8sResource(route)).join(), /schema/);
  });

  it('the policies catch a plain-HTTP listener and a route host without a TLS listener', async () => {
    const r = await run('local', { routing: { mode: 'gateway' } });
    const gw = r.find(GW);
    const p = resourcePolicies.find((x) => x.name === 'gateway-listeners-terminate-tls') as ResourceValidationPolicy;
    assert.deepEqual(await resourceViolations(p, gw), []);
    const plain = structuredClone(gw.inputs) as any;
    plain.spec.listeners[1].protocol = 'HTTP';
    delete plain.spec.listeners[1].tls;
    assert.match((await resourceViolations(p, gw, plain)).join(), /listener "workspaces" .* serves HTTP, not HTTPS/);
    const noCert = structuredClone(gw.inputs) as any;
    noCert.spec.listeners[0].tls.certificateRefs = [];
    assert.match((await resourceViolations(p, gw, noCert)).join(), /listener "proxy" .* has no certificateRefs/);

    // The wildcard listener does not cover the apex: a route of the proxy domain on it has no TLS.
    const routes = r.ofType(ROUTE);
    const moved = routes.map((x) => {
      const props = structuredClone(x.inputs) as any;
      props.spec.parentRefs[0].sectionName = 'workspaces';
      return policyResource(x, props);
    });
    const out = await stackViolations([policyResource(gw), ...moved]);
    assert.match(out.join('\n'), /HTTPRoute gitlab-workspaces-proxy: host workspaces\.localdev\.me has no HTTPS listener with a certificate/);
    assert.doesNotMatch(out.join('\n'), /gitlab-workspaces-proxy-workspaces/);
    const hostless = structuredClone(routes[0]?.inputs) as any;
    delete hostless.spec.hostnames;
    assert.match((await stackViolations([policyResource(gw), policyResource(routes[0] as CapturedResource, hostless)])).join(), /has no hostnames/);
  });

  it('config errors name their key before any resource', () => {
    const base: Record<string, string> = {
      [`${P}:proxyDomain`]: 'workspaces.example.dev',
      [`${P}:gitlabUrl`]: 'https://gitlab.example.dev',
      [`${P}:oauth`]: JSON.stringify({ mode: 'provided' }),
      [`${P}:oauthClientId`]: 'cid',
      [`${P}:oauthClientSecret`]: 'csecret',
      [`${P}:image`]: `registry.example.dev/proxy@sha256:${'a'.repeat(64)}`,
    };
    const problems = (extra: Record<string, unknown>) => {
      const all = { ...base };
      for (const [k, v] of Object.entries(extra)) all[`${P}:${k}`] = JSON.stringify(v);
      try {
        parseStackConfig(all, { stack: 't', isSecret: (k) => k.endsWith('Secret') || k.endsWith('Token') });
        return [];
      } catch (e) {
        assert.ok(e instanceof StackConfigError);
        return e.problems;
      }
    };
    assert.deepEqual(problems({ routing: { mode: 'gateway' } }), []);
    assert.deepEqual(problems({ routing: { mode: 'ingress', gateway: { existing: 'edge/shared' } } }), [
      `${P}:routing.gateway.existing: only used when routing.mode is gateway`,
    ]);
    assert.ok(problems({ routing: { mode: 'mesh' } }).some((x) => x.startsWith(`${P}:routing.mode:`)));
    assert.ok(problems({ routing: { mode: 'gateway', gateway: { existing: 'shared' } } }).includes(`${P}:routing.gateway.existing: must be namespace/name`));
    assert.ok(problems({ routing: { mode: 'gateway', gateway: { crdVersion: 'latest' } } }).includes(`${P}:routing.gateway.crdVersion: must be a Gateway API release such as v1.6.1`));
    assert.ok(problems({ routing: { mode: 'gateway', gateway: { typo: 1 } } }).includes(`${P}:routing.gateway.typo: unknown config key`));
    assert.ok(
      problems({ routing: { mode: 'gateway', gateway: { existing: 'edge/shared' } }, tls: { mode: 'provided' } }).some((x) =>
        x.startsWith(`${P}:tls.mode: not used with routing.gateway.existing`),
      ),
    );
  });

  it("traefikValues leaves the chart's Gateway API parts alone in ingress mode", () => {
    const cfg = controllerConfigSchema.parse({});
    const plain = traefikValues(cfg, 'traefik') as any;
    assert.equal(plain.gateway, undefined);
    assert.equal(plain.providers.kubernetesGateway, undefined);
    const gw = traefikValues(cfg, 'traefik', { gatewayApi: true }) as any;
    assert.ok(gw.additionalArguments.includes('--providers.kubernetesgateway.statusaddress.service.namespace=traefik'));
  });
});
