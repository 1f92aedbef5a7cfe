// What a real `pulumi up` would hit and plain mocks would not show (issue "Real clusters"): each test
// runs the program under mocks for a shipped stack and checks the field a real cluster, chart or
// provider depends on (the upstream source is named in the program's comments).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { runStack, REPO_ROOT, SECRET_FIXTURES, STACKS, OAUTH_APP_TYPE } from '../support/stack-fixtures';
import { plainText, type CapturedResource } from '../support/pulumi-mocks';
import { validateAll } from '../support/k8s-validate';
import { makePrivateCa, type PrivateCa } from '../support/private-ca';
import { StackConfigError } from '../../infra/config';
import { CA_ENV } from '../../infra/components/gitlab-ca';

const K = (k: string) => `gitlab-workspaces:${k}`;
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- manifests are navigated field by field
type Obj = Record<string, any>;

const podSpec = (r: { find(t: string): CapturedResource }) => (r.find('kubernetes:apps/v1:Deployment').inputs as Obj).spec.template.spec as Obj;
const container = (r: { find(t: string): CapturedResource }) => podSpec(r).containers[0] as Obj;

async function configError(stack: string, set: Record<string, string>, drop: string[] = []): Promise<string> {
  const run = await runStack(stack, set, { expectError: true, dropKeys: drop });
  assert.ok(run.error instanceof StackConfigError, `expected a StackConfigError, got ${run.error?.message}`);
  assert.deepEqual(run.resources.map((r) => r.type), ['pulumi:pulumi:Stack'], 'nothing declared before the config is valid');
  return run.error.message;
}

describe('pull credential for the proxy image (private registries)', () => {
  it('dev/prod give the pods a dockerconfigjson Secret built from imagePull and the secret imagePullPassword', async () => {
    for (const stack of ['dev', 'prod']) {
      const r = await runStack(stack);
      const secrets = r.ofType('kubernetes:core/v1:Secret').filter((s) => s.inputs.type === 'kubernetes.io/dockerconfigjson');
      assert.equal(secrets.length, 1, stack);
      const secret = secrets[0] as CapturedResource;
      const meta = secret.inputs.metadata as Obj;
      assert.deepEqual(podSpec(r).imagePullSecrets, [{ name: meta.name }], stack);
      assert.equal(meta.namespace, 'gitlab-workspaces');
      const json = JSON.parse((secret.inputs.stringData as Obj)['.dockerconfigjson'] as string) as Obj;
      const password = SECRET_FIXTURES[K('imagePullPassword')] as string;
      const entry = json.auths['registry.example.com'] as Obj;
      assert.deepEqual(entry, {
        username: `${stack}-cluster-pull`,
        password,
        auth: Buffer.from(`${stack}-cluster-pull:${password}`).toString('base64'),
      });
      assert.ok(secret.secretPaths.some((p) => p.startsWith('stringData')), `the pull credential is a Pulumi secret (${secret.secretPaths.join()})`);
      assert.ok(!plainText(secret).includes(password));
      // The push login is not what the nodes pull with.
      assert.ok(!plainText(secret).includes(SECRET_FIXTURES[K('registryPassword')] as string));
      assert.deepEqual(await validateAll(r.resources), {});
    }
  });

  it('an existing pull Secret is referenced by name, nothing is created', async () => {
    const r = await runStack('dev', { [K('imagePull')]: JSON.stringify({ existingSecret: 'regcred' }) });
    assert.deepEqual(podSpec(r).imagePullSecrets, [{ name: 'regcred' }]);
    assert.equal(r.ofType('kubernetes:core/v1:Secret').filter((s) => s.inputs.type === 'kubernetes.io/dockerconfigjson').length, 0);
  });

  it('a prebuilt image on Docker Hub gets the key the kubelet looks Docker Hub up by', async () => {
    const image = `example/gitlab-workspaces-proxy@sha256:${'a'.repeat(64)}`;
    const r = await runStack('dev', { [K('image')]: image }, { dropKeys: [K('build')] });
    const secret = r.ofType('kubernetes:core/v1:Secret').find((s) => s.inputs.type === 'kubernetes.io/dockerconfigjson');
    assert.ok(secret);
    assert.deepEqual(Object.keys(JSON.parse((secret.inputs.stringData as Obj)['.dockerconfigjson'] as string).auths as Obj), ['https://index.docker.io/v1/']);
  });

  it('a registry that needs a push login and no pull credential fails before any resource, naming imagePull', async () => {
    const msg = await configError('dev', {}, [K('imagePull')]);
    assert.match(msg, /^\s*gitlab-workspaces:imagePull: required when build\.username is set/m);
    assert.match(await configError('dev', { [K('imagePull')]: '{"username":"u"}' }, [K('imagePullPassword')]), /gitlab-workspaces:imagePullPassword: required when imagePull\.username is set/);
    assert.match(await configError('dev', { [K('imagePull')]: '{"username":"u","existingSecret":"x"}' }), /gitlab-workspaces:imagePull\.existingSecret: set either/);
    // Saying so explicitly is allowed (public image, node credentials).
    const r = await runStack('dev', { [K('imagePull')]: '{"anonymous":true}' });
    assert.equal(podSpec(r).imagePullSecrets, undefined);
  });

  it('the local stack (no login, local registry) needs no pull credential', async () => {
    const r = await runStack('local');
    assert.equal(podSpec(r).imagePullSecrets, undefined);
  });
});

describe('image build', () => {
  it('the local stack builds with a named builder on the host network (localhost:5001 is the host)', async () => {
    const r = await runStack('local');
    assert.deepEqual(r.find('docker-build:index:Image').inputs.builder, { name: 'gitlab-workspaces-local' });
    const local = readFileSync(path.join(REPO_ROOT, 'Pulumi.local.yaml'), 'utf8');
    assert.match(local, /docker buildx create --name gitlab-workspaces-local --driver docker-container --driver-opt network=host/);
  });

  it('a localhost registry without a builder fails before any resource, naming build.builder and the recipe', async () => {
    const msg = await configError('local', { [K('build')]: JSON.stringify({ repository: 'localhost:5001/proxy' }) });
    assert.match(msg, /^\s*gitlab-workspaces:build\.builder: required when build\.repository is on localhost/m);
    assert.match(msg, /--driver-opt network=host/);
  });

  it('prod builds linux/arm64 in docker-build\'s own docker-container builder, whose moby/buildkit image bundles QEMU', async () => {
    // moby/buildkit docs/multi-platform.md: foreign-architecture steps run under the bundled
    // buildkit-qemu-* emulators, so a plain amd64 runner needs no binfmt registration. A named builder
    // (build.builder) could be one without them, so prod must not name one.
    const r = await runStack('prod');
    const image = r.find('docker-build:index:Image');
    assert.deepEqual(image.inputs.platforms, ['linux/amd64', 'linux/arm64']);
    assert.equal(image.inputs.builder, undefined);
  });

  it('previews do not build (docker-build defaults buildOnPreview to true); a switch turns it on', async () => {
    for (const stack of STACKS) {
      const r = await runStack(stack);
      for (const img of r.ofType('docker-build:index:Image')) assert.equal(img.inputs.buildOnPreview, false, stack);
    }
    const on = await runStack('dev', { [K('build')]: JSON.stringify({ repository: 'registry.example.com/p/proxy', username: 'u', buildOnPreview: true }) });
    assert.equal(on.find('docker-build:index:Image').inputs.buildOnPreview, true);
  });
});

describe('NetworkPolicy egress to the Kubernetes API (Cilium)', () => {
  const apiRule = (r: Awaited<ReturnType<typeof runStack>>) => {
    const np = r.find('kubernetes:networking.k8s.io/v1:NetworkPolicy').inputs as Obj;
    return (np.spec.egress as Obj[]).find((e) => (e.ports as Obj[] | undefined)?.some((p) => p.port === 6443));
  };

  it('by default allows the API ports by port alone: Cilium never matches an ipBlock against a host-network API server', async () => {
    const r = await runStack('dev');
    const rule = apiRule(r);
    assert.ok(rule);
    assert.equal(rule.to, undefined);
    assert.deepEqual((rule.ports as Obj[]).map((p) => p.port).sort(), [443, 6443]);
    assert.deepEqual(await validateAll(r.resources), {});
  });

  it('keeps the CIDRs a user narrowed it to', async () => {
    const r = await runStack('dev', { [K('networkPolicy')]: JSON.stringify({ apiServerCidrs: ['10.0.0.1/32'], apiServerPorts: [6443] }) });
    assert.deepEqual(apiRule(r)?.to, [{ ipBlock: { cidr: '10.0.0.1/32' } }]);
  });
});

describe('Traefik', () => {
  it('redirects http to the exposed :443, not to the websecure entry point (whose address is :8443)', async () => {
    const r = await runStack('dev');
    const release = r.ofType('kubernetes:helm.sh/v3:Release').find((x) => x.inputs.chart === 'traefik');
    assert.ok(release);
    const args = ((release.inputs.values as Obj).additionalArguments as string[]).filter((a) => a.includes('redirections'));
    assert.ok(args.includes('--entryPoints.web.http.redirections.entryPoint.to=:443'), args.join(' '));
    assert.ok(!args.some((a) => /entryPoint\.to=websecure/.test(a)));
    const lb = r.ofType('kubernetes:core/v1:Service').find((s) => (s.inputs.metadata as Obj).name === 'traefik');
    assert.ok(lb);
    assert.ok(((lb.inputs.spec as Obj).ports as Obj[]).some((p) => p.port === 443 && p.targetPort === 'websecure'));
  });
});

describe('Cloudflare token permissions are documented in full', () => {
  it('every place that asks for cloudflareApiToken names Zone:Zone:Read and Zone:DNS:Edit', () => {
    for (const file of ['README.md', 'Pulumi.dev.yaml', 'Pulumi.prod.yaml', 'docs/platform.md']) {
      const text = readFileSync(path.join(REPO_ROOT, file), 'utf8');
      if (!text.includes('cloudflareApiToken')) continue;
      assert.match(text, /Zone:Zone:Read/, file);
      assert.match(text, /Zone:DNS:Edit/, file);
    }
  });
});

describe('GitLab behind an internal CA (gitlabCaBundle)', () => {
  let ca: PrivateCa;
  before(() => {
    ca = makePrivateCa();
  });
  after(() => ca.cleanup());

  it('mounts the bundle and points NODE_EXTRA_CA_CERTS at it; the OAuth app provider gets it too', async () => {
    const r = await runStack('dev', { [K('gitlabCaBundle')]: ca.caPem });
    const cm = r.find('kubernetes:core/v1:ConfigMap');
    const cmName = (cm.inputs.metadata as Obj).name as string;
    assert.equal((cm.inputs.data as Obj)['ca.crt'], ca.caPem);
    const c = container(r);
    const env = (c.env as Obj[]).find((e) => e.name === CA_ENV);
    assert.ok(env, 'NODE_EXTRA_CA_CERTS set');
    const volume = (podSpec(r).volumes as Obj[]).find((v) => v.configMap?.name === cmName);
    assert.ok(volume);
    const mount = (c.volumeMounts as Obj[]).find((m) => m.name === volume.name);
    assert.ok(mount?.readOnly);
    const item = (volume.configMap.items as Obj[])[0] as Obj;
    assert.equal(env.value, `${mount.mountPath}/${item.path}`, 'the env var names the mounted file');
    assert.equal(item.key, 'ca.crt');
    // A new bundle rolls the pods (Node reads it once, at start).
    const annotations = ((r.find('kubernetes:apps/v1:Deployment').inputs as Obj).spec.template.metadata.annotations ?? {}) as Obj;
    assert.match(String(annotations['gitlab-workspaces.gitlab.com/gitlab-ca-sha256']), /^[0-9a-f]{64}$/);
    assert.equal(r.find(OAUTH_APP_TYPE).inputs.caBundle, ca.caPem);
    // TLS verification is never switched off.
    assert.ok(!(c.env as Obj[]).some((e) => e.name === 'NODE_TLS_REJECT_UNAUTHORIZED'));
    assert.deepEqual(await validateAll(r.resources), {});
  });

  it('without a bundle nothing is mounted', async () => {
    const r = await runStack('dev');
    assert.equal(r.ofType('kubernetes:core/v1:ConfigMap').length, 0);
    assert.ok(!(container(r).env as Obj[]).some((e) => e.name === CA_ENV));
  });

  it('a bundle that is not PEM, or holds a non-CA certificate, fails before any resource, naming the key', async () => {
    assert.match(await configError('dev', { [K('gitlabCaBundle')]: 'not a certificate' }), /^\s*gitlab-workspaces:gitlabCaBundle: must contain at least one PEM certificate/m);
    assert.match(await configError('dev', { [K('gitlabCaBundle')]: ca.leafPem }), /^\s*gitlab-workspaces:gitlabCaBundle: certificate 1 .* is not a CA certificate/m);
    const broken = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
    assert.match(await configError('dev', { [K('gitlabCaBundle')]: broken }), /gitlab-workspaces:gitlabCaBundle: certificate 1 does not parse/);
  });
});
