/**
 * testdata/vectors.json is the contract (docs/canonical-encoding.md): every
 * vector is re-encoded here from its JSON inputs with the real src/crypto
 * functions, and the file must equal what scripts/gen-vectors.ts produces.
 *
 * The parsing and per-vector checks live in test/shared/vectors.ts, which the
 * browser bundle runs too (browser-core.test.ts).
 */
import test from "ava";
import { readFileSync } from "node:fs";
import { toHex } from "../src/crypto/canonical.js";
import { ALG_NAMES, checkVector, type Json } from "./shared/vectors.js";
import { DOC_EXAMPLE_VECTOR, renderVectors } from "../scripts/gen-vectors.js";

const VECTORS_URL = new URL("../testdata/vectors.json", import.meta.url);
const DOC_URL = new URL("../docs/canonical-encoding.md", import.meta.url);
const fileText = readFileSync(VECTORS_URL, "utf8");
const file: Json = JSON.parse(fileText);

// ------------------------------------------------------------------ tests

test("vectors.json: header fields", (t) => {
  t.is(file.version, 1);
  t.is(typeof file.description, "string");
  t.true(file.description.length > 40);
  t.is(file.spec, "docs/canonical-encoding.md");
  t.true(Array.isArray(file.vectors));
  t.is(file.count, file.vectors.length);
  const names = file.vectors.map((v: Json) => v.name);
  t.is(new Set(names).size, names.length, "vector names are unique");
});

test("every vector reproduces from its inputs (canonical bytes, digest/output, verify)", (t) => {
  let checked = 0;
  const failures: string[] = [];
  for (const v of file.vectors) {
    try {
      // A recovery-code vector has a plain SHA-256 digest and a text output.
      const isRecovery = v.construction === "recovery_code";
      const isMac = v.digest_hex !== undefined && !isRecovery;
      if (isMac && ALG_NAMES[v.algorithm_id] !== v.algorithm) throw new Error(`algorithm ${v.algorithm} != id ${v.algorithm_id}`);
      if (!isRecovery && isMac === (v.output_hex !== undefined)) throw new Error("needs exactly one of digest_hex / output_hex");
      const { canonical, result, verified } = checkVector(v);
      if (toHex(canonical) !== v.canonical_hex) throw new Error(`canonical bytes\n  got      ${toHex(canonical)}\n  expected ${v.canonical_hex}`);
      const expected = isMac || isRecovery ? v.digest_hex : v.output_hex;
      if (toHex(result) !== expected) throw new Error(`result\n  got      ${toHex(result)}\n  expected ${expected}`);
      if (isMac && result.length !== 32) throw new Error("digest must be 32 bytes");
      if (!verified) throw new Error("verify/open refused the expected value");
      checked++;
    } catch (e) {
      failures.push(`${v.name}: ${(e as Error).message}`);
    }
  }
  t.deepEqual(failures, []);
  t.is(checked, file.count, "every vector was checked");
  t.is(checked, file.vectors.length);
});

test("vectors cover every construction, both algorithms and every message code", (t) => {
  const constructions = new Set(file.vectors.map((v: Json) => v.construction));
  for (const c of [
    "certificate",
    "message",
    "offer",
    "receipt",
    "settlements",
    "custom_secret",
    "seal_session_key",
    "encrypt_custom_secret",
    "sync_request",
    "sync_reply",
    "refund_request",
    "recovery_code",
  ]) {
    t.true(constructions.has(c), `construction ${c}`);
  }
  for (const c of ["certificate", "message", "offer", "receipt", "settlements"]) {
    for (const alg of [1, 2]) {
      t.true(
        file.vectors.some((v: Json) => v.construction === c && v.algorithm_id === alg),
        `${c} with algorithm ${alg}`,
      );
    }
  }
  const codes = [
    "GM4_1", "GM4_2", "GM5_1", "GM5_2", "GM5_3", "GM5_4", "GM6_1", "GM6_2", "GM6_3",
    "PM4_1", "PM4_2", "PM5_1", "PM5_2", "PM5_3", "PM6_1", "PM6_2", "PM6_3",
    "RN1", "RN2", "RD1", "RD2",
  ];
  const messages = file.vectors.filter((v: Json) => v.construction === "message");
  for (const code of codes) {
    for (const alg of [1, 2]) {
      t.true(
        messages.some((v: Json) => v.inputs.code === code && v.algorithm_id === alg),
        `message ${code} with algorithm ${alg}`,
      );
    }
  }
  t.true(messages.some((v: Json) => v.inputs.order !== null), "a message with an order");
  t.true(messages.some((v: Json) => v.inputs.order === null), "a message without an order");
  t.true(messages.some((v: Json) => v.inputs.scrip === null), "a message with an absent scrip");
  const text = JSON.stringify(file.vectors);
  for (const edge of ["원", "🎉", "18446744073709551615", "4294967295", "9223372036854775807", "-9223372036854775808"]) {
    t.true(text.includes(edge), `edge case ${edge}`);
  }
});

test("regenerating the vectors gives the committed file byte for byte", (t) => {
  const fresh = renderVectors();
  if (fresh !== fileText) {
    t.fail("testdata/vectors.json is stale: run `node --import=tsx scripts/gen-vectors.ts > testdata/vectors.json` and review the diff");
  } else {
    t.pass();
  }
});

test("the worked examples in docs/canonical-encoding.md match their vectors", (t) => {
  const doc = readFileSync(DOC_URL, "utf8");
  const re = /<!-- worked-example: (\S+) -->\n```\n([\s\S]*?)```/g;
  const seen: string[] = [];
  for (const [, name, block] of doc.matchAll(re)) {
    const v = file.vectors.find((x: Json) => x.name === name);
    t.truthy(v, `vector ${name} exists`);
    const hex = block!
      .split("\n")
      .map((line) => line.split("#")[0]!.replace(/\s+/g, ""))
      .join("");
    t.is(hex, v.canonical_hex, `doc hex of ${name}`);
    t.true(doc.includes(v.digest_hex), `doc shows the digest of ${name}`);
    seen.push(name!);
  }
  t.true(seen.includes(DOC_EXAMPLE_VECTOR), "the certificate worked example is present");
});
