/**
 * The two keyed hashes a scrip may name. HMAC-SHA-256 is the default; the
 * patent's literal H[M || secret] = SHA-256(M || secret) is kept for
 * compatibility and only accepted where the center's policy lists it.
 */
import { hmacSha256, sha256Of } from "./hash.js";
import { HashAlgorithm } from "../../gen/scripwire/v1/types_pb.js";

export const MAC_BYTES = 32;

export function mac(alg: HashAlgorithm, key: Uint8Array, input: Uint8Array): Uint8Array {
  switch (alg) {
    case HashAlgorithm.HMAC_SHA256:
      return hmacSha256(key, input);
    case HashAlgorithm.SHA256_SUFFIX:
      return sha256Of(input, key);
    default:
      throw new UnsupportedAlgorithmError(alg);
  }
}

export class UnsupportedAlgorithmError extends Error {
  constructor(readonly algorithm: number) {
    super(`hash algorithm ${algorithm} is not supported; use HASH_ALGORITHM_HMAC_SHA256`);
    this.name = "UnsupportedAlgorithmError";
  }
}

/**
 * Constant-time equality. The loop always runs over the expected length so
 * the time taken says nothing about where the first difference is.
 */
export function constantTimeEqual(expected: Uint8Array, actual: Uint8Array | undefined): boolean {
  if (!actual) return false;
  let diff = expected.length ^ actual.length;
  const n = expected.length;
  for (let i = 0; i < n; i++) diff |= expected[i]! ^ (actual[i] ?? 0);
  return diff === 0;
}

export function verifyMac(alg: HashAlgorithm, key: Uint8Array, input: Uint8Array, tag: Uint8Array | undefined): boolean {
  if (!tag || tag.length !== MAC_BYTES) return false;
  return constantTimeEqual(mac(alg, key, input), tag);
}
