// SSH key pairs for tests, made in process.
//
//   const { private: pem, public: line } = ed25519OpenSsh();   // OpenSSH private key, `ssh-ed25519 AAAA…`
//
// Use it instead of ssh2's utils.generateKeyPairSync('ed25519'), which makes 1 key in 256 unparsable.
import { generateKeyPairSync, randomBytes } from 'node:crypto';

/**
 * An ed25519 key pair in OpenSSH's formats, encoded here rather than by ssh2's generateKeyPairSync:
 * ssh2 (1.17) strips every leading zero byte of the public key's BIT STRING, meant for the unused-bits
 * byte, so a key whose public half starts with 0x00 (1 in 256) comes out 31 bytes long and its private
 * key does not parse ("mock key generation failed" in an unlucky run). Format: OpenSSH PROTOCOL.key.
 */
export function ed25519OpenSsh(): { private: string; public: string } {
  const { privateKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  const pub = Buffer.from(jwk.x as string, 'base64url');
  const seed = Buffer.from(jwk.d as string, 'base64url');
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  const str = (b: Buffer | string) => {
    const buf = typeof b === 'string' ? Buffer.from(b) : b;
    return Buffer.concat([u32(buf.length), buf]);
  };
  const pubBlob = Buffer.concat([str('ssh-ed25519'), str(pub)]);
  const check = randomBytes(4);
  let priv = Buffer.concat([check, check, str('ssh-ed25519'), str(pub), str(Buffer.concat([seed, pub])), str('')]);
  const pad = (8 - (priv.length % 8)) % 8;
  priv = Buffer.concat([priv, Buffer.from(Array.from({ length: pad }, (_, i) => i + 1))]);
  const body = Buffer.concat([Buffer.from('openssh-key-v1\0'), str('none'), str('none'), str(''), u32(1), str(pubBlob), str(priv)]);
  const lines = body.toString('base64').match(/.{1,70}/g) ?? [];
  return {
    private: `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join('\n')}\n-----END OPENSSH PRIVATE KEY-----\n`,
    public: `ssh-ed25519 ${pubBlob.toString('base64')}`,
  };
}
