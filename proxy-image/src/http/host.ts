// Host header handling: what a request is addressed to, and whether it is one of the proxy's own names.
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';

export interface ParsedHost {
  /** Host header as sent, lowercased (with port): used for redirects back to the same host. */
  authority: string;
  /** Hostname without port or IPv6 brackets, lowercased. */
  hostname: string;
}

const HOSTNAME = /^[a-z0-9](?:[a-z0-9-]{0,62})(?:\.[a-z0-9](?:[a-z0-9-]{0,62}))*\.?$/;

/** undefined when the header is missing; 'invalid' when it is not a hostname[:port] a browser could send. */
export function parseHost(header: string | undefined): ParsedHost | 'invalid' | undefined {
  if (header === undefined || header === '') return undefined;
  const authority = header.toLowerCase();
  if (authority.length > 300) return 'invalid';
  let hostname: string;
  let port: string | undefined;
  if (authority.startsWith('[')) {
    const end = authority.indexOf(']');
    if (end < 0) return 'invalid';
    hostname = authority.slice(1, end);
    const rest = authority.slice(end + 1);
    if (rest !== '' && !rest.startsWith(':')) return 'invalid';
    port = rest ? rest.slice(1) : undefined;
    if (isIP(hostname) !== 6) return 'invalid';
  } else {
    const colon = authority.lastIndexOf(':');
    hostname = colon >= 0 ? authority.slice(0, colon) : authority;
    port = colon >= 0 ? authority.slice(colon + 1) : undefined;
    if (!HOSTNAME.test(hostname)) return 'invalid';
  }
  if (port !== undefined && !/^\d{1,5}$/.test(port)) return 'invalid';
  return { authority, hostname: hostname.endsWith('.') ? hostname.slice(0, -1) : hostname };
}

/** Hosts a kubelet probe or an operator on the pod would use: internal endpoints answer there (docs/contract.md §4). */
export function isInternalHost(host: ParsedHost | undefined): boolean {
  return host === undefined || host.hostname === 'localhost' || isIP(host.hostname) !== 0;
}

/** The request's Host; two Host headers (Node keeps the first) are refused rather than guessed at. */
export function hostOf(req: IncomingMessage): ParsedHost | 'invalid' | undefined {
  let seen = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]!.length === 4 && req.rawHeaders[i]!.toLowerCase() === 'host') seen++;
  return seen > 1 ? 'invalid' : parseHost(req.headers.host);
}

/**
 * Absolute-form request targets (`GET http://host/path`, legal in HTTP/1.1) are reduced to origin form when
 * they name the Host header's authority, so routing, reserved paths and the workspace all read one path.
 * A target naming another authority is refused ('other_authority'): the proxy routes by Host and never
 * guesses. Anything else that is not a path (`*`, which only asks about a server itself, `ftp://…`) is
 * 'not_a_path': a workspace cannot be asked it, and forwarding it would fail as if the workspace were down.
 */
export function toOriginForm(req: IncomingMessage, host: ParsedHost, protocol: 'http' | 'https'): 'ok' | 'other_authority' | 'not_a_path' {
  const url = req.url ?? '/';
  if (url.startsWith('/')) return 'ok';
  const m = /^(https?):\/\/([^/?#]*)/i.exec(url);
  if (!m) return 'not_a_path';
  const target = parseHost(m[2]);
  if (target === undefined || target === 'invalid' || target.hostname !== host.hostname) return 'other_authority';
  const portOf = (a: ParsedHost, scheme: string) => /:(\d+)$/.exec(a.authority)?.[1] ?? (scheme === 'https' ? '443' : '80');
  if (portOf(target, m[1]!.toLowerCase()) !== portOf(host, protocol)) return 'other_authority';
  const rest = url.slice(m[0].length);
  req.url = rest.startsWith('/') ? rest : `/${rest}`;
  return 'ok';
}
