// The platform's config sections: defaults (the embedded local default), and one clear message per
// missing or invalid key, through the stack's one schema.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseStackConfig, StackConfigError } from '../../infra/config';
import { platformConfigSchema, traefikValues, ttlToMs, verificationChecks } from '../../infra/platform';

const BASE: Record<string, string> = {
  'gitlab-workspaces:proxyDomain': 'workspaces.example.dev',
  'gitlab-workspaces:gitlabUrl': 'https://gitlab.example.dev',
  'gitlab-workspaces:oauth': JSON.stringify({ mode: 'provided' }),
  'gitlab-workspaces:oauthClientId': 'cid',
  'gitlab-workspaces:oauthClientSecret': 'csecret',
  'gitlab-workspaces:image': `registry.example.dev/proxy@sha256:${'a'.repeat(64)}`,
};
const SECRET = new Set(['gitlab-workspaces:oauthClientSecret', 'gitlab-workspaces:cloudflareApiToken', 'gitlab-workspaces:tlsProxyCert']);

function problems(extra: Record<string, unknown>, secrets = SECRET): string[] {
  const all = { ...BASE };
  for (const [k, v] of Object.entries(extra)) all[`gitlab-workspaces:${k}`] = typeof v === 'string' ? v : JSON.stringify(v);
  try {
    parseStackConfig(all, { stack: 't', isSecret: (k) => secrets.has(k) });
    return [];
  } catch (e) {
    assert.ok(e instanceof StackConfigError, String(e));
    return e.problems;
  }
}

describe('platform config', () => {
  it('defaults to Traefik, self-signed TLS and no DNS (nothing outside the cluster needed)', () => {
    const c = platformConfigSchema.parse({});
    assert.equal(c.controller.mode, 'install');
    assert.equal(c.controller.ingressClassName, 'traefik');
    assert.equal(c.tls.mode, 'self-signed');
    assert.equal(c.dns.mode, 'none');
    assert.equal(c.protect, false);
    assert.deepEqual(problems({}), []);
  });

  it('names the missing key for each mode', () => {
    assert.ok(problems({ tls: { mode: 'acme' } }).includes('gitlab-workspaces:tls.acme: required when tls.mode is acme (acme.email, acme.server)'));
    assert.ok(problems({ tls: { mode: 'acme', acme: { email: 'a@b.dev' } } }).some((p) => p.startsWith('gitlab-workspaces:cloudflareApiToken: required (secret) when tls.mode is acme')));
    assert.ok(problems({ dns: { mode: 'cloudflare' } }).includes('gitlab-workspaces:dns.zoneId: required when dns.mode is cloudflare'));
    const provided = problems({ tls: { mode: 'provided' } });
    for (const k of ['tlsProxyCert', 'tlsProxyKey', 'tlsWildcardCert', 'tlsWildcardKey']) {
      assert.ok(provided.includes(`gitlab-workspaces:${k}: required (secret) when tls.mode is provided`), k);
    }
    assert.ok(problems({ controller: { mode: 'existing' } }).includes('gitlab-workspaces:controller.existingService: required when controller.mode is existing'));
  });

  it('rejects bad values and misspelled keys with the dotted key', () => {
    assert.ok(problems({ tls: { mode: 'letsencrypt' } }).some((p) => p.startsWith('gitlab-workspaces:tls.mode:')));
    assert.ok(problems({ tls: { mode: 'acme', acme: { email: 'nope', server: 'staging' } }, cloudflareApiToken: 'x'.repeat(40) }).some((p) => p.startsWith('gitlab-workspaces:tls.acme.email:')));
    assert.ok(problems({ dns: { mode: 'cloudflare', zoneId: 'example.com' }, cloudflareApiToken: 'x'.repeat(40) }).some((p) => p.startsWith('gitlab-workspaces:dns.zoneId: must be a 32-character')));
    assert.ok(problems({ controller: { replica: 2 } }).some((p) => p.includes('controller.replica: unknown config key')));
    assert.ok(problems({ tls: { validityHours: 48, earlyRenewalHours: 72 } }).includes('gitlab-workspaces:tls.earlyRenewalHours: must be less than tls.validityHours'));
    assert.ok(problems({ ttl: '3 days' }).some((p) => p.startsWith('gitlab-workspaces:ttl: must be a duration')));
    assert.ok(problems({ tls: { mode: 'provided' }, tlsProxyCert: 'not a pem' }).some((p) => p.startsWith('gitlab-workspaces:tlsProxyCert: must be a PEM')));
  });

  it('insists that tokens and PEMs are set as secrets', () => {
    const p = problems({ dns: { mode: 'cloudflare', zoneId: 'f'.repeat(32) }, cloudflareApiToken: 'x'.repeat(40) }, new Set(['gitlab-workspaces:oauthClientSecret']));
    assert.ok(p.some((x) => x.startsWith('gitlab-workspaces:cloudflareApiToken: must be set as a secret')));
  });

  it('parses TTLs', () => {
    assert.equal(ttlToMs('90m'), 90 * 60_000);
    assert.equal(ttlToMs('72h'), 72 * 3_600_000);
    assert.equal(ttlToMs('3d'), 3 * 86_400_000);
    assert.throws(() => ttlToMs('3w'), /invalid ttl/);
  });

  it('passes the idle timeout to Traefik and never a 60 s read timeout', () => {
    const c = platformConfigSchema.parse({ controller: { idleTimeoutSeconds: 7200 } });
    const args = traefikValues(c.controller, 'traefik').additionalArguments as string[];
    assert.ok(args.includes('--entryPoints.websecure.transport.respondingTimeouts.idleTimeout=7200s'));
    assert.ok(args.includes('--entryPoints.websecure.transport.respondingTimeouts.readTimeout=0s'));
  });
});

describe('verification checks (the seed tutorial last section, per stack)', () => {
  const base = { domain: 'workspaces.localdev.me', namespace: 'gitlab-workspaces', podSelector: 'app.kubernetes.io/name=gitlab-workspaces-proxy', stack: 'local' };

  it('self-signed: curl trusts the stack CA and expects 400; logs of the proxy pods', () => {
    const v = verificationChecks({ ...base, tlsMode: 'self-signed' });
    assert.equal(
      v.proxy,
      'pulumi stack output --stack local caCertificate > local-ca.pem && curl --verbose --location --cacert local-ca.pem https://workspaces.localdev.me/  # expect 400 Bad Request until a workspace exists',
    );
    assert.match(v.logs ?? '', /^kubectl -n gitlab-workspaces logs -f -l app\.kubernetes\.io\/name=gitlab-workspaces-proxy /);
    assert.equal(v.certificates, undefined);
    assert.equal(v.ssh, undefined);
    assert.equal(v.config, undefined, 'no config check without the Secret name');
    assert.match(
      verificationChecks({ ...base, tlsMode: 'self-signed', configSecret: 'proxy-config-1a2b' }).config ?? '',
      /^kubectl -n gitlab-workspaces get secret proxy-config-1a2b -o go-template='\{\{index \.data "config\.yaml"\}\}' \| base64 -d /,
    );
  });

  it('acme staging needs --insecure; production does not; ssh when enabled', () => {
    assert.match(verificationChecks({ ...base, tlsMode: 'acme', acmeServer: 'staging' }).proxy ?? '', /^curl --verbose --location --insecure https:/);
    const prod = verificationChecks({ ...base, tlsMode: 'acme', acmeServer: 'production', ssh: { host: 'ssh.example.dev', port: 22 } });
    assert.match(prod.proxy ?? '', /^curl --verbose --location https:/);
    assert.match(prod.certificates ?? '', /get certificates/);
    assert.match(prod.ssh ?? '', /^ssh -p 22 <workspace-name>@ssh\.example\.dev /);
  });
});
