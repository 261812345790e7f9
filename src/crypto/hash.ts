/**
 * The two hash primitives every Scripwire MAC, Custom_Secret, offer hash and
 * chain link is built from: HMAC-SHA-256 and SHA-256.
 *
 * Why a seam here: @noble/hashes is the reference implementation and the
 * only one the browser wallet can use (no `node:*` in src/crypto), but in a
 * Node center it costs 5.7 µs per short HMAC against 2.3 µs for OpenSSL's
 * (node:crypto), and a payment runs a dozen of them on the event loop
 * (docs/performance.md §0). Node entry points call `useNativeHashes()` from
 * ./native-hash.ts; everything else gets noble. Both must give the same
 * bytes: test/hash-backends.test.ts compares them on every test vector and
 * on random keys and inputs of every length around the block size.
 */
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";

export interface HashBackend {
  readonly name: string;
  hmacSha256(key: Uint8Array, input: Uint8Array): Uint8Array;
  /** SHA-256 of the parts concatenated (no copy of the parts needed). */
  sha256(...parts: Uint8Array[]): Uint8Array;
}

export const nobleHashes: HashBackend = {
  name: "noble",
  hmacSha256: (key, input) => hmac(sha256, key, input),
  sha256: (...parts) => {
    if (parts.length === 1) return sha256(parts[0]!);
    const h = sha256.create();
    for (const p of parts) h.update(p);
    return h.digest();
  },
};

let backend: HashBackend = nobleHashes;

/** Switch the process to another backend (a Node entry point's first act; tests switch back). */
export function useHashBackend(b: HashBackend): void {
  backend = b;
}

export function hashBackend(): HashBackend {
  return backend;
}

export function hmacSha256(key: Uint8Array, input: Uint8Array): Uint8Array {
  return backend.hmacSha256(key, input);
}

export function sha256Of(...parts: Uint8Array[]): Uint8Array {
  return backend.sha256(...parts);
}
