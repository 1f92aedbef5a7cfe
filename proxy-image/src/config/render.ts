// Renders a config.yaml that the proxy will accept. infra/ uses this so that what Pulumi writes into
// the config Secret is checked by the very schema the proxy parses it with.
import { stringify } from 'yaml';
import { parseConfigObject } from './parse';
import type { ProxyConfigInput } from './schema';

export function renderConfigYaml(input: ProxyConfigInput): string {
  parseConfigObject(input); // throws ConfigError naming the key if infra built something the proxy rejects
  return stringify(input, { lineWidth: 0 });
}
