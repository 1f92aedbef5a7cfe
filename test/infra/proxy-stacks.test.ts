// Runs the real Pulumi program (infra/program.ts) under mocks for every shipped Pulumi.<stack>.yaml
// and checks the proxy's part of the resource graph: what exists, under which component, with which
// names and security settings, and that no secret reaches a plain input.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'yaml';
import { plainText, mockKeyPair, type CapturedResource, type RunResult } from '../support/pulumi-mocks';
import { runStack, STACKS, SECRET_FIXTURES, MOCK_OAUTH, OAUTH_APP_TYPE, REPO_ROOT } from '../support/stack-fixtures';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';

const T = {
  deployment: 'kubernetes:apps/v1:Deployment',
  service: 'kubernetes:core/v1:Service',
  secret: 'kubernetes:core/v1:Secret',
  sa: 'kubernetes:core/v1:ServiceAccount',
  role: 'kubernetes:rbac.authorization.k8s.io/v1:ClusterRole',
  binding: 'kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding',
  pdb: 'kubernetes:policy/v1:PodDisruptionBudget',
  hpa: 'kubernetes:autoscaling/v2:HorizontalPodAutoscaler',
  netpol: 'kubernetes:networking.k8s.io/v1:NetworkPolicy',
  ingress: 'kubernetes:networking.k8s.io/v1:Ingress',
  namespace: 'kubernetes:core/v1:Namespace',
  key: 'tls:index/privateKey:PrivateKey',
  bytes: 'random:index/randomBytes:RandomBytes',
  image: 'docker-build:index:Image',
};

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- manifests are navigated field by field
type Obj = Record<string, any>;

/** The SSH load balancer port a stack file asks for (default 22). */
const sshPort = (file: Obj): number => Number(((file['gitlab-workspaces:ssh'] ?? {}) as Obj).servicePort ?? 22);

function stackFile(stack: string): Obj {
  const doc = parse(readFileSync(path.join(REPO_ROOT, `Pulumi.${stack}.yaml`), 'utf8')) as { config: Obj };
  return doc.config;
}

for (const stack of STACKS) {
  describe(`stack ${stack}`, () => {
    let run: RunResult;
    let file: Obj;
    const parentType = (r: CapturedResource) => run.parentOf(r)?.type;

    before(async () => {
      run = await runStack(stack);
      file = stackFile(stack);
    });

    it('declares each proxy component once, directly under the GitLabWorkspaces component', () => {
      for (const type of [
        'gitlab-workspaces:proxy:OAuthApplication',
        'gitlab-workspaces:proxy:SigningKey',
        'gitlab-workspaces:proxy:ConfigSecret',
        'gitlab-workspaces:proxy:Image',
        'gitlab-workspaces:proxy:Workload',
        'gitlab-workspaces:proxy:Routing',
        'gitlab-workspaces:proxy:Namespace',
      ]) {
        const c = run.find(type);
        assert.equal(parentType(c), 'gitlab-workspaces:index:GitLabWorkspaces', type);
        assert.equal(c.custom, false);
      }
    });

    it('parents every proxy resource to its component', () => {
      assert.equal(parentType(run.find(T.bytes, 'signing-key')), 'gitlab-workspaces:proxy:SigningKey');
      assert.equal(parentType(run.find(T.secret, 'proxy-config')), 'gitlab-workspaces:proxy:ConfigSecret');
      assert.equal(parentType(run.find(T.namespace, 'proxy')), 'gitlab-workspaces:proxy:Namespace');
      assert.equal(parentType(run.find(T.ingress)), 'gitlab-workspaces:proxy:Routing');
      for (const type of [T.deployment, T.sa, T.role, T.binding, T.pdb, T.netpol]) {
        assert.equal(parentType(run.find(type)), 'gitlab-workspaces:proxy:Workload', type);
      }
      assert.equal(parentType(run.find(T.service, 'proxy-http')), 'gitlab-workspaces:proxy:Workload');
      assert.equal(parentType(run.find(T.service, 'proxy-ssh')), 'gitlab-workspaces:proxy:Workload');
      assert.equal(parentType(run.find(T.key, 'ssh-host-key')), 'gitlab-workspaces:proxy:SshHostKey');
      const workload = run.find('gitlab-workspaces:proxy:Workload');
      assert.ok(run.children(workload).length >= 8);
    });

    it('uses the configured namespace and fixed names the seed and agent expect', () => {
      const ns = file['gitlab-workspaces:namespace'] ?? 'gitlab-workspaces';
      assert.equal((run.find(T.namespace, 'proxy').inputs.metadata as Obj).name, ns);
      const deployment = run.find(T.deployment).inputs as Obj;
      assert.equal(deployment.metadata.name, 'gitlab-workspaces-proxy');
      assert.equal(deployment.metadata.namespace, ns);
      for (const type of [T.sa, T.pdb, T.netpol, T.ingress, T.secret]) {
        for (const r of run.ofType(type).filter((x) => run.parentOf(x)?.type.startsWith('gitlab-workspaces:proxy:'))) {
          assert.equal((r.inputs.metadata as Obj).namespace, ns, `${type}/${r.name}`);
        }
      }
      assert.equal((run.find(T.role).inputs.metadata as Obj).name, `gitlab-workspaces-proxy-${ns}`);
      assert.equal(run.outputs.namespace, ns);
      assert.match(String(run.outputs.agentConfig), new RegExp(`gitlab_workspaces_proxy:\\n    namespace: "${ns}"`));
    });

    it('runs the proxy pods locked down', () => {
      const spec = (run.find(T.deployment).inputs as Obj).spec;
      const pod = spec.template.spec;
      assert.equal(pod.securityContext.runAsNonRoot, true);
      assert.equal(pod.securityContext.seccompProfile.type, 'RuntimeDefault');
      assert.ok(pod.securityContext.runAsUser > 0);
      // Endpoint removal races SIGTERM: the pod keeps serving for a pre-stop pause while the
      // controller drops it, then the proxy drains (up to 25 s, proxy-image/src/app.ts). The grace
      // period covers both, or the kubelet kills in-flight streams.
      const preStopSleep = pod.containers[0].lifecycle?.preStop?.sleep?.seconds;
      assert.ok(preStopSleep >= 3 && preStopSleep <= 10, `preStop sleep ${preStopSleep}`);
      const drainMs = /drainTimeoutMs \?\? ([\d_]+)/.exec(readFileSync(path.join(REPO_ROOT, 'proxy-image', 'src', 'app.ts'), 'utf8'))?.[1];
      assert.ok(drainMs, "the proxy's default drain time is found in proxy-image/src/app.ts");
      const drainSeconds = Number(drainMs.replace(/_/g, '')) / 1000;
      assert.ok(pod.terminationGracePeriodSeconds >= preStopSleep + drainSeconds + 1, `grace ${pod.terminationGracePeriodSeconds}`);
      assert.equal(pod.automountServiceAccountToken, true, 'the proxy watches Services with its token');
      assert.equal(pod.containers.length, 1);
      const c = pod.containers[0];
      assert.deepEqual(c.securityContext.capabilities.drop, ['ALL']);
      assert.equal(c.securityContext.allowPrivilegeEscalation, false);
      assert.equal(c.securityContext.readOnlyRootFilesystem, true);
      assert.equal(c.securityContext.runAsNonRoot, true);
      assert.deepEqual(c.args, ['-config', '/app/config/config.yaml']);
      assert.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory);
      assert.equal(c.livenessProbe.httpGet.path, '/healthz');
      assert.equal(c.readinessProbe.httpGet.path, '/readyz');
      const internal = c.ports.find((p: Obj) => p.name === c.readinessProbe.httpGet.port);
      assert.equal(internal.containerPort, 9877, 'probes hit http.internal_port');
      assert.ok(pod.topologySpreadConstraints.some((t: Obj) => t.topologyKey === 'kubernetes.io/hostname'));
      // The config arrives as a read-only file from the config Secret; nothing secret in env.
      const mount = c.volumeMounts.find((m: Obj) => m.mountPath === '/app/config');
      assert.equal(mount.readOnly, true);
      const volume = pod.volumes.find((v: Obj) => v.name === mount.name);
      assert.equal(volume.secret.secretName, (run.find(T.secret, 'proxy-config').state.metadata as Obj).name);
      assert.deepEqual(
        (c.env ?? []).map((e: Obj) => e.name),
        ['NODE_ENV'],
      );
      assert.ok((c.env ?? []).every((e: Obj) => e.valueFrom === undefined));
    });

    it('sets replicas, autoscaling and disruption budget per stack', () => {
      const replicas = Number(file['gitlab-workspaces:replicas'] ?? 2);
      const deployment = run.find(T.deployment);
      assert.equal((deployment.inputs.spec as Obj).replicas, replicas);
      const autoscaling = (file['gitlab-workspaces:autoscaling'] ?? {}) as Obj;
      const hpas = run.ofType(T.hpa);
      if (autoscaling.enabled === false) {
        assert.equal(hpas.length, 0);
        assert.deepEqual(deployment.options.ignoreChanges, []);
      } else {
        assert.equal(hpas.length, 1);
        const hpa = (hpas[0] as CapturedResource).inputs.spec as Obj;
        assert.equal(hpa.minReplicas, replicas);
        assert.equal(hpa.maxReplicas, autoscaling.maxReplicas ?? 5);
        assert.equal(hpa.scaleTargetRef.kind, 'Deployment');
        assert.equal(hpa.scaleTargetRef.name, 'gitlab-workspaces-proxy');
        assert.deepEqual(deployment.options.ignoreChanges, ['spec.replicas']);
      }
      const pdb = run.find(T.pdb).inputs.spec as Obj;
      assert.equal(pdb.maxUnavailable, 1);
    });

    it('grants read-only access to Services and nothing else', () => {
      const rules = run.find(T.role).inputs.rules as Obj[];
      assert.deepEqual(rules, [{ apiGroups: [''], resources: ['services'], verbs: ['get', 'list', 'watch'] }]);
      const binding = run.find(T.binding).inputs as Obj;
      assert.equal(binding.roleRef.kind, 'ClusterRole');
      assert.equal(binding.roleRef.name, (run.find(T.role).inputs.metadata as Obj).name);
      assert.deepEqual(binding.subjects.map((s: Obj) => [s.kind, s.name]), [['ServiceAccount', 'gitlab-workspaces-proxy']]);
      assert.equal((run.find(T.deployment).inputs.spec as Obj).template.spec.serviceAccountName, 'gitlab-workspaces-proxy');
    });

    it('exposes HTTP inside the cluster and SSH on the stack\'s port of a load balancer', () => {
      const http = run.find(T.service, 'proxy-http').inputs.spec as Obj;
      assert.equal(http.type, 'ClusterIP');
      assert.deepEqual(http.ports.map((p: Obj) => [p.port, p.targetPort]), [[80, 'http']]);
      const ssh = run.find(T.service, 'proxy-ssh').inputs.spec as Obj;
      assert.equal(ssh.type, 'LoadBalancer');
      assert.deepEqual(ssh.ports.map((p: Obj) => [p.port, p.targetPort]), [[sshPort(file), 'ssh']]);
      const container = (run.find(T.deployment).inputs.spec as Obj).template.spec.containers[0];
      assert.equal(container.ports.find((p: Obj) => p.name === 'ssh').containerPort, 2222);
      assert.equal(container.ports.find((p: Obj) => p.name === 'http').containerPort, 9876);
    });

    it('admits HTTP only from the controller namespace and SSH from anywhere', () => {
      const spec = run.find(T.netpol).inputs.spec as Obj;
      assert.deepEqual(spec.policyTypes, ['Ingress', 'Egress']);
      const controllerNs = ((file['gitlab-workspaces:controller'] ?? {}) as Obj).namespace ?? 'traefik';
      const httpRule = spec.ingress.find((r: Obj) => r.ports.some((p: Obj) => p.port === 9876));
      assert.deepEqual(httpRule.from, [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': controllerNs } } }]);
      // The API server sets kubernetes.io/metadata.name to the name: the selector must name the
      // namespace the controller's pods really run in (the one the program creates for Traefik).
      const controllerNamespace = run.find(T.namespace, 'controller-ns');
      assert.equal((controllerNamespace.state.metadata as Obj).name, controllerNs);
      assert.equal((run.find('kubernetes:helm.sh/v3:Release', 'controller-traefik').inputs as Obj).namespace, controllerNs);
      const sshRule = spec.ingress.find((r: Obj) => r.ports.some((p: Obj) => p.port === 2222));
      assert.equal(sshRule.from, undefined, 'SSH from any source');
      assert.equal(spec.ingress.length, 2, 'no other ingress (metrics port stays closed)');
      const egressPorts = spec.egress.flatMap((r: Obj) => (r.ports ?? []).map((p: Obj) => `${p.protocol}/${p.port}`));
      for (const p of ['UDP/53', 'TCP/53', 'TCP/443', 'TCP/6443']) assert.ok(egressPorts.includes(p), p);
      assert.ok(spec.egress.some((r: Obj) => r.ports === undefined && r.to?.[0]?.namespaceSelector), 'workspace namespaces');
    });

    it('routes the proxy domain and the wildcard domain with TLS', () => {
      const domain = file['gitlab-workspaces:proxyDomain'];
      const ingress = run.find(T.ingress).inputs.spec as Obj;
      assert.deepEqual(ingress.rules.map((r: Obj) => r.host), [domain, `*.${domain}`]);
      for (const r of ingress.rules) {
        assert.deepEqual(r.http.paths[0].backend.service, { name: 'gitlab-workspaces-proxy', port: { number: 80 } });
      }
      assert.deepEqual(ingress.tls.map((t: Obj) => t.hosts), [[domain], [`*.${domain}`]]);
      assert.deepEqual(ingress.tls.map((t: Obj) => t.secretName), ['gitlab-workspaces-proxy-tls', 'gitlab-workspaces-wildcard-tls']);
      assert.equal(ingress.ingressClassName, ((file['gitlab-workspaces:controller'] ?? {}) as Obj).ingressClassName ?? 'traefik');
      // No controller-specific annotations (timeouts, buffering, rewrites) that could break WebSockets.
      assert.equal((run.find(T.ingress).inputs.metadata as Obj).annotations, undefined);
      // Created after, and destroyed before, the controller and the TLS Secrets it relies on.
      const deps = run.find(T.ingress).dependencies;
      const controllerParts = run.resources.filter((r) => r.custom && run.parentOf(r)?.type === 'gitlab-workspaces:platform:IngressController');
      assert.ok(controllerParts.length > 0);
      for (const r of controllerParts) assert.ok(deps.includes(r.urn), `Ingress depends on ${r.type}/${r.name}`);
      const tlsParts = run.resources.filter((r) => r.custom && run.parentOf(r)?.type === 'gitlab-workspaces:platform:Certificates');
      assert.ok(tlsParts.some((r) => deps.includes(r.urn)), 'Ingress depends on the certificates');
      assert.ok(deps.includes(run.find(T.service, 'proxy-http').urn));
    });

    it('orders the Deployment after its config, image, identity and namespace', () => {
      const deps = run.find(T.deployment).dependencies;
      for (const [type, name] of [[T.secret, 'proxy-config'], [T.sa, 'proxy'], [T.namespace, 'proxy']] as const) {
        assert.ok(deps.includes(run.find(type, name).urn), `${type}/${name}`);
      }
      // A stack that builds the image (gitlab-workspaces:build) rolls out only after the build.
      if (file['gitlab-workspaces:build']) assert.ok(deps.includes(run.find(T.image).urn), 'after the image build');
      else assert.equal(run.ofType(T.image).length, 0);
      const configDeps = run.find(T.secret, 'proxy-config').dependencies;
      assert.ok(configDeps.includes(run.find(T.bytes, 'signing-key').urn));
      assert.ok(configDeps.includes(run.find(T.key, 'ssh-host-key').urn));
    });

    it('pins the image by digest', () => {
      const image = (run.find(T.deployment).inputs.spec as Obj).template.spec.containers[0].image as string;
      assert.match(image, /^[^@\s]+@sha256:[0-9a-f]{64}$/);
      assert.equal(run.outputs.image, image);
      const build = file['gitlab-workspaces:build'] as Obj | undefined;
      if (build) {
        const img = run.find(T.image).inputs as Obj;
        assert.equal(img.push, true);
        assert.deepEqual(img.tags, [`${build.repository}:${build.tag}`]);
        assert.match(img.dockerfile.location, /proxy-image\/Dockerfile$/);
        assert.equal(img.context.location, REPO_ROOT);
        assert.ok(image.startsWith(`${build.repository}@sha256:`));
        if (build.username) {
          assert.equal(img.registries[0].username, build.username);
          assert.ok(run.find(T.image).secretPaths.some((p) => p.startsWith('registries')), 'registry password is secret');
        }
      }
    });

    it('generates the SSH host key (protected in production) and the signing key', () => {
      const key = run.find(T.key, 'ssh-host-key');
      const ssh = (file['gitlab-workspaces:ssh'] ?? {}) as Obj;
      assert.equal(key.inputs.algorithm, ssh.keyAlgorithm ?? 'ED25519');
      assert.equal(key.options.protect, file['gitlab-workspaces:protect'] === true);
      assert.equal(run.find(T.bytes, 'signing-key').inputs.length, 32);
      assert.match(String(run.outputs.sshHostKeyFingerprint), /^SHA256:[A-Za-z0-9+/]{43}$/);
      assert.ok(String(run.outputs.sshEndpoint).startsWith(`ssh -p ${sshPort(file)} <workspace-name>@ssh.`), String(run.outputs.sshEndpoint));
      assert.ok(String(run.outputs.sshEndpoint).includes(String(run.outputs.sshHostKeyFingerprint)));
    });

    it('manages or takes the OAuth application as configured', () => {
      const mode = ((file['gitlab-workspaces:oauth'] ?? {}) as Obj).mode ?? 'managed';
      const domain = file['gitlab-workspaces:proxyDomain'];
      assert.equal(run.outputs.oauthRedirectUri, `https://${domain}/auth/callback`);
      const apps = run.ofType(OAUTH_APP_TYPE);
      if (mode === 'managed') {
        assert.equal(apps.length, 1);
        const app = apps[0] as CapturedResource;
        assert.equal(parentType(app), 'gitlab-workspaces:proxy:OAuthApplication');
        assert.equal(app.inputs.redirectUri, `https://${domain}/auth/callback`);
        assert.equal(app.inputs.scopes, 'api read_user openid profile');
        assert.equal(app.inputs.confidential, true);
        assert.deepEqual(app.secretPaths, ['token'], 'the admin token is a secret input');
        assert.deepEqual([...app.options.additionalSecretOutputs].sort(), ['clientSecret', 'token']);
        assert.equal(typeof app.inputs.__provider, 'string');
        assert.ok(!String(app.inputs.__provider).includes(SECRET_FIXTURES['gitlab-workspaces:gitlabAdminToken'] as string));
        assert.equal(run.outputs.oauthClientId, MOCK_OAUTH.clientId);
      } else {
        assert.equal(apps.length, 0);
        assert.equal(run.outputs.oauthClientId, file['gitlab-workspaces:oauthClientId']);
      }
    });

    it('keeps every secret secret: only in secret inputs, never in plain inputs or outputs', () => {
      const secretValues = [
        ...Object.values(SECRET_FIXTURES),
        MOCK_OAUTH.clientSecret,
        mockKeyPair(String(run.find(T.key, 'ssh-host-key').inputs.algorithm)).openssh,
      ];
      const configSecret = run.find(T.secret, 'proxy-config');
      assert.deepEqual(configSecret.secretPaths, ['stringData']);
      const yaml = (configSecret.inputs.stringData as Obj)['config.yaml'] as string;
      const signingKey = (parse(yaml) as Obj).auth.signing_key as string;
      secretValues.push(signingKey);
      for (const r of run.resources) {
        const text = plainText(r);
        for (const v of secretValues) {
          // Compare on a distinctive slice so that YAML/JSON escaping of PEM newlines cannot hide a leak.
          const probe = v.split('\n').find((l) => l.length > 20 && !l.startsWith('-----')) ?? v;
          assert.ok(!text.includes(probe), `${r.type}/${r.name} carries a secret in a plain input`);
        }
      }
      const outputsText = JSON.stringify(run.outputs);
      for (const v of secretValues) assert.ok(!outputsText.includes(v.split('\n')[1] ?? v), 'a stack output carries a secret');
      // Whatever generated it (SSH host key, TLS keys of the local CA), no private key is an output.
      assert.doesNotMatch(outputsText, /PRIVATE KEY/);
      assert.deepEqual([...run.secretOutputs], [], 'outputs are all public (nothing for `pulumi stack output` to hide)');
      // Labels and annotations never hold derived secret material either.
      for (const r of run.resources) {
        const meta = (r.inputs.metadata ?? {}) as Obj;
        for (const field of ['labels', 'annotations']) {
          assert.ok(!r.secretPaths.some((p) => p.startsWith(`metadata.${field}`)), `${r.type}/${r.name} ${field}`);
          assert.ok(!JSON.stringify(meta[field] ?? {}).includes(signingKey));
        }
      }
    });

    it('exports the outputs of docs/contract.md §7', () => {
      const domain = file['gitlab-workspaces:proxyDomain'];
      assert.equal(run.outputs.proxyUrl, `https://${domain}`);
      assert.equal(run.outputs.wildcardDomain, `*.${domain}`);
      assert.equal(run.outputs.loadBalancerAddress, '203.0.113.10');
      assert.equal(run.outputs.sshLoadBalancerAddress, '203.0.113.10');
      // What `ssh -p <port>` looks up in known_hosts: the bare name on 22, `[name]:port` otherwise.
      const knownAs = sshPort(file) === 22 ? `ssh.${domain}` : `[ssh.${domain}]:${sshPort(file)}`;
      assert.ok(String(run.outputs.sshKnownHosts).startsWith(`${knownAs} ssh-`), String(run.outputs.sshKnownHosts));
      // The seed's final checks, adapted: including its look at the config Secret (by its real,
      // generated name) and at the Ingress.
      const verification = run.outputs.verification as Record<string, string>;
      const secretName = (run.find(T.secret, 'proxy-config').state.metadata as Obj).name as string;
      assert.equal(
        verification.config,
        `kubectl -n ${run.outputs.namespace} get secret ${secretName} -o go-template='{{index .data "config.yaml"}}' | base64 -d  # the proxy's config.yaml (prints secrets: mind your screen)`,
      );
      assert.match(verification.pods ?? '', /get pods,ingress/);
      // The agent's own settings (agent.remoteDevelopment) are checked in agent-stacks.test.ts.
      const agent = (parse(String(run.outputs.agentConfig)) as Obj).remote_development;
      assert.deepEqual([agent.enabled, agent.dns_zone, agent.gitlab_workspaces_proxy], [true, domain, { namespace: run.outputs.namespace }]);
    });
  });
}

describe('stack variants', () => {
  it('local: SSH on an unprivileged port that a k3d port mapping can expose as is, pinned in known_hosts', async () => {
    const run = await runStack('local');
    assert.equal(sshPort(stackFile('local')), 2222);
    assert.match(String(run.outputs.sshEndpoint), /^ssh -p 2222 <workspace-name>@ssh\.workspaces\.localdev\.me /);
    assert.match(String(run.outputs.sshKnownHosts), /^\[ssh\.workspaces\.localdev\.me\]:2222 ssh-ed25519 /);
    // The README's k3d command (Deploy → local) maps exactly that port.
    assert.match(readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8'), /-p "2222:2222@loadbalancer"/);
  });

  it('puts the SSH host key behind a non-default port in known_hosts and endpoint', async () => {
    const run = await runStack('local', { 'gitlab-workspaces:ssh': JSON.stringify({ servicePort: 2022, keyAlgorithm: 'RSA' }) });
    assert.match(String(run.outputs.sshKnownHosts), /^\[ssh\.workspaces\.localdev\.me\]:2022 ssh-rsa /);
    assert.match(String(run.outputs.sshEndpoint), /^ssh -p 2022 /);
    assert.equal(run.find(T.key, 'ssh-host-key').inputs.rsaBits, 4096);
  });

  it('drops the SSH service, key and port when SSH is disabled', async () => {
    const run = await runStack('local', { 'gitlab-workspaces:ssh': JSON.stringify({ enabled: false }) });
    assert.equal(run.ofType(T.key).filter((r) => r.name === 'ssh-host-key').length, 0);
    assert.equal(run.ofType(T.service).filter((r) => r.name === 'proxy-ssh').length, 0);
    const container = (run.find(T.deployment).inputs.spec as Obj).template.spec.containers[0];
    assert.deepEqual(container.ports.map((p: Obj) => p.name), ['http', 'internal']);
    const yaml = (run.find(T.secret, 'proxy-config').inputs.stringData as Obj)['config.yaml'] as string;
    assert.equal((parse(yaml) as Obj).ssh.enabled, false);
    assert.equal(run.outputs.sshEndpoint, null);
  });

  it('uses a prebuilt image as given, without building', async () => {
    const ref = `registry.example.com/proxy@sha256:${'ab'.repeat(32)}`;
    const run = await runStack('local', { 'gitlab-workspaces:image': ref }, { dropKeys: ['gitlab-workspaces:build'] });
    assert.equal(run.ofType(T.image).length, 0);
    assert.equal((run.find(T.deployment).inputs.spec as Obj).template.spec.containers[0].image, ref);
  });

  it('allows egress to GitLab on the port of its URL', async () => {
    const run = await runStack('local', { 'gitlab-workspaces:gitlabUrl': 'http://gitlab.internal:8080/' });
    const egress = (run.find(T.netpol).inputs.spec as Obj).egress as Obj[];
    assert.ok(egress.some((r) => r.ports?.some((p: Obj) => p.port === 8080)));
    const yaml = (run.find(T.secret, 'proxy-config').inputs.stringData as Obj)['config.yaml'] as string;
    assert.equal((parse(yaml) as Obj).auth.host, 'http://gitlab.internal:8080');
  });
});
