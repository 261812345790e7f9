/**
 * Byte helpers the wallet core needs, written without `Buffer` or `node:*`
 * so the same code runs in Node and in the browser bundle: hex (noble's),
 * base64 (atob/btoa, present in both), and randomness from
 * `crypto.getRandomValues` (noble's `randomBytes`).
 */
import { bytesToHex, hexToBytes, randomBytes } from "@noble/hashes/utils.js";

export { randomBytes };

export function toHexString(b: Uint8Array): string {
  return bytesToHex(b);
}

/** Decodes lower- or upper-case hex; throws RangeError on anything else. */
export function fromHexString(s: string): Uint8Array {
  try {
    return hexToBytes(s);
  } catch (e) {
    throw new RangeError(`expected an even number of hex digits: ${(e as Error).message}`);
  }
}

/** btoa takes a "binary string"; build it in chunks so a large payload does not overflow the argument list. */
export function toBase64(b: Uint8Array): string {
  let bin = "";
  const CHUNK = 0x8000;
  for (let i = 0; i < b.length; i += CHUNK) bin += String.fromCharCode(...b.subarray(i, i + CHUNK));
  return btoa(bin);
}

export function fromBase64(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** `prefix` + 32 random hex digits: request ids for renew/redeem, wallet ids. */
export function randomId(prefix = ""): string {
  return `${prefix}${bytesToHex(randomBytes(16))}`;
}

export function utf8(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}
