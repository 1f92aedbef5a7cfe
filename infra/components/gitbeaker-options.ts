// How the GitLab dynamic providers connect: options for @gitbeaker/rest (the OAuth app, the proxy's
// project access token), and the one explanation of an untrusted GitLab certificate (those and the
// fetch-based agent providers, infra/agent/gitlab-rest.ts). Serialized with those providers: no
// run-time imports at module level.
//
// A CA bundle (the stack's gitlabCaBundle, infra/components/gitlab-ca.ts) is *added* to Node's public
// roots through an undici dispatcher (gitbeaker passes `agent` to fetch as its dispatcher);
// certificate verification stays on.

/** `{ host, token[, agent] }` for a gitbeaker resource class. */
export function gitbeakerOptions(gitlabUrl: string, token: string, caBundle: string | undefined) {
  if (!caBundle) return { host: gitlabUrl, token };
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Agent } = require('undici') as typeof import('undici');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { rootCertificates } = require('node:tls') as typeof import('node:tls');
  const dispatcher = new Agent({ connect: { ca: [...rootCertificates, caBundle] } });
  // Typed as an http.Agent by @gitbeaker/requester-utils, but @gitbeaker/rest hands it to fetch as `dispatcher`.
  return { host: gitlabUrl, token, agent: dispatcher as unknown as import('node:http').Agent };
}

/** A TLS verification failure, explained (undefined when the error is something else). */
export function untrustedCertificateError(err: unknown, action: string): Error | undefined {
  const code = (err as { cause?: { code?: unknown } } | undefined)?.cause?.code;
  if (typeof code !== 'string' || !/CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)/.test(code)) return undefined;
  return new Error(
    `Could not ${action}: GitLab's TLS certificate is not trusted (${code}). If GitLab uses an internal CA, set gitlab-workspaces:gitlabCaBundle to its PEM certificate(s).`,
  );
}
