/**
 * Shared Pulumi mock harness: runs a Pulumi program in-process under `pulumi.runtime.setMocks` and
 * returns everything it declared. No CLI, no plugins.
 *
 * API
 *   const run = await runPulumiProgram(program, {
 *     stack: 'dev',                       // default 'test'; project defaults to 'gitlab-workspaces'
 *     config: { 'gitlab-workspaces:proxyDomain': 'x' }, // raw config strings (objects: JSON text)
 *     secretKeys: ['gitlab-workspaces:oauthClientSecret'],
 *     overrides: { 'kubernetes:core/v1:Service': (args) => ({ status: ... }) }, // extra output state per type
 *     calls: (args) => ({}),              // provider function (invoke) results
 *     preview: false,
 *   });
 *   run.resources        CapturedResource[] in registration order (the stack itself included)
 *   run.outputs          the program's return value, resolved to plain values
 *   run.secretOutputs    names of the program's outputs that are Pulumi secrets
 *   run.find(type, name) / run.ofType(type) / run.children(r) / run.parentOf(r)
 *                        (find: exact name, else the one name ending in `-<name>`, as children of a component are named)
 *   run.error            set (and resources still returned) when the program threw; use runPulumiProgram
 *                        with { expectError: true } to get it instead of a rejection.
 *
 * Each CapturedResource carries: type, name, urn, custom, parentUrn, dependencies (URNs the engine
 * would order by: dependsOn plus input dependencies), inputs (plain, secrets unwrapped), secretPaths
 * (dotted input paths that arrived as Pulumi secrets), state (the mock's outputs, plain), options
 * (protect, retainOnDelete, deleteBeforeReplace, ignoreChanges, replaceOnChanges,
 * additionalSecretOutputs, deletedWith, provider, aliasUrns with `aliasUrns: true`).
 *
 * Default mock outputs mirror the real providers, including which outputs are secret (mocks ignore
 * additionalSecretOutputs, so the harness returns those values wrapped with `secretValue(v)`, which
 * overrides should use too):
 *   tls PrivateKey: a real key of the requested algorithm (privateKeyOpenssh/privateKeyPem secret,
 *     publicKeyOpenssh, publicKeyFingerprintSha256); certificates: a placeholder certPem;
 *   random RandomBytes (base64/hex secret), RandomPassword (result secret), RandomId, RandomString;
 *   docker-build Image: ref pinned by digest; Kubernetes objects: metadata.name auto-named like the
 *   provider when absent, LoadBalancer Services get status.loadBalancer.ingress (option
 *   `loadBalancer`: { ip } or { hostname }, default ip 203.0.113.10); helm Release: status deployed.
 *
 * `plainText(resource)` is the JSON of a resource's inputs with every secret value removed; use it to
 * assert that a secret never leaks into plain inputs. `isSecretOutput` tests an Output's secretness.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as pulumi from '@pulumi/pulumi';
import { utils as sshUtils } from 'ssh2';
import { ed25519OpenSsh } from './ssh-keygen';

// The SDK's wire markers for secrets in deserialized inputs (runtime/rpc.js specialSigKey/specialSecretSig).
const SIG_KEY = '4dabf18193072939515e22adb298388d';
const SECRET_SIG = '1b47061264138c4ac30d75fd1eb44270';

export interface CapturedResource {
  type: string;
  name: string;
  urn: string;
  id: string;
  custom: boolean;
  parentUrn: string | undefined;
  dependencies: string[];
  /** Input property → URNs its value came from (computed from other resources' outputs). */
  propertyDependencies?: Record<string, string[]>;
  inputs: Record<string, unknown>;
  secretPaths: string[];
  state: Record<string, unknown>;
  options: {
    protect: boolean;
    retainOnDelete: boolean;
    deleteBeforeReplace: boolean;
    ignoreChanges: string[];
    replaceOnChanges: string[];
    additionalSecretOutputs: string[];
    deletedWith: string;
    provider: string;
    /** Alias URNs, computed by the SDK (only with RunOptions.aliasUrns; else the alias specs are the engine's to resolve). */
    aliasUrns?: string[];
  };
}

export type StateOverride = (args: pulumi.runtime.MockResourceArgs) => Record<string, unknown>;

export interface RunOptions {
  project?: string;
  stack?: string;
  config?: Record<string, string>;
  secretKeys?: string[];
  overrides?: Record<string, StateOverride>;
  calls?: (args: pulumi.runtime.MockCallArgs) => Record<string, unknown>;
  loadBalancer?: { ip: string } | { hostname: string };
  preview?: boolean;
  /**
   * Have the SDK resolve aliases to URNs itself (parents' aliases inherited by their children, as for
   * an engine without alias specs) and capture them in `options.aliasUrns`.
   */
  aliasUrns?: boolean;
  /** Resolve with `error` set instead of rejecting when the program throws. */
  expectError?: boolean;
}

export interface RunResult {
  resources: CapturedResource[];
  outputs: Record<string, unknown>;
  secretOutputs: Set<string>;
  error?: Error;
  find(type: string, name?: string): CapturedResource;
  ofType(type: string): CapturedResource[];
  children(r: CapturedResource): CapturedResource[];
  parentOf(r: CapturedResource): CapturedResource | undefined;
}

/**
 * Marks a mock output value as secret, as the real provider does through additionalSecretOutputs
 * (which mocks ignore). Use it in `overrides` for provider-secret outputs.
 */
export function secretValue<T>(value: T): { value: T } {
  return { [SIG_KEY]: SECRET_SIG, value } as unknown as { value: T };
}

/** True when a deserialized input value is a Pulumi secret wrapper. */
export function isSecretWrapper(v: unknown): v is { value: unknown } {
  return typeof v === 'object' && v !== null && (v as Record<string, unknown>)[SIG_KEY] === SECRET_SIG;
}

/** Removes secret wrappers, recording the dotted paths where they were. */
function unwrap(v: unknown, path: string, secrets: string[]): unknown {
  if (isSecretWrapper(v)) {
    secrets.push(path);
    return unwrap(v.value, path, []);
  }
  if (Array.isArray(v)) return v.map((x, i) => unwrap(x, path ? `${path}.${i}` : String(i), secrets));
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = unwrap(x, path ? `${path}.${k}` : k, secrets);
    return out;
  }
  return v;
}

function redact(v: unknown): unknown {
  if (isSecretWrapper(v)) return '[secret]';
  if (Array.isArray(v)) return v.map(redact);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, redact(x)]));
  return v;
}

const rawInputs = new WeakMap<CapturedResource, unknown>();

/** JSON of the resource's inputs with secret values replaced by "[secret]". */
export function plainText(r: CapturedResource): string {
  return JSON.stringify(redact(rawInputs.get(r)));
}

export async function isSecretOutput(v: unknown): Promise<boolean> {
  return pulumi.isSecret(pulumi.output(v));
}

// --- default provider outputs -------------------------------------------------------------------

const keyCache = new Map<string, { openssh: string; pem: string; pub: string; fp: string }>();

/** A real SSH key pair so that anything parsing the key (the proxy's config loader) sees a valid one. */
export function mockKeyPair(algorithm: string, bits?: number) {
  const cacheKey = `${algorithm}:${bits ?? ''}`;
  const cached = keyCache.get(cacheKey);
  if (cached) return cached;
  const pair =
    algorithm === 'RSA'
      ? sshUtils.generateKeyPairSync('rsa', { bits: bits ?? 2048 })
      : algorithm === 'ECDSA'
        ? sshUtils.generateKeyPairSync('ecdsa', { bits: (bits ?? 256) as 256 | 384 | 521 })
        : ed25519OpenSsh();
  const parsed = sshUtils.parseKey(pair.private);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || key instanceof Error) throw new Error('mock key generation failed');
  const blob = Buffer.from(pair.public.split(' ')[1] ?? '', 'base64');
  const fp = `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
  const value = { openssh: pair.private, pem: key.getPrivatePEM(), pub: `${pair.public.split(' ').slice(0, 2).join(' ')}\n`, fp };
  keyCache.set(cacheKey, value);
  return value;
}

const ECDSA_BITS: Record<string, number> = { P224: 256, P256: 256, P384: 384, P521: 521 };

function defaultState(args: pulumi.runtime.MockResourceArgs, opts: RunOptions): Record<string, unknown> {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- provider inputs are read field by field
  const inputs = args.inputs as Record<string, any>;
  switch (args.type) {
    case 'tls:index/privateKey:PrivateKey': {
      const alg = String(inputs.algorithm ?? 'RSA');
      const k = mockKeyPair(alg, alg === 'RSA' ? Number(inputs.rsaBits ?? 2048) : ECDSA_BITS[String(inputs.ecdsaCurve ?? 'P224')]);
      return {
        privateKeyOpenssh: secretValue(k.openssh),
        privateKeyPem: secretValue(k.pem),
        privateKeyPemPkcs8: secretValue(k.pem),
        publicKeyOpenssh: k.pub,
        publicKeyPem: k.pub,
        publicKeyFingerprintSha256: k.fp,
        publicKeyFingerprintMd5: 'mock-md5',
      };
    }
    case 'tls:index/selfSignedCert:SelfSignedCert':
    case 'tls:index/locallySignedCert:LocallySignedCert':
      return { certPem: `-----BEGIN CERTIFICATE-----\nmock-${args.name}\n-----END CERTIFICATE-----\n`, readyForRenewal: false };
    case 'tls:index/certRequest:CertRequest':
      return { certRequestPem: `-----BEGIN CERTIFICATE REQUEST-----\nmock-${args.name}\n-----END CERTIFICATE REQUEST-----\n` };
    case 'random:index/randomBytes:RandomBytes': {
      const b = randomBytes(Number(inputs.length ?? 32));
      return { base64: secretValue(b.toString('base64')), hex: secretValue(b.toString('hex')) };
    }
    case 'random:index/randomPassword:RandomPassword':
      return { result: secretValue(randomBytes(24).toString('base64url').slice(0, Number(inputs.length ?? 24))) };
    case 'random:index/randomString:RandomString':
      return { result: randomBytes(24).toString('hex').slice(0, Number(inputs.length ?? 8)) };
    case 'random:index/randomId:RandomId': {
      const b = randomBytes(Number(inputs.byteLength ?? 4));
      return { hex: b.toString('hex'), b64Url: b.toString('base64url'), dec: BigInt(`0x${b.toString('hex')}`).toString() };
    }
    case 'docker-build:index:Image': {
      const digest = `sha256:${createHash('sha256').update(args.name).digest('hex')}`;
      const tag = String((inputs.tags as string[] | undefined)?.[0] ?? `registry.invalid/${args.name}:latest`);
      return { digest, ref: `${tag.replace(/:[^:/]+$/, '')}@${digest}` };
    }
    case 'kubernetes:helm.sh/v3:Release':
      return { status: { name: inputs.name ?? args.name, namespace: inputs.namespace ?? 'default', status: 'deployed', revision: 1 } };
    default:
      break;
  }
  if (args.type.startsWith('kubernetes:') && args.custom !== false && args.type !== 'pulumi:providers:kubernetes') {
    const metadata = { ...(inputs.metadata ?? {}) } as Record<string, unknown>;
    // The provider auto-names with a random suffix when no name is given.
    if (!metadata.name) metadata.name = `${args.name}-${createHash('sha256').update(args.name).digest('hex').slice(0, 8)}`;
    const state: Record<string, unknown> = { metadata };
    if (args.type === 'kubernetes:core/v1:Service' && inputs.spec?.type === 'LoadBalancer') {
      state.status = { loadBalancer: { ingress: [opts.loadBalancer ?? { ip: '203.0.113.10' }] } };
    }
    return state;
  }
  return {};
}

// --- running ------------------------------------------------------------------------------------

interface RegisterRequest {
  getType(): string;
  getName(): string;
  getParent(): string;
  getCustom(): boolean;
  getDependenciesList(): string[];
  getPropertydependenciesMap(): { forEach(cb: (v: { getUrnsList(): string[] }, k: string) => void): void };
  getProtect?(): boolean;
  getRetainondelete?(): boolean;
  getDeletebeforereplace(): boolean;
  getIgnorechangesList(): string[];
  getReplaceonchangesList(): string[];
  getAdditionalsecretoutputsList(): string[];
  getDeletedwith(): string;
  getProvider(): string;
  getAliasurnsList(): string[];
}

interface MonitorLike {
  newUrn(parent: string, type: string, name: string): string;
  getDeploymentInfo(req: unknown, cb: (err: unknown, resp: { getSupportedfeaturesList(): number[] } | undefined) => void): void;
  registerResource(req: RegisterRequest, cb: (err: unknown, resp: { getUrn(): string; getId(): string } | undefined) => void): Promise<void>;
}

export async function runPulumiProgram(program: () => unknown, opts: RunOptions = {}): Promise<RunResult> {
  const project = opts.project ?? 'gitlab-workspaces';
  const stack = opts.stack ?? 'test';
  const resources: CapturedResource[] = [];
  const states = new Map<string, Record<string, unknown>>();

  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        const merged = { ...(args.inputs as Record<string, unknown>), ...defaultState(args, opts) };
        const extra = opts.overrides?.[args.type]?.(args) ?? {};
        const state = { ...merged, ...extra };
        const id = args.id || `${args.name}-id`;
        states.set(`${args.type}::${args.name}`, state);
        return { id, state };
      },
      call(args) {
        return opts.calls?.(args) ?? {};
      },
    },
    project,
    stack,
    opts.preview ?? false,
  );
  pulumi.runtime.setAllConfig(opts.config ?? {}, opts.secretKeys ?? []);

  // Wrap the mock monitor to see what MockResourceArgs omits: parent, dependencies and options.
  const monitor = pulumi.runtime.getMonitor() as unknown as MonitorLike;
  // URNs as the engine makes them (pkg/resource/urn.go NewURN): the type is qualified by the parent's
  // whole qualified type, and the root stack's type is left out. The stock mock monitor keeps only the
  // immediate parent's type and keeps the stack's, so its URNs would not match real state (or aliases).
  monitor.newUrn = (parent, type, name) => {
    const parentType = parent ? (parent.split('::')[2] ?? '') : '';
    const qualified = parentType && parentType !== 'pulumi:pulumi:Stack' ? `${parentType}$${type}` : type;
    return `urn:pulumi:${stack}::${project}::${qualified}::${name}`;
  };
  if (opts.aliasUrns) {
    // The mock monitor claims alias-spec support, so the SDK would leave aliases to the engine. Deny
    // it (the SDK asks when the stack starts): the SDK then resolves alias URNs itself (runtime/resource.js).
    type ResourceProto = { ResourceMonitorFeature: Record<string, number> };
    const mod = (await import('@pulumi/pulumi/proto/resource_pb.js')) as unknown as ResourceProto & { default?: ResourceProto };
    const aliasSpecs = (mod.default ?? mod).ResourceMonitorFeature.RESOURCE_MONITOR_FEATURE_ALIAS_SPECS;
    // `Resource.get` reads reach the SDK's alias computation without a name and crash it when their
    // parent has aliases (runtime/resource.js readResource). A read is no owned state: give it none.
    type AliasFn = (aliases: unknown[], name: string | undefined, ...rest: unknown[]) => unknown[];
    const resourceModule = (await import('@pulumi/pulumi/resource.js')) as unknown as { allAliases: AliasFn; default?: { allAliases: AliasFn } };
    const target = resourceModule.default ?? resourceModule;
    const allAliases = target.allAliases;
    if (!(allAliases as { patched?: boolean }).patched) {
      const wrapped: AliasFn = (aliases, name, ...rest) => (name === undefined ? [] : allAliases(aliases, name, ...rest));
      (wrapped as { patched?: boolean }).patched = true;
      target.allAliases = wrapped;
    }
    const info = monitor.getDeploymentInfo.bind(monitor);
    monitor.getDeploymentInfo = (req, cb) =>
      info(req, (err, resp) => {
        if (resp) {
          const list = resp.getSupportedfeaturesList().filter((f) => f !== aliasSpecs);
          resp.getSupportedfeaturesList = () => list;
        }
        cb(err, resp);
      });
  }
  const original = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req, cb) =>
    original(req, (err, resp) => {
      if (!err && resp) {
        const secretPaths: string[] = [];
        const raw = pulumi.runtime.deserializeProperties((req as unknown as { getObject(): never }).getObject());
        const deps = new Set(req.getDependenciesList());
        const propertyDependencies: Record<string, string[]> = {};
        req.getPropertydependenciesMap().forEach((v, k) => {
          propertyDependencies[k] = v.getUrnsList();
          v.getUrnsList().forEach((u) => deps.add(u));
        });
        const r: CapturedResource = {
          type: req.getType(),
          name: req.getName(),
          urn: resp.getUrn(),
          id: resp.getId(),
          custom: req.getCustom(),
          parentUrn: req.getParent() || undefined,
          dependencies: [...deps],
          propertyDependencies,
          inputs: unwrap(raw, '', secretPaths) as Record<string, unknown>,
          secretPaths,
          state: (unwrap(states.get(`${req.getType()}::${req.getName()}`) ?? {}, '', []) ?? {}) as Record<string, unknown>,
          options: {
            protect: req.getProtect?.() ?? false,
            retainOnDelete: req.getRetainondelete?.() ?? false,
            deleteBeforeReplace: req.getDeletebeforereplace(),
            ignoreChanges: req.getIgnorechangesList(),
            replaceOnChanges: req.getReplaceonchangesList(),
            additionalSecretOutputs: req.getAdditionalsecretoutputsList(),
            deletedWith: req.getDeletedwith(),
            provider: req.getProvider(),
            aliasUrns: req.getAliasurnsList(),
          },
        };
        rawInputs.set(r, raw);
        resources.push(r);
      }
      cb(err, resp);
    });

  let returned: unknown;
  let error: Error | undefined;
  let outputs: Record<string, unknown> = {};
  // An error inside an apply (e.g. a render that rejects) would otherwise be an unhandled rejection
  // that ends the process; Pulumi reports it as a failed deployment, so does the harness.
  const onRejection = (reason: unknown) => {
    error ??= reason instanceof Error ? reason : new Error(String(reason));
  };
  process.on('unhandledRejection', onRejection);
  try {
    outputs = ((await pulumi.runtime.runInPulumiStack(async () => {
      // A program error is caught here: thrown out of the stack's init it would surface as an
      // unhandled rejection and end the test process.
      try {
        returned = await program();
      } catch (e) {
        error = e instanceof Error ? e : new Error(String(e));
        return {};
      }
      return returned;
    })) ?? {}) as Record<string, unknown>;
  } catch (e) {
    error ??= e instanceof Error ? e : new Error(String(e));
  }
  // Resources nobody exported may still be registering: drain the RPC queue.
  const settings = (await import('@pulumi/pulumi/runtime/settings.js')) as unknown as { waitForRPCs(): Promise<void> };
  try {
    await settings.waitForRPCs();
  } catch (e) {
    error ??= e instanceof Error ? e : new Error(String(e));
  }
  // Let rejections raised by the last RPCs reach the handler before it goes.
  await new Promise((resolve) => setImmediate(resolve));
  process.off('unhandledRejection', onRejection);
  if (error && !opts.expectError) throw error;

  const secretOutputs = new Set<string>();
  if (returned && typeof returned === 'object') {
    for (const [k, v] of Object.entries(returned)) if (await isSecretOutput(v)) secretOutputs.add(k);
  }
  const byUrn = new Map(resources.map((r) => [r.urn, r]));
  return {
    resources,
    outputs,
    secretOutputs,
    error,
    ofType: (type) => resources.filter((r) => r.type === type),
    find(type, name) {
      const ofType = resources.filter((r) => r.type === type);
      let hit = ofType.filter((r) => name === undefined || r.name === name);
      // Inside a component children are named `<component>-<part>`: `find(type, 'controller-lb')` also
      // finds `gitlab-workspaces-controller-lb` when no resource has the bare name.
      if (hit.length === 0 && name !== undefined) hit = ofType.filter((r) => r.name.endsWith(`-${name}`));
      if (hit.length !== 1) {
        throw new Error(`expected one ${type}${name ? ` named ${name}` : ''}, found ${hit.length}: ${resources.map((r) => `${r.type}/${r.name}`).join(', ')}`);
      }
      return hit[0] as CapturedResource;
    },
    children: (p) => resources.filter((r) => r.parentUrn === p.urn),
    parentOf: (r) => (r.parentUrn ? byUrn.get(r.parentUrn) : undefined),
  };
}

/**
 * Reads a shipped `Pulumi.<stack>.yaml` into the flat `project:key` → string map that
 * setAllConfig takes. Objects and arrays become JSON text (as the CLI passes them); `secure:` values
 * are replaced by `fixtures[key]` (a missing fixture is an error, so a new secret key is noticed).
 * Secrets an operator sets after cloning are documented in the file's comments as
 * `pulumi config set --secret <key> ...`; those keys get their fixture too (project-qualified), so a
 * stack needing an undocumented secret fails its test.
 */
export async function loadStackConfig(
  file: string,
  fixtures: Record<string, string>,
): Promise<{ config: Record<string, string>; secretKeys: string[] }> {
  const { readFile } = await import('node:fs/promises');
  const { parse } = await import('yaml');
  const text = await readFile(file, 'utf8');
  const doc = (parse(text) ?? {}) as { config?: Record<string, unknown> };
  const config: Record<string, string> = {};
  const secretKeys: string[] = [];
  for (const m of text.matchAll(/^\s*#.*pulumi config set --secret ([\w:-]+)/gm)) {
    const key = (m[1] as string).includes(':') ? (m[1] as string) : `gitlab-workspaces:${m[1]}`;
    const fixture = fixtures[key];
    if (fixture === undefined) throw new Error(`${file}: no test fixture for documented secret ${key}`);
    config[key] = fixture;
    secretKeys.push(key);
  }
  for (const [key, value] of Object.entries(doc.config ?? {})) {
    if (value && typeof value === 'object' && !Array.isArray(value) && 'secure' in value) {
      const fixture = fixtures[key];
      if (fixture === undefined) throw new Error(`${file}: no test fixture for secure key ${key}`);
      config[key] = fixture;
      secretKeys.push(key);
    } else {
      config[key] = typeof value === 'string' ? value : JSON.stringify(value);
    }
  }
  return { config, secretKeys };
}
