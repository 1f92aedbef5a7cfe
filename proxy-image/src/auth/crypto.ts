// Everything the proxy signs or encrypts, keyed from auth.signing_key.
// Two keys are derived with HKDF so that one purpose can never stand in for another: an AES-256-GCM key
// for sealed values (cookies, login state, handoff tokens: confidential and tamper-proof) and an HMAC key
// for fingerprints (browser binding, cache keys, cookie names). Every replica derives the same keys, so
// any replica can open what another sealed.
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';

const VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** What a sealed value is for. Bound as GCM additional data: a token sealed for one purpose never opens as another. */
export type SealPurpose = 'login-start' | 'oauth-state' | 'handoff' | 'session';

export interface Sealer {
  /** Encrypts and authenticates `payload`, valid until `expiresAt` (epoch ms). Returns a base64url string. */
  seal(purpose: SealPurpose, payload: object, expiresAt: number): string;
  /** The payload, or undefined when the value is malformed, tampered, for another purpose or expired. */
  open<T>(purpose: SealPurpose, sealed: string, now?: number): T | undefined;
  /** Keyed fingerprint (base64url HMAC-SHA256): safe to compare and to store where the input must not be. */
  fingerprint(value: string): string;
}

export function deriveKey(secret: string, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(secret, 'utf8'), Buffer.from('gitlab-workspaces-proxy'), Buffer.from(info), 32));
}

export function createSealer(signingKey: string): Sealer {
  const encKey = deriveKey(signingKey, 'seal/aes-256-gcm/v1');
  const macKey = deriveKey(signingKey, 'fingerprint/hmac-sha256/v1');

  return {
    seal(purpose, payload, expiresAt) {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', encKey, iv);
      cipher.setAAD(Buffer.from(`${VERSION}:${purpose}`));
      const body = cipher.update(JSON.stringify({ e: expiresAt, p: payload }), 'utf8');
      const final = cipher.final();
      return Buffer.concat([Buffer.from([VERSION]), iv, cipher.getAuthTag(), body, final]).toString('base64url');
    },
    open<T>(purpose: SealPurpose, sealed: string, now = Date.now()): T | undefined {
      // Bound the work an attacker can cause: anything this large was not made by us.
      if (typeof sealed !== 'string' || sealed.length > 8192 || !/^[A-Za-z0-9_-]+$/.test(sealed)) return undefined;
      const raw = Buffer.from(sealed, 'base64url');
      if (raw.length < 1 + IV_BYTES + TAG_BYTES + 2 || raw[0] !== VERSION) return undefined;
      // Only the one spelling seal() writes: base64url decoding ignores a last character's spare bits, so
      // without this a changed value could still open (same bytes, but "tampered is rejected" must hold).
      if (raw.toString('base64url') !== sealed) return undefined;
      try {
        const decipher = createDecipheriv('aes-256-gcm', encKey, raw.subarray(1, 1 + IV_BYTES));
        decipher.setAAD(Buffer.from(`${VERSION}:${purpose}`));
        decipher.setAuthTag(raw.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES));
        const text = Buffer.concat([decipher.update(raw.subarray(1 + IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
        const parsed = JSON.parse(text) as { e?: unknown; p?: unknown };
        if (typeof parsed.e !== 'number' || parsed.e <= now || typeof parsed.p !== 'object' || parsed.p === null) return undefined;
        return parsed.p as T;
      } catch {
        return undefined;
      }
    },
    fingerprint(value) {
      return createHmac('sha256', macKey).update(value, 'utf8').digest('base64url');
    },
  };
}

/** Constant-time equality of two strings. */
export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

export function randomToken(bytes = 24): string {
  return randomBytes(bytes).toString('base64url');
}
