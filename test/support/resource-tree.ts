/**
 * The resource tree a program declares for each stack variant, as Pulumi identifies it: URNs, and
 * what makes a provider replace a resource. Used to prove that moving the program's body into the
 * GitLabWorkspaces component (with aliases) neither deletes nor replaces anything in existing stacks.
 *
 *   treeVariants(root)                    every shipped stack, each TLS mode, the other DNS mode, Gateway API
 *                                         routing (installed and existing Gateway), and a review-stack
 *                                         shape (existing controller, no SSH)
 *   await recordTree(main, repoRoot)      { '<variant>': TreeEntry[] } for a program's main()
 *   node --import tsx test/support/resource-tree.ts <repo root> > test/infra/fixtures/tree-before-component.json
 *                                         records the tree of the program in <repo root> (a checkout of
 *                                         the commit before the move), with this harness
 *
 * identity: for Kubernetes objects apiVersion/kind/namespace/name (a change replaces the object);
 * for tls and random resources every input (each one forces a new resource); nothing else for the
 * other types (their inputs update in place or are checked by their own tests).
 */
import { readdirSync } from 'node:fs';
import * as path from 'node:path';
import { loadStackConfig, runPulumiProgram, type CapturedResource, type RunOptions } from './pulumi-mocks';
import { OAUTH_APP_TYPE, oauthOverride, SECRET_FIXTURES as SECRETS } from './stack-fixtures';

export interface TreeEntry {
  urn: string;
  type: string;
  custom: boolean;
  /** URN of the provider a custom resource uses (another provider can mean a replacement). */
  provider?: string;
  identity?: unknown;
  /** Alias URNs, as the SDK resolves them (parents' aliases inherited by their children). */
  aliases?: string[];
}

export interface TreeVariant {
  id: string;
  stack: string;
  overrides: Record<string, unknown>;
}

const P = 'gitlab-workspaces';
const EXISTING_LB = 'traefik/traefik';

export function treeVariants(repoRoot: string): TreeVariant[] {
  const stacks = readdirSync(repoRoot)
    .map((f) => /^Pulumi\.([\w-]+)\.yaml$/.exec(f)?.[1])
    .filter((s): s is string => Boolean(s))
    .sort();
  const out: TreeVariant[] = [];
  for (const stack of stacks) {
    out.push({ id: `${stack}`, stack, overrides: {} });
    for (const mode of ['self-signed', 'acme', 'provided']) {
      out.push({ id: `${stack}/tls-${mode}`, stack, overrides: { tls: { mode, acme: { server: 'staging', email: 'ops@example.com' } } } });
    }
    out.push({ id: `${stack}/dns-cloudflare`, stack, overrides: { dns: { mode: 'cloudflare', zoneId: '0123456789abcdef0123456789abcdef' } } });
    out.push({ id: `${stack}/routing-gateway`, stack, overrides: { routing: { mode: 'gateway' } } });
    out.push({
      id: `${stack}/gateway-existing`,
      stack,
      overrides: { controller: { mode: 'existing', existingService: EXISTING_LB }, routing: { mode: 'gateway', gateway: { existing: 'edge/shared' } }, tls: { mode: 'self-signed' } },
    });
    out.push({
      id: `${stack}/review-shape`,
      stack,
      overrides: { controller: { mode: 'existing', existingService: EXISTING_LB }, ssh: { enabled: false }, tls: { mode: 'self-signed' } },
    });
  }
  return out;
}

function identityOf(r: CapturedResource): unknown {
  if (r.type.startsWith('kubernetes:') && r.custom) {
    const m = (r.inputs.metadata ?? {}) as { name?: string; namespace?: string };
    return { apiVersion: r.inputs.apiVersion, kind: r.inputs.kind, namespace: m.namespace, name: m.name };
  }
  if (r.type.startsWith('tls:') || r.type.startsWith('random:')) {
    // Literal inputs only: a value taken from another resource's output (a CA certificate, a CSR)
    // stays the same when that resource is kept, which its own entry proves; the mocks' stand-in
    // outputs would differ by name only. Secret inputs would be random per run.
    const inputs = structuredClone(r.inputs) as Record<string, unknown>;
    for (const [p, urns] of Object.entries(r.propertyDependencies ?? {})) if (urns.length > 0) delete inputs[p];
    for (const p of r.secretPaths) delete inputs[p.split('.')[0] as string];
    return inputs;
  }
  return undefined;
}

export async function recordTree(main: () => unknown, repoRoot: string, extraOptions: Omit<RunOptions, 'config' | 'secretKeys' | 'stack'> = {}): Promise<Record<string, TreeEntry[]>> {
  const out: Record<string, TreeEntry[]> = {};
  for (const v of treeVariants(repoRoot)) {
    const { config, secretKeys } = await loadStackConfig(path.join(repoRoot, `Pulumi.${v.stack}.yaml`), SECRETS);
    const all = { ...config, ...SECRETS };
    // Without a token of their own, managed-agent stacks declare the proxy's service token: in the tree too.
    delete all[`${P}:sshServiceToken`];
    for (const [k, val] of Object.entries(v.overrides)) all[`${P}:${k}`] = JSON.stringify(val);
    const run = await runPulumiProgram(main, {
      ...extraOptions,
      aliasUrns: true,
      stack: v.stack,
      config: all,
      secretKeys: [...new Set([...secretKeys, ...Object.keys(SECRETS)])],
      overrides: {
        [OAUTH_APP_TYPE]: oauthOverride,
        'kubernetes:core/v1:Service': (a) => (a.id === EXISTING_LB ? { status: { loadBalancer: { ingress: [{ ip: '198.51.100.20' }] } } } : {}),
        ...(extraOptions.overrides ?? {}),
      },
    });
    out[v.id] = run.resources
      .filter((r) => r.type !== 'pulumi:pulumi:Stack')
      .map((r) => {
        const e: TreeEntry = { urn: r.urn, type: r.type, custom: r.custom };
        // A provider reference is `<provider urn>::<id>`; the id is the mock's.
        if (r.custom && r.options.provider) e.provider = r.options.provider.split('::').slice(0, -1).join('::');
        const identity = identityOf(r);
        if (identity !== undefined) e.identity = identity;
        if (r.options.aliasUrns?.length) e.aliases = r.options.aliasUrns;
        return e;
      });
  }
  return out;
}

if (require.main === module) {
  const root = path.resolve(process.argv[2] ?? '.');
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- the program under record is chosen at run time
  const program = require(path.join(root, 'infra', 'program')) as { main: () => unknown };
  recordTree(program.main, root).then(
    (tree) => process.stdout.write(`${JSON.stringify(tree, null, 1)}\n`),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
}

/**
 * What `pulumi up` of the program that recorded `after` would do to a stack last deployed with the
 * program that recorded `before`, as far as URNs tell: each old resource must be found again (by URN
 * or alias) exactly once, with the same type, provider and identity. Returns one line per problem.
 */
export function treeChanges(before: TreeEntry[], after: TreeEntry[]): string[] {
  const problems: string[] = [];
  const claimed = new Map<TreeEntry, string>();
  for (const old of before) {
    const found = after.filter((n) => n.urn === old.urn || (n.aliases ?? []).includes(old.urn));
    if (found.length === 0) {
      problems.push(`delete: ${old.urn} (no resource has this URN or alias)`);
      continue;
    }
    if (found.length > 1) {
      problems.push(`ambiguous: ${old.urn} is claimed by ${found.map((n) => n.urn).join(', ')}`);
      continue;
    }
    const now = found[0] as TreeEntry;
    // An aliased provider is the same provider (the engine respects provider aliases when diffing:
    // pulumi/pulumi#6453, #7166): compare with where the old one went.
    const provider = old.provider === undefined ? undefined : (after.find((n) => n.urn === old.provider || (n.aliases ?? []).includes(old.provider as string))?.urn ?? old.provider);
    const other = claimed.get(now);
    if (other) problems.push(`ambiguous: ${now.urn} takes over both ${other} and ${old.urn}`);
    claimed.set(now, old.urn);
    if (now.type !== old.type) problems.push(`replace: ${old.urn} becomes a ${now.type}`);
    if (now.provider !== provider) problems.push(`replace: ${old.urn} moves from provider ${old.provider} to ${now.provider}`);
    if (JSON.stringify(now.identity) !== JSON.stringify(old.identity)) {
      problems.push(`replace: ${old.urn} identity ${JSON.stringify(old.identity)} -> ${JSON.stringify(now.identity)}`);
    }
  }
  return problems;
}
