// .gitlab-ci.yml: the review stack per merge request, its stop job, and that the stack config the
// review job writes is one the program accepts and deploys cheaply.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { EXPIRES_AT_TAG } from '../../infra/automation/teardown';
import { parseStackConfig } from '../../infra/config';
import { main } from '../../infra/program';
import { validateAll } from '../support/k8s-validate';
import { runPulumiProgram } from '../support/pulumi-mocks';
import { OAUTH_APP_TYPE, oauthOverride, REPO_ROOT, SECRET_FIXTURES } from '../support/stack-fixtures';

type Job = {
  stage?: string;
  extends?: string[];
  needs?: string[];
  rules?: { if?: string; when?: string }[];
  environment?: { name: string; url?: string; on_stop?: string; auto_stop_in?: string; action?: string };
  resource_group?: string;
  script: string[];
  allow_failure?: boolean;
};
const ci = parse(readFileSync(path.join(REPO_ROOT, '.gitlab-ci.yml'), 'utf8')) as Record<string, unknown> & {
  variables: Record<string, string>;
  stages: string[];
};
const job = (name: string) => {
  const j = ci[name] as Job | undefined;
  assert.ok(j, `job ${name} exists`);
  return j;
};

/** What GitLab would put in the environment of an MR pipeline (fixtures). */
const ENV: Record<string, string> = {
  CI_MERGE_REQUEST_IID: '12',
  REVIEW_BASE_DOMAIN: 'review.example.com',
  CI_SERVER_URL: 'https://gitlab.example.com',
  CI_REGISTRY_IMAGE: 'registry.example.com/platform/gitlab-workspaces-access',
  CI_REGISTRY_USER: 'gitlab-ci-token',
  CLOUDFLARE_ZONE_ID: 'abcdefabcdefabcdefabcdefabcdef12',
  REVIEW_TTL_HOURS: '72',
  REVIEW_STACK: 'review-mr-12',
};
const expand = (s: string) => s.replace(/\$\{?([A-Z_]+)\}?/g, (_, v: string) => ENV[v] ?? ci.variables[v] ?? `$${v}`);

/** The Pulumi.<review stack>.yaml that the review job writes with its heredoc. */
function reviewStackFile(): Record<string, unknown> {
  const script = job('review').script.find((l) => l.includes('<<EOF'));
  assert.ok(script, 'the review job writes the stack config');
  const m = /<<EOF\n([\s\S]*?)\nEOF/.exec(script);
  assert.ok(m?.[1]);
  return (parse(expand(m[1])) as { config: Record<string, unknown> }).config;
}

describe('.gitlab-ci.yml', () => {
  it('deploys a review stack per merge request into an environment that stops itself', () => {
    const review = job('review');
    assert.deepEqual(review.rules, [{ if: '$CI_PIPELINE_SOURCE == "merge_request_event"' }]);
    assert.equal(ci.variables.REVIEW_STACK, 'review-mr-$CI_MERGE_REQUEST_IID');
    const env = review.environment;
    assert.ok(env);
    assert.equal(env.on_stop, 'stop_review');
    assert.match(env.auto_stop_in ?? '', /^\d+ (hours?|days?|weeks?)$/);
    assert.match(env.name, /\$CI_MERGE_REQUEST_IID/);
    const scriptText = review.script.join('\n');
    assert.match(scriptText, /pulumi stack select --create "\$REVIEW_STACK"/);
    // The stack file is written first: creating the stack adds its secrets-provider settings
    // (encryptionsalt with a passphrase backend) to that file, and overwriting it afterwards would
    // drop them.
    const write = review.script.findIndex((l) => l.includes('cat > "Pulumi.$REVIEW_STACK.yaml"'));
    const select = review.script.findIndex((l) => l.includes('pulumi stack select --create'));
    assert.ok(write >= 0 && select > write, 'stack file written before the stack is created/selected');
    assert.ok(!review.script.slice(select).some((l) => /cat >|> *"?Pulumi\./.test(l)), 'nothing rewrites the stack file after');
    assert.match(scriptText, /pulumi up --yes/);
    assert.ok(scriptText.includes(`pulumi stack tag set ${EXPIRES_AT_TAG} `), 'the sweep can find the stack without its config file');
    // The seed's verification: 400 until a workspace exists.
    assert.match(scriptText, /\[ "\$code" = 400 \]/);
  });

  it('has a stop job that destroys that same stack', () => {
    const review = job('review');
    const stop = job('stop_review');
    assert.equal(stop.environment?.action, 'stop');
    assert.equal(stop.environment?.name, review.environment?.name);
    assert.equal(stop.resource_group, review.resource_group, 'never destroys while a deploy of the same MR runs');
    assert.deepEqual(stop.rules, [{ if: '$CI_PIPELINE_SOURCE == "merge_request_event"', when: 'manual' }]);
    assert.equal(stop.stage, review.stage);
    assert.ok(stop.script.includes('npm run teardown -- --stack "$REVIEW_STACK" --remove'));
    const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    assert.equal(pkg.scripts.teardown, 'node --import tsx infra/automation/teardown.ts');
  });

  it('sweeps expired stacks on a schedule and tests every other pipeline', () => {
    const sweep = job('sweep_expired');
    assert.deepEqual(sweep.rules, [{ if: '$CI_PIPELINE_SOURCE == "schedule"' }]);
    assert.ok(sweep.script.includes('npm run teardown -- --expired --remove'));
    assert.ok(job('test').script.includes('.ci/run'));
    for (const name of ['review', 'deploy_dev', 'deploy_prod']) assert.deepEqual(job(name).needs, ['test'], `${name} waits for the tests`);
    assert.equal(job('deploy_prod').rules?.[0]?.when, 'manual');
  });

  it('passes secrets to pulumi on stdin, never as arguments', () => {
    const lines = Object.values(ci)
      .filter((j): j is Job => typeof j === 'object' && j !== null && Array.isArray((j as Job).script))
      .flatMap((j) => j.script.flatMap((l) => l.split('\n')));
    const secretSets = lines.filter((l) => l.includes('--secret'));
    assert.ok(secretSets.length >= 3);
    for (const l of secretSets) assert.match(l, /^printf '%s' "\$[A-Z_]+" \| pulumi config set --secret [a-zA-Z]+$/, l);
  });

  it('writes a review stack config that the program validates and deploys without a controller, cert-manager or SSH LB', async () => {
    const file = reviewStackFile();
    const config: Record<string, string> = {};
    for (const [k, v] of Object.entries(file)) config[k] = typeof v === 'string' ? v : JSON.stringify(v);
    const secrets = ['gitlabAdminToken', 'registryPassword', 'cloudflareApiToken'].map((k) => `gitlab-workspaces:${k}`);
    for (const k of secrets) config[k] = SECRET_FIXTURES[k] as string;
    const parsed = parseStackConfig(config, { stack: 'review-mr-12', isSecret: (k) => secrets.includes(k) });
    assert.equal(parsed.proxyDomain, 'mr-12.review.example.com');
    assert.equal(parsed.ttl, '72h');

    const r = await runPulumiProgram(main, {
      stack: 'review-mr-12',
      config,
      secretKeys: secrets,
      overrides: {
        [OAUTH_APP_TYPE]: oauthOverride,
        // The shared controller's Service, read (not managed) by the review stack.
        'kubernetes:core/v1:Service': (a) => (a.id === 'traefik/traefik' ? { status: { loadBalancer: { ingress: [{ ip: '198.51.100.20' }] } } } : {}),
      },
    });
    assert.equal(r.ofType('kubernetes:helm.sh/v3:Release').length, 0, 'no controller or cert-manager per review stack');
    assert.equal(r.resources.filter((x) => x.type.includes('cert-manager.io')).length, 0);
    assert.equal(r.resources.filter((x) => x.type === 'kubernetes:core/v1:Service' && (x.inputs.spec as { type?: string })?.type === 'LoadBalancer').length, 0);
    const records = r.ofType('cloudflare:index/dnsRecord:DnsRecord');
    assert.deepEqual(records.map((x) => [x.inputs.name, x.inputs.type, x.inputs.content]).sort(), [
      ['*.mr-12.review.example.com', 'A', '198.51.100.20'],
      ['mr-12.review.example.com', 'A', '198.51.100.20'],
    ]);
    assert.equal(r.find('kubernetes:core/v1:Namespace').inputs.metadata && (r.find('kubernetes:core/v1:Namespace').inputs.metadata as { name: string }).name, 'gw-mr-12');
    assert.ok(r.resources.every((x) => !x.options.protect), 'nothing in a review stack blocks its teardown');
    assert.deepEqual(await validateAll(r.resources), {});
  });
});
