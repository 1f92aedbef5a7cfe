// Who gets in over SSH (docs/contract.md §5): a GitLab token of the workspace's owner, checked with GitLab; at most
// 3 password tries; failures look alike to the client but are logged with their reason.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startSshHarness, WORKSPACE, type SshHarness } from '../support/ssh-harness';

let h: SshHarness;
before(async () => {
  h = await startSshHarness();
});
after(async () => {
  await h?.close();
});

const failures = (harness: SshHarness, reason: string) =>
  harness.logs().filter((l) => l.msg === 'ssh authentication failed' && l.reason === reason);

test('a wrong token is refused after 3 tries, each checked with GitLab once', async () => {
  h.gitlab.resetCounts();
  const before = failures(h, 'invalid_token').length;
  const r = await h.ssh({ tokens: ['glpat-wrong-1', 'glpat-wrong-2', 'glpat-wrong-3'], command: ['echo in'] });
  assert.equal(r.code, 255);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /Permission denied|too many authentication failures/);
  assert.equal(r.prompts, 3);
  assert.equal(h.gitlab.count('graphql'), 3);
  assert.deepEqual(h.gitlab.graphqlLog.slice(-3).map((c) => c.token), ['glpat-wrong-1', 'glpat-wrong-2', 'glpat-wrong-3']);
  assert.equal(failures(h, 'invalid_token').length - before, 3);
});

test('a client willing to try more is cut off after the third try: no fourth token reaches GitLab', async () => {
  h.gitlab.resetCounts();
  const r = await h.ssh({
    tokens: ['glpat-a', 'glpat-b', 'glpat-c', 'glpat-d', 'glpat-e'], options: ['-o', 'NumberOfPasswordPrompts=5'], command: ['true'],
  });
  assert.equal(r.code, 255);
  assert.equal(r.prompts, 3);
  assert.equal(h.gitlab.count('graphql'), 3);
  assert.ok(!h.gitlab.graphqlLog.some((c) => c.token === 'glpat-d'));
  assert.match(r.stderr, /too many authentication failures/);
});

test("another user's token and an unknown workspace are refused exactly like a wrong token", async () => {
  const normal = (s: string) => s.replaceAll(WORKSPACE, 'USER').replaceAll('ws-nobody', 'USER');
  const one = { options: ['-o', 'NumberOfPasswordPrompts=1'], command: ['echo in'] };

  const wrong = await h.ssh({ ...one, tokens: ['glpat-not-a-token'] });
  const notOwnerBefore = failures(h, 'not_owner').length;
  const otherUser = await h.ssh({ ...one, tokens: [h.bobToken] });
  h.gitlab.resetCounts();
  const unknownBefore = failures(h, 'unknown_workspace').length;
  const unknown = await h.ssh({ ...one, user: 'ws-nobody', tokens: [h.aliceToken] });

  for (const r of [wrong, otherUser, unknown]) {
    assert.equal(r.code, 255);
    assert.equal(r.stdout, '');
  }
  assert.equal(normal(otherUser.stderr), normal(wrong.stderr));
  assert.equal(normal(unknown.stderr), normal(wrong.stderr));
  assert.equal(failures(h, 'not_owner').length - notOwnerBefore, 1);
  assert.equal(failures(h, 'unknown_workspace').length - unknownBefore, 1);
  // An unknown workspace costs no GitLab call.
  assert.equal(h.gitlab.count('graphql'), 0);
  const logged = failures(h, 'unknown_workspace').at(-1);
  assert.equal(logged?.username, 'ws-nobody');
});

test('a workspace name that exists in two namespaces is refused, with a log line', async () => {
  h.memory?.add({ name: WORKSPACE, namespace: 'ns-other', id: '77', backendHost: '127.0.0.1', routes: {} });
  try {
    const r = await h.ssh({ tokens: [h.aliceToken], options: ['-o', 'NumberOfPasswordPrompts=1'], command: ['echo in'] });
    assert.equal(r.code, 255);
    assert.equal(r.stdout, '');
    assert.ok(failures(h, 'ambiguous_workspace').length >= 1);
  } finally {
    h.memory?.remove(WORKSPACE, 'ns-other');
  }
  const again = await h.ssh({ tokens: [h.aliceToken], command: ['echo in'] });
  assert.equal(again.stdout, 'in\n');
});

test('a burst of connections with one token costs one GitLab check', async () => {
  // Let any earlier positive answer expire from the cache first? It is per token: use a fresh token.
  const token = h.gitlab.createPersonalAccessToken(h.alice);
  h.gitlab.resetCounts();
  const runs = await Promise.all([1, 2, 3, 4].map((i) => h.ssh({ tokens: [token], command: [`echo ${i}`] })));
  assert.deepEqual(runs.map((r) => r.stdout), ['1\n', '2\n', '3\n', '4\n']);
  const after = await h.ssh({ tokens: [token], command: ['echo 5'] });
  assert.equal(after.stdout, '5\n');
  assert.equal(h.gitlab.count('graphql'), 1);
});

test('GitLab failing gives a clear message, not a password prompt loop', async () => {
  const token = h.gitlab.createPersonalAccessToken(h.alice);
  h.gitlab.failWith(503);
  try {
    const r = await h.ssh({ tokens: [token], command: ['echo in'] });
    assert.equal(r.code, 255);
    assert.equal(r.prompts, 1);
    assert.match(r.stderr, /could not confirm access with GitLab/);
    assert.ok(failures(h, 'gitlab_unavailable').length >= 1);
  } finally {
    h.gitlab.failWith(null);
  }
});

test('failure log lines carry the reason and never the token', () => {
  const lines = h.logs().filter((l) => l.msg === 'ssh authentication failed');
  assert.ok(lines.length >= 5);
  for (const l of lines) {
    assert.equal(typeof l.reason, 'string');
    assert.equal(l.password, undefined);
    assert.equal(l.token, undefined);
  }
  const text = h.logText();
  for (const secret of [h.aliceToken, h.bobToken, 'glpat-wrong-1', 'glpat-not-a-token']) assert.ok(!text.includes(secret), secret);
});

test('one address that keeps failing is refused without asking GitLab (fail-to-ban)', async () => {
  const limited = await startSshHarness({ tuning: { addressFailureBudget: 2, addressFailureRefillMs: 3_600_000 } });
  try {
    limited.gitlab.resetCounts();
    const r = await limited.ssh({ tokens: ['glpat-guess-1', 'glpat-guess-2', 'glpat-guess-3'], command: ['true'] });
    assert.equal(r.code, 255);
    assert.equal(limited.gitlab.count('graphql'), 2, 'the third guess never reached GitLab');
    // Even the right token is refused from that address for now.
    const valid = await limited.ssh({ tokens: [limited.aliceToken], options: ['-o', 'NumberOfPasswordPrompts=1'], command: ['echo in'] });
    assert.equal(valid.code, 255);
    assert.equal(valid.stdout, '');
    assert.equal(limited.gitlab.count('graphql'), 2);
    assert.ok(failures(limited, 'rate_limited').length >= 2);
  } finally {
    await limited.close();
  }
});

test('a revoked token stops opening connections within auth.reauthorize_interval, and open ones are closed', async () => {
  const quick = await startSshHarness({ reauthorizeInterval: 1 });
  try {
    const token = quick.gitlab.createPersonalAccessToken(quick.alice);
    const first = await quick.ssh({ tokens: [token], command: ['echo in'] });
    assert.equal(first.stdout, 'in\n');
    const started = quick.marker('revoked');
    const open = quick.ssh({ tokens: [token], command: [`${started.touch}; sleep 30; echo never`] });
    await started.wait();
    quick.gitlab.revokeToken(token);
    await new Promise((r) => setTimeout(r, 1_100));
    const refused = await quick.ssh({ tokens: [token], options: ['-o', 'NumberOfPasswordPrompts=1'], command: ['echo in'] });
    assert.equal(refused.code, 255);
    assert.equal(refused.stdout, '');
    const closed = await open;
    assert.equal(closed.stdout, '');
    assert.notEqual(closed.code, 0);
    assert.match(closed.stderr, /gitlab-workspaces-proxy: GitLab credential revoked or expired/);
  } finally {
    await quick.close();
  }
});
