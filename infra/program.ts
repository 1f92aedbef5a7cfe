// The whole stack: platform (controller, certificates, DNS), the proxy (OAuth app, keys, config,
// image, workload, routing) and the GitLab agent (infra/agent). Config is validated first; nothing is
// declared when it is invalid.
import * as path from 'node:path';
import * as pulumi from '@pulumi/pulumi';
import { loadStackConfig, type StackConfig } from './config';
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

/** Repository root: the image build context. */
const REPO_ROOT = path.resolve(__dirname, '..');

export interface StackOutputs {
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

function controllerNamespaceOf(cfg: StackConfig): string {
  if (cfg.controller.mode === 'existing' && cfg.controller.existingService) return cfg.controller.existingService.split('/')[0] as string;
  return cfg.controller.namespace;
}

export async function main(): Promise<StackOutputs> {
  const cfg = loadStackConfig();
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
    gatewayMode && gatewayCfg.installCrds ? new GatewayApiCrds('gateway-api', { version: gatewayCfg.crdVersion, protect: cfg.protect }) : undefined;
  const gatewayApi = gatewayMode ? { crds: gatewayCrds } : undefined;
  const controller = new IngressController('controller', { config: cfg.controller, protect: cfg.protect, gatewayApi });
  const ns = new ProxyNamespace('proxy', { name: cfg.namespace, labels });
  // An existing Gateway terminates TLS with its own certificates: none are created then.
  const certificates = gatewayCfg.existing && gatewayMode ? undefined : new Certificates('tls', {
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
  });
  const gateway = gatewayMode
    ? new ProxyGateway(
        'gateway',
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
        },
        { dependsOn: [controller, ...(certificates ? [certificates] : []), ...(gatewayCrds ? [gatewayCrds] : [])] },
      )
    : undefined;

  // --- proxy ---
  const oauth = new OAuthApplication('oauth', {
    mode: cfg.oauth.mode,
    gitlabUrl,
    proxyDomain: cfg.proxyDomain,
    appName: cfg.oauthAppName,
    adminToken: cfg.secrets.gitlabAdminToken,
    clientId: cfg.oauthClientId,
    clientSecret: cfg.secrets.oauthClientSecret,
    caBundle: cfg.gitlabCaBundle,
  });
  const hostKey = cfg.ssh.enabled
    ? new SshHostKey('ssh-host-key', {
        algorithm: cfg.ssh.keyAlgorithm,
        rsaBits: cfg.ssh.rsaBits,
        ecdsaCurve: cfg.ssh.ecdsaCurve,
        protect: cfg.protect,
      })
    : undefined;
  const signingKey = new SigningKey('signing-key');
  // --- GitLab agent (infra/agent): rendered from the proxy's own zone and namespace ---
  const agentTokenKey = cfg.secrets.gitlabApiToken ? 'gitlabApiToken' : 'gitlabAdminToken';
  const agent = new WorkspacesAgent('agent', {
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
  });
  const serviceToken = cfg.secrets.sshServiceToken ?? agent.proxyServiceToken?.value;

  const config = new ProxyConfigSecret('proxy-config', {
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
  });
  const image = new ProxyImage('proxy-image', {
    image: cfg.image,
    build: cfg.build,
    registryPassword: cfg.secrets.registryPassword,
    contextDir: REPO_ROOT,
  });
  const gitlabCa = cfg.gitlabCaBundle ? new GitLabCaBundle('gitlab-ca', { namespace: ns.name, labels, bundle: cfg.gitlabCaBundle }) : undefined;
  const pullSecret =
    cfg.imagePull.username && cfg.secrets.imagePullPassword
      ? new ImagePullSecret('image-pull', {
          namespace: ns.name,
          labels,
          registry: cfg.imagePull.registry ?? registryOf(cfg.build?.repository ?? (cfg.image ?? '').split('@')[0] ?? ''),
          username: cfg.imagePull.username,
          password: cfg.secrets.imagePullPassword,
        })
      : undefined;
  const workload = new ProxyWorkload('proxy', {
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
  });
  const routed = { namespace: ns.name, labels, proxyDomain: cfg.proxyDomain, wildcardDomain: cfg.wildcardDomain, serviceName: workload.httpServiceName, servicePort: workload.httpServicePort };
  if (gateway) {
    new ProxyRouting('proxy', { ...routed, mode: 'gateway', proxyParentRef: gateway.proxyParentRef, workspacesParentRef: gateway.workspacesParentRef }, { dependsOn: [gateway] });
  } else {
    // certificates exists in ingress mode (only an existing Gateway goes without).
    const tls = certificates as Certificates;
    new ProxyRouting('proxy', {
      ...routed,
      ingressClassName: controller.ingressClassName,
      proxyTlsSecretName: tls.proxyTlsSecretName,
      wildcardTlsSecretName: tls.wildcardTlsSecretName,
    }, { dependsOn: [controller, tls] });
  }

  const sshLoadBalancer = workload.sshService ? loadBalancerAddressOf(workload.sshService) : undefined;
  const dns = new DnsRecords('dns', {
    config: cfg.dns,
    proxyDomain: cfg.proxyDomain,
    wildcardDomain: cfg.wildcardDomain,
    httpLoadBalancer: controller.loadBalancer,
    ssh: sshLoadBalancer ? { host: cfg.sshHost, loadBalancer: sshLoadBalancer } : undefined,
    cloudflareApiToken: cfg.secrets.cloudflareApiToken,
  });

  const sshPort = cfg.ssh.servicePort;
  // How users log in: their GitLab SSH key when the proxy has a service token to look keys up with.
  const keysOn = cfg.ssh.publicKeyAuth && serviceToken !== undefined;
  const sshLoginHint = keysOn
    ? 'log in with an SSH key from your GitLab profile, or a personal access token as password'
    : 'password: a GitLab personal access token';
  const sshHostPart = sshPort === 22 ? cfg.sshHost : `[${cfg.sshHost}]:${sshPort}`;
  return {
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
}
