// The proxy's config.yaml: a superset of the upstream gitlab-workspaces-proxy file (see CONTRACT §2).
// One source of truth: the proxy parses it with this schema and infra/ renders it with the same one.
import { z } from 'zod';

const port = z.number().int().min(1).max(65535);
const httpUrl = z.url({ protocol: /^https?$/ });

export const configSchema = z
  .object({
    auth: z.object({
      client_id: z.string().min(1),
      client_secret: z.string().min(1),
      host: httpUrl,
      redirect_uri: httpUrl,
      // Everything the proxy signs or encrypts derives from this; upstream accepted any length,
      // we insist on enough entropy to make forging sessions impractical.
      signing_key: z.string().min(16, 'must be at least 16 characters'),
      protocol: z.enum(['https', 'http']).default('https'),
      reauthorize_interval: z.number().positive().default(60),
      max_session_duration: z.number().min(0).default(0),
      // The proxy's own GitLab token (a project access token with read_api on the agent's project): used
      // only for SSH public-key logins, where no user token exists to ask GitLab with.
      service_token: z.string().min(1).optional(),
    }),
    http: z
      .object({
        enabled: z.boolean().default(true),
        port: port.default(9876),
        internal_port: port.default(9877),
      })
      .prefault({}),
    ssh: z
      .object({
        enabled: z.boolean().default(false),
        port: port.default(2222),
        host_key: z.string().optional(),
        backend_port: port.default(22),
        backend_username: z.string().min(1).default('gitlab-workspaces'),
        // Accept the workspace owner's GitLab SSH keys; in effect only with auth.service_token.
        public_key_auth: z.boolean().default(true),
      })
      .prefault({}),
    metrics_path: z.string().startsWith('/').default('/metrics'),
    log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  })
  .superRefine((cfg, ctx) => {
    if (cfg.ssh.enabled && !cfg.ssh.host_key) {
      ctx.addIssue({ code: 'custom', path: ['ssh', 'host_key'], message: 'required when ssh.enabled is true' });
    }
    if (cfg.http.enabled && cfg.http.port === cfg.http.internal_port) {
      ctx.addIssue({ code: 'custom', path: ['http', 'internal_port'], message: 'must differ from http.port' });
    }
  });

/** The file as written by a person or by infra/ (defaults optional). */
export type ProxyConfigInput = z.input<typeof configSchema>;
/** The file after defaults are applied. */
export type ProxyConfig = z.output<typeof configSchema>;
