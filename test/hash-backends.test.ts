/**
 * The OpenSSL hash backend (src/crypto/native-hash.ts) must give exactly
 * noble's bytes, or a Node center and a browser wallet would disagree on
 * every MAC. Checked on the whole vectors file under each backend, and on
 * random keys and inputs around SHA-256's 64-byte block (the edges where an
 * HMAC implementation hashes a long key or pads a second block).
 */
import test from "ava";
import { readFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { hashBackend, hmacSha256, nobleHashes, sha256Of, useHashBackend, type HashBackend } from "../src/crypto/hash.js";
import { nativeHashes } from "../src/crypto/native-hash.js";
import { mac } from "../src/crypto/mac.js";
import { HashAlgorithm } from "../gen/scripwire/v1/types_pb.js";
import { checkAll, type Json } from "./shared/vectors.js";

const file: Json = JSON.parse(readFileSync(new URL("../testdata/vectors.json", import.meta.url), "utf8"));
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

function withBackend<T>(b: HashBackend, fn: () => T): T {
  const before = hashBackend();
  useHashBackend(b);
  try {
    return fn();
  } finally {
    useHashBackend(before);
  }
}

for (const b of [nobleHashes, nativeHashes]) {
  test.serial(`every vector in vectors.json holds under the ${b.name} backend`, (t) => {
    const results = withBackend(b, () => checkAll(file));
    t.true(results.length >= 20);
    const bad = results.filter((r) => !r.canonical || !r.result || !r.verified);
    t.deepEqual(bad, [], `vectors failing under ${b.name}`);
  });
}

test.serial("the backend in use is what the last useHashBackend chose", (t) => {
  withBackend(nativeHashes, () => t.is(hashBackend().name, "node:crypto"));
  withBackend(nobleHashes, () => t.is(hashBackend().name, "noble"));
});

test("native and noble agree on HMAC-SHA-256 for keys and inputs around the block size", (t) => {
  const lengths = [0, 1, 31, 32, 33, 55, 56, 63, 64, 65, 119, 120, 127, 128, 129, 200, 1000];
  let n = 0;
  for (const kl of lengths) {
    for (const ml of lengths) {
      const key = new Uint8Array(randomBytes(kl));
      const msg = new Uint8Array(randomBytes(ml));
      t.is(hex(nativeHashes.hmacSha256(key, msg)), hex(nobleHashes.hmacSha256(key, msg)), `key ${kl} B, input ${ml} B`);
      n++;
    }
  }
  t.is(n, lengths.length ** 2);
});

test("native and noble agree on SHA-256 of one part and of several parts", (t) => {
  for (let i = 0; i < 200; i++) {
    const parts = Array.from({ length: 1 + (i % 4) }, (_, j) => new Uint8Array(randomBytes((i * 7 + j * 13) % 150)));
    t.is(hex(nativeHashes.sha256(...parts)), hex(nobleHashes.sha256(...parts)));
  }
  // The known answer, so both cannot be wrong together.
  t.is(hex(nativeHashes.sha256(new TextEncoder().encode("abc"))), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
});

test("native digests are plain Uint8Arrays of 32 bytes, not Buffers", (t) => {
  const d = nativeHashes.hmacSha256(new Uint8Array(32), new Uint8Array(10));
  t.is(d.length, 32);
  t.false(Buffer.isBuffer(d));
  t.is(Object.getPrototypeOf(d), Uint8Array.prototype);
});

test.serial("mac() of both algorithms goes through the chosen backend with the same result", (t) => {
  const key = new Uint8Array(randomBytes(32));
  const input = new Uint8Array(randomBytes(90));
  for (const alg of [HashAlgorithm.HMAC_SHA256, HashAlgorithm.SHA256_SUFFIX]) {
    const a = withBackend(nobleHashes, () => mac(alg, key, input));
    const b = withBackend(nativeHashes, () => mac(alg, key, input));
    t.is(hex(a), hex(b));
  }
  t.is(hex(withBackend(nativeHashes, () => hmacSha256(key, input))), hex(nobleHashes.hmacSha256(key, input)));
  t.is(hex(withBackend(nativeHashes, () => sha256Of(input, key))), hex(mac(HashAlgorithm.SHA256_SUFFIX, key, input)));
});
