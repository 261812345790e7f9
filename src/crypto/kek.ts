/**
 * Key wrapping: every key the center keeps in its ledger (scrip-certificate
 * keys, Custom_Secret master keys, the X25519 registration key, every vendor
 * secret) is stored encrypted under a key-encryption key (KEK) that lives
 * outside the database. A copy of the database file alone then holds no key
 * that can certify a scrip, derive a Custom_Secret or sign as a vendor.
 *
 * Format of a wrapped key (binary, in the same BLOB column the plain key used
 * to occupy):
 *
 *   "SWK1" | KEK fingerprint (8) | nonce (24) | XChaCha20-Poly1305(key) + tag (16)
 *
 * The associated data names the row (`keys/certificate/3`,
 * `vendor_keys/mall-1/2`), so a wrapped key moved to another row does not
 * unwrap: someone who can write the database cannot swap a vendor's secret
 * for another's. The fingerprint says which KEK wrapped it, so a rotation can
 * proceed row by row while both KEKs are known.
 *
 * Pure: no I/O. Loading KEKs from a file or the environment is in
 * src/center/kek-store.ts.
 */
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { sha256 } from "@noble/hashes/sha2.js";

/** A KEK is 32 random bytes. */
export const KEK_BYTES = 32;
const MAGIC = new Uint8Array([0x53, 0x57, 0x4b, 0x31]); // "SWK1"
const FINGERPRINT_BYTES = 8;
const NONCE_BYTES = 24;
const TAG_BYTES = 16;
const HEADER_BYTES = MAGIC.length + FINGERPRINT_BYTES + NONCE_BYTES;
const AAD_PREFIX = "scripwire/kek-wrap/v1\0";

export class KekError extends Error {
  constructor(
    readonly reason: "KEK_UNKNOWN" | "KEK_REQUIRED" | "KEY_UNWRAP_FAILED" | "BAD_KEK",
    message: string,
  ) {
    super(message);
    this.name = "KekError";
  }
}

/** 8-byte id of a KEK, shown as hex in messages and stored in each wrapped key. */
export function kekFingerprint(kek: Uint8Array): Uint8Array {
  return sha256(new Uint8Array([...new TextEncoder().encode("scripwire/kek-id/v1\0"), ...kek])).subarray(0, FINGERPRINT_BYTES);
}

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

/** True for the output of {@link KeyEncryptionKeys.wrap}. Plain keys (32 bytes) never are: a wrapped key is longer. */
export function isWrapped(stored: Uint8Array): boolean {
  return stored.length > HEADER_BYTES + TAG_BYTES && MAGIC.every((m, i) => stored[i] === m);
}

/** The fingerprint (hex) of the KEK that wrapped `stored`, or undefined for a plain key. */
export function wrappedBy(stored: Uint8Array): string | undefined {
  return isWrapped(stored) ? hex(stored.subarray(MAGIC.length, MAGIC.length + FINGERPRINT_BYTES)) : undefined;
}

/**
 * The KEKs a center knows: the first wraps, all of them unwrap (older ones
 * stay during a rotation). `reload`, when given, is asked once for a fresh
 * list when a key names a KEK not known yet: another process rotated.
 */
export class KeyEncryptionKeys {
  private byFingerprint = new Map<string, Uint8Array>();
  private current!: { kek: Uint8Array; fingerprint: Uint8Array };

  constructor(
    keks: readonly Uint8Array[],
    private readonly reload?: () => readonly Uint8Array[],
  ) {
    this.install(keks);
  }

  private install(keks: readonly Uint8Array[]): void {
    if (keks.length === 0) throw new KekError("BAD_KEK", "no key-encryption key given");
    const next = new Map<string, Uint8Array>();
    for (const k of keks) {
      if (k.length !== KEK_BYTES) throw new KekError("BAD_KEK", `a key-encryption key is ${KEK_BYTES} bytes (64 hex characters), got ${k.length}`);
      next.set(hex(kekFingerprint(k)), k);
    }
    this.byFingerprint = next;
    this.current = { kek: keks[0]!, fingerprint: kekFingerprint(keks[0]!) };
  }

  /** Hex fingerprint of the KEK that wraps new keys. */
  get currentFingerprint(): string {
    return hex(this.current.fingerprint);
  }

  get fingerprints(): string[] {
    return [...this.byFingerprint.keys()];
  }

  wrap(label: string, key: Uint8Array): Uint8Array {
    const nonce = new Uint8Array(NONCE_BYTES);
    globalThis.crypto.getRandomValues(nonce);
    const ct = xchacha20poly1305(this.current.kek, nonce, aad(label)).encrypt(key);
    const out = new Uint8Array(HEADER_BYTES + ct.length);
    out.set(MAGIC, 0);
    out.set(this.current.fingerprint, MAGIC.length);
    out.set(nonce, MAGIC.length + FINGERPRINT_BYTES);
    out.set(ct, HEADER_BYTES);
    return out;
  }

  unwrap(label: string, stored: Uint8Array): Uint8Array {
    if (!isWrapped(stored)) throw new KekError("KEY_UNWRAP_FAILED", `the key ${label} is not wrapped`);
    const fp = wrappedBy(stored)!;
    let kek = this.byFingerprint.get(fp);
    if (!kek && this.reload) {
      this.install(this.reload());
      kek = this.byFingerprint.get(fp);
    }
    if (!kek) {
      throw new KekError(
        "KEK_UNKNOWN",
        `the key ${label} is wrapped by key-encryption key ${fp}, which this center does not have (it has ${this.fingerprints.join(", ")}); give it the KEK file or variable the other replicas use`,
      );
    }
    try {
      return xchacha20poly1305(kek, stored.subarray(MAGIC.length + FINGERPRINT_BYTES, HEADER_BYTES), aad(label)).decrypt(stored.subarray(HEADER_BYTES));
    } catch {
      throw new KekError("KEY_UNWRAP_FAILED", `the key ${label} does not unwrap under KEK ${fp}: it was altered or moved from another row`);
    }
  }

  /**
   * The KEKs themselves, the current one first: what `new
   * KeyEncryptionKeys(list)` needs to rebuild an equal set elsewhere (the
   * SQLite ledger's writer thread wraps keys with its own copy).
   */
  toList(): Uint8Array[] {
    return [this.current.kek, ...[...this.byFingerprint.values()].filter((k) => k !== this.current.kek)];
  }

  /** True when `stored` is wrapped by the current KEK (nothing to re-wrap). */
  isCurrent(stored: Uint8Array): boolean {
    return wrappedBy(stored) === this.currentFingerprint;
  }
}

function aad(label: string): Uint8Array {
  return new TextEncoder().encode(AAD_PREFIX + label);
}

/** The associated-data label of a center key row. */
export const centerKeyLabel = (kind: string, secretId: number) => `keys/${kind}/${secretId}`;
/** The associated-data label of a vendor secret row. */
export const vendorKeyLabel = (vendorId: string, keyId: number) => `vendor_keys/${vendorId}/${keyId}`;
