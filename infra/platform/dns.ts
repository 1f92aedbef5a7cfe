// DNS records for the proxy domain, the wildcard domain and the SSH host. `cloudflare` manages them;
// `none` only describes them (stack output) for a person to create.
import * as cloudflare from '@pulumi/cloudflare';
import * as pulumi from '@pulumi/pulumi';
import type { DnsConfig } from './config';
import type { LoadBalancerAddress } from './controller';

export interface DnsRecordSpec {
  /** Fully qualified name, e.g. `*.workspaces.example.dev`. */
  name: string;
  type: 'A' | 'AAAA' | 'CNAME';
  /** IP address or target hostname; `""` while the load balancer has no address yet. */
  content: string;
}

/** A for IPv4, AAAA for IPv6, CNAME when the load balancer only reports a hostname (AWS ELB). */
export function recordFor(name: string, lb: LoadBalancerAddress): DnsRecordSpec {
  if (lb.ip) return { name, type: lb.ip.includes(':') ? 'AAAA' : 'A', content: lb.ip };
  if (lb.hostname) return { name, type: 'CNAME', content: lb.hostname };
  return { name, type: 'A', content: '' };
}

/** {@link recordFor}, failing the deployment rather than writing an empty record. */
export function requireAddress(name: string, lb: LoadBalancerAddress): DnsRecordSpec {
  const r = recordFor(name, lb);
  if (!r.content) throw new Error(`load balancer for ${name} reports no address (status.loadBalancer.ingress is empty)`);
  return r;
}

/** The records a stack needs: proxy domain and wildcard to the HTTP(S) LB, SSH host to the SSH LB. */
export function plannedRecords(
  proxyDomain: string,
  wildcardDomain: string,
  http: LoadBalancerAddress,
  ssh?: { host: string; loadBalancer: LoadBalancerAddress },
): DnsRecordSpec[] {
  const out = [recordFor(proxyDomain, http), recordFor(wildcardDomain, http)];
  if (ssh) out.push(recordFor(ssh.host, ssh.loadBalancer));
  return out;
}

/** Zone-file lines for `none` mode (what to paste into a DNS provider). */
export function recordsAsText(records: DnsRecordSpec[]): string {
  return records
    .map((r) => `${r.name}. 300 IN ${r.type} ${r.content ? (r.type === 'CNAME' ? `${r.content}.` : r.content) : '<load balancer address pending>'}`)
    .join('\n');
}

export interface DnsRecordsArgs {
  config: DnsConfig;
  proxyDomain: string;
  /** `*.<zone>`, e.g. `*.workspaces.example.dev`. */
  wildcardDomain: string;
  /** Address of the ingress controller's LoadBalancer Service (carries the resource dependency). */
  httpLoadBalancer: pulumi.Input<LoadBalancerAddress>;
  /** SSH host name and the address of the proxy's SSH LoadBalancer Service; omit when SSH is off. */
  ssh?: { host: string; loadBalancer: pulumi.Input<LoadBalancerAddress> };
  cloudflareApiToken?: pulumi.Input<string>;
}

export class DnsRecords extends pulumi.ComponentResource {
  /** What should exist in DNS (both modes). */
  readonly records: pulumi.Output<DnsRecordSpec[]>;
  /** `none` mode: zone-file lines to create by hand; `cloudflare` mode: a note that they are managed. */
  readonly instructions: pulumi.Output<string>;
  readonly cloudflareRecords: cloudflare.DnsRecord[];

  constructor(name: string, args: DnsRecordsArgs, opts?: pulumi.ComponentResourceOptions) {
    super('gitlab-workspaces:platform:DnsRecords', name, {}, opts);
    const httpLb = pulumi.output(args.httpLoadBalancer);
    const sshLb = args.ssh ? pulumi.output(args.ssh.loadBalancer) : pulumi.output<LoadBalancerAddress | undefined>(undefined);
    const sshHost = args.ssh?.host;
    this.records = pulumi
      .all([httpLb, sshLb])
      .apply(([h, s]) => plannedRecords(args.proxyDomain, args.wildcardDomain, h, sshHost && s ? { host: sshHost, loadBalancer: s } : undefined));
    this.cloudflareRecords = [];

    if (args.config.mode === 'cloudflare') {
      if (args.cloudflareApiToken === undefined) throw new Error('cloudflareApiToken is required (secret) when dns.mode is cloudflare');
      const zoneId = args.config.zoneId as string; // enforced by the config schema in this mode
      // An explicit provider: the token comes from this stack's secret config, never from env.
      const provider = new cloudflare.Provider(`${name}-cloudflare`, { apiToken: pulumi.secret(args.cloudflareApiToken) }, { parent: this });
      const record = (suffix: string, fqdn: string, lb: pulumi.Output<LoadBalancerAddress>, comment: string) => {
        const spec = lb.apply((a) => requireAddress(fqdn, a));
        return new cloudflare.DnsRecord(
          `${name}-${suffix}`,
          {
            zoneId,
            name: fqdn,
            type: spec.type,
            content: spec.content,
            // Not proxied: Cloudflare's proxy would terminate TLS for the wildcard and can't carry SSH.
            proxied: false,
            ttl: 1,
            comment,
          },
          // A changed record type (A <-> CNAME) can't coexist with the old one under the same name.
          { parent: this, provider, deleteBeforeReplace: true },
        );
      };
      this.cloudflareRecords.push(
        record('proxy', args.proxyDomain, httpLb, 'GitLab workspaces proxy (managed by Pulumi)'),
        record('wildcard', args.wildcardDomain, httpLb, 'GitLab workspaces (managed by Pulumi)'),
      );
      if (args.ssh) {
        this.cloudflareRecords.push(record('ssh', args.ssh.host, pulumi.output(args.ssh.loadBalancer), 'GitLab workspaces SSH (managed by Pulumi)'));
      }
      this.instructions = pulumi.output('managed by Pulumi in Cloudflare (nothing to do)');
    } else {
      this.instructions = this.records.apply((r) => `create these DNS records (not proxied):\n${recordsAsText(r)}`);
    }
    this.registerOutputs({ records: this.records, instructions: this.instructions });
  }
}
