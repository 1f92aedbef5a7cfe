// proxy-image/Dockerfile and .dockerignore, checked statically (no Docker daemon in CI) plus the
// /app/proxy wrapper the Dockerfile writes, executed for real.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { REPO_ROOT } from '../support/stack-fixtures';
import { PROXY_UID } from '../../infra/components/workload';

const dockerfile = readFileSync(path.join(REPO_ROOT, 'proxy-image', 'Dockerfile'), 'utf8');
// Instructions with continuation lines joined.
const instructions = dockerfile
  .replace(/\\\n/g, ' ')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));
const stages = instructions.reduce<string[][]>((acc, line) => {
  if (/^FROM /i.test(line)) acc.push([line]);
  else acc.at(-1)?.push(line);
  return acc;
}, []);
const final = stages.at(-1) ?? [];

describe('proxy-image/Dockerfile', () => {
  it('is multi-stage and ships production dependencies only', () => {
    assert.ok(stages.length >= 3);
    const install = instructions.filter((l) => /npm ci/.test(l));
    const deps = install.find((l) => /--omit=dev/.test(l));
    assert.ok(deps, 'an npm ci --omit=dev');
    assert.match(deps, /--workspace proxy-image/);
    assert.match(deps, /--include-workspace-root=false/);
    // The final stage copies node_modules only from the production-deps stage.
    const depsStage = /^FROM \S+ AS (\S+)/i.exec(stages.find((s) => s.some((l) => l === deps))?.[0] ?? '')?.[1];
    assert.ok(depsStage);
    for (const copy of final.filter((l) => /node_modules/.test(l))) assert.match(copy, new RegExp(`--from=${depsStage} `));
    assert.ok(!final.some((l) => /npm (ci|install)/.test(l)), 'nothing installed in the runtime stage');
  });

  it('uses a current Node LTS base and a numeric non-root user', () => {
    const arg = /^ARG NODE_IMAGE=node:(\d+)-/m.exec(dockerfile);
    assert.ok(arg);
    const major = Number(arg[1]);
    assert.ok(major >= 24 && major % 2 === 0, `node ${major} is an LTS line`);
    const user = final.filter((l) => /^USER /.test(l)).at(-1);
    assert.match(user ?? '', /^USER [1-9]\d*:[1-9]\d*$/);
    // The Deployment runs the same UID/GID (and gives the config file to that group).
    assert.equal(user, `USER ${PROXY_UID}:${PROXY_UID}`);
  });

  it('starts as the upstream image does and keeps config out of the image', () => {
    assert.ok(final.includes('ENTRYPOINT ["/app/proxy"]'));
    assert.ok(final.includes('CMD ["-config", "/app/config/config.yaml"]'));
    assert.ok(!/config\.yaml/.test(final.filter((l) => /^COPY/.test(l)).join('\n')));
    assert.ok(!final.some((l) => /^ENV .*(SECRET|TOKEN|KEY)/i.test(l)));
  });

  it('copies only paths that exist and that .dockerignore lets through', () => {
    const ignore = readFileSync(path.join(REPO_ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    assert.equal(ignore[0], '*', 'deny by default');
    const allowed = ignore.filter((l) => l.startsWith('!')).map((l) => l.slice(1));
    const sources = instructions
      .filter((l) => /^COPY /.test(l) && !/--from=/.test(l))
      .flatMap((l) => l.split(/\s+/).slice(1, -1));
    assert.ok(sources.length >= 4);
    for (const src of sources) {
      assert.ok(existsSync(path.join(REPO_ROOT, src)), `${src} exists`);
      assert.ok(allowed.some((a) => a === src || a.startsWith(`${src}/`) || src.startsWith(a.replace(/\*\*$/, ''))), `${src} is in the build context`);
    }
  });

  it('writes an /app/proxy wrapper that passes every argument through unchanged', () => {
    const run = final.find((l) => /printf .* > \/app\/proxy/.test(l));
    assert.ok(run);
    const printf = /printf '([^']*)'/.exec(run)?.[1];
    assert.ok(printf);
    const dir = mkdtempSync(path.join(tmpdir(), 'proxy-wrapper-'));
    try {
      const fakeMain = path.join(dir, 'main.js');
      writeFileSync(fakeMain, 'process.stdout.write(JSON.stringify(process.argv.slice(2)))');
      const wrapper = path.join(dir, 'proxy');
      // Render the printf exactly as the shell in the image would, pointing at the stand-in main.js.
      execFileSync('sh', ['-c', `printf '${printf}' > "$1"`, 'sh', wrapper]);
      writeFileSync(wrapper, readFileSync(wrapper, 'utf8').replace('/app/proxy-image/dist/main.js', fakeMain));
      chmodSync(wrapper, 0o755);
      assert.match(readFileSync(wrapper, 'utf8'), /^#!\/bin\/sh\nexec node /);
      const out = execFileSync(wrapper, ['-config', '/app/config/config.yaml', '--x=a b']).toString();
      assert.deepEqual(JSON.parse(out), ['-config', '/app/config/config.yaml', '--x=a b']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
