// Host header handling: what a request is addressed to, and whether it is one of the proxy's own names.
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
