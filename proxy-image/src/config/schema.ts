// The proxy's config.yaml: a superset of the upstream gitlab-workspaces-proxy file (docs/contract.md §2).
// One source of truth for keys, defaults and ports: the proxy parses the file with this schema, parse.ts
// derives the known keys from it, and infra/ imports it (package entry `gitlab-workspaces-proxy/config`)
// to render the file and to declare the container ports.
import { z } from 'zod';

/** The proxy's default listener ports (unprivileged; a Service maps 22 to the SSH one). */
export const DEFAULT_PORTS = { http: 9876, internal: 9877, ssh: 2222 } as const;

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Defaults of the keys a deployment commonly sets. */
export const DEFAULTS = {
  protocol: 'https',
  reauthorizeInterval: 60,
  maxSessionDuration: 0,
  metricsPath: '/metrics',
  logLevel: 'info',
  sshBackendPort: 22,
  sshBackendUsername: 'gitlab-workspaces',
} as const;

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
      protocol: z.enum(['https', 'http']).default(DEFAULTS.protocol),
      reauthorize_interval: z.number().positive().default(DEFAULTS.reauthorizeInterval),
      max_session_duration: z.number().min(0).default(DEFAULTS.maxSessionDuration),
      // The proxy's own GitLab token (a project access token with read_api on the agent's project): used
      // only for SSH public-key logins, where no user token exists to ask GitLab with.
      service_token: z.string().min(1).optional(),
    }),
    http: z
      .object({
        enabled: z.boolean().default(true),
        port: port.default(DEFAULT_PORTS.http),
        internal_port: port.default(DEFAULT_PORTS.internal),
      })
      .prefault({}),
    ssh: z
      .object({
        enabled: z.boolean().default(false),
        port: port.default(DEFAULT_PORTS.ssh),
        host_key: z.string().optional(),
        backend_port: port.default(DEFAULTS.sshBackendPort),
        backend_username: z.string().min(1).default(DEFAULTS.sshBackendUsername),
        // Accept the workspace owner's GitLab SSH keys; in effect only with auth.service_token.
        public_key_auth: z.boolean().default(true),
      })
      .prefault({}),
    metrics_path: z.string().startsWith('/').default(DEFAULTS.metricsPath),
    log_level: z.enum(LOG_LEVELS).default(DEFAULTS.logLevel),
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
