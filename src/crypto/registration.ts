/**
 * Registration crypto (R1/R2), the only place public-key operations happen.
 *
 * KUcenter[KS]: the wallet seals its fresh 32-byte session key KS to the
 * center's X25519 key: ephemeral X25519 -> shared secret -> HKDF-SHA-256
 * (salt = ephemeralPub || centerPub) -> XChaCha20-Poly1305 key. The walletId
 * is authenticated as associated data so a sealed KS can't be moved to
 * another registration.
 * KS[Custom_Secret]: XChaCha20-Poly1305 under KS, with the walletId and the
 * customer id as associated data.
 */
import { x25519 } from "@noble/curves/ed25519.js";
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { randomBytes } from "@noble/hashes/utils.js";
import { CanonicalWriter, TAG } from "./canonical.js";

export const SESSION_KEY_BYTES = 32;
export const CUSTOM_SECRET_BYTES = 32;
const NONCE_BYTES = 24;
const TAG_BYTES = 16;
/** ephemeral public key (32) || nonce (24) || ciphertext (32) || tag (16) */
export const SEALED_SESSION_KEY_BYTES = 32 + NONCE_BYTES + SESSION_KEY_BYTES + TAG_BYTES;
/** nonce (24) || ciphertext (32) || tag (16) */
export const ENCRYPTED_CUSTOM_SECRET_BYTES = NONCE_BYTES + CUSTOM_SECRET_BYTES + TAG_BYTES;

export interface CenterKeyPair {
  secretKey: Uint8Array;
  publicKey: Uint8Array;
}

export function generateCenterKeyPair(): CenterKeyPair {
  const secretKey = x25519.utils.randomSecretKey();
  return { secretKey, publicKey: x25519.getPublicKey(secretKey) };
}

export function centerPublicKey(secretKey: Uint8Array): Uint8Array {
  return x25519.getPublicKey(secretKey);
}

function sealAad(walletId: string): Uint8Array {
  return new CanonicalWriter(64).str(TAG.sealSessionKey).str(walletId).finish().slice();
}

function customSecretAad(walletId: string, secretId: number, serialNumber: bigint): Uint8Array {
  return new CanonicalWriter(80).str(TAG.encryptCustomSecret).str(walletId).u32(secretId).u64(serialNumber).finish().slice();
}

function sealKey(shared: Uint8Array, ephemeralPub: Uint8Array, centerPub: Uint8Array): Uint8Array {
  const salt = new Uint8Array(64);
  salt.set(ephemeralPub, 0);
  salt.set(centerPub, 32);
  return hkdf(sha256, shared, salt, new TextEncoder().encode(TAG.sealSessionKey), 32);
}

/** Wallet side of R1: KUcenter[KS]. `ephemeralSecret` and `nonce` are for test vectors only. */
export function sealSessionKey(
  centerPub: Uint8Array,
  walletId: string,
  sessionKey: Uint8Array,
  ephemeralSecret: Uint8Array = x25519.utils.randomSecretKey(),
  nonce: Uint8Array = randomBytes(NONCE_BYTES),
): Uint8Array {
  if (centerPub.length !== 32) throw new RangeError('"centerPub" expected 32 bytes');
  if (sessionKey.length !== SESSION_KEY_BYTES) throw new RangeError('"sessionKey" expected 32 bytes');
  const ephemeralPub = x25519.getPublicKey(ephemeralSecret);
  const key = sealKey(x25519.getSharedSecret(ephemeralSecret, centerPub), ephemeralPub, centerPub);
  const ct = xchacha20poly1305(key, nonce, sealAad(walletId)).encrypt(sessionKey);
  const out = new Uint8Array(SEALED_SESSION_KEY_BYTES);
  out.set(ephemeralPub, 0);
  out.set(nonce, 32);
  out.set(ct, 32 + NONCE_BYTES);
  return out;
}

/** Center side of R1. Throws on any tampering (wrong length, wrong key, altered bytes or walletId). */
export function openSessionKey(center: CenterKeyPair, walletId: string, sealed: Uint8Array): Uint8Array {
  if (sealed.length !== SEALED_SESSION_KEY_BYTES) {
    throw new RangeError(`"sealed_session_key" expected ${SEALED_SESSION_KEY_BYTES} bytes, got ${sealed.length}`);
  }
  const ephemeralPub = sealed.subarray(0, 32);
  const nonce = sealed.subarray(32, 32 + NONCE_BYTES);
  const ct = sealed.subarray(32 + NONCE_BYTES);
  const key = sealKey(x25519.getSharedSecret(center.secretKey, ephemeralPub), ephemeralPub, center.publicKey);
  return xchacha20poly1305(key, nonce, sealAad(walletId)).decrypt(ct);
}

/** Center side of R2: KS[Custom_Secret]. */
export function encryptCustomSecret(
  sessionKey: Uint8Array,
  walletId: string,
  customId: { secretId: number; serialNumber: bigint },
  customSecret: Uint8Array,
  nonce: Uint8Array = randomBytes(NONCE_BYTES),
): Uint8Array {
  // Without this a short secret left zero bytes at the end of the fixed-size
  // blob (a 72-byte output that never decrypts) and a long one threw an opaque
  // "offset is out of bounds".
  if (customSecret.length !== CUSTOM_SECRET_BYTES) {
    throw new RangeError(`"customSecret" expected ${CUSTOM_SECRET_BYTES} bytes, got ${customSecret.length}`);
  }
  const aad = customSecretAad(walletId, customId.secretId, customId.serialNumber);
  const ct = xchacha20poly1305(sessionKey, nonce, aad).encrypt(customSecret);
  const out = new Uint8Array(ENCRYPTED_CUSTOM_SECRET_BYTES);
  out.set(nonce, 0);
  out.set(ct, NONCE_BYTES);
  return out;
}

/** Wallet side of R2. Throws if the blob was altered or is for another wallet or customer id. */
export function decryptCustomSecret(
  sessionKey: Uint8Array,
  walletId: string,
  customId: { secretId: number; serialNumber: bigint },
  blob: Uint8Array,
): Uint8Array {
  if (blob.length !== ENCRYPTED_CUSTOM_SECRET_BYTES) {
    throw new RangeError(`"encrypted_custom_secret" expected ${ENCRYPTED_CUSTOM_SECRET_BYTES} bytes, got ${blob.length}`);
  }
  const aad = customSecretAad(walletId, customId.secretId, customId.serialNumber);
  return xchacha20poly1305(sessionKey, blob.subarray(0, NONCE_BYTES), aad).decrypt(blob.subarray(NONCE_BYTES));
}
