// A GitLab stand-in for tests and `npm run demo`. FOR LOCAL USE ONLY: it keeps passwords and tokens in
// memory in plain text, has no CSRF protection and trusts everything on 127.0.0.1. Never expose it.
//
// Usage:
//   const gitlab = await startGitLabStandIn();                 // http://127.0.0.1:<random port>
//   const alice = gitlab.addUser({ username: 'alice', password: 'pw' });
//   gitlab.registerOAuthClient({ clientId: 'cid', clientSecret: 'cs', redirectUris: ['http://x/auth/callback'] });
//   gitlab.setWorkspaceOwner(42, alice);                        // GraphQL: alice owns workspace 42
//   const pat = gitlab.createPersonalAccessToken(alice);        // SSH password / PRIVATE-TOKEN
//   const { accessToken, refreshToken } = gitlab.issueAccessToken(alice); // as if from OAuth
//   gitlab.revokeToken(pat);  gitlab.failWith(503);  gitlab.failWith('hang');  gitlab.failWith('reset');
//   gitlab.failWith(null);  gitlab.setResponseDelay(2000);
//   await gitlab.stop(); await gitlab.start();                  // unreachable, then back on the SAME port
//   gitlab.count('graphql');                                    // calls per endpoint (see EndpointName)
//   await gitlab.close();
//
// Endpoints (GitLab's paths, bodies and status codes as far as the proxy and its tests rely on them):
//   GET  /.well-known/openid-configuration     issuer = gitlab.url (no trailing slash)
//   GET  /oauth/authorize                      code flow; PKCE S256 required (option requirePkce)
//   GET/POST /users/sign_in                    HTML login form: #user_login, #user_password, button#sign_in
//   POST /oauth/authorize                      consent form (only with consent: 'prompt')
//   POST /oauth/token                          authorization_code, refresh_token; client_secret_basic or _post
//   GET  /oauth/discovery/keys                 JWKS (RS256)
//   GET/POST /oauth/userinfo, POST /oauth/revoke
//   POST /api/graphql                          currentUser { id } / workspace(id:) { user { id } }
//   GET  /api/v4/user                          Bearer or PRIVATE-TOKEN
//   GET/POST /api/v4/applications, DELETE /api/v4/applications/:id   (admin only)
//   GET  /api/v4/users/:id/keys                a user's SSH keys, expired ones included (paginated)
//   GET/POST /api/v4/projects/:id/access_tokens, GET/DELETE .../:token_id, POST .../:token_id/rotate
//   /api/v4/projects/:id, .../cluster_agents[/:id[/tokens[/:id]]], .../repository/files/:path, and GraphQL
//   group(fullPath) / namespace{Create,Delete}RemoteDevelopmentClusterAgentMapping: gitlab-stand-in-agents.ts
//
// Built directly on node:http + jose rather than oidc-provider: GitLab's behaviour (Doorkeeper error
// bodies, refresh-token rotation, PATs usable as Bearer tokens, the Applications API sharing the client
// table, per-endpoint failure injection and counters) would need as many overrides of oidc-provider as
// writing the few endpoints, and here every branch is visible to the tests that depend on it.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair, calculateJwkThumbprint, type JWK } from 'jose';
import { pickPort } from './ports';
import { createAgentApi, type AgentApi, type StandInProject } from './gitlab-stand-in-agents';

export interface GitLabUser {
  /** Numeric GitLab user id. */
  id: number;
  /** `gid://gitlab/User/<id>`, as GraphQL returns it. */
  gid: string;
  username: string;
  name: string;
  email: string;
  password: string;
  admin: boolean;
  /** A blocked user's tokens are all rejected (as GitLab does). */
  blocked: boolean;
  /** A project access token's bot user (`project_<id>_bot_<n>`). */
  bot: boolean;
}

/** GitLab's role levels (Gitlab::Access). */
export const AccessLevel = { guest: 10, reporter: 20, developer: 30, maintainer: 40, owner: 50 } as const;

/** A project: the one model of gitlab-stand-in-agents.ts (groups, members, files, agents). */
export type GitLabProject = StandInProject;

/** What a key may be used for (GitLab 15.7+); `signing` keys do not authenticate over SSH. */
export type SshKeyUsage = 'auth' | 'signing' | 'auth_and_signing';

export interface SshKeyInfo {
  id: number;
  /** `<type> <base64>` as the user pasted it (the comment is not kept, as GitLab's API does not return it). */
  key: string;
  title: string;
  /** epoch ms; undefined = never. GitLab still lists expired keys (with expires_at). */
  expiresAt?: number;
  usageType: SshKeyUsage;
}

export interface ProjectAccessToken {
  id: number;
  token: string;
  /** The token's bot user, a member of the project with the token's access level. */
  user: GitLabUser;
}

export interface OAuthClient {
  /** Numeric id of the application (Applications API `id`). */
  id: number;
  clientId: string;
  clientSecret: string;
  redirectUris: string[];
  name: string;
  scopes: string[];
  confidential: boolean;
}

export interface IssuedTokens {
  accessToken: string;
  refreshToken: string;
  /** Seconds. */
  expiresIn: number;
  idToken?: string;
}

export type EndpointName =
  | 'discovery' | 'jwks' | 'authorize' | 'sign_in' | 'token' | 'userinfo' | 'revoke'
  | 'graphql' | 'user' | 'applications' | 'user_keys' | 'project_access_tokens' | 'projects' | 'other';

/** How the stand-in fails every request while told to (see failWith). */
export type GitLabFault = number | 'hang' | 'reset';

export interface GitLabStandInOptions {
  /** Fixed port (for `npm run demo`); default 0 = any free port. Always binds 127.0.0.1. */
  port?: number;
  /** Lifetime of access tokens issued by /oauth/token and issueAccessToken (GitLab: 7200 s). */
  accessTokenLifetimeSeconds?: number;
  /** Lifetime of authorization codes (Doorkeeper default: 600 s). */
  codeLifetimeSeconds?: number;
  /** Refuse /oauth/authorize without an S256 code_challenge (default true; GitLab itself allows none). */
  requirePkce?: boolean;
  /** 'auto' (default): a signed-in user is sent straight back with a code, as for a trusted app.
   *  'prompt': an "Authorize" page with button#authorize / button#deny is shown first. */
  consent?: 'auto' | 'prompt';
  /** Serve HTTPS with this key and certificate chain (PEM), e.g. from test/support/private-ca.ts;
   *  `url` is then `https://127.0.0.1:<port>`. */
  tls?: { key: string; cert: string };
}

export interface GitLabStandIn {
  /** Base URL without trailing slash, e.g. `http://127.0.0.1:41234`; also the OIDC issuer. */
  readonly url: string;
  readonly port: number;
  addUser(u: { username: string; password: string; admin?: boolean; name?: string; email?: string }): GitLabUser;
  /** Marks the user blocked (true) or active again (false): a blocked user's tokens get 401. */
  setBlocked(user: GitLabUser, blocked: boolean): void;
  /** A personal access token (default scopes api, read_user; no expiry unless expiresAt, epoch ms). */
  createPersonalAccessToken(user: GitLabUser, opts?: { scopes?: string[]; expiresAt?: number }): string;
  /** An OAuth access + refresh token pair as /oauth/token would issue (no ID token). */
  issueAccessToken(user: GitLabUser, opts?: { clientId?: string; scopes?: string[]; lifetimeSeconds?: number }): IssuedTokens;
  /** Revokes an access token, refresh token (and its access token) or PAT. */
  revokeToken(token: string): void;
  /** Makes an access token or PAT expired now (refresh tokens stay usable, as in GitLab). */
  expireToken(token: string): void;
  /** `user` owns workspace N (GraphQL `gid://gitlab/RemoteDevelopment::Workspace/N`); null: no such workspace.
   *  `agentProject`: the project of the agent running it, whose Maintainers (and their project access
   *  tokens) may read the workspace too, as GitLab's WorkspacePolicy allows (`admin_cluster` on the agent). */
  setWorkspaceOwner(workspaceId: string | number, user: GitLabUser | null, opts?: { agentProject?: GitLabProject }): void;
  /** Adds an SSH key (an OpenSSH public key line; its comment is dropped) to the user's profile. */
  addSshKey(user: GitLabUser, publicKey: string, opts?: { title?: string; expiresAt?: number; usageType?: SshKeyUsage }): SshKeyInfo;
  /** Deletes a key from its user's profile (as the user or an admin would). */
  removeSshKey(keyId: number): void;
  sshKeys(user: GitLabUser): SshKeyInfo[];
  addProject(p: { path: string; name?: string }): GitLabProject;
  /** Makes the user a member of the project with that access level (AccessLevel); 0 removes them. */
  setMember(project: GitLabProject, user: GitLabUser, accessLevel: number): void;
  /** A project access token as `POST /projects/:id/access_tokens` would create it (default: Maintainer, read_api). */
  createProjectAccessToken(project: GitLabProject, opts?: { name?: string; scopes?: string[]; accessLevel?: number; expiresAt?: number }): ProjectAccessToken;
  /** Project access tokens of a project (revoked ones too), without their secrets. */
  projectAccessTokens(project: GitLabProject): { id: number; name: string; revoked: boolean; expiresAt?: number; scopes: string[]; accessLevel: number }[];
  registerOAuthClient(c: { clientId: string; clientSecret: string; redirectUris: string[]; name?: string; scopes?: string[] }): OAuthClient;
  /** Applications known (created via the API or registerOAuthClient). */
  applications(): OAuthClient[];
  /** Lifetime of access tokens issued from now on. */
  setAccessTokenLifetime(seconds: number): void;
  /** /oauth/authorize signs this user in without a form (null: show the login form again). */
  autoLoginAs(user: GitLabUser | null): void;
  /**
   * Every later request except discovery/JWKS fails this way; null to stop. A status (e.g. 502, 503) is
   * answered as a small HTML error page; 'hang' never answers (the connection stays open until the caller
   * gives up); 'reset' resets the connection (TCP RST) once the request is in. `discovery: true` fails the
   * OpenID discovery and JWKS too (a proxy that has not loaded them yet).
   */
  failWith(fault: GitLabFault | null, opts?: { discovery?: boolean }): void;
  /** Every later request except discovery/JWKS waits this long before being answered (timeouts). */
  setResponseDelay(ms: number): void;
  /** Calls per endpoint since start or resetCounts(), counted even when failed or delayed. */
  count(endpoint: EndpointName): number;
  resetCounts(): void;
  /** Groups, projects, agents, agent tokens, repository files and workspaces agent mappings. */
  readonly agents: AgentApi;
  /** Every GraphQL call: the bearer token presented (undefined if none) and the workspace id asked for. */
  readonly graphqlLog: { token: string | undefined; workspaceId: string | undefined }[];
  /** Stops listening and drops every open connection (GitLab unreachable); state is kept. */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
  /** Stops for good. */
  close(): Promise<void>;
}

interface TokenRecord {
  kind: 'oauth' | 'pat' | 'project';
  user: GitLabUser;
  scopes: string[];
  /** epoch ms; undefined = never */
  expiresAt?: number;
  revoked: boolean;
  clientId?: string;
  refreshToken?: string;
  /** Project access tokens: API id, name, project, role, creation time, and the family for rotation. */
  project?: { id: number; name: string; projectId: number; accessLevel: number; createdAt: string; family: number[] };
}

interface SshKeyRecord extends SshKeyInfo {
  user: GitLabUser;
  createdAt: string;
}

interface RefreshRecord {
  user: GitLabUser;
  clientId: string;
  scopes: string[];
  accessToken: string;
  revoked: boolean;
}

interface CodeRecord {
  clientId: string;
  redirectUri: string;
  user: GitLabUser;
  scopes: string[];
  nonce?: string;
  codeChallenge?: string;
  codeChallengeMethod?: string;
  expiresAt: number;
  used: boolean;
  authTime: number;
}

/** Gitlab::Auth.resource_bot_scopes: what a project access token may be given. */
const resourceBotScopes = [
  'api', 'read_api', 'create_runner', 'manage_runner', 'k8s_proxy', 'read_repository', 'write_repository',
  'read_registry', 'write_registry', 'ai_features', 'self_rotate',
];

const knownScopes = [
  'api', 'read_api', 'read_user', 'create_runner', 'k8s_proxy', 'read_repository', 'write_repository',
  'read_registry', 'write_registry', 'sudo', 'admin_mode', 'openid', 'profile', 'email', 'ai_features',
];

// Doorkeeper's wording, which GitLab returns verbatim.
const invalidGrant = {
  error: 'invalid_grant',
  error_description:
    'The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.',
};
const invalidClient = {
  error: 'invalid_client',
  error_description:
    'Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.',
};

const NO_MUTATION_SCOPE = "The resource that you are attempting to access does not exist or you don't have permission to perform this action";

const secret = (prefix: string) => `${prefix}${randomBytes(20).toString('hex')}`;

function safeEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  return ab.length === bb.length && timingSafeEqual(ab, bb);
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

async function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 1 << 20) throw new Error('body too large');
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text) return {};
  const type = req.headers['content-type'] ?? '';
  if (type.includes('application/json')) {
    const parsed: unknown = JSON.parse(text);
    return parsed && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : {};
  }
  return Object.fromEntries(new URLSearchParams(text));
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out.set(part.slice(0, i).trim(), decodeURIComponent(part.slice(i + 1).trim()));
  }
  return out;
}

/** The GraphQL argument of `workspace(id: ...)`: an inline string or a `$variable`. */
function workspaceArgument(query: string, variables: Record<string, unknown>): string | undefined {
  const m = /workspace\s*\(\s*id\s*:\s*(?:"((?:[^"\\]|\\.)*)"|\$(\w+))\s*\)/.exec(query);
  if (!m) return undefined;
  if (m[1] !== undefined) return m[1];
  const v = variables[m[2] ?? ''];
  return typeof v === 'string' ? v : undefined;
}

export async function startGitLabStandIn(opts: GitLabStandInOptions = {}): Promise<GitLabStandIn> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const publicJwk: JWK = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  const jwks = { keys: [{ ...publicJwk, kid, use: 'sig', alg: 'RS256' }] };

  let accessLifetime = opts.accessTokenLifetimeSeconds ?? 7200;
  const codeLifetime = opts.codeLifetimeSeconds ?? 600;
  const requirePkce = opts.requirePkce ?? true;
  const consent = opts.consent ?? 'auto';

  const users = new Map<number, GitLabUser>();
  const tokens = new Map<string, TokenRecord>();
  const refreshTokens = new Map<string, RefreshRecord>();
  const codes = new Map<string, CodeRecord>();
  const clients = new Map<string, OAuthClient>();
  const workspaceOwners = new Map<string, GitLabUser>();
  const browserSessions = new Map<string, GitLabUser>();
  /** `${userId}:${clientId}` pairs the user has approved (consent: 'prompt'). */
  const approvals = new Set<string>();
  const counts = new Map<EndpointName, number>();
  const graphqlLog: { token: string | undefined; workspaceId: string | undefined }[] = [];
  const workspaceAgentProjects = new Map<string, number>();
  const sshKeys = new Map<number, SshKeyRecord>();
  /** Project access token id -> its secret (tokens are looked up by secret, the API by id). */
  const projectTokenSecrets = new Map<number, string>();
  let nextUserId = 1;
  let nextKeyId = 1;
  let nextProjectTokenId = 1;
  let nextAppId = 1;
  let fault: GitLabFault | null = null;
  let faultDiscovery = false;
  let delayMs = 0;
  let autoLoginUser: GitLabUser | null = null;
  let url = '';
  // Outside the ephemeral range: stop() releases the port, and no listen(0) elsewhere may take it before start().
  let port = opts.port ?? (await pickPort());

  function addUser(u: { username: string; password: string; admin?: boolean; name?: string; email?: string }): GitLabUser {
    const id = nextUserId++;
    const user: GitLabUser = {
      id, gid: `gid://gitlab/User/${id}`, username: u.username, name: u.name ?? u.username,
      email: u.email ?? `${u.username}@example.com`, password: u.password, admin: u.admin ?? false, blocked: false, bot: false,
    };
    users.set(id, user);
    return user;
  }

  function issue(user: GitLabUser, clientId: string, scopes: string[], lifetime = accessLifetime): IssuedTokens {
    const accessToken = secret('gloas-');
    const refreshToken = secret('glrt-');
    tokens.set(accessToken, {
      kind: 'oauth', user, scopes, clientId, refreshToken, revoked: false, expiresAt: Date.now() + lifetime * 1000,
    });
    refreshTokens.set(refreshToken, { user, clientId, scopes, accessToken, revoked: false });
    return { accessToken, refreshToken, expiresIn: lifetime };
  }

  function revoke(token: string): void {
    const t = tokens.get(token);
    if (t) {
      t.revoked = true;
      const r = t.refreshToken ? refreshTokens.get(t.refreshToken) : undefined;
      if (r) r.revoked = true;
    }
    const r = refreshTokens.get(token);
    if (r) {
      r.revoked = true;
      const a = tokens.get(r.accessToken);
      if (a) a.revoked = true;
    }
  }

  type Authn = { ok: true; token: string; record: TokenRecord } | { ok: false; reason: 'missing' | 'invalid' | 'expired' | 'revoked' };

  function authenticate(req: IncomingMessage, allowPrivateToken: boolean): Authn {
    const auth = req.headers.authorization;
    let token: string | undefined;
    if (auth && /^bearer\s+/i.test(auth)) token = auth.replace(/^bearer\s+/i, '').trim();
    else if (allowPrivateToken && typeof req.headers['private-token'] === 'string') token = req.headers['private-token'];
    if (!token) return { ok: false, reason: 'missing' };
    const record = tokens.get(token);
    if (!record || record.user.blocked) return { ok: false, reason: 'invalid' };
    if (record.revoked) return { ok: false, reason: 'revoked' };
    if (record.expiresAt !== undefined && record.expiresAt <= Date.now()) return { ok: false, reason: 'expired' };
    return { ok: true, token, record };
  }

  function bearerToken(req: IncomingMessage): string | undefined {
    const auth = req.headers.authorization;
    return auth && /^bearer\s+/i.test(auth) ? auth.replace(/^bearer\s+/i, '').trim() : undefined;
  }

  function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers });
    res.end(text);
  }

  function html(res: ServerResponse, status: number, title: string, body: string, headers: Record<string, string> = {}): void {
    res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', ...headers });
    res.end(`<!DOCTYPE html><html><head><meta charset="utf-8"><title>${escapeHtml(title)} · GitLab stand-in</title></head>` +
      `<body><h1>${escapeHtml(title)}</h1>${body}</body></html>`);
  }

  // REST answers for a failed authentication, as GitLab's API gives them.
  function restUnauthorized(res: ServerResponse, a: Extract<Authn, { ok: false }>): void {
    if (a.reason === 'expired') {
      json(res, 401, { error: 'invalid_token', error_description: 'Token is expired. You can either do re-authorization or token refresh.' });
    } else if (a.reason === 'revoked') {
      json(res, 401, { error: 'invalid_token', error_description: 'Token was revoked. You have to re-authorize from the user.' });
    } else {
      json(res, 401, { message: '401 Unauthorized' });
    }
  }

  function hasScope(record: TokenRecord, any: string[]): boolean {
    return record.scopes.some((s) => any.includes(s));
  }

  // ---- OAuth / OIDC ------------------------------------------------------------------------------

  function discovery(res: ServerResponse): void {
    json(res, 200, {
      issuer: url,
      authorization_endpoint: `${url}/oauth/authorize`,
      token_endpoint: `${url}/oauth/token`,
      revocation_endpoint: `${url}/oauth/revoke`,
      introspection_endpoint: `${url}/oauth/introspect`,
      userinfo_endpoint: `${url}/oauth/userinfo`,
      jwks_uri: `${url}/oauth/discovery/keys`,
      scopes_supported: knownScopes,
      response_types_supported: ['code'],
      response_modes_supported: ['query', 'fragment', 'form_post'],
      grant_types_supported: ['authorization_code', 'refresh_token'],
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['RS256'],
      claim_types_supported: ['normal'],
      claims_supported: ['iss', 'sub', 'aud', 'exp', 'iat', 'sub_legacy', 'name', 'nickname', 'preferred_username', 'email', 'email_verified', 'website', 'profile', 'picture', 'groups', 'groups_direct'],
      code_challenge_methods_supported: ['plain', 'S256'],
    });
  }

  function redirectWithError(res: ServerResponse, redirectUri: string, state: string | undefined, error: string, description: string): void {
    const target = new URL(redirectUri);
    target.searchParams.set('error', error);
    target.searchParams.set('error_description', description);
    if (state !== undefined) target.searchParams.set('state', state);
    res.writeHead(302, { location: target.toString() });
    res.end();
  }

  function sessionUser(req: IncomingMessage): GitLabUser | undefined {
    const id = parseCookies(req.headers.cookie).get('_gitlab_session');
    const user = id ? browserSessions.get(id) : undefined;
    return user && !user.blocked ? user : undefined;
  }

  function loginForm(res: ServerResponse, returnTo: string, message?: string): void {
    html(res, message ? 401 : 200, 'Sign in',
      (message ? `<p id="flash" role="alert">${escapeHtml(message)}</p>` : '') +
      `<form id="new_user" method="post" action="/users/sign_in">` +
      `<input type="hidden" name="return_to" value="${escapeHtml(returnTo)}">` +
      `<label for="user_login">Username or primary email</label> <input id="user_login" name="user[login]" autocomplete="username"><br>` +
      `<label for="user_password">Password</label> <input id="user_password" type="password" name="user[password]" autocomplete="current-password"><br>` +
      `<button id="sign_in" type="submit" data-testid="sign-in-button">Sign in</button></form>`);
  }

  /** Validates an authorization request; on success returns its parts, else has answered already. */
  function checkAuthorizeParams(res: ServerResponse, p: URLSearchParams): { client: OAuthClient; redirectUri: string; scopes: string[] } | undefined {
    const client = clients.get(p.get('client_id') ?? '');
    // Like Doorkeeper: an unknown client or a redirect_uri that is not registered is shown, never redirected to.
    if (!client) {
      html(res, 401, 'An error has occurred', '<p id="error">Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.</p>');
      return undefined;
    }
    const redirectUri = p.get('redirect_uri') ?? '';
    if (!client.redirectUris.includes(redirectUri)) {
      html(res, 400, 'An error has occurred', '<p id="error">The redirect URI included is not valid.</p>');
      return undefined;
    }
    const state = p.get('state') ?? undefined;
    if (p.get('response_type') !== 'code') {
      redirectWithError(res, redirectUri, state, 'unsupported_response_type', 'The authorization server does not support this response type.');
      return undefined;
    }
    const scopes = (p.get('scope') ?? client.scopes.join(' ')).split(/[\s+]+/).filter(Boolean);
    if (scopes.some((s) => !client.scopes.includes(s))) {
      redirectWithError(res, redirectUri, state, 'invalid_scope', 'The requested scope is invalid, unknown, or malformed.');
      return undefined;
    }
    const challenge = p.get('code_challenge');
    const method = p.get('code_challenge_method') ?? (challenge ? 'plain' : undefined);
    if (requirePkce && (!challenge || method !== 'S256')) {
      redirectWithError(res, redirectUri, state, 'invalid_request', 'Code challenge with method S256 is required.');
      return undefined;
    }
    if (method !== undefined && method !== 'S256' && method !== 'plain') {
      redirectWithError(res, redirectUri, state, 'invalid_request', 'The code challenge method must be plain or S256.');
      return undefined;
    }
    return { client, redirectUri, scopes };
  }

  function grantCode(res: ServerResponse, p: URLSearchParams, user: GitLabUser, redirectUri: string, scopes: string[]): void {
    const code = randomBytes(32).toString('hex');
    const challenge = p.get('code_challenge') ?? undefined;
    codes.set(code, {
      clientId: p.get('client_id') ?? '', redirectUri, user, scopes,
      nonce: p.get('nonce') ?? undefined,
      codeChallenge: challenge,
      codeChallengeMethod: challenge ? (p.get('code_challenge_method') ?? 'plain') : undefined,
      expiresAt: Date.now() + codeLifetime * 1000, used: false, authTime: Math.floor(Date.now() / 1000),
    });
    const target = new URL(redirectUri);
    target.searchParams.set('code', code);
    const state = p.get('state');
    if (state !== null) target.searchParams.set('state', state);
    res.writeHead(302, { location: target.toString() });
    res.end();
  }

  function consentPage(res: ServerResponse, client: OAuthClient, p: URLSearchParams, scopes: string[]): void {
    const hidden = [...p.entries()].map(([k, v]) => `<input type="hidden" name="${escapeHtml(k)}" value="${escapeHtml(v)}">`).join('');
    html(res, 200, `Authorize ${client.name} to use your account?`,
      `<p>Scopes: ${escapeHtml(scopes.join(', '))}</p>` +
      `<form method="post" action="/oauth/authorize">${hidden}<button id="authorize" name="decision" value="approve" type="submit">Authorize</button></form>` +
      `<form method="post" action="/oauth/authorize">${hidden}<button id="deny" name="decision" value="deny" type="submit">Deny</button></form>`);
  }

  function authorizeGet(req: IncomingMessage, res: ServerResponse, requestUrl: URL): void {
    const p = requestUrl.searchParams;
    const checked = checkAuthorizeParams(res, p);
    if (!checked) return;
    const user = autoLoginUser ?? sessionUser(req);
    if (!user) {
      res.writeHead(302, { location: `/users/sign_in?return_to=${encodeURIComponent(requestUrl.pathname + requestUrl.search)}` });
      res.end();
      return;
    }
    if (consent === 'prompt' && !approvals.has(`${user.id}:${checked.client.clientId}`)) {
      consentPage(res, checked.client, p, checked.scopes);
      return;
    }
    grantCode(res, p, user, checked.redirectUri, checked.scopes);
  }

  function authorizePost(req: IncomingMessage, res: ServerResponse, body: Record<string, unknown>): void {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(body)) if (k !== 'decision' && typeof v === 'string') p.set(k, v);
    const checked = checkAuthorizeParams(res, p);
    if (!checked) return;
    const user = autoLoginUser ?? sessionUser(req);
    if (!user) {
      res.writeHead(302, { location: `/users/sign_in?return_to=${encodeURIComponent(`/oauth/authorize?${p.toString()}`)}` });
      res.end();
      return;
    }
    if (body.decision !== 'approve') {
      redirectWithError(res, checked.redirectUri, p.get('state') ?? undefined, 'access_denied', 'The resource owner or authorization server denied the request.');
      return;
    }
    approvals.add(`${user.id}:${checked.client.clientId}`);
    grantCode(res, p, user, checked.redirectUri, checked.scopes);
  }

  function signIn(req: IncomingMessage, res: ServerResponse, requestUrl: URL, body: Record<string, unknown>): void {
    // Only local paths are followed after sign-in (no open redirect, even in a stand-in).
    const rawReturn = req.method === 'POST' ? str(body.return_to) : requestUrl.searchParams.get('return_to') ?? undefined;
    const returnTo = rawReturn && rawReturn.startsWith('/') && !rawReturn.startsWith('//') ? rawReturn : '/';
    if (req.method !== 'POST') {
      loginForm(res, returnTo);
      return;
    }
    const login = str(body['user[login]']) ?? '';
    const password = str(body['user[password]']) ?? '';
    const user = [...users.values()].find((u) => u.username === login || u.email === login);
    if (!user || user.blocked || !safeEqual(user.password, password)) {
      loginForm(res, returnTo, 'Invalid login or password.');
      return;
    }
    const sid = secret('');
    browserSessions.set(sid, user);
    res.writeHead(302, { location: returnTo, 'set-cookie': `_gitlab_session=${sid}; Path=/; HttpOnly; SameSite=Lax` });
    res.end();
  }

  /** Client authentication at the token and revoke endpoints: client_secret_basic or client_secret_post. */
  function authenticateClient(req: IncomingMessage, body: Record<string, unknown>): OAuthClient | undefined {
    let id: string | undefined;
    let sec: string | undefined;
    const auth = req.headers.authorization;
    if (auth && /^basic\s+/i.test(auth)) {
      const decoded = Buffer.from(auth.replace(/^basic\s+/i, ''), 'base64').toString('utf8');
      const i = decoded.indexOf(':');
      if (i < 0) return undefined;
      // RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
      const unform = (s: string) => decodeURIComponent(s.replace(/\+/g, ' '));
      try {
        id = unform(decoded.slice(0, i));
        sec = unform(decoded.slice(i + 1));
      } catch {
        return undefined;
      }
    } else {
      id = str(body.client_id);
      sec = str(body.client_secret);
    }
    const client = id ? clients.get(id) : undefined;
    if (!client || sec === undefined || !safeEqual(client.clientSecret, sec)) return undefined;
    return client;
  }

  async function idToken(user: GitLabUser, clientId: string, nonce: string | undefined, authTime: number): Promise<string> {
    const claims: Record<string, unknown> = {
      sub_legacy: createHash('sha256').update(`user-${user.id}`).digest('hex'),
      name: user.name, nickname: user.username, preferred_username: user.username,
      email: user.email, email_verified: true,
      profile: `${url}/${user.username}`, picture: `${url}/uploads/-/system/user/avatar/${user.id}/avatar.png`,
      groups_direct: [], auth_time: authTime,
    };
    if (nonce !== undefined) claims.nonce = nonce;
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' })
      .setIssuer(url)
      .setSubject(String(user.id))
      .setAudience(clientId)
      .setIssuedAt()
      .setExpirationTime('2m') // GitLab's ID tokens are short-lived too
      .sign(privateKey);
  }

  function tokenResponse(t: IssuedTokens, scopes: string[], id?: string): Record<string, unknown> {
    return {
      access_token: t.accessToken, token_type: 'Bearer', expires_in: t.expiresIn, refresh_token: t.refreshToken,
      scope: scopes.join(' '), created_at: Math.floor(Date.now() / 1000), ...(id ? { id_token: id } : {}),
    };
  }

  async function token(req: IncomingMessage, res: ServerResponse, body: Record<string, unknown>): Promise<void> {
    const client = authenticateClient(req, body);
    if (!client) {
      const basic = /^basic\s+/i.test(req.headers.authorization ?? '');
      json(res, 401, invalidClient, basic ? { 'www-authenticate': 'Basic realm="Doorkeeper"' } : {});
      return;
    }
    const grantType = str(body.grant_type);
    if (grantType === 'authorization_code') {
      const code = codes.get(str(body.code) ?? '');
      if (!code || code.used || code.expiresAt <= Date.now() || code.clientId !== client.clientId || code.redirectUri !== str(body.redirect_uri)) {
        if (code) code.used = true; // a replayed code stays dead
        json(res, 400, invalidGrant);
        return;
      }
      code.used = true;
      if (code.codeChallenge !== undefined) {
        const verifier = str(body.code_verifier);
        const computed = verifier === undefined ? undefined
          : code.codeChallengeMethod === 'S256' ? createHash('sha256').update(verifier).digest('base64url') : verifier;
        if (computed === undefined || !safeEqual(computed, code.codeChallenge)) {
          json(res, 400, invalidGrant);
          return;
        }
      }
      const t = issue(code.user, client.clientId, code.scopes);
      const id = code.scopes.includes('openid') ? await idToken(code.user, client.clientId, code.nonce, code.authTime) : undefined;
      t.idToken = id;
      json(res, 200, tokenResponse(t, code.scopes, id));
      return;
    }
    if (grantType === 'refresh_token') {
      const r = refreshTokens.get(str(body.refresh_token) ?? '');
      if (!r || r.revoked || r.clientId !== client.clientId || r.user.blocked) {
        json(res, 400, invalidGrant);
        return;
      }
      // GitLab (Doorkeeper) rotates: the used refresh token and its access token are revoked.
      revoke(str(body.refresh_token) ?? '');
      const t = issue(r.user, client.clientId, r.scopes);
      const id = r.scopes.includes('openid') ? await idToken(r.user, client.clientId, undefined, Math.floor(Date.now() / 1000)) : undefined;
      json(res, 200, tokenResponse(t, r.scopes, id));
      return;
    }
    json(res, 400, { error: 'unsupported_grant_type', error_description: 'The authorization grant type is not supported by the authorization server.' });
  }

  function userinfo(req: IncomingMessage, res: ServerResponse): void {
    const a = authenticate(req, false);
    if (!a.ok) {
      res.writeHead(401, { 'www-authenticate': 'Bearer realm="Doorkeeper", error="invalid_token"' });
      res.end();
      return;
    }
    if (!hasScope(a.record, ['openid'])) {
      json(res, 403, { error: 'insufficient_scope' });
      return;
    }
    const u = a.record.user;
    json(res, 200, {
      sub: String(u.id), sub_legacy: createHash('sha256').update(`user-${u.id}`).digest('hex'),
      name: u.name, nickname: u.username, preferred_username: u.username, email: u.email, email_verified: true,
      profile: `${url}/${u.username}`, picture: `${url}/uploads/-/system/user/avatar/${u.id}/avatar.png`, groups: [],
    });
  }

  function revokeEndpoint(req: IncomingMessage, res: ServerResponse, body: Record<string, unknown>): void {
    const client = authenticateClient(req, body);
    if (!client) {
      json(res, 401, invalidClient);
      return;
    }
    const t = str(body.token) ?? '';
    const owner = tokens.get(t)?.clientId ?? refreshTokens.get(t)?.clientId;
    // RFC 7009: unknown tokens also get 200; tokens of other clients are left alone.
    if (owner === client.clientId) revoke(t);
    json(res, 200, {});
  }

  // ---- API ---------------------------------------------------------------------------------------

  function graphql(req: IncomingMessage, res: ServerResponse, body: Record<string, unknown>): void {
    const query = str(body.query) ?? '';
    const variables = body.variables && typeof body.variables === 'object' ? (body.variables as Record<string, unknown>) : {};
    const wsArg = workspaceArgument(query, variables);
    const wsMatch = wsArg === undefined ? undefined : /^gid:\/\/gitlab\/RemoteDevelopment::Workspace\/(\d+)$/.exec(wsArg);
    graphqlLog.push({ token: bearerToken(req) ?? str(req.headers['private-token']), workspaceId: wsMatch?.[1] });

    const a = authenticate(req, true);
    // An anonymous query runs as nobody (currentUser: null); a bad token is refused with 401.
    if (!a.ok && a.reason !== 'missing') {
      json(res, 401, { errors: [{ message: 'Invalid token' }] });
      return;
    }
    if (a.ok && !hasScope(a.record, ['api', 'read_api'])) {
      json(res, 403, { errors: [{ message: 'Insufficient scope' }] });
      return;
    }
    if (!query.trim()) {
      json(res, 200, { errors: [{ message: 'No query string was present' }] });
      return;
    }
    if (wsArg !== undefined && !wsMatch) {
      json(res, 200, { errors: [{ message: `"${wsArg}" is not a valid Global ID`, locations: [], path: ['workspace'] }], data: null });
      return;
    }
    const user = a.ok ? a.record.user : undefined;
    const data: Record<string, unknown> = {};
    if (/^\s*mutation\b/.test(query) && a.ok && !hasScope(a.record, ['api'])) {
      json(res, 200, { errors: [{ message: NO_MUTATION_SCOPE }], data: null });
      return;
    }
    const agentErrors = agentApi.graphql(query, variables, user, data);
    if (/\bcurrentUser\b/.test(query)) data.currentUser = user ? { id: user.gid, username: user.username } : null;
    if (wsMatch) {
      const owner = workspaceOwners.get(wsMatch[1] ?? '');
      // Visible to its owner, to admins and to Maintainers of the agent's project, as GitLab's
      // RemoteDevelopment::WorkspacePolicy allows (`admin_cluster` on the workspace's agent).
      const agentProject = workspaceAgentProjects.get(wsMatch[1] ?? '');
      const visible = owner && user && (owner.id === user.id || user.admin ||
        (agentProject !== undefined && memberLevel(agentProject, user) >= AccessLevel.maintainer));
      data.workspace = visible ? { id: wsArg, user: { id: owner.gid, username: owner.username } } : null;
    }
    json(res, 200, agentErrors.length ? { data, errors: agentErrors } : { data });
  }

  function restUser(u: GitLabUser, withAdmin: boolean): Record<string, unknown> {
    return {
      id: u.id, username: u.username, name: u.name, state: u.blocked ? 'blocked' : 'active', locked: false,
      avatar_url: `${url}/uploads/-/system/user/avatar/${u.id}/avatar.png`, web_url: `${url}/${u.username}`,
      email: u.email, ...(withAdmin ? { is_admin: u.admin } : {}),
    };
  }

  function apiUser(req: IncomingMessage, res: ServerResponse): void {
    const a = authenticate(req, true);
    if (!a.ok) return restUnauthorized(res, a);
    if (!hasScope(a.record, ['api', 'read_api', 'read_user'])) {
      json(res, 403, { error: 'insufficient_scope', error_description: 'The request requires higher privileges than provided by the access token.', scope: 'api read_user read_api' });
      return;
    }
    json(res, 200, restUser(a.record.user, a.record.user.admin));
  }

  function appView(c: OAuthClient, withSecret: boolean): Record<string, unknown> {
    return {
      id: c.id, application_id: c.clientId, application_name: c.name,
      ...(withSecret ? { secret: c.clientSecret } : {}),
      callback_url: c.redirectUris.join('\n'), confidential: c.confidential,
    };
  }

  function applications(req: IncomingMessage, res: ServerResponse, path: string, body: Record<string, unknown>): void {
    const a = authenticate(req, true);
    if (!a.ok) return restUnauthorized(res, a);
    if (!hasScope(a.record, ['api'])) {
      json(res, 403, { error: 'insufficient_scope', error_description: 'The request requires higher privileges than provided by the access token.', scope: 'api' });
      return;
    }
    if (!a.record.user.admin) {
      json(res, 403, { message: '403 Forbidden' });
      return;
    }
    const idMatch = /^\/api\/v4\/applications\/([^/]+)$/.exec(path);
    if (req.method === 'GET' && path === '/api/v4/applications') {
      json(res, 200, [...clients.values()].map((c) => appView(c, false)));
      return;
    }
    if (req.method === 'POST' && path === '/api/v4/applications') {
      const name = str(body.name);
      const redirectUri = str(body.redirect_uri);
      const rawScopes = body.scopes;
      const scopes = (Array.isArray(rawScopes) ? rawScopes.filter((s): s is string => typeof s === 'string') : (str(rawScopes) ?? '').split(/[\s,]+/))
        .filter(Boolean);
      for (const [k, v] of [['name', name], ['redirect_uri', redirectUri], ['scopes', scopes.length ? 'x' : undefined]] as const) {
        if (!v) {
          json(res, 400, { error: `${k} is missing` });
          return;
        }
      }
      if (scopes.some((s) => !knownScopes.includes(s))) {
        json(res, 400, { message: { scopes: ["doesn't match configured on the server."] } });
        return;
      }
      const confidentialRaw = body.confidential;
      const confidential = confidentialRaw === undefined ? true : confidentialRaw === true || confidentialRaw === 'true';
      const c: OAuthClient = {
        id: nextAppId++, clientId: randomBytes(32).toString('hex'), clientSecret: secret('gloas-'),
        redirectUris: (redirectUri ?? '').split(/\r?\n/).filter(Boolean), name: name ?? '', scopes, confidential,
      };
      clients.set(c.clientId, c);
      json(res, 201, appView(c, true));
      return;
    }
    if (req.method === 'DELETE' && idMatch) {
      const c = [...clients.values()].find((x) => String(x.id) === idMatch[1]);
      if (!c) {
        json(res, 404, { message: '404 Application Not Found' });
        return;
      }
      clients.delete(c.clientId);
      res.writeHead(204);
      res.end();
      return;
    }
    json(res, 405, { error: '405 Method Not Allowed' });
  }

  // ---- SSH keys, projects and project access tokens -------------------------------------------------

  /** The user's role in the project (its groups' memberships count; administrators are Owners). */
  function memberLevel(projectId: number, user: GitLabUser): number {
    const project = agentApi.project(projectId);
    return project ? agentApi.levelOf(project, user) : 0;
  }

  const isoDate = (ms: number): string => new Date(ms).toISOString().slice(0, 10);
  /** A token's `expires_at` date: it stops working at 00:00 UTC on that day, as GitLab compares dates. */
  const dateToMs = (date: string): number => Date.parse(`${date}T00:00:00Z`);
  const DAY_MS = 86_400_000;
  /** PersonalAccessToken::MAX_PERSONAL_ACCESS_TOKEN_LIFETIME_IN_DAYS (expiry is required by default). */
  const MAX_TOKEN_DAYS = 365;

  /** GitLab's offset pagination: `page`, `per_page` (default 20, at most 100) and the x-* headers. */
  function paginated(res: ServerResponse, requestUrl: URL, items: unknown[]): void {
    const perPage = Math.min(100, Math.max(1, Number(requestUrl.searchParams.get('per_page')) || 20));
    const totalPages = Math.max(1, Math.ceil(items.length / perPage));
    const page = Math.max(1, Number(requestUrl.searchParams.get('page')) || 1);
    const headers: Record<string, string> = {
      'x-page': String(page), 'x-per-page': String(perPage), 'x-total': String(items.length),
      'x-total-pages': String(totalPages), 'x-next-page': page < totalPages ? String(page + 1) : '',
      'x-prev-page': page > 1 ? String(page - 1) : '',
    };
    json(res, 200, items.slice((page - 1) * perPage, page * perPage), headers);
  }

  function findUser(ref: string): GitLabUser | undefined {
    return /^\d+$/.test(ref) ? users.get(Number(ref)) : [...users.values()].find((u) => u.username === ref);
  }

  function keyView(k: SshKeyRecord): Record<string, unknown> {
    // GitLab returns the `publishable_key`: the comment replaced by "<name> (<host>)", so no e-mail leaks.
    return {
      id: k.id, title: k.title, created_at: k.createdAt,
      expires_at: k.expiresAt === undefined ? null : new Date(k.expiresAt).toISOString(),
      key: `${k.key} ${k.user.name} (${new URL(url).hostname})`, usage_type: k.usageType,
    };
  }

  function userKeys(req: IncomingMessage, res: ServerResponse, requestUrl: URL, ref: string): void {
    // Public on default settings; a token, when sent, must be valid.
    const a = authenticate(req, true);
    if (!a.ok && a.reason !== 'missing') return restUnauthorized(res, a);
    if (a.ok && !hasScope(a.record, ['api', 'read_api', 'read_user'])) {
      json(res, 403, { error: 'insufficient_scope', error_description: 'The request requires higher privileges than provided by the access token.', scope: 'api read_api read_user' });
      return;
    }
    const user = findUser(ref);
    if (!user) return json(res, 404, { message: '404 User Not Found' });
    const keys = [...sshKeys.values()].filter((k) => k.user.id === user.id).sort((x, y) => x.id - y.id);
    paginated(res, requestUrl, keys.map(keyView));
  }

  function tokenView(id: number, r: TokenRecord, secretToo?: string): Record<string, unknown> {
    const p = r.project;
    const active = !r.revoked && (r.expiresAt === undefined || r.expiresAt > Date.now());
    return {
      id, name: p?.name, revoked: r.revoked, created_at: p?.createdAt, description: null, scopes: r.scopes,
      user_id: r.user.id, last_used_at: null, active, expires_at: r.expiresAt === undefined ? null : isoDate(r.expiresAt),
      access_level: p?.accessLevel, ...(secretToo ? { token: secretToo } : {}),
    };
  }

  function projectTokensOf(projectId: number): [number, TokenRecord][] {
    const out: [number, TokenRecord][] = [];
    for (const [id, t] of projectTokenSecrets) {
      const r = tokens.get(t);
      if (r?.project?.projectId === projectId) out.push([id, r]);
    }
    return out;
  }

  function newProjectToken(
    project: GitLabProject, o: { name: string; scopes: string[]; accessLevel: number; expiresAt?: number; bot?: GitLabUser; family?: number[] },
  ): { id: number; token: string; record: TokenRecord } {
    let bot = o.bot;
    if (!bot) {
      const n = [...users.values()].filter((u) => u.username.startsWith(`project_${project.id}_bot_`)).length + 1;
      const username = `project_${project.id}_bot_${randomBytes(4).toString('hex')}`;
      bot = addUser({ username, password: secret(''), name: `${o.name} ${n > 1 ? n : ''}`.trim(), email: `${username}@noreply.example.com` });
      bot.bot = true;
      project.members.set(bot.id, o.accessLevel);
    }
    const id = nextProjectTokenId++;
    // One array per family, shared by its tokens: reusing any rotated one finds every later one.
    const family = o.family ?? [];
    family.push(id);
    const token = secret('glpat-');
    const record: TokenRecord = {
      kind: 'project', user: bot, scopes: o.scopes, expiresAt: o.expiresAt, revoked: false,
      project: { id, name: o.name, projectId: project.id, accessLevel: o.accessLevel, createdAt: new Date().toISOString(), family },
    };
    tokens.set(token, record);
    projectTokenSecrets.set(id, token);
    return { id, token, record };
  }

  /** Grape's checks of `expires_at` (a date) and the model's maximum lifetime; undefined = valid/absent. */
  function expiryError(raw: unknown): string | undefined {
    if (raw === undefined) return undefined;
    const text = typeof raw === 'string' ? raw : '';
    if (!/^\d{4}-\d{2}-\d{2}$/.test(text) || Number.isNaN(dateToMs(text))) return 'expires_at is invalid';
    const max = isoDate(Date.now() + MAX_TOKEN_DAYS * DAY_MS);
    if (text > max) return `400 Bad request - Validation failed: Expires at must be before ${max}`;
    return undefined;
  }

  function projectAccessTokens(req: IncomingMessage, res: ServerResponse, requestUrl: URL, path: string, body: Record<string, unknown>): void {
    const m = /^\/api\/v4\/projects\/([^/]+)\/access_tokens(?:\/([^/]+)(\/rotate)?)?$/.exec(path);
    if (!m) return json(res, 404, { message: '404 Not Found' });
    const a = authenticate(req, true);
    if (!a.ok) return restUnauthorized(res, a);
    const caller = a.record.user;
    const method = req.method ?? 'GET';
    // read_api allows GET requests only, as GitLab's API scopes do.
    const needed = method === 'GET' ? ['api', 'read_api'] : ['api'];
    if (!hasScope(a.record, needed)) {
      json(res, 403, { error: 'insufficient_scope', error_description: 'The request requires higher privileges than provided by the access token.', scope: needed.join(' ') });
      return;
    }
    const ref = decodeURIComponent(m[1] ?? '');
    const pr = agentApi.project(ref);
    const level = pr ? memberLevel(pr.id, caller) : 0;
    // Projects are private here: invisible to non-members.
    if (!pr || (level === 0 && !caller.admin)) return json(res, 404, { message: '404 Project Not Found' });
    const maintainer = caller.admin || level >= AccessLevel.maintainer;
    const tokenId = m[2];
    const rotate = m[3] !== undefined;
    const find = (): [number, TokenRecord] | undefined => projectTokensOf(pr.id).find(([id]) => String(id) === tokenId);

    if (method === 'GET' && tokenId === undefined) {
      if (!maintainer) return json(res, 401, { message: '401 Unauthorized' });
      const state = requestUrl.searchParams.get('state');
      const list = projectTokensOf(pr.id)
        .filter(([id, r]) => state === null || (tokenView(id, r).active ? 'active' : 'inactive') === state)
        .map(([id, r]) => tokenView(id, r));
      return paginated(res, requestUrl, list);
    }
    if (method === 'GET' && !rotate) {
      if (!maintainer) return json(res, 401, { message: '401 Unauthorized' });
      const found = find();
      if (!found) return json(res, 404, { message: '404 project Access Token Not Found' });
      return json(res, 200, tokenView(found[0], found[1]));
    }
    if (method === 'POST' && tokenId === undefined) {
      const name = str(body.name);
      if (!name) return json(res, 400, { error: 'name is missing' });
      const scopes = Array.isArray(body.scopes) ? body.scopes.filter((x): x is string => typeof x === 'string')
        : typeof body.scopes === 'string' ? body.scopes.split(',').filter(Boolean) : [];
      if (scopes.length === 0) return json(res, 400, { error: 'scopes is missing' });
      if (scopes.some((x) => !resourceBotScopes.includes(x))) return json(res, 400, { error: 'scopes does not have a valid value' });
      const accessLevel = body.access_level === undefined ? AccessLevel.maintainer : Number(body.access_level);
      if (!(Object.values(AccessLevel) as number[]).includes(accessLevel)) return json(res, 400, { error: 'access_level does not have a valid value' });
      const bad = expiryError(body.expires_at);
      if (bad) return json(res, 400, bad.startsWith('400') ? { message: bad } : { error: bad });
      // Bots (project access tokens) cannot create tokens; only Maintainers and Owners can.
      if (caller.bot || !maintainer) return json(res, 400, { message: '400 Bad request - User does not have permission to create project access token' });
      if (!caller.admin && accessLevel > level) {
        return json(res, 400, { message: '400 Bad request - Access level of the token contains permissions not held by the creating user' });
      }
      const expiresAt = typeof body.expires_at === 'string' ? dateToMs(body.expires_at) : dateToMs(isoDate(Date.now() + MAX_TOKEN_DAYS * DAY_MS));
      const created = newProjectToken(pr, { name, scopes, accessLevel, expiresAt });
      return json(res, 201, tokenView(created.id, created.record, created.token));
    }
    if (method === 'DELETE' && !rotate && tokenId !== undefined) {
      const found = find();
      if (!found) return json(res, 404, { message: '404 project Access Token Not Found' });
      if (caller.bot || !maintainer) return json(res, 400, { message: `400 Bad request - ${caller.username} cannot delete ${found[1].user.username}` });
      found[1].revoked = true;
      res.writeHead(204);
      res.end();
      return;
    }
    if (method === 'POST' && rotate) {
      const found = maintainer ? find() : undefined;
      if (!found) return caller.admin ? json(res, 404, { message: '404 Not Found' }) : json(res, 401, { message: '401 Unauthorized' });
      const [, old] = found;
      const family = old.project?.family ?? [];
      if (old.revoked) {
        // Reuse of a rotated (revoked) token: GitLab revokes every active token of the family.
        for (const id of family) {
          const r = tokens.get(projectTokenSecrets.get(id) ?? '');
          if (r) r.revoked = true;
        }
        return json(res, 400, { message: '400 Bad request - Token already revoked' });
      }
      const bad = expiryError(body.expires_at);
      if (bad) return json(res, 400, bad.startsWith('400') ? { message: bad } : { error: bad });
      old.revoked = true;
      // Without expires_at the new token lives one week (expiry enforced), as GitLab's RotateService does.
      const expiresAt = typeof body.expires_at === 'string' ? dateToMs(body.expires_at) : dateToMs(isoDate(Date.now() + 7 * DAY_MS));
      const rotated = newProjectToken(pr, {
        name: old.project?.name ?? '', scopes: old.scopes, accessLevel: old.project?.accessLevel ?? AccessLevel.maintainer,
        expiresAt, bot: old.user, family,
      });
      return json(res, 200, tokenView(rotated.id, rotated.record, rotated.token));
    }
    json(res, 405, { error: '405 Method Not Allowed' });
  }
  const agentApi = createAgentApi({
    authenticate(req) {
      const a = authenticate(req, true);
      return a.ok ? { ok: true, user: a.record.user, scopes: a.record.scopes } : { ok: false, send: (res) => restUnauthorized(res, a) };
    },
    json,
  });

  // ---- dispatch ----------------------------------------------------------------------------------

  function endpointOf(path: string): EndpointName {
    if (path === '/.well-known/openid-configuration') return 'discovery';
    if (path === '/oauth/discovery/keys') return 'jwks';
    if (path === '/oauth/authorize') return 'authorize';
    if (path === '/users/sign_in') return 'sign_in';
    if (path === '/oauth/token') return 'token';
    if (path === '/oauth/userinfo') return 'userinfo';
    if (path === '/oauth/revoke') return 'revoke';
    if (path === '/api/graphql') return 'graphql';
    if (path === '/api/v4/user') return 'user';
    if (path === '/api/v4/applications' || path.startsWith('/api/v4/applications/')) return 'applications';
    if (/^\/api\/v4\/users\/[^/]+\/keys$/.test(path)) return 'user_keys';
    if (/^\/api\/v4\/projects\/[^/]+\/access_tokens(\/|$)/.test(path)) return 'project_access_tokens';
    if (path.startsWith('/api/v4/projects/')) return 'projects';
    return 'other';
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestUrl = new URL(req.url ?? '/', url);
    const path = requestUrl.pathname;
    const endpoint = endpointOf(path);
    counts.set(endpoint, (counts.get(endpoint) ?? 0) + 1);
    let body: Record<string, unknown> = {};
    if (req.method === 'POST' || req.method === 'PUT' || req.method === 'DELETE') {
      try {
        body = await readBody(req);
      } catch {
        json(res, 400, { error: 'invalid request body' });
        return;
      }
    }
    const injectable = faultDiscovery || (endpoint !== 'discovery' && endpoint !== 'jwks');
    if (injectable && delayMs > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delayMs);
        res.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
      });
      if (res.destroyed || res.writableEnded) return;
    }
    if (injectable && fault === 'hang') return; // no answer; stop()/close() destroy the socket
    if (injectable && fault === 'reset') {
      req.socket.resetAndDestroy();
      return;
    }
    if (injectable && typeof fault === 'number') {
      html(res, fault, `${fault} injected failure`, '<p>GitLab stand-in told to fail.</p>');
      return;
    }
    const m = req.method ?? 'GET';
    if (endpoint === 'discovery' && m === 'GET') return discovery(res);
    if (endpoint === 'jwks' && m === 'GET') return json(res, 200, jwks);
    if (endpoint === 'authorize' && m === 'GET') return authorizeGet(req, res, requestUrl);
    if (endpoint === 'authorize' && m === 'POST') return authorizePost(req, res, body);
    if (endpoint === 'sign_in' && (m === 'GET' || m === 'POST')) return signIn(req, res, requestUrl, body);
    if (endpoint === 'token' && m === 'POST') return token(req, res, body);
    if (endpoint === 'userinfo' && (m === 'GET' || m === 'POST')) return userinfo(req, res);
    if (endpoint === 'revoke' && m === 'POST') return revokeEndpoint(req, res, body);
    if (endpoint === 'graphql' && m === 'POST') return graphql(req, res, body);
    if (endpoint === 'user' && m === 'GET') return apiUser(req, res);
    if (endpoint === 'applications') return applications(req, res, path, body);
    if (endpoint === 'user_keys' && m === 'GET') return userKeys(req, res, requestUrl, decodeURIComponent(path.split('/')[4] ?? ''));
    if (endpoint === 'project_access_tokens') return projectAccessTokens(req, res, requestUrl, path, body);
    if (endpoint === 'projects' && agentApi.handleRest(req, res, path, requestUrl.searchParams, body)) return;
    json(res, 404, { message: '404 Not Found' });
  }

  const sockets = new Set<Socket>();
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) json(res, 500, { message: '500 Internal Server Error', detail: (err as Error).message });
      else res.destroy();
    });
  };
  const server: Server = opts.tls ? createHttpsServer({ key: opts.tls.key, cert: opts.tls.cert }, onRequest) : createServer(onRequest);
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });

  async function listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    port = (server.address() as AddressInfo).port;
    url = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  }

  let listening = false;
  async function stopListening(): Promise<void> {
    if (!listening) return;
    listening = false;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of sockets) s.destroy();
    await closed;
  }

  await listen();
  listening = true;

  return {
    get url() {
      return url;
    },
    get port() {
      return port;
    },
    graphqlLog,
    addUser,
    agents: agentApi,
    setBlocked(user, blocked) {
      user.blocked = blocked;
    },
    createPersonalAccessToken(user, o = {}) {
      const t = secret('glpat-');
      tokens.set(t, { kind: 'pat', user, scopes: o.scopes ?? ['api', 'read_user'], expiresAt: o.expiresAt, revoked: false });
      return t;
    },
    issueAccessToken(user, o = {}) {
      return issue(user, o.clientId ?? '', o.scopes ?? ['openid', 'profile', 'api', 'read_user'], o.lifetimeSeconds ?? accessLifetime);
    },
    revokeToken: revoke,
    expireToken(t) {
      const r = tokens.get(t);
      if (r) r.expiresAt = Date.now() - 1;
    },
    setWorkspaceOwner(workspaceId, user, o = {}) {
      if (user) workspaceOwners.set(String(workspaceId), user);
      else workspaceOwners.delete(String(workspaceId));
      if (user && o.agentProject) workspaceAgentProjects.set(String(workspaceId), o.agentProject.id);
      else if (!user || o.agentProject === undefined) workspaceAgentProjects.delete(String(workspaceId));
    },
    addSshKey(user, publicKey, o = {}) {
      const [type, data] = publicKey.trim().split(/\s+/);
      if (!type || !data) throw new Error('addSshKey: expected "<type> <base64> [comment]"');
      const k: SshKeyRecord = {
        id: nextKeyId++, user, key: `${type} ${data}`, title: o.title ?? `key ${nextKeyId - 1}`,
        createdAt: new Date().toISOString(), expiresAt: o.expiresAt, usageType: o.usageType ?? 'auth_and_signing',
      };
      sshKeys.set(k.id, k);
      return { id: k.id, key: k.key, title: k.title, expiresAt: k.expiresAt, usageType: k.usageType };
    },
    removeSshKey(keyId) {
      sshKeys.delete(keyId);
    },
    sshKeys: (user) => [...sshKeys.values()].filter((k) => k.user.id === user.id)
      .map((k) => ({ id: k.id, key: k.key, title: k.title, expiresAt: k.expiresAt, usageType: k.usageType })),
    addProject(p) {
      return agentApi.addProjectAt(p.path, p.name);
    },
    setMember(project, user, accessLevel) {
      if (agentApi.project(project.id) !== project) throw new Error(`setMember: unknown project ${project.id}`);
      if (accessLevel > 0) project.members.set(user.id, accessLevel);
      else project.members.delete(user.id);
    },
    createProjectAccessToken(project, o = {}) {
      if (agentApi.project(project.id) !== project) throw new Error(`createProjectAccessToken: unknown project ${project.id}`);
      const created = newProjectToken(project, {
        name: o.name ?? 'token', scopes: o.scopes ?? ['read_api'], accessLevel: o.accessLevel ?? AccessLevel.maintainer,
        expiresAt: o.expiresAt,
      });
      return { id: created.id, token: created.token, user: created.record.user };
    },
    projectAccessTokens: (project) => projectTokensOf(project.id).map(([id, r]) => ({
      id, name: r.project?.name ?? '', revoked: r.revoked, expiresAt: r.expiresAt, scopes: r.scopes,
      accessLevel: r.project?.accessLevel ?? 0,
    })),
    registerOAuthClient(c) {
      const client: OAuthClient = {
        id: nextAppId++, clientId: c.clientId, clientSecret: c.clientSecret, redirectUris: [...c.redirectUris],
        name: c.name ?? 'GitLab Workspaces Proxy', scopes: c.scopes ?? ['api', 'read_user', 'openid', 'profile'], confidential: true,
      };
      clients.set(c.clientId, client);
      return client;
    },
    applications: () => [...clients.values()],
    setAccessTokenLifetime(seconds) {
      accessLifetime = seconds;
    },
    autoLoginAs(user) {
      autoLoginUser = user;
    },
    failWith(f, o = {}) {
      fault = f;
      faultDiscovery = f !== null && o.discovery === true;
    },
    setResponseDelay(ms) {
      delayMs = ms;
    },
    count: (endpoint) => counts.get(endpoint) ?? 0,
    resetCounts() {
      counts.clear();
      graphqlLog.length = 0;
    },
    stop: stopListening,
    async start() {
      if (listening) return;
      await listen();
      listening = true;
    },
    close: stopListening,
  };
}
