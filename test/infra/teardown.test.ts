// Which stacks `npm run teardown -- --expired` destroys: the selection logic against a fake workspace,
// and the command line.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import type { StackSettings, StackSummary, TagMap } from '@pulumi/pulumi/automation';
import { describeStacks, destroyStacks, EXPIRES_AT_TAG, parseCli, selectExpired, TTL_TAG, UsageError, type StackSource } from '../../infra/automation/teardown';

const NOW = new Date('2026-11-21T12:00:00Z');
const hoursAgo = (h: number) => new Date(NOW.getTime() - h * 3_600_000).toISOString();

interface FakeStack {
  summary: StackSummary;
  tags?: TagMap | 'unsupported';
  settings?: StackSettings | 'missing';
}

/** A workspace with canned stacks; records what it was asked. */
function fakeWorkspace(stacks: FakeStack[]): StackSource & { asked: string[] } {
  const asked: string[] = [];
  const byName = new Map(stacks.map((s) => [s.summary.name, s]));
  return {
    asked,
    async listStacks() {
      asked.push('listStacks');
      return stacks.map((s) => s.summary);
    },
    async listTags(name) {
      asked.push(`listTags ${name}`);
      const t = byName.get(name)?.tags;
      if (t === 'unsupported') throw new Error('stack tags are not supported by this backend');
      return t ?? {};
    },
    async stackSettings(name) {
      asked.push(`stackSettings ${name}`);
      const s = byName.get(name)?.settings;
      if (s === undefined || s === 'missing') throw new Error(`no stack settings file for ${name}`);
      return s;
    },
  };
}

const summary = (name: string, lastUpdate?: string, extra: Partial<StackSummary> = {}): StackSummary => ({ name, current: false, lastUpdate, ...extra });

const workspace = () =>
  fakeWorkspace([
    // Review stack deployed by CI with an absolute expiry tag, past it.
    { summary: summary('review-mr-12', hoursAgo(80)), tags: { [EXPIRES_AT_TAG]: '2026-11-20T00:00:00Z' }, settings: 'missing' },
    // Expiry tag in the future wins over an old last update.
    { summary: summary('review-mr-13', hoursAgo(500)), tags: { [EXPIRES_AT_TAG]: '2026-11-22T00:00:00Z', [TTL_TAG]: '1h' } },
    // TTL tag counted from the last update: 48h ttl, updated 49h ago.
    { summary: summary('review-mr-14', hoursAgo(49)), tags: { [TTL_TAG]: '48h' } },
    // TTL from the stack's config file, not reached yet.
    { summary: summary('feature-x', hoursAgo(10)), tags: 'unsupported', settings: { config: { 'gitlab-workspaces:ttl': '1d' } } },
    // TTL from config, reached.
    { summary: summary('spike', hoursAgo(25)), tags: 'unsupported', settings: { config: { 'gitlab-workspaces:ttl': '1d' } } },
    // Production: no ttl, and protected anyway.
    { summary: summary('prod', hoursAgo(2000)), settings: { config: { 'gitlab-workspaces:protect': true, 'gitlab-workspaces:ttl': '1h' } } },
    // No lifetime at all.
    { summary: summary('dev', hoursAgo(2000)), settings: { config: { 'gitlab-workspaces:replicas': 2 } } },
    // Expired but an update is running: leave it for the next run.
    { summary: summary('review-mr-15', hoursAgo(100), { updateInProgress: true }), tags: { [TTL_TAG]: '1h' } },
    // Created, never deployed.
    { summary: summary('review-mr-16'), tags: { [TTL_TAG]: '1h' } },
    // Garbage values are never read as "expired".
    { summary: summary('odd', hoursAgo(100)), tags: { [EXPIRES_AT_TAG]: 'next tuesday' } },
    { summary: summary('odd2', hoursAgo(100)), tags: { [TTL_TAG]: '2 weeks' } },
  ]);

describe('teardown selection', () => {
  it('selects exactly the stacks past their expiry tag or ttl', async () => {
    const ws = workspace();
    const decisions = selectExpired(await describeStacks(ws), NOW);
    assert.deepEqual(
      decisions.filter((d) => d.expired).map((d) => d.name),
      ['review-mr-12', 'review-mr-14', 'spike'],
    );
    const reason = (n: string) => decisions.find((d) => d.name === n)?.reason ?? '';
    assert.match(reason('review-mr-12'), /^expired \(gitlab-workspaces:expires-at 2026-11-20T00:00:00\.000Z\)$/);
    assert.match(reason('review-mr-13'), /^expires 2026-11-22T00:00:00\.000Z/);
    assert.match(reason('review-mr-14'), /^expired \(ttl 48h after last update/);
    assert.match(reason('feature-x'), /^expires /);
    assert.match(reason('prod'), /protected/);
    assert.match(reason('dev'), /never expires/);
    assert.match(reason('review-mr-15'), /update is in progress/);
    assert.match(reason('review-mr-16'), /never deployed/);
    assert.match(reason('odd'), /invalid gitlab-workspaces:expires-at/);
    assert.match(reason('odd2'), /invalid ttl/);
    assert.equal(decisions.length, 11, 'every stack gets a decision');
    // It only reads: list, tags and settings, nothing else.
    assert.ok(ws.asked.every((a) => /^(listStacks|listTags|stackSettings)/.test(a)));
  });

  it('a stack is expired exactly at its deadline, not a millisecond before', () => {
    const s = [{ name: 'x', updateInProgress: false, protect: false, ttl: '2h', lastUpdate: new Date(NOW.getTime() - 2 * 3_600_000) }];
    assert.equal(selectExpired(s, NOW)[0]?.expired, true);
    assert.equal(selectExpired(s, new Date(NOW.getTime() - 1))[0]?.expired, false);
  });

  it('reads protect given as a string (config set on the command line)', async () => {
    const ws = fakeWorkspace([{ summary: summary('p', hoursAgo(10)), tags: { [TTL_TAG]: '1h' }, settings: { config: { 'gitlab-workspaces:protect': 'true' } } }]);
    const [d] = selectExpired(await describeStacks(ws), NOW);
    assert.equal(d?.expired, false);
  });
});

describe('teardown command line', () => {
  it('parses stack names and flags', () => {
    const o = parseCli(['--stack', 'review-mr-1', '-s', 'review-mr-2', '--remove']);
    assert.deepEqual(o.stacks, ['review-mr-1', 'review-mr-2']);
    assert.equal(o.remove, true);
    assert.equal(o.expired, false);
    assert.equal(o.workDir, path.resolve(__dirname, '..', '..'), 'defaults to the repository root (Pulumi.yaml)');
    assert.equal(parseCli(['--expired', '--dry-run']).dryRun, true);
  });

  it('refuses to run without a target and explains usage (exit 2)', () => {
    assert.throws(() => parseCli([]), UsageError);
    assert.throws(() => parseCli(['--stak', 'x']), /Unknown option/);
    const res = spawnSync(process.execPath, ['--import', 'tsx', path.join(__dirname, '..', '..', 'infra', 'automation', 'teardown.ts')], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(res.status, 2);
    assert.match(res.stderr, /usage: npm run teardown -- \(--stack <name>/);
  });

  it('prints help on --help and exits 0, without needing the pulumi CLI', () => {
    const res = spawnSync(process.execPath, ['--import', 'tsx', path.join(__dirname, '..', '..', 'infra', 'automation', 'teardown.ts'), '--help'], {
      encoding: 'utf8',
      timeout: 60_000,
      // No pulumi on PATH: help must not reach the Automation API.
      env: { ...process.env, PATH: path.dirname(process.execPath) },
    });
    assert.equal(res.status, 0, res.stderr);
    assert.match(res.stdout, /usage: npm run teardown -- \(--stack <name>/);
    assert.match(res.stdout, /--expired/);
    assert.equal(res.stderr, '');
  });
});

describe('teardown of a stack that is already gone (stop job vs. sweep at 72 h)', () => {
  // The Automation API's own classification of the CLI's answer for a missing stack.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { createCommandError } = require('@pulumi/pulumi/automation/errors.js') as {
    createCommandError(r: { stdout: string; stderr: string; code: number; err?: Error }): Error;
  };
  const missing = (name: string) => createCommandError({ stdout: '', stderr: `error: no stack named '${name}' found\n`, code: 255 });

  it('--missing-ok counts a missing stack as torn down; without it, it is a failure', async () => {
    assert.equal(parseCli(['--stack', 'review-mr-1', '--missing-ok']).missingOk, true);
    const lines: string[] = [];
    const deps = (missingOk: boolean) => ({
      select: (name: string) => Promise.reject(missing(name)),
      missingOk,
      log: (l: string) => lines.push(l),
      error: (l: string) => lines.push(l),
    });
    assert.equal(await destroyStacks(['review-mr-1'], deps(true)), 0);
    assert.match(lines.join('\n'), /review-mr-1 does not exist \(already torn down\)/);
    assert.equal(await destroyStacks(['review-mr-1'], deps(false)), 1);
  });

  it('any other error still fails, with missing-ok too', async () => {
    const failing = { select: () => Promise.reject(new Error('[409] Conflict: Another update is currently in progress.')), missingOk: true, log: () => {}, error: () => {} };
    assert.equal(await destroyStacks(['review-mr-2'], failing), 1);
    let destroyed = 0;
    const ok = { select: () => Promise.resolve({ destroy: async () => ((destroyed++, {}) as never) }), missingOk: true, log: () => {} };
    assert.equal(await destroyStacks(['review-mr-3'], ok), 0);
    assert.equal(destroyed, 1);
  });
});
