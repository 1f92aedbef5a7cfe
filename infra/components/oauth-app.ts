// The GitLab OAuth application the proxy logs users in with.
//
// `managed`: a Pulumi dynamic provider on GitLab's instance-wide applications API
// (POST/GET/DELETE /api/v4/applications, admin only) through @gitbeaker/rest. @pulumi/gitlab would
// be the obvious choice but this workplace's npm registry does not serve it, and the REST API is
// small. The API has no update and no get-by-id: a change of name, redirect URI, scopes or
// confidentiality replaces the app (create the new one, then delete the old), and read() lists the
// apps to find ours (gone → Pulumi recreates it on the next `pulumi up --refresh`).
// `provided`: client id/secret come from (secret) stack config, for gitlab.com or anyone without
// admin rights.
//
// The provider object is serialized with its closure into the state, so: no module-level imports are
// referenced from its methods (each method requires @gitbeaker/rest itself, keeping the text small),
// no #private fields (they serialize but do not compile), and the admin token is a secret *input*
// (kept, encrypted, in the resource's outputs), never captured.
//
// Rotated tokens: read and delete get only the saved state, whose token may be revoked or expired by
// the time of a `pulumi refresh` or `destroy` (the review stack's stop job). The engine hands dynamic
// providers the whole stack config (pulumi/pulumi#17229, `configure` since #17697), so every call uses
// the token (and CA bundle) the stack is configured with *now*, and the saved one only when the
// config has none (for instance a destroy run without the stack's config file).
import * as pulumi from '@pulumi/pulumi';
import { gitbeakerOptions, untrustedCertificateError } from './gitbeaker-options';

export const OAUTH_SCOPES = ['api', 'read_user', 'openid', 'profile'] as const;

/** Inputs of the dynamic resource, as the provider sees them (plain values). */
export interface OAuthAppProps {
  gitlabUrl: string;
  token: string;
  name: string;
  redirectUri: string;
  /** Space-separated, normalized (sorted, unique) by check(). */
  scopes: string;
  confidential: boolean;
  /** PEM CA bundle GitLab's certificate chains to ('' = public CAs only); see gitlab-ca.ts. */
  caBundle?: string;
}

export interface OAuthAppOuts extends OAuthAppProps {
  applicationId: string;
  clientId: string;
  clientSecret: string;
}

/** Properties whose change needs a new application (GitLab has no update endpoint). */
const REPLACE_KEYS = ['gitlabUrl', 'name', 'redirectUri', 'scopes', 'confidential'] as const;

/** The stack config keys the provider reads at run time (project-relative). */
export const CONFIGURED_TOKEN_KEY = 'gitlabAdminToken';
export const CONFIGURED_CA_KEY = 'gitlabCaBundle';

/** What `configure` found in the stack config of the running operation. */
interface Configured {
  token?: string;
  caBundle?: string;
}

/** Options for a @gitbeaker/rest resource: the configured token and CA bundle win over the saved ones. */
function gitlabOptions(props: Pick<OAuthAppProps, 'gitlabUrl' | 'token' | 'caBundle'>, current: Configured | undefined) {
  return gitbeakerOptions(props.gitlabUrl, current?.token || props.token, current?.caBundle || props.caBundle);
}

export const gitlabOAuthAppProvider: pulumi.dynamic.ResourceProvider & { current?: Configured } = {
  async configure(req: pulumi.dynamic.ConfigureRequest): Promise<void> {
    this.current = { token: req.config.get(CONFIGURED_TOKEN_KEY), caBundle: req.config.get(CONFIGURED_CA_KEY) };
  },

  async check(_olds: OAuthAppProps, news: OAuthAppProps): Promise<pulumi.dynamic.CheckResult> {
    const failures: pulumi.dynamic.CheckFailure[] = [];
    const url = (v: unknown) => {
      try {
        const u = new URL(String(v));
        return u.protocol === 'https:' || u.protocol === 'http:' ? u : undefined;
      } catch {
        return undefined;
      }
    };
    if (!url(news.gitlabUrl)) failures.push({ property: 'gitlabUrl', reason: 'must be an http(s) URL' });
    if (typeof news.token !== 'string' || news.token.length === 0) failures.push({ property: 'token', reason: 'a GitLab admin token is required' });
    if (typeof news.name !== 'string' || news.name.trim() === '') failures.push({ property: 'name', reason: 'must not be empty' });
    const redirect = url(news.redirectUri);
    if (!redirect) failures.push({ property: 'redirectUri', reason: 'must be an http(s) URL' });
    const scopes = [...new Set(String(news.scopes ?? '').split(/[\s,]+/).filter(Boolean))].sort();
    if (scopes.length === 0) failures.push({ property: 'scopes', reason: 'at least one scope is required' });
    return { inputs: { ...news, scopes: scopes.join(' '), confidential: news.confidential !== false }, failures };
  },

  async diff(_id: string, olds: OAuthAppOuts, news: OAuthAppProps): Promise<pulumi.dynamic.DiffResult> {
    const replaces = ['gitlabUrl', 'name', 'redirectUri', 'scopes', 'confidential'].filter(
      (k) => String(olds[k as keyof OAuthAppOuts]) !== String(news[k as keyof OAuthAppProps]),
    );
    const inPlace = olds.token !== news.token || (olds.caBundle ?? '') !== (news.caBundle ?? '');
    // Create-before-delete: the new client id/secret reach the proxy before the old app disappears.
    return {
      changes: replaces.length > 0 || inPlace,
      replaces,
      deleteBeforeReplace: false,
      stables: replaces.length === 0 ? ['applicationId', 'clientId', 'clientSecret'] : [],
    };
  },

  async create(inputs: OAuthAppProps): Promise<pulumi.dynamic.CreateResult> {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { Applications } = require('@gitbeaker/rest') as typeof import('@gitbeaker/rest');
    const api = new Applications(gitlabOptions(inputs, this.current));
    let app;
    try {
      app = await api.create(inputs.name, inputs.redirectUri, inputs.scopes, { confidential: inputs.confidential });
    } catch (err) {
      throw explainGitLabError(err, 'create the OAuth application');
    }
    const outs: OAuthAppOuts = {
      ...inputs,
      applicationId: String(app.id),
      clientId: String(app.application_id),
      clientSecret: String(app.secret),
    };
    return { id: String(app.id), outs };
  },

  async read(id: string, props: OAuthAppOuts): Promise<pulumi.dynamic.ReadResult> {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { Applications } = require('@gitbeaker/rest') as typeof import('@gitbeaker/rest');
    const api = new Applications(gitlabOptions(props, this.current));
    let apps;
    try {
      apps = await api.all({ perPage: 100 });
    } catch (err) {
      throw explainGitLabError(err, 'list OAuth applications');
    }
    const app = apps.find((a) => String(a.id) === String(id));
    // Deleted in GitLab: no id tells Pulumi the resource is gone, so the next `up` creates it again.
    if (!app) return {};
    return {
      id: String(app.id),
      props: {
        ...props,
        applicationId: String(app.id),
        clientId: String(app.application_id),
        name: String(app.application_name),
        redirectUri: String(app.callback_url),
        confidential: app.confidential !== false,
      },
    };
  },

  async update(_id: string, olds: OAuthAppOuts, news: OAuthAppProps): Promise<pulumi.dynamic.UpdateResult> {
    // Only the admin token and CA bundle change in place (diff replaces on everything else); GitLab is not called.
    return { outs: { ...olds, token: news.token, caBundle: news.caBundle ?? '' } };
  },

  async delete(id: string, props: OAuthAppOuts): Promise<void> {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { Applications } = require('@gitbeaker/rest') as typeof import('@gitbeaker/rest');
    const api = new Applications(gitlabOptions(props, this.current));
    try {
      await api.remove(Number(id));
    } catch (err) {
      // Already deleted by hand: the goal of delete is reached.
      if (statusOf(err) === 404) return;
      throw explainGitLabError(err, 'delete the OAuth application');
    }
  },
};

function statusOf(err: unknown): number | undefined {
  const cause = (err as { cause?: { response?: { status?: number } } } | undefined)?.cause;
  return cause?.response?.status;
}

/** A message a person can act on. Never includes the request (its headers carry the token). */
function explainGitLabError(err: unknown, action: string): Error {
  const status = (err as { cause?: { response?: { status?: number } } } | undefined)?.cause?.response?.status;
  const description = (err as { cause?: { description?: unknown } } | undefined)?.cause?.description;
  const detail = typeof description === 'string' && description ? `: ${description}` : '';
  if (status === 401) {
    return new Error(`GitLab rejected the token while trying to ${action} (401${detail}); check gitlab-workspaces:gitlabAdminToken (revoked or expired?)`);
  }
  if (status === 403) {
    return new Error(
      `GitLab refused to ${action} (403${detail}): the token in gitlab-workspaces:gitlabAdminToken must belong to an administrator and have the api scope. ` +
        'Without admin rights (for example on gitlab.com) use oauth.mode: provided with oauthClientId/oauthClientSecret.',
    );
  }
  // fetch wraps network errors: `fetch failed` with the TLS error as its cause.
  const untrusted = untrustedCertificateError(err, action);
  if (untrusted) return untrusted;
  const message = err instanceof Error ? err.message : String(err);
  return new Error(`Could not ${action}${status ? ` (HTTP ${status})` : ''}: ${typeof description === 'string' && description ? description : message}`);
}

export interface GitLabOAuthAppArgs {
  gitlabUrl: pulumi.Input<string>;
  /** Admin personal access token (api scope). Pass a secret. */
  token: pulumi.Input<string>;
  name: pulumi.Input<string>;
  redirectUri: pulumi.Input<string>;
  scopes?: pulumi.Input<string>;
  confidential?: pulumi.Input<boolean>;
  /** PEM CA bundle for a GitLab behind an internal CA. */
  caBundle?: pulumi.Input<string>;
}

/** One instance-wide OAuth application in GitLab, managed through the REST API. */
export class GitLabOAuthApp extends pulumi.dynamic.Resource {
  declare readonly applicationId: pulumi.Output<string>;
  declare readonly clientId: pulumi.Output<string>;
  declare readonly clientSecret: pulumi.Output<string>;
  declare readonly redirectUri: pulumi.Output<string>;

  constructor(name: string, args: GitLabOAuthAppArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      gitlabOAuthAppProvider,
      name,
      {
        gitlabUrl: args.gitlabUrl,
        token: pulumi.secret(args.token),
        name: args.name,
        redirectUri: args.redirectUri,
        scopes: args.scopes ?? OAUTH_SCOPES.join(' '),
        confidential: args.confidential ?? true,
        caBundle: args.caBundle ?? '',
        applicationId: undefined,
        clientId: undefined,
        clientSecret: undefined,
      },
      {
        ...opts,
        additionalSecretOutputs: ['clientSecret', 'token'],
        replaceOnChanges: [...REPLACE_KEYS],
      },
      'gitlab',
      'OAuthApplication',
    );
  }
}

export type OAuthMode = 'managed' | 'provided';

export interface OAuthApplicationArgs {
  mode: OAuthMode;
  gitlabUrl: string;
  proxyDomain: string;
  appName: string;
  /** managed mode: admin token (secret). */
  adminToken?: pulumi.Input<string>;
  /** PEM CA bundle for a GitLab behind an internal CA. */
  caBundle?: string;
  /** provided mode. */
  clientId?: pulumi.Input<string>;
  clientSecret?: pulumi.Input<string>;
}

/** The OAuth app in either mode; consumers only see client id, secret and redirect URI. */
export class OAuthApplication extends pulumi.ComponentResource {
  readonly redirectUri: string;
  readonly clientId: pulumi.Output<string>;
  readonly clientSecret: pulumi.Output<string>;
  readonly app: GitLabOAuthApp | undefined;

  constructor(name: string, args: OAuthApplicationArgs, opts?: pulumi.ComponentResourceOptions) {
    super('gitlab-workspaces:proxy:OAuthApplication', name, {}, opts);
    this.redirectUri = `https://${args.proxyDomain}/auth/callback`;
    if (args.mode === 'managed') {
      if (args.adminToken === undefined) throw new Error('OAuthApplication: managed mode needs adminToken');
      this.app = new GitLabOAuthApp(
        name,
        { gitlabUrl: args.gitlabUrl, token: args.adminToken, name: args.appName, redirectUri: this.redirectUri, caBundle: args.caBundle },
        { parent: this },
      );
      this.clientId = this.app.clientId;
      this.clientSecret = pulumi.secret(this.app.clientSecret);
    } else {
      if (args.clientId === undefined || args.clientSecret === undefined) {
        throw new Error('OAuthApplication: provided mode needs clientId and clientSecret');
      }
      this.app = undefined;
      this.clientId = pulumi.output(args.clientId);
      this.clientSecret = pulumi.secret(args.clientSecret);
    }
    this.registerOutputs({ redirectUri: this.redirectUri, clientId: this.clientId, clientSecret: this.clientSecret });
  }
}
