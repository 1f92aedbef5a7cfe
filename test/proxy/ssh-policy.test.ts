// The SSH proxy's decision parts on their own, with a controlled clock: the per-address fail-to-ban budget
// and the short cache of GitLab's positive answers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createAddressLimiter } from '../../proxy-image/src/ssh/address-limiter';
import { createSshAuthorizer } from '../../proxy-image/src/ssh/authorize';
import type { GitLabApi, OwnershipResult } from '../../proxy-image/src/auth/gitlab-api';
import { createOwnershipCheck } from '../../proxy-image/src/auth/ownership';
import { newConnectionReuse } from '../../proxy-image/src/auth/policy';
import { createMemoryDirectory } from '../support/memory-directory';

test('address budget: spent by failures, refilled slowly, per address, given back on success', () => {
  let now = 0;
  const limiter = createAddressLimiter({ budget: 3, refillMs: 10_000, now: () => now });
  assert.equal(limiter.take('10.0.0.1'), true);
  assert.equal(limiter.take('10.0.0.1'), true);
  assert.equal(limiter.take('10.0.0.1'), true);
  assert.equal(limiter.take('10.0.0.1'), false, 'budget spent');
  assert.equal(limiter.take('10.0.0.2'), true, 'other addresses are not affected');
  now += 9_999;
  assert.equal(limiter.take('10.0.0.1'), false, 'not yet refilled');
  now += 1;
  assert.equal(limiter.take('10.0.0.1'), true, 'one attempt forgiven per refill period');
  assert.equal(limiter.take('10.0.0.1'), false);
  limiter.giveBack('10.0.0.1');
  assert.equal(limiter.remaining('10.0.0.1'), 1);
  now += 1_000_000;
  assert.equal(limiter.remaining('10.0.0.1'), 3, 'never more than the budget');
});

test('address budget: memory stays bounded under a flood of addresses', () => {
  const limiter = createAddressLimiter({ budget: 1, refillMs: 60_000, maxAddresses: 100 });
  for (let i = 0; i < 1000; i++) limiter.take(`10.1.${i >> 8}.${i & 255}`);
  // The most recent addresses are remembered; the oldest were forgotten (back to a full budget).
  assert.equal(limiter.remaining('10.1.3.231'), 0);
  assert.equal(limiter.remaining('10.1.0.0'), 1);
});

function fakeGitLab(answer: () => OwnershipResult) {
  const calls: { token: string; workspaceId: string }[] = [];
  let release: (() => void) | undefined;
  let hold = false;
  const api: GitLabApi = {
    async checkOwnership(token, workspaceId) {
      calls.push({ token, workspaceId });
      if (hold) await new Promise<void>((r) => (release = r));
      return answer();
    },
  };
  return { api, calls, holdNext: () => (hold = true), release: () => { hold = false; release?.(); } };
}

test('authorizer: positive answers are reused for the cache lifetime only, per token and workspace', async () => {
  let now = 1_000;
  const directory = createMemoryDirectory();
  directory.add({ name: 'ws', id: '7', routes: {} });
  directory.add({ name: 'ws-b', id: '8', routes: {} });
  const gitlab = fakeGitLab(() => ({ kind: 'owner', userId: 'gid://gitlab/User/1' }));
  const auth = createSshAuthorizer({
    directory, ownership: createOwnershipCheck({ gitlab: gitlab.api, now: () => now }), reuse: newConnectionReuse(60, 5_000),
  });

  const first = await auth.authorize('ws', 'tok');
  assert.equal(first.ok && first.cached, false);
  const second = await auth.authorize('ws', 'tok');
  assert.equal(second.ok && second.cached, true);
  await auth.authorize('ws', 'other-token');
  await auth.authorize('ws-b', 'tok');
  assert.equal(gitlab.calls.length, 3, 'another token or workspace is checked on its own');
  now += 5_000;
  await auth.authorize('ws', 'tok');
  assert.equal(gitlab.calls.length, 4, 'expired entries are checked again');
});

test('authorizer: negative answers are never cached, and concurrent attempts share one call', async () => {
  let answer: OwnershipResult = { kind: 'invalid_token' };
  const directory = createMemoryDirectory();
  directory.add({ name: 'ws', id: '7', routes: {} });
  const gitlab = fakeGitLab(() => answer);
  const auth = createSshAuthorizer({ directory, ownership: createOwnershipCheck({ gitlab: gitlab.api }), reuse: newConnectionReuse(60, 60_000) });

  assert.deepEqual(await auth.authorize('ws', 'tok'), { ok: false, reason: 'invalid_token' });
  answer = { kind: 'owner', userId: 'u1' };
  assert.equal((await auth.authorize('ws', 'tok')).ok, true, 'a failure was not remembered');
  assert.equal(gitlab.calls.length, 2);

  gitlab.holdNext();
  const burst = [1, 2, 3].map(() => auth.authorize('ws', 'fresh'));
  await new Promise((r) => setImmediate(r));
  gitlab.release();
  const results = await Promise.all(burst);
  assert.ok(results.every((r) => r.ok));
  assert.equal(gitlab.calls.length, 3, 'one call for the burst');
});

test('authorizer: unknown and ambiguous workspaces are refused without a GitLab call', async () => {
  const directory = createMemoryDirectory();
  directory.add({ name: 'twin', namespace: 'a', id: '1', routes: {} });
  directory.add({ name: 'twin', namespace: 'b', id: '2', routes: {} });
  const gitlab = fakeGitLab(() => ({ kind: 'owner', userId: 'u' }));
  const auth = createSshAuthorizer({ directory, ownership: createOwnershipCheck({ gitlab: gitlab.api }), reuse: newConnectionReuse(60, 1_000) });
  assert.deepEqual(await auth.authorize('nobody', 'tok'), { ok: false, reason: 'unknown_workspace' });
  assert.deepEqual(await auth.authorize('twin', 'tok'), { ok: false, reason: 'ambiguous_workspace' });
  assert.equal(gitlab.calls.length, 0);
});
