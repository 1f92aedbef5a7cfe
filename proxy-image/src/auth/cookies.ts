// The proxy's own cookies: names, attributes, parsing and stripping before a request reaches a workspace.
// No cookie of the proxy ever carries a Domain attribute (host-only); on https the names use the `__Host-`
// prefix so browsers themselves refuse any Domain-scoped or non-Secure impostor.

export interface CookieNames {
  /** The session on one workspace host. */
  session: string;
  /** Browser binding set on a workspace host before login; the handoff must come back with it. */
  login: string;
  /** Prefix of the per-login state cookies on the proxy domain (one per login in progress). */
  oauthPrefix: string;
}

export function cookieNames(secure: boolean): CookieNames {
  const p = secure ? '__Host-' : '';
  return { session: `${p}wsp-session`, login: `${p}wsp-login`, oauthPrefix: `${p}wsp-oauth-` };
}

export interface CookieOptions {
  secure: boolean;
  /** Seconds; 0 deletes the cookie. Omitted: a browser-session cookie. */
  maxAge?: number;
  path?: string;
}

/** A Set-Cookie value: always HttpOnly, SameSite=Lax, host-only. */
export function serializeCookie(name: string, value: string, opts: CookieOptions): string {
  let out = `${name}=${value}; Path=${opts.path ?? '/'}; HttpOnly; SameSite=Lax`;
  if (opts.maxAge !== undefined) out += `; Max-Age=${Math.max(0, Math.floor(opts.maxAge))}`;
  if (opts.secure) out += '; Secure';
  return out;
}

export function deleteCookie(name: string, opts: { secure: boolean; path?: string }): string {
  return serializeCookie(name, '', { ...opts, maxAge: 0 });
}

/** First value of each cookie name in a Cookie header. Malformed pairs are skipped, never thrown on. */
export function parseCookies(header: string | string[] | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (header === undefined) return out;
  const text = Array.isArray(header) ? header.join('; ') : header;
  for (const part of text.split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    if (!name || out.has(name)) continue;
    let value = part.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    out.set(name, value);
  }
  return out;
}

/**
 * Every value sent under `name`. A cookie set for a parent domain by another host of the same zone can
 * travel next to the proxy's own (http setups only: `__Host-` names prevent it on https), so callers try
 * each value instead of trusting the first.
 */
export function cookieValues(header: string | string[] | undefined, name: string): string[] {
  if (header === undefined) return [];
  const text = Array.isArray(header) ? header.join('; ') : header;
  const out: string[] = [];
  const prefix = `${name}=`;
  for (const part of text.split(';')) {
    const trimmed = part.trim();
    if (trimmed.startsWith(prefix)) out.push(trimmed.slice(prefix.length));
  }
  return out;
}

/**
 * The Cookie header without the proxy's own cookies (and only them), or undefined when nothing is left.
 * Everything else is passed on byte for byte.
 */
export function stripProxyCookies(header: string | string[] | undefined, names: CookieNames): string | undefined {
  if (header === undefined) return undefined;
  const text = Array.isArray(header) ? header.join('; ') : header;
  if (!text.includes('wsp-')) return text; // fast path: nothing of ours
  const kept: string[] = [];
  for (const part of text.split(';')) {
    const trimmed = part.trim();
    if (!trimmed) continue;
    const eq = trimmed.indexOf('=');
    const name = (eq < 0 ? trimmed : trimmed.slice(0, eq)).trim();
    if (isProxyCookie(name, names)) continue;
    kept.push(trimmed);
  }
  return kept.length > 0 ? kept.join('; ') : undefined;
}

function isProxyCookie(name: string, names: CookieNames): boolean {
  // Both the https and http spellings are ours, whatever this proxy's protocol is.
  const bare = name.startsWith('__Host-') ? name.slice('__Host-'.length) : name;
  return bare === 'wsp-session' || bare === 'wsp-login' || bare.startsWith('wsp-oauth-') || name === names.session;
}
