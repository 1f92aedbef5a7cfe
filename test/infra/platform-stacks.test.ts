// The whole program (infra/program.ts) under mocks for every shipped Pulumi.<stack>.yaml, as shipped
// and with each TLS mode and DNS mode swapped in: the platform's resources, names and hosts, DNS record
// types from the load balancer's address, teardown order from the captured graph, schema validity.
/* eslint-disable @typescript-eslint/no-explicit-any -- assertions dig into the untyped inputs the mocks captured */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { validateAll } from '../support/k8s-validate';
import type { CapturedResource, RunOptions, RunResult } from '../support/pulumi-mocks';
import { plainText } from '../support/pulumi-mocks';
import { REPO_ROOT, runStack, SECRET_FIXTURES, STACKS } from '../support/stack-fixtures';

const P = 'gitlab-workspaces';
const RELEASE = 'kubernetes:helm.sh/v3:Release';
const SERVICE = 'kubernetes:core/v1:Service';
const SECRET = 'kubernetes:core/v1:Secret';
const RECORD = 'cloudflare:index/dnsRecord:DnsRecord';
const ISSUER = 'kubernetes:cert-manager.io/v1:ClusterIssuer';
const CERTIFICATE = 'kubernetes:cert-manager.io/v1:Certificate';
const INGRESS = 'kubernetes:networking.k8s.io/v1:Ingress';
const ZONE = '0123456789abcdef0123456789abcdef';
const TOKEN = SECRET_FIXTURES[`${P}:cloudflareApiToken`] as string;

type Shipped = Record<string, any>;
function shipped(stack: string): Shipped {
  const doc = parse(readFileSync(path.join(REPO_ROOT, `Pulumi.${stack}.yaml`), 'utf8')) as { config: Record<string, unknown> };
  return Object.fromEntries(Object.entries(doc.config).map(([k, v]) => [k.replace(`${P}:`, ''), v]));
}

/** Runs a stack with every secret fixture set (as secrets) plus config overrides (objects as JSON). */
function run(stack: string, overrides: Record<string, unknown> = {}, opts: Omit<RunOptions, 'config' | 'secretKeys' | 'stack'> = {}) {
  const extra: Record<string, string> = { ...SECRET_FIXTURES };
  for (const [k, v] of Object.entries(overrides)) extra[`${P}:${k}`] = typeof v === 'string' ? v : JSON.stringify(v);
  return runStack(stack, extra, { ...opts, extraSecretKeys: Object.keys(SECRET_FIXTURES) });
}

const names = (rs: CapturedResource[]) => rs.map((r) => `${r.type}/${r.name}`);
const dependsOn = (a: CapturedResource, b: CapturedResource) => a.dependencies.includes(b.urn);
const meta = (r: CapturedResource) => r.inputs.metadata as { name?: string; namespace?: string };
const certManagerObjects = (r: RunResult) =>
  r.resources.filter((x) => (x.type === RELEASE && x.inputs.chart === 'cert-manager') || x.type.includes('cert-manager.io'));

const TLS_MODES = ['self-signed', 'acme', 'provided'] as const;
const DNS_MODES = ['none', 'cloudflare'] as const;

/** The TLS section for a mode, keeping the stack's own acme settings when it has them. */
function tlsFor(stack: Shipped, mode: (typeof TLS_MODES)[number]) {
  const own = (stack.tls ?? {}) as Record<string, unknown>;
  return { ...own, mode, acme: own.acme ?? { server: 'staging', email: 'ops@example.com' } };
}

for (const stackName of STACKS) {
  const cfg = shipped(stackName);
  const domain = String(cfg.proxyDomain);
  const wildcard = `*.${domain}`;
  const sshHost = `ssh.${domain}`;
  const namespace = String(cfg.namespace ?? 'gitlab-workspaces');

  describe(`stack ${stackName}`, () => {
    it('as shipped: platform keys present, valid, and every Kubernetes object passes its schema', async () => {
      for (const key of ['controller', 'tls', 'dns']) assert.ok(cfg[key], `Pulumi.${stackName}.yaml sets ${key}`);
      const text = readFileSync(path.join(REPO_ROOT, `Pulumi.${stackName}.yaml`), 'utf8');
      assert.doesNotMatch(text, /secure:/, 'shipped stack files hold no encrypted values');
      const r = await run(stackName);
      assert.deepEqual(await validateAll(r.resources), {});
      const release = r.find(RELEASE, 'controller-traefik');
      assert.equal((release.inputs.values as any).deployment.replicas, cfg.controller.replicas ?? 1);
      const lb = r.find(SERVICE, 'controller-lb');
      for (const x of [release, lb]) assert.equal(x.options.protect, cfg.protect === true, `${x.name} protect follows the stack`);
      assert.equal(r.outputs.loadBalancerAddress, '203.0.113.10');
      const verification = r.outputs.verification as Record<string, string>;
      assert.match(verification.proxy ?? '', new RegExp(`https://${domain.replace(/\./g, '\\.')}/ .*400 Bad Request`));
      assert.match(verification.logs ?? '', new RegExp(`^kubectl -n ${namespace} logs -f -l app\\.kubernetes\\.io/name=`));
      for (const ing of r.ofType(INGRESS)) {
        assert.equal((ing.inputs.spec as any).ingressClassName, 'traefik', 'the proxy is routed through the installed controller');
      }
    });

    for (const tlsMode of TLS_MODES) {
      for (const dnsMode of DNS_MODES) {
        it(`tls ${tlsMode} + dns ${dnsMode}: right resources, names, hosts and teardown order`, async () => {
          const r = await run(stackName, {
            tls: tlsFor(cfg, tlsMode),
            dns: dnsMode === 'cloudflare' ? { mode: 'cloudflare', zoneId: ZONE } : { mode: 'none' },
          });

          // --- TLS ---
          const tlsSecretNames = ['gitlab-workspaces-proxy-tls', 'gitlab-workspaces-wildcard-tls'];
          const ingressTls = r.ofType(INGRESS).flatMap((i) => ((i.inputs.spec as any).tls ?? []) as { hosts: string[]; secretName: string }[]);
          assert.deepEqual(
            ingressTls.map((t) => [t.hosts, t.secretName]).sort(),
            [
              [[domain], tlsSecretNames[0]],
              [[wildcard], tlsSecretNames[1]],
            ].sort(),
            'the Ingress serves each name with its own certificate',
          );
          if (tlsMode === 'acme') {
            const cm = r.find(RELEASE, 'tls-cert-manager');
            const issuer = r.find(ISSUER);
            const server = (tlsFor(cfg, 'acme').acme as { server: string }).server;
            assert.match((issuer.inputs.spec as any).acme.server, server === 'production' ? /acme-v02/ : /acme-staging-v02/);
            const certs = r.ofType(CERTIFICATE);
            assert.deepEqual(certs.map((c) => (c.inputs.spec as any).dnsNames[0]).sort(), [wildcard, domain].sort());
            const nsResource = r.find('kubernetes:core/v1:Namespace', 'proxy');
            for (const c of certs) {
              assert.equal(meta(c).namespace, namespace);
              assert.ok(dependsOn(c, cm), `${c.name} is deleted before cert-manager`);
              assert.ok(dependsOn(c, nsResource), `${c.name} is deleted before its namespace`);
            }
            assert.ok(dependsOn(issuer, cm));
            assert.equal(cm.options.protect, cfg.protect === true);
            assert.equal(r.ofType('tls:index/selfSignedCert:SelfSignedCert').length, 0);
          } else {
            assert.deepEqual(names(certManagerObjects(r)), [], `no cert-manager objects in ${tlsMode} mode`);
            const secrets = r.ofType(SECRET).filter((s) => tlsSecretNames.includes(String(meta(s).name)));
            assert.equal(secrets.length, 2);
            for (const s of secrets) {
              assert.equal(s.inputs.type, 'kubernetes.io/tls');
              assert.equal(meta(s).namespace, namespace);
              assert.ok(s.secretPaths.some((p) => p.startsWith('stringData')));
            }
            if (tlsMode === 'self-signed') {
              assert.deepEqual(
                r.ofType('tls:index/certRequest:CertRequest').map((c) => (c.inputs.dnsNames as string[])[0]).sort(),
                [wildcard, domain].sort(),
              );
              assert.match(String(r.outputs.caCertificate), /BEGIN CERTIFICATE/);
            } else {
              assert.equal(r.ofType('tls:index/privateKey:PrivateKey').filter((k) => k.name.startsWith('tls-')).length, 0);
            }
          }

          // --- DNS ---
          const wanted = [
            [domain, 'A', '203.0.113.10'],
            [wildcard, 'A', '203.0.113.10'],
            [sshHost, 'A', '203.0.113.10'],
          ].sort();
          if (dnsMode === 'cloudflare') {
            const records = r.ofType(RECORD);
            assert.deepEqual(records.map((x) => [x.inputs.name, x.inputs.type, x.inputs.content]).sort(), wanted);
            const httpLb = r.find(SERVICE, 'controller-lb');
            const sshLb = r.find(SERVICE, 'proxy-ssh');
            for (const rec of records) {
              assert.equal(rec.inputs.proxied, false);
              assert.equal(rec.inputs.ttl, 1);
              assert.ok(dependsOn(rec, rec.inputs.name === sshHost ? sshLb : httpLb), `${rec.name} is deleted before its load balancer`);
            }
            for (const x of r.resources) assert.ok(!plainText(x).includes(TOKEN), `${x.type}/${x.name} leaks the Cloudflare token`);
          } else {
            assert.equal(r.ofType(RECORD).length, 0);
            assert.deepEqual((r.outputs.dnsRecords as { name: string; type: string; content: string }[]).map((x) => [x.name, x.type, x.content]).sort(), wanted);
            assert.match(String(r.outputs.dnsInstructions), new RegExp(`^\\*\\.${domain.replace(/\./g, '\\.')}\\. 300 IN A 203\\.0\\.113\\.10$`, 'm'));
          }
          assert.deepEqual(await validateAll(r.resources), {});
        });
      }
    }

    it('a load balancer that reports a hostname gets CNAME records', async () => {
      const r = await run(stackName, { dns: { mode: 'cloudflare', zoneId: ZONE } }, { loadBalancer: { hostname: 'k8s-lb-1234.elb.eu-west-1.amazonaws.com' } });
      const records = r.ofType(RECORD);
      assert.equal(records.length, 3);
      for (const rec of records) {
        assert.equal(rec.inputs.type, 'CNAME');
        assert.equal(rec.inputs.content, 'k8s-lb-1234.elb.eu-west-1.amazonaws.com');
      }
      assert.equal(r.outputs.loadBalancerAddress, 'k8s-lb-1234.elb.eu-west-1.amazonaws.com');
    });
  });
}

describe('shipped stacks differ where they should', () => {
  it('local: self-signed, no DNS, localdev.me, nothing protected', async () => {
    const cfg = shipped('local');
    assert.equal(cfg.proxyDomain, 'workspaces.localdev.me');
    const r = await run('local');
    assert.equal(r.ofType(RECORD).length, 0);
    assert.deepEqual(names(certManagerObjects(r)), []);
    assert.match(String(r.outputs.caCertificate), /BEGIN CERTIFICATE/);
    assert.ok(r.resources.every((x) => !x.options.protect), 'a local stack is cheap to throw away');
  });

  it('dev: ACME staging and Cloudflare DNS', async () => {
    const r = await run('dev');
    assert.match((r.find(ISSUER).inputs.spec as any).acme.server, /acme-staging-v02/);
    assert.equal(r.ofType(RECORD).length, 3);
    assert.equal(r.find(RELEASE, 'tls-cert-manager').options.protect, false);
  });

  it('prod: ACME production, Cloudflare DNS, protected edge, CRDs kept, source IPs kept', async () => {
    const r = await run('prod');
    assert.match((r.find(ISSUER).inputs.spec as any).acme.server, /^https:\/\/acme-v02/);
    assert.equal(r.ofType(RECORD).length, 3);
    const cm = r.find(RELEASE, 'tls-cert-manager');
    assert.equal(cm.options.protect, true);
    assert.equal((cm.inputs.values as any).crds.keep, true);
    assert.equal(r.find(RELEASE, 'controller-traefik').options.protect, true);
    assert.equal(r.find(SERVICE, 'controller-lb').options.protect, true);
    assert.equal((r.find(SERVICE, 'controller-lb').inputs.spec as any).externalTrafficPolicy, 'Local');
    // DNS records are cheap to recreate and must go before the LB on destroy: never protected.
    for (const rec of r.ofType(RECORD)) assert.equal(rec.options.protect, false);
    // Exactly what hurts to lose (README "Tear down"), nothing else.
    assert.deepEqual(
      // Named `<component>-<part>` inside the GitLabWorkspaces component.
      r.resources.filter((x) => x.options.protect).map((x) => `${x.type}/${x.name.replace(/^gitlab-workspaces-/, '')}`).sort(),
      [
        `${RELEASE}/controller-traefik`,
        `${RELEASE}/tls-cert-manager`,
        `${SERVICE}/controller-lb`,
        'tls:index/privateKey:PrivateKey/ssh-host-key',
        // GitLab deletes an agent's workspaces with it (agent part, README "Tear down").
        'pulumi-nodejs:dynamic/gitlab:ClusterAgent/agent',
      ].sort(),
    );
    assert.ok(r.resources.every((x) => !x.options.retainOnDelete), 'nothing outlives the stack silently');
  });
});
