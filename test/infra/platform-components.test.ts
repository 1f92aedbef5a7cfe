// The platform components (controller, TLS, DNS) run under Pulumi mocks for each TLS and DNS mode:
// what they declare, with which names/hosts, in which dependency order, and schema validity.
/* eslint-disable @typescript-eslint/no-explicit-any -- assertions dig into the untyped inputs the mocks captured */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import {
  Certificates,
  DnsRecords,
  IngressController,
  loadBalancerAddressOf,
  platformConfigSchema,
  requireAddress,
  type PlatformConfigInput,
  PROXY_TLS_SECRET,
  WILDCARD_TLS_SECRET,
} from '../../infra/platform';
import { validateAll } from '../support/k8s-validate';
import { plainText, runPulumiProgram, type CapturedResource, type RunOptions, type RunResult } from '../support/pulumi-mocks';

const DOMAIN = 'workspaces.example.dev';
const WILDCARD = `*.${DOMAIN}`;
const SSH_HOST = `ssh.${DOMAIN}`;
const TOKEN = 'cf-token-0123456789abcdefghijklmnop';
const ZONE = '0123456789abcdef0123456789abcdef';
const PEM = (label: string, kind: string) => `-----BEGIN ${kind}-----\n${label}\n-----END ${kind}-----\n`;

const RELEASE = 'kubernetes:helm.sh/v3:Release';
const SERVICE = 'kubernetes:core/v1:Service';
const SECRET = 'kubernetes:core/v1:Secret';
const RECORD = 'cloudflare:index/dnsRecord:DnsRecord';

/** The platform components wired as infra/program.ts does, with a stand-in for the proxy's SSH LB Service. */
function program(input: PlatformConfigInput) {
  return () => {
    const cfg = platformConfigSchema.parse(input);
    const controller = new IngressController('ingress', { config: cfg.controller, protect: cfg.protect });
    const certs = new Certificates('tls', {
      config: cfg.tls,
      proxyDomain: DOMAIN,
      wildcardDomain: WILDCARD,
      namespace: 'gitlab-workspaces',
      protect: cfg.protect,
      secrets: {
        cloudflareApiToken: cfg.cloudflareApiToken,
        tlsProxyCert: cfg.tlsProxyCert,
        tlsProxyKey: cfg.tlsProxyKey,
        tlsWildcardCert: cfg.tlsWildcardCert,
        tlsWildcardKey: cfg.tlsWildcardKey,
      },
    });
    const sshService = new k8s.core.v1.Service('ssh-lb', {
      metadata: { name: 'gitlab-workspaces-proxy-ssh', namespace: 'gitlab-workspaces' },
      spec: { type: 'LoadBalancer', selector: { app: 'proxy' }, ports: [{ name: 'ssh', port: 22, targetPort: 2222 }] },
    });
    const dns = new DnsRecords('dns', {
      config: cfg.dns,
      proxyDomain: DOMAIN,
      wildcardDomain: WILDCARD,
      httpLoadBalancer: controller.loadBalancer,
      ssh: { host: SSH_HOST, loadBalancer: loadBalancerAddressOf(sshService) },
      cloudflareApiToken: cfg.cloudflareApiToken === undefined ? undefined : pulumi.secret(cfg.cloudflareApiToken),
    });
    return {
      address: controller.address,
      ingressClassName: controller.ingressClassName,
      records: dns.records,
      instructions: dns.instructions,
      caCertificate: certs.caCertificate,
      proxyTlsSecretName: certs.proxyTlsSecretName,
      wildcardTlsSecretName: certs.wildcardTlsSecretName,
    };
  };
}

async function run(input: PlatformConfigInput, opts: RunOptions = {}): Promise<RunResult> {
  return runPulumiProgram(program(input), { stack: 'test', ...opts });
}

const certManagerObjects = (r: RunResult) =>
  r.resources.filter(
    (x) =>
      (x.type === RELEASE && x.inputs.chart === 'cert-manager') ||
      x.type.startsWith('kubernetes:cert-manager.io/') ||
      x.type.startsWith('kubernetes:acme.cert-manager.io/'),
  );
// Pulumi types a CustomResource by its apiVersion and kind.
const crOfKind = (r: RunResult, kind: string) => r.ofType(`kubernetes:cert-manager.io/v1:${kind}`);
const dependsOn = (a: CapturedResource, b: CapturedResource) => a.dependencies.includes(b.urn);

async function assertAllValid(r: RunResult) {
  assert.deepEqual(await validateAll(r.resources), {});
}

describe('ingress controller (Traefik by Helm)', () => {
  it('installs Traefik with long timeouts and owns a LoadBalancer Service selecting its pods', async () => {
    const r = await run({});
    const release = r.find(RELEASE, 'ingress-traefik');
    assert.equal(release.inputs.chart, 'traefik');
    assert.equal(release.inputs.name, 'traefik');
    assert.equal((release.inputs.repositoryOpts as { repo: string }).repo, 'https://traefik.github.io/charts');
    assert.equal(release.inputs.namespace, 'traefik');
    const values = release.inputs.values as Record<string, any>;
    assert.equal(values.service.enabled, false, 'the chart must not create a second LoadBalancer');
    assert.equal(values.ingressClass.name, 'traefik');
    assert.equal(values.providers.kubernetesIngress.ingressClass, 'traefik', 'only Ingresses of our class');
    const args: string[] = values.additionalArguments;
    assert.ok(args.includes('--entryPoints.websecure.transport.respondingTimeouts.readTimeout=0s'), 'WebSockets must not be cut after 60 s');
    assert.ok(args.includes('--entryPoints.websecure.transport.respondingTimeouts.idleTimeout=3600s'));
    assert.ok(args.includes('--providers.kubernetesingress.ingressendpoint.publishedservice=traefik/traefik'));

    const lb = r.find(SERVICE, 'ingress-lb');
    const spec = lb.inputs.spec as Record<string, any>;
    assert.equal(spec.type, 'LoadBalancer');
    assert.deepEqual(spec.selector, values.deployment.podLabels, 'the Service must select the pods the chart labels');
    assert.deepEqual(
      spec.ports.map((p: { port: number; targetPort: string }) => [p.port, p.targetPort]),
      [
        [80, 'web'],
        [443, 'websecure'],
      ],
    );
    assert.ok(dependsOn(lb, release), 'LB Service is created after (and deleted before) the release');
    assert.equal(r.outputs.address, '203.0.113.10');
    assert.equal(r.outputs.ingressClassName, 'traefik');
    assert.equal(release.options.protect, false);
    await assertAllValid(r);
  });

  it('protects the release and the LoadBalancer Service when the stack says so', async () => {
    const r = await run({ protect: true, controller: { replicas: 3 } });
    assert.equal(r.find(RELEASE, 'ingress-traefik').options.protect, true);
    assert.equal(r.find(SERVICE, 'ingress-lb').options.protect, true);
    const values = r.find(RELEASE, 'ingress-traefik').inputs.values as Record<string, any>;
    assert.equal(values.deployment.replicas, 3);
    assert.equal(values.podDisruptionBudget.enabled, true);
  });

  it('existing mode installs nothing and reads the given Service address', async () => {
    const r = await run(
      { controller: { mode: 'existing', ingressClassName: 'cilium', existingService: 'kube-system/cilium-ingress' } },
      {
        overrides: {
          [SERVICE]: (a) => (a.id === 'kube-system/cilium-ingress' ? { status: { loadBalancer: { ingress: [{ ip: '198.51.100.7' }] } } } : {}),
        },
      },
    );
    assert.equal(r.ofType(RELEASE).length, 0);
    assert.equal(r.resources.filter((x) => x.type === 'kubernetes:core/v1:Namespace').length, 0);
    assert.equal(r.outputs.address, '198.51.100.7');
    assert.equal(r.outputs.ingressClassName, 'cilium');
  });
});

describe('TLS self-signed', () => {
  it('creates a local CA and one certificate per name, renewed before expiry, and no cert-manager objects', async () => {
    const r = await run({ tls: { mode: 'self-signed', validityHours: 2160, earlyRenewalHours: 720 } });
    assert.deepEqual(certManagerObjects(r), []);
    const ca = r.find('tls:index/selfSignedCert:SelfSignedCert');
    assert.equal(ca.inputs.isCaCertificate, true);
    assert.ok((ca.inputs.allowedUses as string[]).includes('cert_signing'));
    const csrs = r.ofType('tls:index/certRequest:CertRequest');
    assert.deepEqual(csrs.map((c) => c.inputs.dnsNames).sort(), [[WILDCARD], [DOMAIN]].sort());
    for (const cert of r.ofType('tls:index/locallySignedCert:LocallySignedCert')) {
      assert.equal(cert.inputs.validityPeriodHours, 2160);
      assert.equal(cert.inputs.earlyRenewalHours, 720);
      assert.ok((cert.inputs.allowedUses as string[]).includes('server_auth'));
    }
    const secrets = r.ofType(SECRET);
    assert.deepEqual(secrets.map((s) => (s.inputs.metadata as { name: string }).name).sort(), [PROXY_TLS_SECRET, WILDCARD_TLS_SECRET].sort());
    for (const s of secrets) {
      assert.equal(s.inputs.type, 'kubernetes.io/tls');
      assert.equal((s.inputs.metadata as { namespace: string }).namespace, 'gitlab-workspaces');
      assert.ok(s.secretPaths.some((p) => p.startsWith('stringData')), `${s.name}: private key must be a secret`);
      assert.ok(!plainText(s).includes('PRIVATE KEY'), 'no private key in plain inputs');
    }
    assert.match(String(r.outputs.caCertificate), /BEGIN CERTIFICATE/);
    assert.equal(r.outputs.proxyTlsSecretName, PROXY_TLS_SECRET);
    assert.equal(r.outputs.wildcardTlsSecretName, WILDCARD_TLS_SECRET);
    await assertAllValid(r);
  });
});

describe('TLS acme (cert-manager, DNS-01 on Cloudflare)', () => {
  for (const server of ['staging', 'production'] as const) {
    it(`${server}: installs cert-manager, a ClusterIssuer and Certificates for both names`, async () => {
      const r = await run({
        tls: { mode: 'acme', acme: { server, email: 'ops@example.dev' } },
        cloudflareApiToken: TOKEN,
      });
      const release = r.find(RELEASE, 'tls-cert-manager');
      assert.equal(release.inputs.chart, 'cert-manager');
      assert.equal((release.inputs.repositoryOpts as { repo: string }).repo, 'https://charts.jetstack.io');
      const values = release.inputs.values as Record<string, any>;
      assert.equal(values.crds.enabled, true);
      assert.equal(values.enableCertificateOwnerRef, true, 'Certificate Secrets must go with their Certificate');

      const [issuer, ...moreIssuers] = crOfKind(r, 'ClusterIssuer');
      assert.ok(issuer);
      assert.equal(moreIssuers.length, 0);
      const acme = (issuer.inputs.spec as Record<string, any>).acme;
      assert.equal(
        acme.server,
        server === 'staging' ? 'https://acme-staging-v02.api.letsencrypt.org/directory' : 'https://acme-v02.api.letsencrypt.org/directory',
      );
      assert.equal(acme.email, 'ops@example.dev');
      const solver = acme.solvers[0];
      assert.deepEqual(solver.selector.dnsZones, [DOMAIN]);
      const tokenSecret = r.find(SECRET, 'tls-cloudflare-token');
      assert.equal((tokenSecret.inputs.metadata as { namespace: string }).namespace, 'cert-manager');
      assert.equal(solver.dns01.cloudflare.apiTokenSecretRef.name, (tokenSecret.inputs.metadata as { name: string }).name);
      assert.ok(tokenSecret.secretPaths.some((p) => p.startsWith('stringData')), 'the API token is a secret');
      for (const res of r.resources) assert.ok(!plainText(res).includes(TOKEN), `${res.type}/${res.name} leaks the token`);

      const certs = crOfKind(r, 'Certificate');
      assert.deepEqual(
        certs.map((c) => [(c.inputs.spec as any).dnsNames, (c.inputs.spec as any).secretName]).sort(),
        [
          [[DOMAIN], PROXY_TLS_SECRET],
          [[WILDCARD], WILDCARD_TLS_SECRET],
        ].sort(),
      );
      for (const c of certs) {
        assert.equal((c.inputs.metadata as { namespace: string }).namespace, 'gitlab-workspaces');
        assert.deepEqual((c.inputs.spec as any).issuerRef, { group: 'cert-manager.io', kind: 'ClusterIssuer', name: (issuer.inputs.metadata as { name: string }).name });
        // Teardown order: Certificates and the issuer go before cert-manager (its webhook must still run).
        assert.ok(dependsOn(c, release), `${c.name} depends on the cert-manager release`);
        assert.ok(dependsOn(c, issuer), `${c.name} depends on the ClusterIssuer`);
      }
      assert.ok(dependsOn(issuer, release));
      assert.equal(r.ofType('tls:index/selfSignedCert:SelfSignedCert').length, 0);
      assert.equal(r.outputs.caCertificate, undefined);
      await assertAllValid(r);
    });
  }

  it('production stacks keep the cert-manager CRDs and protect the release', async () => {
    const r = await run({ protect: true, tls: { mode: 'acme', acme: { server: 'production', email: 'ops@example.dev' } }, cloudflareApiToken: TOKEN });
    const release = r.find(RELEASE, 'tls-cert-manager');
    assert.equal(release.options.protect, true);
    assert.equal((release.inputs.values as Record<string, any>).crds.keep, true);
  });
});

describe('TLS provided', () => {
  it('stores the PEMs from secret config as kubernetes.io/tls Secrets', async () => {
    const r = await run({
      tls: { mode: 'provided' },
      tlsProxyCert: PEM('proxy-cert', 'CERTIFICATE'),
      tlsProxyKey: PEM('proxy-key', 'PRIVATE KEY'),
      tlsWildcardCert: PEM('wild-cert', 'CERTIFICATE'),
      tlsWildcardKey: PEM('wild-key', 'EC PRIVATE KEY'),
    });
    assert.deepEqual(certManagerObjects(r), []);
    assert.equal(r.ofType('tls:index/privateKey:PrivateKey').length, 0);
    const proxy = r.find(SECRET, 'tls-proxy-secret');
    const wild = r.find(SECRET, 'tls-wildcard-secret');
    assert.equal((proxy.inputs.stringData as Record<string, string>)['tls.crt'], PEM('proxy-cert', 'CERTIFICATE'));
    assert.equal((wild.inputs.stringData as Record<string, string>)['tls.key'], PEM('wild-key', 'EC PRIVATE KEY'));
    for (const s of [proxy, wild]) {
      assert.equal(s.inputs.type, 'kubernetes.io/tls');
      assert.ok(s.secretPaths.some((p) => p.startsWith('stringData')));
      assert.ok(!plainText(s).includes('PRIVATE KEY'));
    }
    await assertAllValid(r);
  });
});

describe('DNS', () => {
  const cloudflare = { dns: { mode: 'cloudflare' as const, zoneId: ZONE }, cloudflareApiToken: TOKEN };

  it('cloudflare + LB with an IP: A records, not proxied, automatic TTL, ordered after the LB Services', async () => {
    const r = await run(cloudflare, {
      overrides: { [SERVICE]: (a) => (a.name === 'ssh-lb' ? { status: { loadBalancer: { ingress: [{ ip: '203.0.113.22' }] } } } : {}) },
    });
    const records = r.ofType(RECORD);
    assert.deepEqual(
      records.map((x) => [x.inputs.name, x.inputs.type, x.inputs.content]).sort(),
      [
        [DOMAIN, 'A', '203.0.113.10'],
        [WILDCARD, 'A', '203.0.113.10'],
        [SSH_HOST, 'A', '203.0.113.22'],
      ].sort(),
    );
    const lb = r.find(SERVICE, 'ingress-lb');
    const sshLb = r.find(SERVICE, 'ssh-lb');
    const provider = r.find('pulumi:providers:cloudflare');
    for (const rec of records) {
      assert.equal(rec.inputs.proxied, false);
      assert.equal(rec.inputs.ttl, 1);
      assert.equal(rec.inputs.zoneId, ZONE);
      assert.ok(rec.options.provider.startsWith(provider.urn), 'records use the stack-configured provider');
      // Teardown order: a record is deleted before the load balancer it points at.
      assert.ok(dependsOn(rec, rec.inputs.name === SSH_HOST ? sshLb : lb), `${rec.name} depends on its LB Service`);
    }
    assert.ok(provider.secretPaths.includes('apiToken'));
    assert.match(String(r.outputs.instructions), /managed by Pulumi/);
    await assertAllValid(r);
  });

  it('cloudflare + LB with a hostname: CNAME records', async () => {
    const r = await run(cloudflare, { loadBalancer: { hostname: 'a1b2.elb.eu-west-1.amazonaws.com' } });
    for (const rec of r.ofType(RECORD)) {
      assert.equal(rec.inputs.type, 'CNAME');
      assert.equal(rec.inputs.content, 'a1b2.elb.eu-west-1.amazonaws.com');
    }
    assert.equal(r.ofType(RECORD).length, 3);
  });

  it('none: no Cloudflare resources, and the outputs list the records to create by hand', async () => {
    const r = await run({}, { loadBalancer: { hostname: 'lb.example.net' } });
    assert.equal(r.ofType(RECORD).length, 0);
    assert.equal(r.resources.filter((x) => x.type.startsWith('pulumi:providers:cloudflare')).length, 0);
    assert.deepEqual(r.outputs.records, [
      { name: DOMAIN, type: 'CNAME', content: 'lb.example.net' },
      { name: WILDCARD, type: 'CNAME', content: 'lb.example.net' },
      { name: SSH_HOST, type: 'CNAME', content: 'lb.example.net' },
    ]);
    const text = String(r.outputs.instructions);
    assert.match(text, new RegExp(`^${DOMAIN.replace(/\./g, '\\.')}\\. 300 IN CNAME lb\\.example\\.net\\.$`, 'm'));
    assert.match(text, /^\*\.workspaces\.example\.dev\. 300 IN CNAME lb\.example\.net\.$/m);
  });

  it('refuses to write a record for a load balancer without an address', () => {
    assert.throws(() => requireAddress(DOMAIN, {}), /workspaces\.example\.dev.*reports no address/);
    assert.deepEqual(requireAddress(DOMAIN, { ip: '2001:db8::1' }), { name: DOMAIN, type: 'AAAA', content: '2001:db8::1' });
  });
});
