// GitLabWorkspaces: everything this project deploys (platform: controller, Gateway API or Ingress
// routing, certificates, DNS; proxy: OAuth app, keys, config, image, workload, routing; the GitLab
// agent) as one component, for this repository's stacks (infra/program.ts) and for any other Pulumi
// program in TypeScript. Its settings are the stack config's keys, validated by the same schema
// (infra/config.ts), so there is one definition; the caller passes its own Kubernetes provider, and
// its namespace and controller or Gateway as settings (namespace, controller.existingService,
// routing.gateway.existing).
import * as path from 'node:path';
import type * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import { parseSettings, type StackConfig, type WorkspacesSettings } from './config';
import { OAuthApplication } from './components/oauth-app';
import { SigningKey, SshHostKey } from './components/keys';
import { ProxyConfigSecret } from './components/proxy-config';
import { ProxyImage } from './components/image';
import { ImagePullSecret, registryOf } from './components/image-pull';
import { GitLabCaBundle } from './components/gitlab-ca';
import { ProxyNamespace } from './components/namespace';
import { ProxyWorkload } from './components/workload';
import { ProxyRouting } from './components/routing';
import { Certificates, DnsRecords, GatewayApiCrds, IngressController, ProxyGateway, addressText, gatewaySettings, loadBalancerAddressOf, verificationChecks } from './platform';
import { WorkspacesAgent, type AgentSummary } from './agent';

export const WORKSPACES_TYPE = 'gitlab-workspaces:index:GitLabWorkspaces';
/** Package root: the default image build context (proxy-image/ and the npm workspace live there). */
export const PACKAGE_ROOT = path.resolve(__dirname, '..');

export interface WorkspacesOutputs {
  proxyUrl: string;
  wildcardDomain: string;
  dnsZone: string;
  namespace: pulumi.Output<string>;
  oauthRedirectUri: string;
  oauthClientId: pulumi.Output<string>;
  oauthMode: string;
  image: pulumi.Output<string>;
  loadBalancerAddress: pulumi.Output<string>;
  sshEndpoint: pulumi.Output<string> | null;
  sshHost: string | null;
  sshLoadBalancerAddress: pulumi.Output<string> | null;
  sshHostKeyFingerprint: pulumi.Output<string> | null;
  sshKnownHosts: pulumi.Output<string> | null;
  agentConfig: pulumi.Output<string> | null;
  agent: pulumi.Output<AgentSummary> | null;
  caCertificate: pulumi.Output<string> | null;
  dnsRecords: pulumi.Output<unknown>;
  dnsInstructions: pulumi.Output<string>;
  verification: pulumi.Output<Record<string, string>>;
}

export interface GitLabWorkspacesArgs extends WorkspacesSettings {
  /**
   * Kubernetes provider for every Kubernetes object (the caller's cluster); default: the program's
   * default provider. `ComponentResourceOptions.providers` works too.
   */
  kubernetesProvider?: k8s.Provider;
  /** `app.kubernetes.io/instance` label and the managed OAuth app's default name; default: the component's name. */
  instance?: string;
  /** Image build context (with `build`): a checkout of this repository; default: this package's root. */
  buildContext?: string;
  /**
   * Only for this repository's stacks: their resources were declared at the stack's root before this
   * component existed; aliases let those stacks adopt them without a replacement. Leave unset elsewhere.
   */
  adoptRootResources?: boolean;
}

function controllerNamespaceOf(cfg: StackConfig): string {
  if (cfg.controller.mode === 'existing' && cfg.controller.existingService) return cfg.controller.existingService.split('/')[0] as string;
  return cfg.controller.namespace;
}

function withProvider(providers: pulumi.ComponentResourceOptions['providers'], kubernetes: k8s.Provider | undefined): pulumi.ComponentResourceOptions['providers'] {
  if (!kubernetes) return providers;
  if (Array.isArray(providers)) return [...providers, kubernetes];
  return { ...(providers ?? {}), kubernetes };
}

export class GitLabWorkspaces extends pulumi.ComponentResource {
  /** The same outputs as a stack of this repository (README: Stack outputs). */
  readonly outputs: WorkspacesOutputs;
  readonly proxyUrl: string;
  readonly namespace: pulumi.Output<string>;
  readonly loadBalancerAddress: pulumi.Output<string>;
  readonly verification: pulumi.Output<Record<string, string>>;
  private readonly adopt: boolean;
  private readonly baseName: string;

  constructor(name: string, args: GitLabWorkspacesArgs, opts?: pulumi.ComponentResourceOptions) {
    const { kubernetesProvider, instance, buildContext, adoptRootResources, ...settings } = args;
    // Validated before anything is registered: a bad setting declares nothing.
    const cfg = parseSettings(settings, { instance: instance ?? name, label: `GitLabWorkspaces ${name}` });
    super(WORKSPACES_TYPE, name, {}, { ...opts, providers: withProvider(opts?.providers, kubernetesProvider) });
    this.adopt = adoptRootResources ?? false;
    this.baseName = name;
    const REPO_ROOT = buildContext ?? PACKAGE_ROOT;
    const labels = {
      'app.kubernetes.io/part-of': 'gitlab-workspaces',
      'app.kubernetes.io/instance': cfg.stack,
      'app.kubernetes.io/managed-by': 'pulumi',
    };
    const gitlab = new URL(cfg.gitlabUrl);
    const gitlabUrl = gitlab.origin + gitlab.pathname.replace(/\/+$/, '');

    // --- platform ---
    // Gateway API routing (routing.mode: gateway): the CRDs first, Traefik's Gateway provider on.
    const gatewayMode = cfg.routing.mode === 'gateway';
    const gatewayCfg = gatewaySettings(cfg.routing, cfg.controller);
    const gatewayCrds =
      gatewayMode && gatewayCfg.installCrds ? new GatewayApiCrds(this.childName('gateway-api'), { version: gatewayCfg.crdVersion, protect: cfg.protect }, this.childOptions('gateway-api')) : undefined;
    const gatewayApi = gatewayMode ? { crds: gatewayCrds } : undefined;
    const controller = new IngressController(this.childName('controller'), { config: cfg.controller, protect: cfg.protect, gatewayApi }, this.childOptions('controller'));
    const ns = new ProxyNamespace(this.childName('proxy'), { name: cfg.namespace, labels }, this.childOptions('proxy'));
    // An existing Gateway terminates TLS with its own certificates: none are created then.
    const certificates = gatewayCfg.existing && gatewayMode ? undefined : new Certificates(this.childName('tls'), {
      config: cfg.tls,
      proxyDomain: cfg.proxyDomain,
      wildcardDomain: cfg.wildcardDomain,
      namespace: ns.name,
      secrets: {
        cloudflareApiToken: cfg.secrets.cloudflareApiToken,
        tlsProxyCert: cfg.secrets.tlsProxyCert,
        tlsProxyKey: cfg.secrets.tlsProxyKey,
        tlsWildcardCert: cfg.secrets.tlsWildcardCert,
        tlsWildcardKey: cfg.secrets.tlsWildcardKey,
      },
      protect: cfg.protect,
      gatewayApi,
    }, this.childOptions('tls'));
    const gateway = gatewayMode
      ? new ProxyGateway(
          this.childName('gateway'),
          {
            settings: gatewayCfg,
            namespace: ns.name,
            labels,
            proxyDomain: cfg.proxyDomain,
            wildcardDomain: cfg.wildcardDomain,
            proxyTlsSecretName: certificates?.proxyTlsSecretName ?? '',
            wildcardTlsSecretName: certificates?.wildcardTlsSecretName ?? '',
            clusterIssuer: certificates?.clusterIssuerName,
            createClass: cfg.controller.mode === 'install',
          }, this.childOptions('gateway', { dependsOn: [controller, ...(certificates ? [certificates] : []), ...(gatewayCrds ? [gatewayCrds] : [])] }))
      : undefined;

    // --- proxy ---
    const oauth = new OAuthApplication(this.childName('oauth'), {
      mode: cfg.oauth.mode,
      gitlabUrl,
      proxyDomain: cfg.proxyDomain,
      appName: cfg.oauthAppName,
      adminToken: cfg.secrets.gitlabAdminToken,
      clientId: cfg.oauthClientId,
      clientSecret: cfg.secrets.oauthClientSecret,
      caBundle: cfg.gitlabCaBundle,
    }, this.childOptions('oauth'));
    const hostKey = cfg.ssh.enabled
      ? new SshHostKey(this.childName('ssh-host-key'), {
          algorithm: cfg.ssh.keyAlgorithm,
          rsaBits: cfg.ssh.rsaBits,
          ecdsaCurve: cfg.ssh.ecdsaCurve,
          protect: cfg.protect,
        }, this.childOptions('ssh-host-key'))
      : undefined;
    const signingKey = new SigningKey(this.childName('signing-key'), this.childOptions('signing-key'));
    // --- GitLab agent (infra/agent): rendered from the proxy's own zone and namespace ---
    const agentTokenKey = cfg.secrets.gitlabApiToken ? 'gitlabApiToken' : 'gitlabAdminToken';
    const agent = new WorkspacesAgent(this.childName('agent'), {
      config: { ...cfg.agent, name: cfg.agentName },
      stack: cfg.stack,
      gitlabUrl,
      dnsZone: cfg.dnsZone,
      proxyNamespace: ns.name,
      labels,
      apiToken: cfg.secrets[agentTokenKey],
      tokenConfigKey: `${pulumi.getProject()}:${agentTokenKey}`,
      gitlabCaBundle: cfg.gitlabCaBundle,
      protect: cfg.protect,
      // SSH key logins need the proxy's own token: the stack's sshServiceToken, else managed mode makes one.
      proxyServiceToken: cfg.ssh.enabled && cfg.ssh.publicKeyAuth && !cfg.secrets.sshServiceToken,
    }, this.childOptions('agent'));
    const serviceToken = cfg.secrets.sshServiceToken ?? agent.proxyServiceToken?.value;

    const config = new ProxyConfigSecret(this.childName('proxy-config'), {
      namespace: ns.name,
      labels,
      gitlabUrl,
      redirectUri: oauth.redirectUri,
      clientId: oauth.clientId,
      clientSecret: oauth.clientSecret,
      signingKey: signingKey.value,
      protocol: cfg.proxy.protocol,
      reauthorizeInterval: cfg.proxy.reauthorizeInterval,
      maxSessionDuration: cfg.proxy.maxSessionDuration,
      logLevel: cfg.proxy.logLevel,
      ssh: {
        enabled: cfg.ssh.enabled,
        hostKey: hostKey ? hostKey.privateKeyOpenssh : '',
        backendPort: cfg.ssh.backendPort,
        backendUsername: cfg.ssh.backendUsername,
        publicKeyAuth: cfg.ssh.publicKeyAuth,
      },
      serviceToken,
    }, this.childOptions('proxy-config'));
    const image = new ProxyImage(this.childName('proxy-image'), {
      image: cfg.image,
      build: cfg.build,
      registryPassword: cfg.secrets.registryPassword,
      contextDir: REPO_ROOT,
    }, this.childOptions('proxy-image'));
    const gitlabCa = cfg.gitlabCaBundle ? new GitLabCaBundle(this.childName('gitlab-ca'), { namespace: ns.name, labels, bundle: cfg.gitlabCaBundle }, this.childOptions('gitlab-ca')) : undefined;
    const pullSecret =
      cfg.imagePull.username && cfg.secrets.imagePullPassword
        ? new ImagePullSecret(this.childName('image-pull'), {
            namespace: ns.name,
            labels,
            registry: cfg.imagePull.registry ?? registryOf(cfg.build?.repository ?? (cfg.image ?? '').split('@')[0] ?? ''),
            username: cfg.imagePull.username,
            password: cfg.secrets.imagePullPassword,
          }, this.childOptions('image-pull'))
        : undefined;
    const workload = new ProxyWorkload(this.childName('proxy'), {
      namespace: ns.name,
      labels,
      image: image.ref,
      configSecretName: config.secretName,
      imagePullSecretName: pullSecret?.secretName ?? cfg.imagePull.existingSecret,
      gitlabCa,
      replicas: cfg.replicas,
      autoscaling: cfg.autoscaling,
      resources: cfg.resources,
      ssh: cfg.ssh,
      networkPolicy: {
        ...cfg.networkPolicy,
        controllerNamespace: controllerNamespaceOf(cfg),
        gitlabPort: Number(gitlab.port || (gitlab.protocol === 'https:' ? 443 : 80)),
      },
    }, this.childOptions('proxy'));
    const routed = { namespace: ns.name, labels, proxyDomain: cfg.proxyDomain, wildcardDomain: cfg.wildcardDomain, serviceName: workload.httpServiceName, servicePort: workload.httpServicePort };
    if (gateway) {
      new ProxyRouting(this.childName('proxy'), { ...routed, mode: 'gateway', proxyParentRef: gateway.proxyParentRef, workspacesParentRef: gateway.workspacesParentRef }, this.childOptions('proxy', { dependsOn: [gateway] }));
    } else {
      // certificates exists in ingress mode (only an existing Gateway goes without).
      const tls = certificates as Certificates;
      new ProxyRouting(this.childName('proxy'), {
        ...routed,
        ingressClassName: controller.ingressClassName,
        proxyTlsSecretName: tls.proxyTlsSecretName,
        wildcardTlsSecretName: tls.wildcardTlsSecretName,
      }, this.childOptions('proxy', { dependsOn: [controller, tls] }));
    }

    const sshLoadBalancer = workload.sshService ? loadBalancerAddressOf(workload.sshService) : undefined;
    const dns = new DnsRecords(this.childName('dns'), {
      config: cfg.dns,
      proxyDomain: cfg.proxyDomain,
      wildcardDomain: cfg.wildcardDomain,
      httpLoadBalancer: controller.loadBalancer,
      ssh: sshLoadBalancer ? { host: cfg.sshHost, loadBalancer: sshLoadBalancer } : undefined,
      cloudflareApiToken: cfg.secrets.cloudflareApiToken,
    }, this.childOptions('dns'));

    const sshPort = cfg.ssh.servicePort;
    // How users log in: their GitLab SSH key when the proxy has a service token to look keys up with.
    const keysOn = cfg.ssh.publicKeyAuth && serviceToken !== undefined;
    const sshLoginHint = keysOn
      ? 'log in with an SSH key from your GitLab profile, or a personal access token as password'
      : 'password: a GitLab personal access token';
    const sshHostPart = sshPort === 22 ? cfg.sshHost : `[${cfg.sshHost}]:${sshPort}`;

    this.outputs = {
      proxyUrl: `https://${cfg.proxyDomain}`,
      wildcardDomain: cfg.wildcardDomain,
      dnsZone: cfg.dnsZone,
      namespace: ns.name,
      oauthRedirectUri: oauth.redirectUri,
      oauthClientId: oauth.clientId,
      oauthMode: cfg.oauth.mode,
      image: image.ref,
      loadBalancerAddress: controller.address,
      sshEndpoint: hostKey
        ? hostKey.fingerprintSha256.apply((fp) => `ssh -p ${sshPort} <workspace-name>@${cfg.sshHost}  (host key ${fp}; ${sshLoginHint})`)
        : null,
      sshHost: hostKey ? cfg.sshHost : null,
      sshLoadBalancerAddress: sshLoadBalancer ? sshLoadBalancer.apply(addressText) : null,
      sshHostKeyFingerprint: hostKey ? hostKey.fingerprintSha256 : null,
      // A line for ~/.ssh/known_hosts, so users can pin the key before the first connection.
      sshKnownHosts: hostKey ? hostKey.publicKeyOpenssh.apply((k) => `${sshHostPart} ${k.trim()}`) : null,
      agentConfig: agent.configText ?? null,
      agent: agent.summary ?? null,
      caCertificate: certificates?.caCertificate ?? null,
      dnsRecords: dns.records,
      dnsInstructions: dns.instructions,
      verification: pulumi.all([config.secretName, gateway?.gatewayName, gateway?.gatewayNamespace]).apply(([configSecret, gwName, gwNamespace]) =>
        verificationChecks({
          domain: cfg.proxyDomain,
          namespace: cfg.namespace,
          podSelector: workload.podSelector,
          tlsMode: cfg.tls.mode,
          acmeServer: cfg.tls.acme?.server,
          stack: cfg.stack,
          ssh: hostKey ? { host: cfg.sshHost, port: sshPort } : undefined,
          configSecret,
          gateway: gwName && gwNamespace ? { name: gwName, namespace: gwNamespace } : undefined,
        }),
      ),
    };
    this.proxyUrl = this.outputs.proxyUrl;
    this.namespace = this.outputs.namespace;
    this.loadBalancerAddress = this.outputs.loadBalancerAddress;
    this.verification = this.outputs.verification;
    this.registerOutputs(this.outputs);
  }

  /** Children are named `<component>-<part>`, as pulumi-eks does. */
  private childName(part: string): string {
    return `${this.baseName}-${part}`;
  }

  /**
   * parent: this; for adopted stacks an alias to the part's old place at the stack's root. Its own
   * children follow through the aliases the SDK derives from their parent's (a child named
   * `<parent>-x` is aliased to `<parent's old name>-x` under the parent's old URN).
   */
  private childOptions(part: string, extra: pulumi.ComponentResourceOptions = {}): pulumi.ComponentResourceOptions {
    const aliases = this.adopt ? [{ name: part, parent: pulumi.rootStackResource }] : [];
    return { ...extra, parent: this, aliases: [...(extra.aliases ?? []), ...aliases] };
  }
}
