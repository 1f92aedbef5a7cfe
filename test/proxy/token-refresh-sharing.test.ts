// Sharing token refreshes between the HTTP side and the connection registry (GitLab rotates refresh tokens).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { shareRefreshes } from '../../proxy-image/src/auth/shared-refresher';
import type { TokenRefresher } from '../../proxy-image/src/auth/credential';
import { OidcError, isRefreshRejection } from '../../proxy-image/src/auth/oidc';

/** Behaves like GitLab's token endpoint: each refresh token works once and yields the next one. */
function rotatingRefresher(): TokenRefresher & { grants: string[]; failNext: boolean; other(): string } {
  const valid = new Set(['rt-0']);
  let n = 0;
  const r = {
    grants: [] as string[],
    failNext: false,
    other: () => 'kept',
    async refresh(rt: string) {
      r.grants.push(rt);
      await new Promise((res) => setImmediate(res));
      if (r.failNext) {
        r.failNext = false;
        throw new OidcError('unavailable', 'fetch failed');
      }
      if (!valid.delete(rt)) throw new OidcError('rejected', 'invalid_grant');
      n += 1;
      valid.add(`rt-${n}`);
      return { accessToken: `at-${n}`, refreshToken: `rt-${n}`, expiresAt: 1 };
    },
  };
  return r;
}

test('two holders of one refresh token, concurrently or one after the other, share one grant', async () => {
  const inner = rotatingRefresher();
  const shared = shareRefreshes(inner);
  const [a, b] = await Promise.all([shared.refresh('rt-0'), shared.refresh('rt-0')]);
  assert.deepEqual(a, b);
  assert.equal(a.accessToken, 'at-1');
  const later = await shared.refresh('rt-0'); // e.g. the cookie side, after the registry refreshed
  assert.equal(later.accessToken, 'at-1');
  assert.deepEqual(inner.grants, ['rt-0']);
  // Without sharing, the second use of a rotated token is refused.
  await assert.rejects(inner.refresh('rt-0'), (e: unknown) => isRefreshRejection(e));
});

test('rotations chain to the newest tokens, and other methods of the wrapped object still work', async () => {
  const inner = rotatingRefresher();
  const shared = shareRefreshes(inner);
  const first = await shared.refresh('rt-0');
  const second = await shared.refresh(first.refreshToken!);
  assert.equal(second.accessToken, 'at-2');
  // A holder two rotations behind gets the newest tokens, not the revoked middle ones.
  assert.equal((await shared.refresh('rt-0')).accessToken, 'at-2');
  assert.equal((await shared.refresh('rt-1')).accessToken, 'at-2');
  assert.deepEqual(inner.grants, ['rt-0', 'rt-1']);
  assert.equal(shared.other(), 'kept');
});

test('a later rotation failing leaves the holder of an older token with the last good tokens', async () => {
  const inner = rotatingRefresher();
  const shared = shareRefreshes(inner);
  const first = await shared.refresh('rt-0');
  inner.failNext = true;
  const [second, older] = await Promise.allSettled([shared.refresh(first.refreshToken!), shared.refresh('rt-0')]);
  assert.equal(second.status, 'rejected');
  assert.equal(older.status === 'fulfilled' && older.value.accessToken, 'at-1');
});

test('a failed grant is not remembered: the next try reaches GitLab again', async () => {
  const inner = rotatingRefresher();
  const shared = shareRefreshes(inner);
  inner.failNext = true;
  await assert.rejects(shared.refresh('rt-0'), (e: unknown) => !isRefreshRejection(e));
  assert.equal((await shared.refresh('rt-0')).accessToken, 'at-1');
  assert.deepEqual(inner.grants, ['rt-0', 'rt-0']);
});

test('remembered outcomes expire and are bounded in number', async () => {
  let clock = 0;
  const inner = rotatingRefresher();
  const shared = shareRefreshes(inner, { keepMs: 1000, now: () => clock });
  await shared.refresh('rt-0');
  clock = 2000;
  await assert.rejects(shared.refresh('rt-0')); // forgotten: GitLab refuses the used token
  const grants: string[] = [];
  const bounded = shareRefreshes({
    refresh: async (rt: string) => {
      grants.push(rt);
      return { accessToken: `at-for-${rt}` };
    },
  }, { maxEntries: 2 });
  for (const rt of ['a', 'b', 'c']) await bounded.refresh(rt);
  await bounded.refresh('c'); // remembered
  await bounded.refresh('a'); // the oldest was dropped to stay within 2
  assert.deepEqual(grants, ['a', 'b', 'c', 'a']);
});

test('refresh failures are classified: refusals vs outages', () => {
  assert.equal(isRefreshRejection(new OidcError('rejected', 'invalid_grant')), true);
  assert.equal(isRefreshRejection(new OidcError('unavailable', 'timeout')), false);
  assert.equal(isRefreshRejection(Object.assign(new Error('x'), { error: 'invalid_grant', status: 400 })), true);
  assert.equal(isRefreshRejection(Object.assign(new Error('x'), { error: 'server_error', status: 503 })), false);
  assert.equal(isRefreshRejection(new TypeError('fetch failed')), false);
  // openid-client's own timeout (GitLab hanging) and abort: outages, not refusals.
  assert.equal(isRefreshRejection(Object.assign(new Error('operation timed out'), { code: 'OAUTH_TIMEOUT' })), false);
  assert.equal(isRefreshRejection(Object.assign(new Error('operation aborted'), { code: 'OAUTH_ABORT' })), false);
  assert.equal(isRefreshRejection(undefined), false);
});
