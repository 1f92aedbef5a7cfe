// `npm run teardown -- --stack <name> [--remove]` destroys one stack; `npm run teardown -- --expired
// [--dry-run] [--remove]` destroys every stack past its lifetime. Built on Pulumi's Automation API, so
// it needs the `pulumi` CLI and the same backend login / secrets passphrase as `pulumi up`.
//
// A stack's lifetime: the stack tag `gitlab-workspaces:expires-at` (an ISO time, set by CI when it
// deploys a review stack) wins; otherwise `gitlab-workspaces:ttl` (tag, or the `ttl` key in the
// stack's config file, e.g. `72h`) counted from the stack's last update. Stacks with neither never
// expire, and a stack whose config says `protect: true` (production) is never selected.
import { realpathSync } from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { LocalWorkspace, StackNotFoundError, type Stack, type StackSettings, type StackSummary, type TagMap } from '@pulumi/pulumi/automation';
import { ttlToMs } from '../platform/config';

export const PROJECT = 'gitlab-workspaces';
export const EXPIRES_AT_TAG = `${PROJECT}:expires-at`;
export const TTL_TAG = `${PROJECT}:ttl`;
const TTL_CONFIG_KEY = `${PROJECT}:ttl`;
const PROTECT_CONFIG_KEY = `${PROJECT}:protect`;

/** The part of a Pulumi Workspace the selection reads (LocalWorkspace, or a fake in tests). */
export interface StackSource {
  listStacks(): Promise<StackSummary[]>;
  listTags(stackName: string): Promise<TagMap>;
  stackSettings(stackName: string): Promise<StackSettings>;
}

export interface StackLifetime {
  name: string;
  lastUpdate?: Date;
  updateInProgress: boolean;
  /** Raw lifetime settings as found (validated by {@link selectExpired}). */
  expiresAt?: string;
  ttl?: string;
  protect: boolean;
}

export interface Decision {
  name: string;
  expired: boolean;
  reason: string;
}

/** Reads what decides each stack's lifetime. Missing tags or config files are not errors. */
export async function describeStacks(source: StackSource): Promise<StackLifetime[]> {
  const out: StackLifetime[] = [];
  for (const s of await source.listStacks()) {
    // Backends without tag support, or stacks whose config file is not in this checkout.
    const tags = await source.listTags(s.name).catch(() => ({}) as TagMap);
    const settings = await source.stackSettings(s.name).catch(() => ({}) as StackSettings);
    const config = (settings.config ?? {}) as Record<string, unknown>;
    const configTtl = config[TTL_CONFIG_KEY] ?? config.ttl;
    const protect = config[PROTECT_CONFIG_KEY] ?? config.protect;
    const entry: StackLifetime = {
      name: s.name,
      updateInProgress: s.updateInProgress === true,
      protect: protect === true || protect === 'true',
    };
    if (s.lastUpdate) entry.lastUpdate = new Date(s.lastUpdate);
    if (tags[EXPIRES_AT_TAG]) entry.expiresAt = tags[EXPIRES_AT_TAG];
    const ttl = tags[TTL_TAG] ?? (typeof configTtl === 'string' ? configTtl : undefined);
    if (ttl) entry.ttl = ttl;
    out.push(entry);
  }
  return out;
}

/** Which stacks are past their lifetime at `now`, with a reason for every stack (pure). */
export function selectExpired(stacks: StackLifetime[], now: Date): Decision[] {
  return stacks.map((s): Decision => {
    const keep = (reason: string) => ({ name: s.name, expired: false, reason });
    if (s.protect) return keep('protected stack (protect: true); destroy it by hand');
    if (s.updateInProgress) return keep('an update is in progress');
    let deadline: Date;
    let basis: string;
    if (s.expiresAt !== undefined) {
      deadline = new Date(s.expiresAt);
      if (Number.isNaN(deadline.getTime())) return keep(`invalid ${EXPIRES_AT_TAG} tag ${JSON.stringify(s.expiresAt)}`);
      basis = `${EXPIRES_AT_TAG} ${deadline.toISOString()}`;
    } else if (s.ttl !== undefined) {
      let ms: number;
      try {
        ms = ttlToMs(s.ttl);
      } catch {
        return keep(`invalid ttl ${JSON.stringify(s.ttl)}`);
      }
      if (!s.lastUpdate || Number.isNaN(s.lastUpdate.getTime())) return keep('never deployed (no last update)');
      deadline = new Date(s.lastUpdate.getTime() + ms);
      basis = `ttl ${s.ttl} after last update ${s.lastUpdate.toISOString()}`;
    } else {
      return keep('no ttl or expires-at: never expires');
    }
    return now.getTime() >= deadline.getTime()
      ? { name: s.name, expired: true, reason: `expired (${basis})` }
      : keep(`expires ${deadline.toISOString()} (${basis})`);
  });
}

interface CliOptions {
  stacks: string[];
  expired: boolean;
  dryRun: boolean;
  remove: boolean;
  /** A stack that does not exist (any more) counts as destroyed: the stop job and the sweep race. */
  missingOk: boolean;
  workDir: string;
}

export function parseCli(argv: string[]): CliOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      stack: { type: 'string', multiple: true, short: 's' },
      expired: { type: 'boolean', default: false },
      'dry-run': { type: 'boolean', default: false },
      remove: { type: 'boolean', default: false },
      'missing-ok': { type: 'boolean', default: false },
      'work-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  const stacks = values.stack ?? [];
  // --help is a request, not a mistake: usage on stdout and exit 0; no target at all is exit 2.
  if (values.help) throw new UsageError(USAGE, 0);
  if (stacks.length === 0 && !values.expired) throw new UsageError(USAGE);
  return {
    stacks,
    expired: values.expired,
    dryRun: values['dry-run'],
    remove: values.remove,
    missingOk: values['missing-ok'],
    workDir: values['work-dir'] ?? path.resolve(__dirname, '..', '..'),
  };
}

const USAGE =
  'usage: npm run teardown -- (--stack <name> [--stack <name>...] | --expired) [--dry-run] [--remove] [--missing-ok] [--work-dir <dir>]\n' +
  '  --stack     destroy these stacks\n' +
  '  --expired   destroy every stack past its gitlab-workspaces:expires-at tag or ttl\n' +
  '  --dry-run   only print what would be destroyed\n' +
  '  --remove    also remove the stack (its history and config) after destroying it\n' +
  '  --missing-ok a stack that does not exist (already torn down) is success, not an error';

export class UsageError extends Error {
  constructor(
    message: string,
    /** Process exit code: 0 for --help, 2 for a usage mistake. */
    readonly exitCode = 2,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

/**
 * Destroys (and optionally removes) each stack; returns how many failed. With missingOk a stack that
 * does not exist is reported as already gone: the review stop job and the scheduled sweep can both
 * reach a stack at its 72 h mark, and whichever comes second must not fail.
 */
export async function destroyStacks(
  names: string[],
  deps: { select(name: string): Promise<Pick<Stack, 'destroy'>>; remove?: (name: string) => Promise<void>; missingOk: boolean; log?: (line: string) => void; error?: (line: string) => void },
): Promise<number> {
  const log = deps.log ?? ((l: string) => console.log(l));
  const error = deps.error ?? ((l: string) => console.error(l));
  let failed = 0;
  for (const name of names) {
    try {
      const stack = await deps.select(name);
      log(`destroying ${name} ...`);
      // Order comes from the state's dependency graph: DNS records before the load balancer,
      // cert-manager objects before cert-manager. Protected resources make this fail on purpose.
      await stack.destroy({ onOutput: (s) => process.stdout.write(s), color: 'never' });
      if (deps.remove) await deps.remove(name);
      log(`destroyed ${name}${deps.remove ? ' and removed the stack' : ''}`);
    } catch (e) {
      if (deps.missingOk && e instanceof StackNotFoundError) {
        log(`${name} does not exist (already torn down): nothing to do`);
        continue;
      }
      failed++;
      error(`teardown of ${name} failed: ${(e as Error).message}`);
    }
  }
  return failed;
}

async function main(argv: string[]): Promise<number> {
  const opts = parseCli(argv);
  const ws = await LocalWorkspace.create({ workDir: opts.workDir }).catch((e: unknown) => {
    if (/ENOENT/.test(String((e as Error).message))) {
      throw new Error('the pulumi CLI is not on PATH (install it: https://www.pulumi.com/docs/install/)');
    }
    throw e;
  });
  const targets = new Set(opts.stacks);
  if (opts.expired) {
    for (const d of selectExpired(await describeStacks(ws), new Date())) {
      console.log(`${d.expired ? 'DESTROY' : 'keep   '} ${d.name}: ${d.reason}`);
      if (d.expired) targets.add(d.name);
    }
  }
  if (opts.dryRun) {
    console.log(targets.size ? `would destroy: ${[...targets].join(', ')}` : 'nothing to destroy');
    return 0;
  }
  const failed = await destroyStacks([...targets], {
    select: (name) => LocalWorkspace.selectStack({ stackName: name, workDir: opts.workDir }),
    remove: opts.remove ? (name) => ws.removeStack(name) : undefined,
    missingOk: opts.missingOk,
  });
  return failed ? 1 : 0;
}

const isMain = (() => {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(__filename);
  } catch {
    return false;
  }
})();
if (isMain) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      if (e instanceof UsageError) {
        (e.exitCode === 0 ? console.log : console.error)(e.message);
        process.exit(e.exitCode);
      }
      console.error(`teardown failed: ${(e as Error).message}`);
      process.exit(1);
    },
  );
}
