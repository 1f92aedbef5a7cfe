// The proxy's service token for SSH key logins (auth.service_token): a GitLab project access token of the
// agent's project, role Maintainer, scope read_api (GitLab lets Maintainers of the agent's project read its
// workspaces, so the proxy can ask who owns one, and list that user's SSH keys).
//
// A Pulumi dynamic provider on `POST/GET/DELETE /projects/:id/access_tokens` through @gitbeaker/rest, with
// the same serialization rules as oauth-app.ts (requires inside methods, no #private, the API token a
// secret input).
//
// Rotation never leaves the proxy without a valid token. GitLab's own rotate endpoint revokes the old
// token at once, before the new one has reached the proxy's pods, so it is not used. Instead a token close
// to its expiry (within `rotateBeforeDays`), or one revoked or expired in GitLab, is *replaced*: Pulumi
// creates the new token first, renders it into the config Secret (a new Secret name, so the Deployment
// rolls out and Pulumi waits for the new pods), and only then deletes (revokes) the old token. Rotation
// happens on a `pulumi up` (or `preview`, which shows it) run inside that window: schedule one.
//
// Like the OAuth-app and agent providers, every call uses the token and CA bundle the stack is
// configured with *now* (`configure`: `tokenConfigKey`, `gitlabCaBundle`), the saved ones only when the
// config has none, so a rotated API token does not break refresh or destroy, and a GitLab behind an
// internal CA is trusted.
import * as pulumi from '@pulumi/pulumi';
import { gitbeakerOptions, untrustedCertificateError } from './gitbeaker-options';

export interface ProjectAccessTokenProps {
  gitlabUrl: string;
  /** A token of a Maintainer (or Owner) of the project with the `api` scope. */
  token: string;
  /** Project id or full path. */
  project: string;
  name: string;
  /** Space-separated, sorted by check(). */
  scopes: string;
  accessLevel: number;
  /** Lifetime of each token, days (GitLab allows at most 365). */
  lifetimeDays: number;
  /** Replace the token this many days before it expires. */
  rotateBeforeDays: number;
  /** Stack config key holding the current API token, e.g. `gitlab-workspaces:gitlabApiToken`. */
  tokenConfigKey?: string;
  /** PEM CA bundle of a GitLab behind an internal CA (unset: public CAs only). */
  caBundle?: string;
}

export interface ProjectAccessTokenOuts extends ProjectAccessTokenProps {
  tokenId: number;
  /** The secret; GitLab shows it only in the create response. */
  value: string;
  /** `YYYY-MM-DD`: the token stops working at 00:00 UTC that day. */
  expiresAt: string;
  /** The token's bot user. */
  userId: number;
}

/** Properties whose change needs a new token (GitLab cannot change them on an existing one). */
const REPLACE_KEYS = ['gitlabUrl', 'project', 'name', 'scopes', 'accessLevel'] as const;

const ACCESS_LEVELS = [10, 20, 30, 40, 50];

/** gitbeaker options with the configured token and CA bundle first, the saved ones as fallback. */
function apiOptions(props: ProjectAccessTokenProps, config: pulumi.dynamic.Config | undefined) {
  const configured = props.tokenConfigKey ? config?.get(props.tokenConfigKey) : undefined;
  return gitbeakerOptions(props.gitlabUrl, configured || props.token, config?.get('gitlabCaBundle') || props.caBundle);
}

export const projectAccessTokenProvider: pulumi.dynamic.ResourceProvider & { config?: pulumi.dynamic.Config } = {
  async configure(req: pulumi.dynamic.ConfigureRequest): Promise<void> {
    this.config = req.config;
  },

  async check(_olds: ProjectAccessTokenProps, news: ProjectAccessTokenProps): Promise<pulumi.dynamic.CheckResult> {
    const failures: pulumi.dynamic.CheckFailure[] = [];
    try {
      const u = new URL(String(news.gitlabUrl));
      if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new Error();
    } catch {
      failures.push({ property: 'gitlabUrl', reason: 'must be an http(s) URL' });
    }
    if (typeof news.token !== 'string' || news.token.length === 0) failures.push({ property: 'token', reason: 'a GitLab token of a project Maintainer (api scope) is required' });
    if (typeof news.project !== 'string' || news.project.trim() === '') failures.push({ property: 'project', reason: 'a project id or full path is required' });
    if (typeof news.name !== 'string' || news.name.trim() === '') failures.push({ property: 'name', reason: 'must not be empty' });
    const scopes = [...new Set(String(news.scopes ?? '').split(/[\s,]+/).filter(Boolean))].sort();
    if (scopes.length === 0) failures.push({ property: 'scopes', reason: 'at least one scope is required' });
    if (!ACCESS_LEVELS.includes(Number(news.accessLevel))) failures.push({ property: 'accessLevel', reason: 'must be 10, 20, 30, 40 or 50' });
    const lifetime = Number(news.lifetimeDays);
    const before = Number(news.rotateBeforeDays);
    if (!Number.isInteger(lifetime) || lifetime < 2 || lifetime > 365) failures.push({ property: 'lifetimeDays', reason: 'must be a whole number of days from 2 to 365 (GitLab\'s maximum)' });
    if (!Number.isInteger(before) || before < 1 || before >= lifetime) failures.push({ property: 'rotateBeforeDays', reason: 'must be at least 1 and less than lifetimeDays' });
    return { inputs: { ...news, scopes: scopes.join(' '), accessLevel: Number(news.accessLevel) }, failures };
  },

  async diff(_id: string, olds: ProjectAccessTokenOuts, news: ProjectAccessTokenProps): Promise<pulumi.dynamic.DiffResult> {
    const replaces: string[] = REPLACE_KEYS.filter((k) => String(olds[k]) !== String(news[k]));
    // Due for rotation: inside the window before expiry (or already expired).
    const rotateAt = Date.parse(`${olds.expiresAt}T00:00:00Z`) - Number(news.rotateBeforeDays) * 86_400_000;
    if (!(Date.now() < rotateAt)) replaces.push('expiresAt');
    const inPlace = olds.token !== news.token || olds.lifetimeDays !== news.lifetimeDays || olds.rotateBeforeDays !== news.rotateBeforeDays ||
      olds.tokenConfigKey !== news.tokenConfigKey || (olds.caBundle ?? '') !== (news.caBundle ?? '');
    return {
      changes: replaces.length > 0 || inPlace,
      replaces,
      // The new token first: the proxy gets it before the old one is revoked.
      deleteBeforeReplace: false,
      stables: replaces.length === 0 ? ['tokenId', 'value', 'expiresAt', 'userId'] : [],
    };
  },

  async create(inputs: ProjectAccessTokenProps): Promise<pulumi.dynamic.CreateResult> {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { ProjectAccessTokens } = require('@gitbeaker/rest') as typeof import('@gitbeaker/rest');
    const api = new ProjectAccessTokens(apiOptions(inputs, this.config));
    const expiresAt = new Date(Date.now() + Number(inputs.lifetimeDays) * 86_400_000).toISOString().slice(0, 10);
    let created: { id: number; token?: string; user_id: number; expires_at: string | null };
    try {
      created = (await api.create(inputs.project, inputs.name, inputs.scopes.split(' ') as never, expiresAt, {
        accessLevel: inputs.accessLevel as never,
      })) as unknown as typeof created;
    } catch (err) {
      throw explainTokenError(err, `create a project access token in ${inputs.project}`);
    }
    if (!created.token) throw new Error(`GitLab created project access token ${created.id} in ${inputs.project} but returned no secret`);
    const outs: ProjectAccessTokenOuts = {
      ...inputs, tokenId: created.id, value: created.token, expiresAt: created.expires_at ?? expiresAt, userId: created.user_id,
    };
    return { id: String(created.id), outs };
  },

  async read(id: string, props: ProjectAccessTokenOuts): Promise<pulumi.dynamic.ReadResult> {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { ProjectAccessTokens } = require('@gitbeaker/rest') as typeof import('@gitbeaker/rest');
    const api = new ProjectAccessTokens(apiOptions(props, this.config));
    let t: { id: number; active?: boolean; revoked?: boolean; expires_at: string | null; name: string; scopes: string[]; access_level: number };
    try {
      t = (await api.show(props.project, Number(id))) as unknown as typeof t;
    } catch (err) {
      if (statusOfError(err) === 404) return {};
      throw explainTokenError(err, `read project access token ${id} of ${props.project}`);
    }
    // Revoked or expired in GitLab: gone as far as the proxy is concerned; the next `up` makes a new one.
    if (t.revoked || t.active === false) return {};
    return {
      id,
      props: { ...props, name: t.name, scopes: [...t.scopes].sort().join(' '), accessLevel: t.access_level, expiresAt: t.expires_at ?? props.expiresAt },
    };
  },

  async update(_id: string, olds: ProjectAccessTokenOuts, news: ProjectAccessTokenProps): Promise<pulumi.dynamic.UpdateResult> {
    // Only the API token (its key, the CA bundle) and the rotation settings change in place (diff replaces on everything else).
    const outs: ProjectAccessTokenOuts = { ...olds, token: news.token, lifetimeDays: news.lifetimeDays, rotateBeforeDays: news.rotateBeforeDays };
    for (const k of ['tokenConfigKey', 'caBundle'] as const) {
      if (news[k]) outs[k] = news[k];
      else delete outs[k];
    }
    return { outs };
  },

  async delete(id: string, props: ProjectAccessTokenOuts): Promise<void> {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { ProjectAccessTokens } = require('@gitbeaker/rest') as typeof import('@gitbeaker/rest');
    const api = new ProjectAccessTokens(apiOptions(props, this.config));
    try {
      await api.revoke(props.project, Number(id));
    } catch (err) {
      // Already revoked or deleted by hand: the goal of delete is reached.
      if (statusOfError(err) === 404) return;
      throw explainTokenError(err, `revoke project access token ${id} of ${props.project}`);
    }
  },
};

function statusOfError(err: unknown): number | undefined {
  return (err as { cause?: { response?: { status?: number } } } | undefined)?.cause?.response?.status;
}

/** A message a person can act on; never the request (its headers carry the token). */
function explainTokenError(err: unknown, action: string): Error {
  const status = statusOfError(err);
  const description = (err as { cause?: { description?: unknown } } | undefined)?.cause?.description;
  const untrusted = untrustedCertificateError(err, action);
  if (untrusted) return untrusted;
  const detail = typeof description === 'string' && description ? description : err instanceof Error ? err.message : String(err);
  if (status === 401 || status === 403) {
    return new Error(`GitLab refused to ${action} (${status}: ${detail}): the token must belong to a Maintainer or Owner of the project and have the api scope`);
  }
  return new Error(`Could not ${action}${status ? ` (HTTP ${status})` : ''}: ${detail}`);
}

export interface GitLabProjectAccessTokenArgs {
  gitlabUrl: pulumi.Input<string>;
  /** Token of a Maintainer or Owner of the project (api scope). Pass a secret. */
  token: pulumi.Input<string>;
  project: pulumi.Input<string>;
  name: pulumi.Input<string>;
  scopes?: pulumi.Input<string>;
  /** Default 40 (Maintainer): the role that may read the agent's workspaces. */
  accessLevel?: pulumi.Input<number>;
  /** Default 365 (GitLab's maximum). */
  lifetimeDays?: pulumi.Input<number>;
  /** Default 30. */
  rotateBeforeDays?: pulumi.Input<number>;
  /** Stack config key of the API token: every call prefers its current value. */
  tokenConfigKey?: pulumi.Input<string>;
  /** PEM CA bundle of a GitLab behind an internal CA; the stack's current `gitlabCaBundle` wins. */
  caBundle?: pulumi.Input<string>;
}

/** One project access token in GitLab; `value` is secret. */
export class GitLabProjectAccessToken extends pulumi.dynamic.Resource {
  declare readonly tokenId: pulumi.Output<number>;
  declare readonly value: pulumi.Output<string>;
  declare readonly expiresAt: pulumi.Output<string>;
  declare readonly userId: pulumi.Output<number>;

  constructor(name: string, args: GitLabProjectAccessTokenArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      projectAccessTokenProvider,
      name,
      {
        gitlabUrl: args.gitlabUrl,
        token: pulumi.secret(args.token),
        project: args.project,
        name: args.name,
        scopes: args.scopes ?? 'read_api',
        accessLevel: args.accessLevel ?? 40,
        lifetimeDays: args.lifetimeDays ?? 365,
        rotateBeforeDays: args.rotateBeforeDays ?? 30,
        tokenConfigKey: args.tokenConfigKey,
        caBundle: args.caBundle,
        tokenId: undefined,
        value: undefined,
        expiresAt: undefined,
        userId: undefined,
      },
      { ...opts, additionalSecretOutputs: ['value', 'token'], replaceOnChanges: [...REPLACE_KEYS] },
      'gitlab',
      'ProjectAccessToken',
    );
  }
}
