// `pulumi up` does not run the program through tsx as the tests do: the Pulumi Node language host
// compiles `main` from Pulumi.yaml with its vendored ts-node 7, the project's TypeScript and the root
// tsconfig.json (type-checking on). This loads infra/index.ts exactly that way, in a child process,
// so a program that only works under tsx (or trips ts-node 7) fails here rather than at `pulumi up`.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { parse } from 'yaml';
import { REPO_ROOT } from '../support/stack-fixtures';

// What @pulumi/pulumi/cmd/run/run.js does for `runtime.options.typescript: true` in a CommonJS package.
const LOADER = `
const path = require('node:path');
const fs = require('node:fs');
const tsutils = require(require.resolve('@pulumi/pulumi/tsutils', { paths: [process.cwd()] }));
const skipProject = !fs.existsSync('tsconfig.json');
const compilerOptions = skipProject ? {} : tsutils.loadTypeScriptCompilerOptions('tsconfig.json');
const { tsnodeRequire, typescriptRequire } = tsutils.typeScriptRequireStrings();
require(tsnodeRequire).register({
  compiler: typescriptRequire,
  transpileOnly: compilerOptions.noCheck,
  project: 'tsconfig.json',
  skipProject,
  compilerOptions: { target: 'ES2020', module: 'nodenext', moduleResolution: 'nodenext', sourceMap: 'true', ...compilerOptions },
});
const main = require(path.resolve(process.argv[1]));
process.stdout.write(JSON.stringify({ tsnode: tsnodeRequire, exported: typeof main, keys: Object.keys(main) }));
`;

describe('Pulumi entry point', () => {
  it('Pulumi.yaml runs infra/index.ts as TypeScript on the Node.js runtime', () => {
    const project = parse(readFileSync(path.join(REPO_ROOT, 'Pulumi.yaml'), 'utf8')) as { name: string; main: string; runtime: { name: string; options?: { typescript?: boolean } } };
    assert.equal(project.name, 'gitlab-workspaces');
    assert.equal(project.main, 'infra/index.ts');
    assert.equal(project.runtime.name, 'nodejs');
    assert.equal(project.runtime.options?.typescript, true);
  });

  it("compiles and loads under Pulumi's own ts-node with type-checking, exporting the program function", () => {
    const res = load(REPO_ROOT, 'infra/index.ts');
    assert.equal(res.status, 0, res.stderr);
    const out = JSON.parse(res.stdout) as { tsnode: string; exported: string };
    assert.match(out.tsnode, /ts-node/);
    assert.equal(out.exported, 'function', 'Pulumi calls the exported function and uses its result as the outputs');
  });

  it('compiles the policy pack the way `--policy-pack infra/policy` does (its directory, no tsconfig there)', () => {
    // index.ts would start the policy gRPC server; its rules module is what needs compiling.
    const res = load(path.join(REPO_ROOT, 'infra', 'policy'), 'policies.ts');
    assert.equal(res.status, 0, res.stderr);
    const out = JSON.parse(res.stdout) as { keys: string[] };
    assert.ok(out.keys.includes('resourcePolicies'), out.keys.join(','));
  });
});

function load(cwd: string, file: string) {
  return spawnSync(process.execPath, ['-e', LOADER, file], {
    cwd,
    encoding: 'utf8',
    timeout: 120_000,
    // ts-node 7 caches compiled files in the temp dir and would skip type-checking them.
    env: { ...process.env, TS_NODE_CACHE: 'false' },
  });
}
