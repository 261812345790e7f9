/**
 * testdata/chain-vectors.json is the contract for the journal's sealed bytes
 * (docs/canonical-encoding.md section 10): the file equals its generator, and
 * every vector is re-derived here from its fields alone with independent code
 * (node:crypto SHA-256 and Ed25519), not with the library that wrote it.
 */
import test from "ava";
import { createHash, createPublicKey, verify } from "node:crypto";
import { readFileSync } from "node:fs";
import { chainExtends, checkpointFromJson, checkpointSignatureValid, decodeFact, encodeFact, parseFact } from "../src/ledger/chain.js";
import { renderChainVectors } from "../scripts/gen-chain-vectors.js";

const file = readFileSync(new URL("../testdata/chain-vectors.json", import.meta.url), "utf8");
const v = JSON.parse(file) as {
  chain: { position: number; event_id: number; fields: string[]; fact_hex: string; prev_link_hex: string; link_input_hex: string; link_hex: string }[];
  checkpoint: { public_key_hex: string; size: number; head_hex: string; timestamp_ms: number; key_id: number; signed_input_hex: string; signature_hex: string };
};

const u64 = (n: number) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
};

test("the vectors file is what the generator writes", (t) => {
  t.is(file, renderChainVectors());
});

test("every fact and link re-derived from its fields with independent code", (t) => {
  let prev = Buffer.alloc(32);
  for (const e of v.chain) {
    const fact = Buffer.from(e.fields.map((f) => `${Buffer.byteLength(f, "utf8")}:${f}`).join(""), "utf8");
    t.is(fact.toString("hex"), e.fact_hex, `fact ${e.position}`);
    t.deepEqual(decodeFact(fact), e.fields);
    t.is(Buffer.from(encodeFact(e.fields)).toString("hex"), e.fact_hex);
    t.notThrows(() => parseFact(fact));
    t.is(prev.toString("hex"), e.prev_link_hex);
    const input = Buffer.concat([Buffer.from("scripwire/chain/v1", "ascii"), Buffer.from([0]), prev, u64(e.position), u64(e.event_id), fact]);
    t.is(input.toString("hex"), e.link_input_hex);
    prev = createHash("sha256").update(input).digest();
    t.is(prev.toString("hex"), e.link_hex);
  }
  t.is(v.checkpoint.head_hex, prev.toString("hex"));
});

test("the checkpoint signature verifies with node:crypto's Ed25519, and the library agrees", (t) => {
  const c = v.checkpoint;
  const input = Buffer.concat([Buffer.from("scripwire/checkpoint/v1", "ascii"), Buffer.from([0]), u64(c.size), Buffer.from(c.head_hex, "hex"), u64(c.timestamp_ms), Buffer.from([0, 0, 0, c.key_id])]);
  t.is(input.toString("hex"), c.signed_input_hex);
  // SPKI DER prefix for a raw Ed25519 public key (RFC 8410).
  const spki = Buffer.concat([Buffer.from("302a300506032b6570032100", "hex"), Buffer.from(c.public_key_hex, "hex")]);
  const key = createPublicKey({ key: spki, format: "der", type: "spki" });
  t.true(verify(null, input, key, Buffer.from(c.signature_hex, "hex")));
  const cp = checkpointFromJson({ size: String(c.size), head: c.head_hex, timestampMs: String(c.timestamp_ms), keyId: c.key_id, publicKey: c.public_key_hex, signature: c.signature_hex });
  t.true(checkpointSignatureValid(cp));
  t.false(checkpointSignatureValid({ ...cp, size: cp.size + 1n }), "a changed size no longer verifies");
});

test("consistency between two checkpoints: the newer extends the older over the events between, and nothing else does", (t) => {
  const at = (n: number) => ({ size: BigInt(n), head: new Uint8Array(Buffer.from(n === 0 ? "00".repeat(32) : v.chain[n - 1]!.link_hex, "hex")) });
  const events = (from: number, to: number) => v.chain.slice(from, to).map((e) => ({ eventId: BigInt(e.event_id), fact: new Uint8Array(Buffer.from(e.fact_hex, "hex")) }));
  t.true(chainExtends(at(2), at(7), events(2, 7)));
  t.true(chainExtends(at(0), at(7), events(0, 7)));
  t.false(chainExtends(at(2), at(7), events(2, 6)), "one event missing");
  const swapped = events(2, 7);
  [swapped[0], swapped[1]] = [swapped[1]!, swapped[0]!];
  t.false(chainExtends(at(2), at(7), swapped), "two events reordered");
  t.false(chainExtends(at(3), at(2), []), "a smaller checkpoint never extends a larger one");
  t.throws(() => decodeFact(Buffer.from("3:ab")), undefined, "a field that overruns the fact is refused");
  t.throws(() => decodeFact(Buffer.from("03:abc")), undefined, "a length with a leading zero is refused");
});
