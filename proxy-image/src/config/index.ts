export { configSchema, type ProxyConfig, type ProxyConfigInput } from './schema';
export { parseConfigText, parseConfigObject, type ParsedConfig } from './parse';
export { renderConfigYaml } from './render';
export { parseFlags, UsageError, usage, type Flags } from './flags';
export { ConfigError } from './errors';
