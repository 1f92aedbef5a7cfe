// The package entry `gitlab-workspaces-proxy/config` (proxy-image/package.json "exports"): what infra/ imports.
export { configSchema, DEFAULT_PORTS, DEFAULTS, LOG_LEVELS, type ProxyConfig, type ProxyConfigInput } from './schema';
export { parseConfigText, parseConfigObject, type ParsedConfig } from './parse';
export { renderConfigYaml } from './render';
export { parseFlags, UsageError, usage, type Flags } from './flags';
export { ConfigError } from './errors';
