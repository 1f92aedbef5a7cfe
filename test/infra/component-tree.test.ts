// Moving the program's body into the GitLabWorkspaces component must not touch existing stacks: the
// tree the program declared before the move (recorded under mocks by test/support/resource-tree.ts
// from the commit before it, in test/infra/fixtures/tree-before-component.json) is compared with the
// tree it declares now, with the aliases the SDK resolves (children inherit their parents' aliases).
// A resource not found again would be deleted; a changed type, provider or identity (Kubernetes
// namespace/name, tls and random inputs) would be replaced.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { main } from '../../infra/program';
import { recordTree, treeChanges, treeVariants, type TreeEntry } from '../support/resource-tree';
import { REPO_ROOT } from '../support/stack-fixtures';

const FIXTURE = path.join(__dirname, 'fixtures', 'tree-before-component.json');
const before = JSON.parse(readFileSync(FIXTURE, 'utf8')) as Record<string, TreeEntry[]>;

describe('resource tree across the move into the component', () => {
  it('the fixture covers every shipped stack and variant', () => {
    const ids = treeVariants(REPO_ROOT).map((v) => v.id);
    for (const stack of ['local', 'dev', 'prod']) assert.ok(before[stack]?.length, `fixture has stack ${stack}`);
    const missing = ids.filter((id) => !before[id]);
    // A stack added after the move has no old tree to compare with; the three shipped ones must be there.
    assert.ok(missing.every((id) => !/^(local|dev|prod)(\/|$)/.test(id)), `fixture lacks ${missing.join(', ')}`);
  });

  it('every resource of every variant is kept: no delete, no replace', async () => {
    const after = await recordTree(main, REPO_ROOT);
    const problems: string[] = [];
    for (const [id, old] of Object.entries(before)) {
      const now = after[id];
      if (!now) continue;
      for (const p of treeChanges(old, now)) problems.push(`${id}: ${p}`);
    }
    assert.deepEqual(problems, []);
  });

  it('the comparison sees a delete, a replace and a lost alias', () => {
    const stack = before.local as TreeEntry[];
    const victim = stack.find((e) => e.type === 'kubernetes:core/v1:Namespace') as TreeEntry;
    const renamed = stack.map((e) => (e === victim ? { ...e, identity: { ...(e.identity as object), name: 'other' } } : e));
    assert.match(treeChanges(stack, renamed).join(), /replace: .*identity/);
    assert.match(treeChanges(stack, stack.filter((e) => e !== victim)).join(), /delete: /);
    const moved = stack.map((e) => (e === victim ? { ...e, urn: `${e.urn}-moved` } : e));
    assert.match(treeChanges(stack, moved).join(), /delete: /);
    assert.deepEqual(treeChanges(stack, moved.map((e) => (e.urn === `${victim.urn}-moved` ? { ...e, aliases: [victim.urn] } : e))), []);
  });
});
