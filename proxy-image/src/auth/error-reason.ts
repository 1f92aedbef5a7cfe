// Why a call to GitLab failed, as one line for the logs. fetch (undici) reports every transport failure as
// "fetch failed" and puts the reason in `cause` (a refused connection, a reset, a timeout, a certificate it
// does not trust); logging only the message left operators with a 503 and no reason. The chain of messages
// and error codes carries no secret: tokens travel in headers and bodies, never in these errors.

/** TLS verification failures: GitLab's certificate chain is not trusted by this process. */
const UNTRUSTED_CERTIFICATE = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_UNTRUSTED', 'CERT_SIGNATURE_FAILURE',
]);

const MAX_DEPTH = 4;

/**
 * "fetch failed: self-signed certificate in certificate chain (SELF_SIGNED_CERT_IN_CHAIN); GitLab's TLS
 * certificate is not trusted: give the proxy its CA (NODE_EXTRA_CA_CERTS, the stack's gitlabCaBundle)".
 */
export function errorReason(err: unknown): string {
  const parts: string[] = [];
  let untrusted = false;
  let e: unknown = err;
  for (let depth = 0; depth < MAX_DEPTH && e !== undefined && e !== null; depth++) {
    const { message, code, name, cause } = e as { message?: unknown; code?: unknown; name?: unknown; cause?: unknown };
    // AbortSignal.timeout's TimeoutError: "The operation was aborted due to timeout" says less than this.
    const text = name === 'TimeoutError' ? 'timeout' : typeof message === 'string' && message ? message : String(e);
    parts.push(typeof code === 'string' && !text.includes(code) ? `${text} (${code})` : text);
    if (typeof code === 'string' && UNTRUSTED_CERTIFICATE.has(code)) untrusted = true;
    e = cause;
  }
  const reason = parts.join(': ');
  return untrusted
    ? `${reason}; GitLab's TLS certificate is not trusted: give the proxy its CA (NODE_EXTRA_CA_CERTS, the stack's gitlabCaBundle)`
    : reason;
}
