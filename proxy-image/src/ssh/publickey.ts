// The signature half of an SSH public-key login (RFC 4252 §7): the client proves it holds the private key
// of the public key it offered by signing the session identifier and request; the proxy checks that
// signature against the GitLab key the offered key matched, never against what the client sent alone.
import { utils, type PublicKeyAuthContext } from 'ssh2';
import type { GitLabSshKey } from '../auth/gitlab-keys-api';

/** Base64 of the offered public key blob: how GitLab's key list is matched. */
export function offeredBlob(ctx: PublicKeyAuthContext): string {
  return ctx.key.data.toString('base64');
}

/** True when `ctx` carries a signature made with the private half of `key`. */
export function signatureValid(key: GitLabSshKey, ctx: PublicKeyAuthContext): boolean {
  if (!ctx.signature || !ctx.blob) return false;
  const parsed = utils.parseKey(`${key.type} ${key.blob}`);
  if (parsed instanceof Error || Array.isArray(parsed)) return false;
  if (!parsed.getPublicSSH().equals(ctx.key.data)) return false;
  return parsed.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true;
}
