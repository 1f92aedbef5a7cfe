// .gitlab-ci.yml read the way GitLab reads it (anchors resolved, nested script arrays flattened,
// `extends` merged), and the stack config each deploy job hands the program (its stack file plus the
// secrets its script sets from CI/CD variables) run through the program under mocks.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { EXPIRES_AT_TAG } from '../../infra/automation/teardown';
import { StackConfigError } from '../../infra/config';
import { main } from '../../infra/program';
import { validateAll } from '../support/k8s-validate';
import { runPulumiProgram, type RunResult } from '../support/pulumi-mocks';
import { OAUTH_APP_TYPE, oauthOverride, REPO_ROOT } from '../support/stack-fixtures';

type Rule = { if?: string; when?: string };
type Job = {
  stage?: string;
  extends?: string[];
  needs?: (string | { job: string; artifacts?: boolean })[];
  rules?: Rule[];
  environment?: { name: string; url?: string; on_stop?: string; auto_stop_in?: string; action?: string };
  resource_group?: string;
  interruptible?: boolean;
  tags?: string[];
  services?: { name: string; alias?: string }[];
  variables?: Record<string, string>;
  cache?: { key: string | { files: string[] }; paths: string[] }[];
  before_script?: unknown[];
  script: unknown[];
  allow_failure?: boolean;
};
const ci = parse(readFileSync(path.join(REPO_ROOT, '.gitlab-ci.yml'), 'utf8')) as Record<string, unknown> & {
  variables: Record<string, string>;
  stages: string[];
  default: { interruptible?: boolean };
};
const raw = (name: string) => {
  const j = ci[name] as Job | undefined;
  assert.ok(j, `job ${name} exists`);
  return j;
};
/** The job after `extends` (hashes merged deeply, everything else replaced), as GitLab merges it. */
function job(name: string): Job {
  const j = raw(name);
  const merge = (a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> => {
    const out = { ...a };
    for (const [k, v] of Object.entries(b)) {
      const prev = out[k];
      out[k] = prev && v && typeof prev === 'object' && typeof v === 'object' && !Array.isArray(prev) && !Array.isArray(v) ? merge(prev as Record<string, unknown>, v as Record<string, unknown>) : v;
    }
    return out;
  };
  let base: Record<string, unknown> = {};
  for (const parent of j.extends ?? []) base = merge(base, job(parent) as unknown as Record<string, unknown>);
  return merge(base, j as unknown as Record<string, unknown>) as unknown as Job;
}
/** Script lines as the shell gets them (nested arrays flattened, multi-line blocks split). */
const lines = (s: unknown[] | undefined) => (s ?? []).flat(10).flatMap((l) => String(l).split('\n')).map((l) => l.trim());
const JOBS = Object.keys(ci).filter((k) => !k.startsWith('.') && typeof ci[k] === 'object' && Array.isArray((ci[k] as Job).script));
const DEPLOYS = ['review', 'deploy_dev', 'deploy_prod'];
const pulumiVersion = (JSON.parse(readFileSync(path.join(REPO_ROOT, 'node_modules/@pulumi/pulumi/package.json'), 'utf8')) as { version: string }).version;

/** CI/CD variables a configured project provides (fixtures; GitLab's predefined ones included). */
const ENV: Record<string, string> = {
  CI_MERGE_REQUEST_IID: '12',
  REVIEW_BASE_DOMAIN: 'review.example.com',
  CI_SERVER_URL: 'https://gitlab.example.com',
  CI_REGISTRY_IMAGE: 'registry.example.com/platform/gitlab-workspaces-access',
  CI_REGISTRY_USER: 'gitlab-ci-token',
  CI_REGISTRY_PASSWORD: 'job-token-that-dies-with-the-job-0001',
  CLOUDFLARE_ZONE_ID: 'abcdefabcdefabcdefabcdefabcdef12',
  CLOUDFLARE_API_TOKEN: 'fixture-cloudflare-api-token-00000000004',
  GITLAB_ADMIN_TOKEN: 'glpat-fixture-admin-token-0001',
  REGISTRY_PASSWORD: 'fixture-registry-password-0003',
  IMAGE_PULL_USER: 'gitlab+deploy-token-7',
  IMAGE_PULL_PASSWORD: 'gldt-fixture-deploy-token-0005',
  REVIEW_STACK: 'review-mr-12',
};
const expand = (s: string, env = ENV) => s.replace(/\$\{?([A-Z_]+)\}?/g, (_, v: string) => env[v] ?? ci.variables[v] ?? `$${v}`);

const SECRET_LINE = /^if \[ -n "\$\{([A-Z_]+):-\}" \]; then printf '%s' "\$([A-Z_]+)" \| pulumi config set --secret ([a-zA-Z]+); fi$/;
/** stack secret key → the CI variable a job's script sets it from. */
function secretsOf(name: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of lines(job(name).script)) {
    const m = SECRET_LINE.exec(l);
    if (m) {
      assert.equal(m[1], m[2], l);
      out[m[3] as string] = m[1] as string;
    }
  }
  return out;
}

/** The stack file a deploy job runs with: the shipped one, or the one the review job writes. */
function stackFileOf(name: string): { stack: string; config: Record<string, unknown> } {
  if (name === 'review') {
    // Untrimmed: the heredoc is YAML, its indentation matters.
    const script = raw('review').script.flat(10).map(String).join('\n');
    const m = /<<EOF\n([\s\S]*?)\nEOF/.exec(script);
    assert.ok(m?.[1], 'the review job writes the stack config');
    return { stack: 'review-mr-12', config: (parse(expand(m[1])) as { config: Record<string, unknown> }).config };
  }
  const select = lines(job(name).script).find((l) => l.startsWith('pulumi stack select '));
  const stack = select?.split(' ').at(-1) as string;
  return { stack, config: (parse(readFileSync(path.join(REPO_ROOT, `Pulumi.${stack}.yaml`), 'utf8')) as { config: Record<string, unknown> }).config };
}

/** Runs the program with exactly the config the job would hand it, given these CI variables. */
function runJobConfig(name: string, env: Record<string, string>, opts: { preview?: boolean } = {}): Promise<RunResult> {
  const { stack, config: file } = stackFileOf(name);
  const config: Record<string, string> = {};
  for (const [k, v] of Object.entries(file)) config[k] = typeof v === 'string' ? v : JSON.stringify(v);
  const secretKeys: string[] = [];
  for (const [key, variable] of Object.entries(secretsOf(name))) {
    if (!env[variable]) continue; // the job leaves the key unset
    config[`gitlab-workspaces:${key}`] = env[variable] as string;
    secretKeys.push(`gitlab-workspaces:${key}`);
  }
  return runPulumiProgram(main, {
    stack,
    config,
    secretKeys,
    preview: opts.preview,
    expectError: true,
    overrides: {
      [OAUTH_APP_TYPE]: oauthOverride,
      // The shared controller's Service, read (not managed) by the review stack.
      'kubernetes:core/v1:Service': (a) => (a.id === 'traefik/traefik' ? { status: { loadBalancer: { ingress: [{ ip: '198.51.100.20' }] } } } : {}),
    },
  });
}

describe('.gitlab-ci.yml: review stacks', () => {
  it('deploys a review stack per merge request of this project (never a fork) into an environment that stops itself', () => {
    const review = raw('review');
    const mrOfThisProject = '$CI_PIPELINE_SOURCE == "merge_request_event" && $CI_MERGE_REQUEST_SOURCE_PROJECT_ID == $CI_PROJECT_ID';
    assert.deepEqual(review.rules, [{ if: mrOfThisProject }]);
    assert.deepEqual(raw('stop_review').rules, [{ if: mrOfThisProject, when: 'manual' }]);
    assert.equal(ci.variables.REVIEW_STACK, 'review-mr-$CI_MERGE_REQUEST_IID');
    const env = review.environment;
    assert.ok(env);
    assert.equal(env.on_stop, 'stop_review');
    assert.match(env.auto_stop_in ?? '', /^\d+ (hours?|days?|weeks?)$/);
    assert.match(env.name, /^review\/.*\$CI_MERGE_REQUEST_IID/);
    const script = lines(review.script);
    const text = script.join('\n');
    assert.match(text, /pulumi stack select --create "\$REVIEW_STACK"/);
    // The stack file is written first: creating the stack adds its secrets-provider settings
    // (encryptionsalt with a passphrase backend) to that file, and overwriting it afterwards would drop them.
    const write = script.findIndex((l) => l.includes('cat > "Pulumi.$REVIEW_STACK.yaml"'));
    const select = script.findIndex((l) => l.includes('pulumi stack select --create'));
    assert.ok(write >= 0 && select > write, 'stack file written before the stack is created/selected');
    assert.ok(!script.slice(select).some((l) => /cat >|> *"?Pulumi\./.test(l)), 'nothing rewrites the stack file after');
    assert.match(text, /pulumi up --yes/);
    assert.ok(text.includes(`pulumi stack tag set ${EXPIRES_AT_TAG} `), 'the sweep can find the stack without its config file');
    assert.match(text, /\[ "\$code" = 400 \]/, "the seed's verification: 400 until a workspace exists");
  });

  it('the stop job destroys that same stack, survives expired artifacts and a stack the sweep already removed', () => {
    const review = raw('review');
    const stop = raw('stop_review');
    assert.equal(stop.environment?.action, 'stop');
    assert.equal(stop.environment?.name, review.environment?.name);
    assert.equal(stop.resource_group, review.resource_group, 'never destroys while a deploy of the same MR runs');
    assert.equal(stop.stage, review.stage);
    // review's artifacts expire when auto_stop_in fires; downloading them would fail the stop job.
    assert.deepEqual(stop.needs, [{ job: 'review', artifacts: false }]);
    assert.ok(lines(stop.script).includes('npm run teardown -- --stack "$REVIEW_STACK" --remove --missing-ok'));
    assert.ok(lines(raw('sweep_expired').script).includes('npm run teardown -- --expired --remove --missing-ok'));
    // The stop job deletes the OAuth app with the admin token configured now.
    assert.deepEqual(secretsOf('stop_review'), { gitlabAdminToken: 'GITLAB_ADMIN_TOKEN' });
    // The sweep's deadline comes after auto_stop_in, so the two do not race at the same hour.
    const autoStopHours = Number(/^(\d+) days?$/.exec(review.environment?.auto_stop_in ?? '')?.[1]) * 24;
    assert.ok(Number(ci.variables.REVIEW_TTL_HOURS) > autoStopHours, `${ci.variables.REVIEW_TTL_HOURS} h > ${autoStopHours} h`);
    const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    assert.equal(pkg.scripts.teardown, 'node --import tsx infra/automation/teardown.ts');
  });

  it('review pods pull with a deploy token, never with the job token that dies with the job', async () => {
    const { config } = stackFileOf('review');
    assert.deepEqual(config['gitlab-workspaces:imagePull'], { username: ENV.IMAGE_PULL_USER });
    assert.equal(secretsOf('review').imagePullPassword, 'IMAGE_PULL_PASSWORD');
    const r = await runJobConfig('review', ENV);
    assert.equal(r.error, undefined, r.error?.message);
    const pull = r.ofType('kubernetes:core/v1:Secret').find((s) => s.inputs.type === 'kubernetes.io/dockerconfigjson');
    assert.ok(pull);
    const auths = JSON.parse((pull.inputs.stringData as Record<string, string>)['.dockerconfigjson'] as string).auths as Record<string, { username: string; password: string }>;
    assert.deepEqual(auths['registry.example.com'], { username: ENV.IMAGE_PULL_USER, password: ENV.IMAGE_PULL_PASSWORD, auth: Buffer.from(`${ENV.IMAGE_PULL_USER}:${ENV.IMAGE_PULL_PASSWORD}`).toString('base64') });
    assert.ok(!JSON.stringify(pull.inputs).includes(ENV.CI_REGISTRY_PASSWORD as string));
  });

  it('deploys a review stack without a controller, cert-manager or SSH LB, and nothing blocks its teardown', async () => {
    const r = await runJobConfig('review', ENV);
    assert.equal(r.error, undefined, r.error?.message);
    assert.equal(r.ofType('kubernetes:helm.sh/v3:Release').length, 0, 'no controller or cert-manager per review stack');
    assert.equal(r.resources.filter((x) => x.type.includes('cert-manager.io')).length, 0);
    assert.equal(r.resources.filter((x) => x.type === 'kubernetes:core/v1:Service' && (x.inputs.spec as { type?: string })?.type === 'LoadBalancer').length, 0);
    const records = r.ofType('cloudflare:index/dnsRecord:DnsRecord');
    assert.deepEqual(records.map((x) => [x.inputs.name, x.inputs.type, x.inputs.content]).sort(), [
      ['*.mr-12.review.example.com', 'A', '198.51.100.20'],
      ['mr-12.review.example.com', 'A', '198.51.100.20'],
    ]);
    assert.equal((r.find('kubernetes:core/v1:Namespace').inputs.metadata as { name: string }).name, 'gw-mr-12');
    assert.ok(r.resources.every((x) => !x.options.protect), 'nothing in a review stack blocks its teardown');
    assert.deepEqual(await validateAll(r.resources), {});
  });
});

describe('.gitlab-ci.yml: every deploy job', () => {
  it('passes secrets on stdin only, and only when the variable is set', () => {
    for (const name of JOBS) {
      for (const l of lines(job(name).script).filter((x) => x.includes('--secret'))) assert.match(l, SECRET_LINE, `${name}: ${l}`);
    }
  });

  for (const name of DEPLOYS) {
    it(`${name}: the config it hands the program deploys, and each missing variable stops it naming the key`, async () => {
      const secrets = secretsOf(name);
      assert.ok(Object.keys(secrets).length >= 3, `${name} sets its secrets`);
      const ok = await runJobConfig(name, ENV);
      assert.equal(ok.error, undefined, `${name}: ${ok.error?.message}`);
      assert.deepEqual(await validateAll(ok.resources), {});
      for (const [key, variable] of Object.entries(secrets)) {
        const { [variable]: _dropped, ...without } = ENV;
        const r = await runJobConfig(name, without);
        assert.ok(r.error instanceof StackConfigError, `${name} without ${variable}: ${r.error?.message}`);
        assert.match(r.error.message, new RegExp(`gitlab-workspaces:${key}: required`), `${name} without ${variable}`);
        assert.deepEqual(r.resources.map((x) => x.type), ['pulumi:pulumi:Stack'], 'nothing declared');
      }
    });
  }

  it('select the agent context of their environment before anything touches the cluster', () => {
    for (const name of DEPLOYS) {
      const script = lines(job(name).script);
      const select = script.findIndex((l) => l.startsWith('pulumi stack select'));
      const context = script.findIndex((l) => l === 'pulumi config set kubernetes:context "$KUBE_CONTEXT"');
      const up = script.findIndex((l) => l.startsWith('pulumi up') || l.startsWith('pulumi preview'));
      assert.ok(select >= 0 && context > select && up > context, `${name}: select, context, then preview/up`);
      // No context and no kubeconfig is an error, not "whatever the image has".
      assert.ok(script.some((l) => /^echo "no cluster for \$CI_ENVIRONMENT_NAME/.test(l)), name);
    }
  });

  it('are never cancelled halfway by a newer pipeline, and neither is any job that destroys', () => {
    assert.equal(ci.default.interruptible, true, 'tests may be cancelled');
    for (const name of JOBS) {
      const text = lines(job(name).script).join('\n');
      if (/pulumi up|teardown/.test(text)) assert.equal(job(name).interruptible, false, name);
    }
  });

  it('build through Docker-in-Docker with TLS on runners tagged for privileged services', () => {
    for (const name of DEPLOYS) {
      const j = job(name);
      assert.ok(j.services?.some((s) => /^docker:\d+(\.\d+)*-dind$/.test(s.name) && s.alias === 'docker'), name);
      assert.equal(j.variables?.DOCKER_HOST, 'tcp://docker:2376', name);
      assert.equal(j.variables?.DOCKER_TLS_CERTDIR, '/certs');
      assert.equal(j.variables?.DOCKER_TLS_VERIFY, '1');
      assert.equal(j.variables?.DOCKER_CERT_PATH, '/certs/client');
      assert.deepEqual(j.tags, ['$DIND_RUNNER_TAG']);
    }
    assert.ok(ci.variables.DIND_RUNNER_TAG);
  });

  it('previews (deploy_prod runs one first) do not build the image', async () => {
    const r = await runJobConfig('deploy_prod', ENV, { preview: true });
    assert.equal(r.error, undefined, r.error?.message);
    const image = r.find('docker-build:index:Image');
    assert.equal(image.inputs.buildOnPreview, false);
    assert.deepEqual(image.inputs.platforms, ['linux/amd64', 'linux/arm64']);
  });

  it('deploy_prod runs only on protected release tags, by hand; deploy_dev only on the default branch', () => {
    assert.deepEqual(raw('deploy_prod').rules, [{ if: '$CI_COMMIT_TAG =~ /^v\\d+\\.\\d+\\.\\d+$/ && $CI_COMMIT_REF_PROTECTED == "true"', when: 'manual' }]);
    assert.deepEqual(raw('deploy_dev').rules, [{ if: '$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && $CI_PIPELINE_SOURCE != "schedule"' }]);
    for (const name of DEPLOYS) assert.deepEqual(raw(name).needs, ['test'], `${name} waits for the tests`);
    assert.equal(raw('deploy_prod').environment?.name, 'prod');
    assert.equal(raw('deploy_dev').environment?.name, 'dev');
  });
});

describe('.gitlab-ci.yml: tools and caches', () => {
  it('caches npm downloads by lockfile, not node_modules', () => {
    assert.equal(ci.variables.npm_config_cache, '$CI_PROJECT_DIR/.npm');
    for (const name of ['test', ...DEPLOYS, 'stop_review', 'sweep_expired']) {
      const npm = job(name).cache?.find((c) => typeof c.key === 'object');
      assert.deepEqual(npm, { key: { files: ['package-lock.json'] }, paths: ['.npm/'] }, name);
      assert.ok(!job(name).cache?.some((c) => c.paths.some((p) => p.includes('node_modules'))), name);
    }
  });

  it('installs the Pulumi CLI pinned, at least the SDK version, verified by checksum before unpacking', () => {
    const [want, have] = [ci.variables.PULUMI_VERSION, pulumiVersion].map((v) => (v as string).split('.').map(Number)) as [number[], number[]];
    const cmp = want.map((n, i) => n - (have[i] ?? 0)).find((d) => d !== 0) ?? 0;
    assert.ok(cmp >= 0, `PULUMI_VERSION ${ci.variables.PULUMI_VERSION} >= @pulumi/pulumi ${pulumiVersion}`);
    const before = lines(raw('.pulumi').before_script);
    const check = before.findIndex((l) => /sha256sum -c -/.test(l) && /checksums\.txt/.test(l));
    const untar = before.findIndex((l) => l.startsWith('tar -xzf'));
    assert.ok(check >= 0 && untar > check, 'checksum verified before the tarball is unpacked');
    assert.ok(!before.some((l) => /get\.pulumi\.com.*\| *sh/.test(l)), 'no curl | sh');
  });

  it('documents every CI/CD variable the pipeline reads in the README', () => {
    const readme = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('### Review environments'), readme.indexOf('## Why no @pulumi/gitlab'));
    const text = readFileSync(path.join(REPO_ROOT, '.gitlab-ci.yml'), 'utf8').replace(/^\s*#.*$/gm, '');
    const used = new Set([...text.matchAll(/\$\{?([A-Z][A-Z0-9_]+)/g)].map((m) => m[1] as string));
    for (const v of used) {
      if (v.startsWith('CI_') || v in ci.variables || ['KUBECONFIG', 'PATH', 'EOF'].includes(v)) continue;
      assert.ok(section.includes(`\`${v}\``), `README lists ${v}`);
    }
    for (const v of ['PULUMI_ACCESS_TOKEN', 'KUBE_CONTEXT']) assert.ok(section.includes(`\`${v}\``), `README lists ${v}`);
  });
});
