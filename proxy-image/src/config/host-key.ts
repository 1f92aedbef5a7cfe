// ssh.host_key may be "PEM or OpenSSH, RSA, ECDSA or Ed25519" (docs/contract.md §2). ssh2 reads OpenSSH keys and
// the traditional PEM forms (PKCS#1 RSA, SEC1 EC) but not PKCS#8 ("BEGIN PRIVATE KEY"), which is what
// `openssl genpkey` writes and the only PEM form an Ed25519 key has. Such keys are converted here, once at
// start, into a form ssh2 reads; nothing about the key is ever logged.
import { createPrivateKey, randomBytes, type KeyObject } from 'node:crypto';
import { utils as sshUtils } from 'ssh2';

/** Returns the key text to hand to ssh2, or throws an Error saying (without key material) why it is unusable. */
export function readHostKey(text: string): string {
  const direct = firstKey(sshUtils.parseKey(text));
  if (!(direct instanceof Error)) {
    if (!direct.isPrivateKey()) throw new Error('is a public key; a private host key is needed');
    return text;
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: text, format: 'pem' });
  } catch {
    throw new Error(`cannot read the private key (${direct.message})`);
  }
  const converted = convert(key);
  const check = firstKey(sshUtils.parseKey(converted));
  if (check instanceof Error || !check.isPrivateKey()) throw new Error('cannot read the private key (conversion failed)');
  return converted;
}

function firstKey(parsed: ReturnType<typeof sshUtils.parseKey>): Exclude<ReturnType<typeof sshUtils.parseKey>, unknown[]> {
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  return key ?? new Error('no key found');
}

function convert(key: KeyObject): string {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return key.export({ type: 'pkcs1', format: 'pem' }).toString();
    case 'ec':
      return key.export({ type: 'sec1', format: 'pem' }).toString();
    case 'ed25519':
      return ed25519ToOpenSsh(key);
    default:
      throw new Error(`cannot read the private key (unsupported key type ${key.asymmetricKeyType ?? 'unknown'}; use RSA, ECDSA or Ed25519)`);
  }
}

function sshString(data: Buffer | string): Buffer {
  const buf = typeof data === 'string' ? Buffer.from(data) : data;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(buf.length);
  return Buffer.concat([len, buf]);
}

/** The unencrypted "openssh-key-v1" container (PROTOCOL.key in OpenSSH) for one Ed25519 key. */
function ed25519ToOpenSsh(key: KeyObject): string {
  const jwk = key.export({ format: 'jwk' });
  const seed = Buffer.from(jwk.d ?? '', 'base64url');
  const pub = Buffer.from(jwk.x ?? '', 'base64url');
  const publicBlob = Buffer.concat([sshString('ssh-ed25519'), sshString(pub)]);
  const check = randomBytes(4);
  let section = Buffer.concat([check, check, sshString('ssh-ed25519'), sshString(pub), sshString(Buffer.concat([seed, pub])), sshString('')]);
  const pad = (8 - (section.length % 8)) % 8;
  section = Buffer.concat([section, Buffer.from(Array.from({ length: pad }, (_, i) => i + 1))]);
  const body = Buffer.concat([
    Buffer.from('openssh-key-v1\0'),
    sshString('none'),
    sshString('none'),
    sshString(''),
    Buffer.from([0, 0, 0, 1]),
    sshString(publicBlob),
    sshString(section),
  ]).toString('base64');
  const lines = body.match(/.{1,70}/g) ?? [];
  return `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join('\n')}\n-----END OPENSSH PRIVATE KEY-----\n`;
}
