// GitLab REST and GraphQL calls of the agent's dynamic providers, with global fetch (no client
// library: @gitbeaker/core 43.8.0's Agents.createToken sends GET instead of POST).
//
// The providers are serialized with their closures into the state, and these functions with them:
// keep this module free of run-time imports (but import-free helpers) and of anything but small functions, and never put a token in an
// error message (messages reach the CLI and CI logs).
//
// Which token: the one the stack is configured with *now*. The dynamic provider host calls
// `configure({ config })` with the stack's config before any other method (@pulumi/pulumi
// cmd/dynamic-provider/index.js getProvider; dynamic/index.d.ts ConfigureRequest: "The stack's
// configuration"); each provider stores it here and every call reads the key named by the resource's
// `tokenConfigKey`. The token saved in the resource's (secret) state is the fallback, so a rotated or
// expired token in state does not break refresh, destroy or the review-stack teardown.
//
// A GitLab behind an internal CA: the stack's `gitlabCaBundle` (infra/components/gitlab-ca.ts) is
// *added* to Node's public roots for these calls, as the OAuth-app provider does (oauth-app.ts); the
// configured bundle wins over the one saved as an input, and verification is never switched off.

import type * as pulumi from '@pulumi/pulumi';
import { untrustedCertificateError } from '../components/gitbeaker-options';

/** The GitLab inputs every agent resource takes (a type only: nothing is imported at run time). */
export interface GitLabTargetArgs {
  gitlabUrl: pulumi.Input<string>;
  /** A token with the api scope (pass a secret); every call prefers the stack's current one. */
  token: pulumi.Input<string>;
  tokenConfigKey: pulumi.Input<string>;
  /** PEM CA bundle of a GitLab behind an internal CA; the stack's current `gitlabCaBundle` wins. */
  caBundle?: pulumi.Input<string>;
}

/** Per deserialized provider: the stack config handed to configure(), and one TLS dispatcher per CA bundle. */
export const providerRuntime: { config?: { get(key: string): string | undefined }; dispatchers?: Map<string, unknown> } = {};

/** The stack config key (project-relative) of the CA bundle, as the OAuth-app provider reads it. */
export const CA_BUNDLE_CONFIG_KEY = 'gitlabCaBundle';

export interface GitLabTarget {
  gitlabUrl: string;
  /** Token when the resource was last created/updated (secret state). */
  token: string;
  /** Stack config key holding the current token, e.g. `gitlab-workspaces:gitlabApiToken`. */
  tokenConfigKey?: string;
  /** PEM CA bundle GitLab's certificate chains to (unset or '': public CAs only). */
  caBundle?: string;
}

export interface GitLabResponse {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- GitLab's JSON, read field by field
  body: any;
}

/** configure() of every agent provider: keeps the stack's config for currentToken(). */
export async function configureFromStack(req: { config: { get(key: string): string | undefined } }): Promise<void> {
  providerRuntime.config = req.config;
}

/** check() part shared by the agent providers: reports a bad URL or missing token; returns the URL normalized. */
export function checkTarget(news: Partial<GitLabTarget>, failures: { property: string; reason: string }[]): string | undefined {
  const gitlabUrl = normalizeUrl(news.gitlabUrl);
  if (!gitlabUrl) failures.push({ property: 'gitlabUrl', reason: 'must be an http(s) URL' });
  if (typeof news.token !== 'string' || !news.token) failures.push({ property: 'token', reason: 'a GitLab token with the api scope is required' });
  return gitlabUrl ?? news.gitlabUrl;
}

/** The token (or the config key it is read from) or the CA bundle changed: an in-place update that calls nothing. */
export function tokenChanged(olds: GitLabTarget, news: GitLabTarget): boolean {
  return olds.token !== news.token || olds.tokenConfigKey !== news.tokenConfigKey || (olds.caBundle ?? '') !== (news.caBundle ?? '');
}

/** update() of a resource whose only in-place change is its token (or CA bundle). */
export function withToken<T extends GitLabTarget>(olds: T, news: GitLabTarget): T {
  const out: T = { ...olds, token: news.token, tokenConfigKey: news.tokenConfigKey };
  if (news.caBundle) out.caBundle = news.caBundle;
  else delete out.caBundle;
  return out;
}

/** The token to send: the stack's current one when the host configured us, else the stored one. */
export function currentToken(t: GitLabTarget): string {
  const configured = t.tokenConfigKey ? providerRuntime.config?.get(t.tokenConfigKey) : undefined;
  return typeof configured === 'string' && configured.length > 0 ? configured : t.token;
}

/** The CA bundle to trust: the stack's current one when configured, else the saved one ('' = none). */
export function currentCaBundle(t: GitLabTarget): string {
  const configured = providerRuntime.config?.get(CA_BUNDLE_CONFIG_KEY);
  return typeof configured === 'string' && configured.length > 0 ? configured : (t.caBundle ?? '');
}

/** fetch's dispatcher trusting the public roots plus the bundle (undefined: Node's default). */
function dispatcherFor(caBundle: string): unknown {
  if (!caBundle) return undefined;
  providerRuntime.dispatchers ??= new Map();
  let d = providerRuntime.dispatchers.get(caBundle);
  if (!d) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { Agent } = require('undici') as typeof import('undici');
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { rootCertificates } = require('node:tls') as typeof import('node:tls');
    d = new Agent({ connect: { ca: [...rootCertificates, caBundle] } });
    providerRuntime.dispatchers.set(caBundle, d);
  }
  return d;
}

/** `/api/v4<path>` with JSON in and out. Throws only when GitLab cannot be reached. */
export async function gitlabRest(t: GitLabTarget, method: string, path: string, body?: unknown): Promise<GitLabResponse> {
  return gitlabFetch(t, method, `/api/v4${path}`, { 'PRIVATE-TOKEN': currentToken(t) }, body);
}

/** POST /api/graphql; returns `data` and top-level `errors` (an HTTP error is thrown, explained). */
export async function gitlabGraphql(
  t: GitLabTarget,
  query: string,
  variables: Record<string, unknown>,
  action: string,
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- GitLab's JSON, read field by field
): Promise<{ data: any; errors: string[] }> {
  const res = await gitlabFetch(t, 'POST', '/api/graphql', { Authorization: `Bearer ${currentToken(t)}` }, { query, variables });
  if (res.status !== 200) throw gitlabError(t, action, res);
  const errors = Array.isArray(res.body?.errors) ? res.body.errors.map((e: { message?: unknown }) => String(e?.message ?? e)) : [];
  return { data: res.body?.data ?? {}, errors };
}

async function gitlabFetch(t: GitLabTarget, method: string, path: string, auth: Record<string, string>, body: unknown): Promise<GitLabResponse> {
  const url = `${t.gitlabUrl.replace(/\/+$/, '')}${path}`;
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers: { ...auth, Accept: 'application/json', ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      redirect: 'error',
      signal: AbortSignal.timeout(60_000),
      // Not in lib.dom's RequestInit: Node's fetch (undici) takes it.
      ...({ dispatcher: dispatcherFor(currentCaBundle(t)) } as object),
    });
  } catch (err) {
    const what = `reach GitLab at ${t.gitlabUrl} (${method} ${path.split('?')[0]})`;
    throw untrustedCertificateError(err, what) ?? new Error(`Could not ${what}: ${(err as { cause?: { message?: string } }).cause?.message ?? (err as Error).message}`);
  }
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON (a proxy's error page): keep the text
  }
  return { status: res.status, body: parsed };
}

/** GitLab's own message from an error body (`message` may be a string or a field → messages map). */
export function gitlabMessage(body: unknown): string {
  const b = body as { message?: unknown; error?: unknown; error_description?: unknown } | undefined;
  const m = b?.message ?? b?.error_description ?? b?.error;
  if (typeof m === 'string') return m;
  if (m && typeof m === 'object') {
    return Object.entries(m as Record<string, unknown>)
      .map(([k, v]) => `${k} ${Array.isArray(v) ? v.join(', ') : String(v)}`)
      .join('; ');
  }
  return typeof body === 'string' ? body.slice(0, 200) : '';
}

/** An error a person can act on: what failed, GitLab's status and words, and what to check. */
export function gitlabError(t: GitLabTarget, action: string, res: GitLabResponse, need?: string): Error {
  const detail = gitlabMessage(res.body);
  const key = t.tokenConfigKey ?? 'the GitLab token';
  const base = `Could not ${action}: GitLab answered ${res.status}${detail ? ` (${detail})` : ''}`;
  if (res.status === 401) return new Error(`${base}. The token in ${key} was rejected: revoked or expired?`);
  if (res.status === 403 || res.status === 404) {
    return new Error(`${base}. ${need ? `The token's user needs ${need}` : 'Check that the token can see it'}; the token is ${key} (api scope).`);
  }
  return new Error(base);
}

/** `/projects/<id or url-encoded path>`. */
export function projectPath(project: string | number): string {
  return `/projects/${encodeURIComponent(String(project))}`;
}

/** Check helper: the http(s) URL without trailing slashes, or undefined. */
export function normalizeUrl(v: unknown): string | undefined {
  try {
    const u = new URL(String(v));
    if (u.protocol !== 'https:' && u.protocol !== 'http:') return undefined;
    return `${u.origin}${u.pathname.replace(/\/+$/, '')}`;
  } catch {
    return undefined;
  }
}
