// Command-line flags. The upstream Helm chart starts the Go binary with `-config /path`; Go's flag
// package also accepts `-config=/path`, and people expect `--config` too. All forms work here.

export interface Flags {
  configPath: string;
  kubeconfigPath?: string;
}

export class UsageError extends Error {
  override name = 'UsageError';
}

export const usage = 'usage: proxy -config <config.yaml> [-kubeconfig <file>]';

const known = new Set(['config', 'kubeconfig']);

export function parseFlags(argv: readonly string[]): Flags {
  const values = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const m = /^--?([a-z-]+)(?:=(.*))?$/s.exec(arg);
    if (!m) throw new UsageError(`unexpected argument "${arg}"\n${usage}`);
    const name = m[1] as string;
    if (name === 'h' || name === 'help') throw new UsageError(usage);
    if (!known.has(name)) throw new UsageError(`unknown flag -${name}\n${usage}`);
    let value = m[2];
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined) throw new UsageError(`flag -${name} needs a value\n${usage}`);
    }
    values.set(name, value);
  }
  const configPath = values.get('config');
  if (!configPath) throw new UsageError(`-config is required\n${usage}`);
  return { configPath, kubeconfigPath: values.get('kubeconfig') };
}
