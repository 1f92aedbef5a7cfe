// The GraphQL ownership check (proxy-image/src/auth/gitlab-api.ts) against the GitLab stand-in.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { createGitLabApi, type OwnershipResult } from '../../proxy-image/src/auth/gitlab-api';
import { startGitLabStandIn, type GitLabStandIn, type GitLabUser } from '../support/gitlab-stand-in';

let gitlab: GitLabStandIn;
let alice: GitLabUser;
let bob: GitLabUser;
const logger = pino({ level: 'silent' });
const outcomes: OwnershipResult['kind'][] = [];

before(async () => {
  gitlab = await startGitLabStandIn();
  alice = gitlab.addUser({ username: 'alice', password: 'a' });
  bob = gitlab.addUser({ username: 'bob', password: 'b' });
  gitlab.setWorkspaceOwner(7, alice);
});
after(() => gitlab.close());

const api = (timeoutMs?: number) => createGitLabApi({ baseUrl: gitlab.url, logger, timeoutMs, onCall: (kind) => outcomes.push(kind) });

test('owner with a PAT and with an OAuth access token', async () => {
  const pat = gitlab.createPersonalAccessToken(alice);
  assert.deepEqual(await api().checkOwnership(pat, '7'), { kind: 'owner', userId: alice.gid });
  const oauth = gitlab.issueAccessToken(alice).accessToken;
  assert.deepEqual(await api().checkOwnership(oauth, '7'), { kind: 'owner', userId: alice.gid });
  assert.equal(gitlab.graphqlLog.at(-1)?.workspaceId, '7');
  assert.equal(gitlab.graphqlLog.at(-1)?.token, oauth);
});

test('another user, or an unknown workspace, is not_owner', async () => {
  const pat = gitlab.createPersonalAccessToken(bob);
  assert.deepEqual(await api().checkOwnership(pat, '7'), { kind: 'not_owner', userId: bob.gid });
  const alicePat = gitlab.createPersonalAccessToken(alice);
  assert.deepEqual(await api().checkOwnership(alicePat, '999'), { kind: 'not_owner', userId: alice.gid });
});

test('ownership moves when the stand-in says so', async () => {
  gitlab.setWorkspaceOwner(8, alice);
  const bobPat = gitlab.createPersonalAccessToken(bob);
  assert.equal((await api().checkOwnership(bobPat, '8')).kind, 'not_owner');
  gitlab.setWorkspaceOwner(8, bob);
  assert.equal((await api().checkOwnership(bobPat, '8')).kind, 'owner');
});

test('unknown, revoked and expired tokens are invalid_token', async () => {
  assert.deepEqual(await api().checkOwnership('glpat-nonsense', '7'), { kind: 'invalid_token' });
  const pat = gitlab.createPersonalAccessToken(alice);
  gitlab.revokeToken(pat);
  assert.deepEqual(await api().checkOwnership(pat, '7'), { kind: 'invalid_token' });
  const t = gitlab.issueAccessToken(alice).accessToken;
  gitlab.expireToken(t);
  assert.deepEqual(await api().checkOwnership(t, '7'), { kind: 'invalid_token' });
});

test('5xx is unavailable, not a verdict', async () => {
  const pat = gitlab.createPersonalAccessToken(alice);
  gitlab.failWith(502);
  try {
    assert.deepEqual(await api().checkOwnership(pat, '7'), { kind: 'unavailable', error: 'HTTP 502' });
  } finally {
    gitlab.failWith(null);
  }
  assert.equal((await api().checkOwnership(pat, '7')).kind, 'owner');
});

test('unreachable GitLab is unavailable; it works again after start()', async () => {
  const pat = gitlab.createPersonalAccessToken(alice);
  await gitlab.stop();
  try {
    assert.equal((await api().checkOwnership(pat, '7')).kind, 'unavailable');
  } finally {
    await gitlab.start();
  }
  assert.equal((await api().checkOwnership(pat, '7')).kind, 'owner');
});

test('a GitLab slower than the timeout is unavailable (timeout)', async () => {
  const pat = gitlab.createPersonalAccessToken(alice);
  gitlab.setResponseDelay(5_000);
  try {
    assert.deepEqual(await api(200).checkOwnership(pat, '7'), { kind: 'unavailable', error: 'timeout' });
  } finally {
    gitlab.setResponseDelay(0);
  }
});

test('a non-numeric workspace id never reaches GitLab', async () => {
  const before = gitlab.count('graphql');
  const pat = gitlab.createPersonalAccessToken(alice);
  assert.equal((await api().checkOwnership(pat, '7 OR 1')).kind, 'not_owner');
  assert.equal(gitlab.count('graphql'), before);
  assert.ok(outcomes.includes('owner') && outcomes.includes('invalid_token') && outcomes.includes('unavailable'));
});
