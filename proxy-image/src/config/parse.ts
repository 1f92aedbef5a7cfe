// Turns raw YAML text into a validated ProxyConfig, naming every problem by its full dotted key.
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { configSchema, type ProxyConfig } from './schema';
import { ConfigError } from './errors';
import { readHostKey } from './host-key';

export interface ParsedConfig {
  config: ProxyConfig;
  /** Dotted keys present in the file that the proxy does not know (logged as warnings). */
  unknownKeys: string[];
}

export function parseConfigText(text: string): ParsedConfig {
  const doc = parseDocument(text, { prettyErrors: false });
  if (doc.errors.length > 0) {
    throw new ConfigError(doc.errors.map((e) => `YAML syntax: ${e.message}`));
  }
  const raw: unknown = doc.toJS() ?? {};
  return parseConfigObject(raw);
}

export function parseConfigObject(raw: unknown): ParsedConfig {
  // A missing auth section is reported key by key (`auth.client_id: required`, ...), not as `auth: required`.
  const withAuth = isPlainObject(raw) && raw.auth === undefined ? { ...raw, auth: {} } : raw;
  const result = configSchema.safeParse(withAuth);
  if (!result.success) {
    throw new ConfigError(result.error.issues.map(describeIssue));
  }
  const config = result.data;
  if (config.ssh.enabled && config.ssh.host_key) {
    try {
      // PKCS#8 keys (the only PEM form of Ed25519) come back converted into a form ssh2 reads.
      config.ssh.host_key = readHostKey(config.ssh.host_key);
    } catch (err) {
      throw new ConfigError([`ssh.host_key: ${(err as Error).message}`]);
    }
  }
  return { config, unknownKeys: findUnknownKeys(raw, knownShape) };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const key = issue.path.map(String).join('.') || '(top level)';
  if (issue.code === 'invalid_type' && /received undefined/.test(issue.message)) {
    return `${key}: required`;
  }
  if (issue.code === 'invalid_type') {
    return `${key}: expected ${issue.expected}`;
  }
  return `${key}: ${issue.message}`;
}

// The keys the schema knows, as a tree, read from the schema itself (zod strips unknown keys silently, so
// they are found here to be warned about). Wrappers (default, prefault, optional) are looked through.
type Shape = { [key: string]: Shape | true };

function shapeOf(schema: z.ZodType): Shape | true {
  let s: z.ZodType = schema;
  for (;;) {
    if (s instanceof z.ZodObject) {
      const out: Shape = {};
      for (const [key, child] of Object.entries(s.shape as Record<string, z.ZodType>)) out[key] = shapeOf(child);
      return out;
    }
    const inner = (s.def as { innerType?: z.ZodType }).innerType;
    if (!inner) return true;
    s = inner;
  }
}

const knownShape = shapeOf(configSchema) as Shape;

function findUnknownKeys(raw: unknown, shape: Shape, prefix = ''): string[] {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return [];
  const unknown: string[] = [];
  for (const [key, value] of Object.entries(raw)) {
    const known = shape[key];
    if (known === undefined) unknown.push(prefix + key);
    else if (known !== true) unknown.push(...findUnknownKeys(value, known, `${prefix}${key}.`));
  }
  return unknown;
}
