// The GitLab stand-in's SSH-key and project-access-token side, as GitLab answers it: users' keys (expired
// ones listed too, paginated), project access tokens with GitLab's role and scope rules, rotation, and the
// workspace owner query that a Maintainer project token of the agent's project may ask.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  AccessLevel, startGitLabStandIn, type GitLabProject, type GitLabStandIn, type GitLabUser,
} from '../support/gitlab-stand-in';

let gitlab: GitLabStandIn;
let alice: GitLabUser;
let maintainer: GitLabUser;
let developer: GitLabUser;
let agentProject: GitLabProject;
let maintainerPat: string;

const ED25519 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGb1o7qk0bqV2xv3g1u9v8JkqDq7S3o1yM9vYk4xWQ1c alice@laptop';

before(async () => {
  gitlab = await startGitLabStandIn();
  alice = gitlab.addUser({ username: 'alice', password: 'pw', name: 'Alice' });
  maintainer = gitlab.addUser({ username: 'mia', password: 'pw' });
  developer = gitlab.addUser({ username: 'dev', password: 'pw' });
  agentProject = gitlab.addProject({ path: 'platform/workspaces-agent' });
  gitlab.setMember(agentProject, maintainer, AccessLevel.maintainer);
  gitlab.setMember(agentProject, developer, AccessLevel.developer);
  gitlab.setWorkspaceOwner(42, alice, { agentProject });
  maintainerPat = gitlab.createPersonalAccessToken(maintainer, { scopes: ['api'] });
});
after(() => gitlab.close());

const api = (path: string, init: RequestInit & { token?: string } = {}): Promise<Response> => {
  const headers = new Headers(init.headers);
  if (init.token) headers.set('authorization', `Bearer ${init.token}`);
  if (init.body) headers.set('content-type', 'application/json');
  return fetch(`${gitlab.url}${path}`, { ...init, headers });
};
const post = (path: string, token: string, body: unknown) => api(path, { method: 'POST', token, body: JSON.stringify(body) });

async function ownerQuery(token: string, workspaceId = 42): Promise<{ status: number; body: { data?: { workspace?: { user?: { id?: string } } | null } } }> {
  const res = await api('/api/graphql', {
    method: 'POST', token,
    body: JSON.stringify({
      query: 'query($id: RemoteDevelopmentWorkspaceID!) { workspace(id: $id) { user { id } } }',
      variables: { id: `gid://gitlab/RemoteDevelopment::Workspace/${workspaceId}` },
    }),
  });
  return { status: res.status, body: (await res.json()) as never };
}

const inDays = (days: number): string => new Date(Date.now() + days * 86_400_000).toISOString().slice(0, 10);

test("a user's keys: publishable form, expiry and usage type, expired ones listed too; by id or username", async () => {
  const valid = gitlab.addSshKey(alice, ED25519, { title: 'laptop' });
  const expired = gitlab.addSshKey(alice, 'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 old', { expiresAt: Date.now() - 1000 });
  const signing = gitlab.addSshKey(alice, 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ3 sign', { usageType: 'signing' });
  try {
    const res = await api(`/api/v4/users/${alice.id}/keys`);
    assert.equal(res.status, 200);
    const keys = (await res.json()) as { id: number; key: string; title: string; expires_at: string | null; usage_type: string }[];
    assert.deepEqual(keys.map((k) => k.id), [valid.id, expired.id, signing.id]);
    // The comment is replaced by "<name> (<host>)": no e-mail address or laptop name leaks.
    assert.equal(keys[0]?.key, `${ED25519.split(' ').slice(0, 2).join(' ')} Alice (127.0.0.1)`);
    assert.equal(keys[0]?.title, 'laptop');
    assert.equal(keys[0]?.expires_at, null);
    assert.ok(keys[1]?.expires_at && Date.parse(keys[1].expires_at) < Date.now());
    assert.equal(keys[2]?.usage_type, 'signing');
    const byName = (await (await api('/api/v4/users/alice/keys')).json()) as unknown[];
    assert.equal(byName.length, 3);
  } finally {
    for (const k of [valid, expired, signing]) gitlab.removeSshKey(k.id);
  }
  assert.deepEqual(await (await api(`/api/v4/users/${alice.id}/keys`)).json(), []);
});

test('user keys: 404 for an unknown user, 401 for a bad token, pages of per_page with x-next-page', async () => {
  const none = await api('/api/v4/users/9999/keys');
  assert.equal(none.status, 404);
  assert.deepEqual(await none.json(), { message: '404 User Not Found' });
  assert.equal((await api(`/api/v4/users/${alice.id}/keys`, { token: 'glpat-bogus' })).status, 401);

  const added = Array.from({ length: 5 }, (_, i) => gitlab.addSshKey(developer, `ssh-ed25519 AAAA${i} k${i}`));
  try {
    const first = await api(`/api/v4/users/${developer.id}/keys?per_page=2`, { token: maintainerPat });
    assert.equal(((await first.json()) as unknown[]).length, 2);
    assert.equal(first.headers.get('x-total'), '5');
    assert.equal(first.headers.get('x-next-page'), '2');
    const last = await api(`/api/v4/users/${developer.id}/keys?per_page=2&page=3`);
    assert.equal(((await last.json()) as unknown[]).length, 1);
    assert.equal(last.headers.get('x-next-page'), '');
    // Default page size is 20, the maximum 100.
    assert.equal((await api(`/api/v4/users/${developer.id}/keys?per_page=500`)).headers.get('x-per-page'), '100');
  } finally {
    for (const k of added) gitlab.removeSshKey(k.id);
  }
  assert.equal(gitlab.count('user_keys') >= 5, true);
});

test('project access tokens: a Maintainer creates one (secret once), lists, reads and revokes it', async () => {
  const path = `/api/v4/projects/${encodeURIComponent(agentProject.path)}/access_tokens`;
  const res = await post(path, maintainerPat, { name: 'workspaces-proxy', scopes: ['read_api'], expires_at: inDays(30) });
  assert.equal(res.status, 201);
  const created = (await res.json()) as { id: number; token: string; access_level: number; scopes: string[]; expires_at: string; active: boolean; user_id: number };
  assert.match(created.token, /^glpat-/);
  assert.equal(created.access_level, AccessLevel.maintainer); // the default
  assert.deepEqual(created.scopes, ['read_api']);
  assert.equal(created.expires_at, inDays(30));
  assert.equal(created.active, true);

  const list = (await (await api(`/api/v4/projects/${agentProject.id}/access_tokens`, { token: maintainerPat })).json()) as Record<string, unknown>[];
  const listed = list.find((t) => t.id === created.id);
  assert.ok(listed);
  assert.equal('token' in listed, false);
  const one = await api(`/api/v4/projects/${agentProject.id}/access_tokens/${created.id}`, { token: maintainerPat });
  assert.equal(((await one.json()) as { name: string }).name, 'workspaces-proxy');

  // The token works for what read_api allows, as its bot user.
  const me = (await (await api('/api/v4/user', { token: created.token })).json()) as { id: number; username: string };
  assert.equal(me.id, created.user_id);
  assert.match(me.username, new RegExp(`^project_${agentProject.id}_bot_`));

  const del = await api(`/api/v4/projects/${agentProject.id}/access_tokens/${created.id}`, { method: 'DELETE', token: maintainerPat });
  assert.equal(del.status, 204);
  assert.equal((await api('/api/v4/user', { token: created.token })).status, 401);
  const after = (await (await api(`/api/v4/projects/${agentProject.id}/access_tokens/${created.id}`, { token: maintainerPat })).json()) as { revoked: boolean; active: boolean };
  assert.deepEqual([after.revoked, after.active], [true, false]);
  const missing = await api(`/api/v4/projects/${agentProject.id}/access_tokens/9999`, { method: 'DELETE', token: maintainerPat });
  assert.equal(missing.status, 404);
});

test("project access tokens: GitLab's rules on roles, scopes and expiry", async () => {
  const path = `/api/v4/projects/${agentProject.id}/access_tokens`;
  const body = { name: 't', scopes: ['read_api'], expires_at: inDays(10) };
  const devPat = gitlab.createPersonalAccessToken(developer, { scopes: ['api'] });
  const readOnlyPat = gitlab.createPersonalAccessToken(maintainer, { scopes: ['read_api'] });
  const outsider = gitlab.createPersonalAccessToken(alice, { scopes: ['api'] });

  const byDev = await post(path, devPat, body);
  assert.equal(byDev.status, 400);
  assert.match(((await byDev.json()) as { message: string }).message, /does not have permission to create project access token/);
  assert.equal((await post(path, readOnlyPat, body)).status, 403); // read_api: GET only
  assert.equal((await post(path, outsider, body)).status, 404); // private project, not a member
  const owner = await post(path, maintainerPat, { ...body, access_level: AccessLevel.owner });
  assert.match(((await owner.json()) as { message: string }).message, /permissions not held by the creating user/);
  assert.equal((await post(path, maintainerPat, { ...body, scopes: ['read_user'] })).status, 400);
  assert.equal((await post(path, maintainerPat, { ...body, scopes: [] })).status, 400);
  assert.equal((await post(path, maintainerPat, { scopes: ['read_api'] })).status, 400); // no name
  assert.equal((await post(path, maintainerPat, { ...body, expires_at: 'next week' })).status, 400);
  assert.equal((await post(path, maintainerPat, { ...body, expires_at: inDays(400) })).status, 400);
  // Expiry is required by default: without one, the longest allowed lifetime.
  const noExpiry = (await (await post(path, maintainerPat, { name: 'n', scopes: ['read_api'] })).json()) as { expires_at: string; token: string };
  assert.equal(noExpiry.expires_at, inDays(365));
  // A project access token cannot create tokens, whatever its role.
  const botApi = gitlab.createProjectAccessToken(agentProject, { scopes: ['api'], accessLevel: AccessLevel.owner });
  assert.equal((await post(path, botApi.token, body)).status, 400);
  // Reading the list takes Maintainer.
  assert.equal((await api(path, { token: devPat })).status, 401);
});

test('rotation: the old token dies at once, the new one works; reusing the old one revokes the family', async () => {
  const t = gitlab.createProjectAccessToken(agentProject, { name: 'rot', expiresAt: Date.now() + 5 * 86_400_000 });
  const rotate = (id: number, b: unknown = {}) => post(`/api/v4/projects/${agentProject.id}/access_tokens/${id}/rotate`, maintainerPat, b);
  const res = await rotate(t.id, { expires_at: inDays(60) });
  assert.equal(res.status, 200);
  const next = (await res.json()) as { id: number; token: string; expires_at: string; name: string; user_id: number };
  assert.notEqual(next.id, t.id);
  assert.equal(next.name, 'rot');
  assert.equal(next.user_id, t.user.id); // same bot user
  assert.equal(next.expires_at, inDays(60));
  assert.equal((await api('/api/v4/user', { token: t.token })).status, 401);
  assert.equal((await api('/api/v4/user', { token: next.token })).status, 200);

  const reuse = await rotate(t.id);
  assert.equal(reuse.status, 400);
  assert.equal((await api('/api/v4/user', { token: next.token })).status, 401);
  // Without expires_at a rotated token lives a week.
  const u = gitlab.createProjectAccessToken(agentProject, { name: 'week' });
  assert.equal(((await (await rotate(u.id)).json()) as { expires_at: string }).expires_at, inDays(7));
  // A Developer may not rotate.
  const devPat = gitlab.createPersonalAccessToken(developer, { scopes: ['api'] });
  assert.equal((await post(`/api/v4/projects/${agentProject.id}/access_tokens/${u.id}/rotate`, devPat, {})).status, 401);
});

test("the workspace owner query: a Maintainer project token of the agent's project may ask it, others may not", async () => {
  const maint = gitlab.createProjectAccessToken(agentProject, { scopes: ['read_api'] });
  const seen = await ownerQuery(maint.token);
  assert.equal(seen.status, 200);
  assert.equal(seen.body.data?.workspace?.user?.id, alice.gid);

  const dev = gitlab.createProjectAccessToken(agentProject, { scopes: ['read_api'], accessLevel: AccessLevel.developer });
  assert.equal((await ownerQuery(dev.token)).body.data?.workspace, null);
  const other = gitlab.addProject({ path: 'someone/else' });
  const elsewhere = gitlab.createProjectAccessToken(other, { scopes: ['read_api'] });
  assert.equal((await ownerQuery(elsewhere.token)).body.data?.workspace, null);
  // The workspace of another agent's project is not visible either.
  gitlab.setWorkspaceOwner(43, alice, { agentProject: other });
  assert.equal((await ownerQuery(maint.token, 43)).body.data?.workspace, null);
  // Scopes: a token without read_api/api cannot use GraphQL at all.
  const repoOnly = gitlab.createProjectAccessToken(agentProject, { scopes: ['read_repository'] });
  assert.equal((await ownerQuery(repoOnly.token)).status, 403);
  gitlab.revokeToken(maint.token);
  assert.equal((await ownerQuery(maint.token)).status, 401);
  // Expired: GitLab compares the expires_at date, so a token with today's date no longer works.
  const expiring = gitlab.createProjectAccessToken(agentProject, { expiresAt: Date.now() - 1 });
  assert.equal((await ownerQuery(expiring.token)).status, 401);
});
