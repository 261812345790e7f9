/**
 * Properties of the canonical encoding and the keyed hashes, over random
 * scrips, offers and receipts (fast-check, fixed seed).
 *
 * Replay a failure with the printed seed: SCRIPWIRE_FC_SEED=<seed> npx ava test/crypto-properties.test.ts
 *
 * "Change any single field" is driven by the protobuf descriptors, not by a
 * hand-written field list: a field added to the proto but forgotten by the
 * encoder leaves the MAC unchanged when mutated, and fails here.
 */
import test, { type ExecutionContext } from "ava";
import { createHash, createHmac } from "node:crypto";
import fc from "fast-check";
import {
  ScalarType,
  clone,
  create,
  fromBinary,
  toBinary,
  type DescField,
  type DescMessage,
} from "@bufbuild/protobuf";
import {
  CmdTypeSchema,
  HashAlgorithm,
  IdTypeSchema,
  OfferSchema,
  ReceiptSchema,
  ScripBodyTypeSchema,
  ScripTypeSchema,
  ServerTypeSchema,
  type Offer,
  type Receipt,
  type ScripType,
} from "../gen/scripwire/v1/types_pb.js";
import {
  CanonicalWriter,
  certificateInput,
  customSecretInput,
  messageInput,
  offerInput,
  receiptInput,
  settlementsInput,
  type MessageHashInput,
} from "../src/crypto/canonical.js";
import { UnsupportedAlgorithmError, constantTimeEqual, mac, verifyMac } from "../src/crypto/mac.js";
import {
  computeCertificate,
  computeMessageHash,
  computeOfferMac,
  computeReceiptMac,
  verifyCertificate,
  verifyMessageHash,
  verifyOfferMac,
  verifyReceiptMac,
} from "../src/crypto/scrip-auth.js";

const SEED = Number(process.env.SCRIPWIRE_FC_SEED ?? 0x5c219);
const U32_MAX = 0xffff_ffff;
const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;
const HMAC = HashAlgorithm.HMAC_SHA256;
const SUFFIX = HashAlgorithm.SHA256_SUFFIX;

/** Every cmdType code (CMD_TYPE_ prefix stripped), as used in "scripwire/v1/msg/<CODE>". */
const ALL_CODES = CmdTypeSchema.values.filter((v) => v.number !== 0).map((v) => v.name.replace(/^CMD_TYPE_/, ""));

function check<Ts extends [unknown, ...unknown[]]>(t: ExecutionContext, prop: fc.IProperty<Ts>, numRuns = 100): void {
  const details = fc.check(prop, { seed: SEED, numRuns });
  if (details.failed) {
    const cause = details.errorInstance instanceof Error ? `${details.errorInstance.message}\n` : "";
    t.fail(`${cause}seed ${SEED} (replay: SCRIPWIRE_FC_SEED=${SEED})\n${fc.defaultReportMessage(details) ?? ""}`);
  } else {
    t.pass();
  }
}

// ------------------------------------------------------------- arbitraries

const str = fc.string({ unit: "binary", maxLength: 10 });
const u32 = fc.oneof(fc.integer({ min: 0, max: U32_MAX }), fc.constantFrom(0, U32_MAX));
const u64 = fc.oneof(fc.bigInt({ min: 0n, max: U64_MAX }), fc.constantFrom(0n, U64_MAX));
const i64 = fc.oneof(fc.bigInt({ min: I64_MIN, max: I64_MAX }), fc.constantFrom(0n, -1n, I64_MIN, I64_MAX));
const bin = (maxLength: number) => fc.uint8Array({ maxLength });
const key = fc.uint8Array({ minLength: 1, maxLength: 80 });
const alg = fc.constantFrom(HMAC, SUFFIX);
const opt = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined, freq: 4 });
const enumOf = (max: number) => fc.integer({ min: 0, max });

const server = fc
  .record({ dnsName: str, ipAddr: str, serverName: str, port: u32 })
  .map((v) => create(ServerTypeSchema, v));
const id = fc.record({ secretId: u32, serialNumber: u64 }).map((v) => create(IdTypeSchema, v));
const body = fc
  .record({
    currency: str,
    value: i64,
    vendorId: opt(server),
    scripId: opt(id),
    customId: opt(id),
    ad: str,
    expirationDateUnix: i64,
  })
  .map((v) => create(ScripBodyTypeSchema, v));
/** A scrip with a valid certificate under `certKey`. */
const scripUnder = (certKey: Uint8Array) =>
  fc.record({ hashAlgorithm: alg, scrip: opt(body) }).map((v) => {
    const s = create(ScripTypeSchema, v);
    s.certificate = mac(s.hashAlgorithm, certKey, certificateInput(s.scrip));
    return s;
  });
const offerFields = {
  vendor: opt(server),
  vendorId: str,
  tranId: str,
  kind: enumOf(2),
  amount: i64,
  currency: str,
  item: str,
  campaignId: str,
  deliveryMethod: enumOf(2),
  customId: opt(id),
  expiresAtUnix: i64,
  vendorKeyId: u32,
  hashAlgorithm: alg,
};
const signedOffer = (vendorSecret: Uint8Array) =>
  fc.record(offerFields).map((v) => {
    const o = create(OfferSchema, v);
    o.mac = computeOfferMac(vendorSecret, o);
    return o;
  });
const signedReceipt = (vendorSecret: Uint8Array) =>
  fc
    .record({
      vendorId: str,
      tranId: str,
      requestUrl: str,
      price: i64,
      currency: str,
      deliveryMethod: enumOf(2),
      customId: opt(id),
      paidAtUnix: i64,
      vendorKeyId: u32,
      hashAlgorithm: alg,
    })
    .map((v) => {
      const r = create(ReceiptSchema, v);
      r.mac = computeReceiptMac(vendorSecret, r);
      return r;
    });
const messageArb = (certKey: Uint8Array, vendorSecret: Uint8Array): fc.Arbitrary<MessageHashInput> =>
  fc.record({
    code: fc.constantFrom(...ALL_CODES),
    contextId: str,
    pCount: u32,
    scrip: opt(scripUnder(certKey)),
    order: opt(signedOffer(vendorSecret)),
    amount: i64,
    account: str,
  });

const CERT_KEY = Uint8Array.from({ length: 32 }, (_, i) => i);
const VENDOR_SECRET = Uint8Array.from({ length: 32 }, (_, i) => 0x40 + i);
const CUSTOM_SECRET = Uint8Array.from({ length: 32 }, (_, i) => 0x80 + i);

// --------------------------------------------------- descriptor-driven mutations

interface Mutation {
  /** Dotted path of proto field names, for failure messages. */
  path: string;
  /** Returns a changed deep copy. */
  apply<T extends object>(schema: DescMessage, root: T): T;
}

function changedScalar(field: DescField, old: unknown): unknown {
  if (field.fieldKind === "enum") {
    const numbers = field.enum.values.map((v) => v.number);
    return numbers[(numbers.indexOf(old as number) + 1) % numbers.length];
  }
  if (field.fieldKind !== "scalar") throw new Error(`unexpected field kind ${field.fieldKind}`);
  switch (field.scalar) {
    case ScalarType.STRING:
      return (old as string) + "x";
    case ScalarType.UINT32:
      return old === U32_MAX ? U32_MAX - 1 : (old as number) + 1;
    case ScalarType.INT64:
      return old === I64_MAX ? I64_MAX - 1n : (old as bigint) + 1n;
    case ScalarType.UINT64:
      return old === U64_MAX ? U64_MAX - 1n : (old as bigint) + 1n;
    case ScalarType.BYTES: {
      const b = old as Uint8Array;
      if (b.length === 0) return new Uint8Array([0]);
      const c = b.slice();
      c[c.length - 1]! ^= 0x01;
      return c;
    }
    default:
      throw new Error(`no mutation for scalar type ${field.scalar} (${field.name}): extend the test and the encoder`);
  }
}

/**
 * One mutation per leaf field of `desc`, recursing into nested messages
 * whether present or absent (an absent message's leaf goes from its default
 * to a non-default value). `skip` names fields left out on purpose.
 */
function leafMutations(desc: DescMessage, skip: ReadonlySet<string> = new Set(), prefix: DescField[] = []): Mutation[] {
  const out: Mutation[] = [];
  for (const field of desc.fields) {
    const path = [...prefix, field];
    const dotted = path.map((f) => f.name).join(".");
    if (skip.has(dotted)) continue;
    if (field.fieldKind === "list" || field.fieldKind === "map") throw new Error(`repeated field ${dotted} not expected in a hashed message`);
    if (field.fieldKind === "message") {
      out.push(...leafMutations(field.message, skip, path));
      continue;
    }
    out.push({
      path: dotted,
      apply<T extends object>(schema: DescMessage, root: T): T {
        const copy = clone(schema, root as never) as Record<string, unknown>;
        let obj = copy;
        for (const f of path.slice(0, -1)) {
          if (f.fieldKind !== "message") throw new Error("unreachable");
          obj[f.localName] ??= create(f.message);
          obj = obj[f.localName] as Record<string, unknown>;
        }
        obj[field.localName] = changedScalar(field, obj[field.localName]);
        return copy as T;
      },
    });
  }
  return out;
}

/** A verification that throws UnsupportedAlgorithmError (an enum mutated to 0) has refused too. */
function refuses(verify: () => boolean): boolean {
  try {
    return !verify();
  } catch (e) {
    if (e instanceof UnsupportedAlgorithmError) return true;
    throw e;
  }
}

const SCRIP_MUTATIONS = leafMutations(ScripTypeSchema);
const OFFER_MUTATIONS = leafMutations(OfferSchema);
const RECEIPT_MUTATIONS = leafMutations(ReceiptSchema);

test("mutation sets reach every leaf field of the hashed messages", (t) => {
  // 1 + (1 + 1 + 4 + 2 + 2 + 1 + 1) + 1; 4 + 12 + 1 (vendor, custom_id, mac); 10 + 1 (custom_id) + 1 (mac)
  t.is(SCRIP_MUTATIONS.length, 14, SCRIP_MUTATIONS.map((m) => m.path).join(", "));
  t.is(OFFER_MUTATIONS.length, 18, OFFER_MUTATIONS.map((m) => m.path).join(", "));
  t.is(RECEIPT_MUTATIONS.length, 12, RECEIPT_MUTATIONS.map((m) => m.path).join(", "));
});

// -------------------------------------------------------------- determinism

test("same input gives the same bytes, also after a protobuf wire round trip", (t) => {
  check(
    t,
    fc.property(messageArb(CERT_KEY, VENDOR_SECRET), (m) => {
      const a = messageInput(m).slice();
      const b = messageInput({ ...m }).slice();
      const wire: MessageHashInput = {
        ...m,
        scrip: m.scrip && fromBinary(ScripTypeSchema, toBinary(ScripTypeSchema, m.scrip)),
        order: m.order && fromBinary(OfferSchema, toBinary(OfferSchema, m.order)),
      };
      const c = messageInput(wire);
      return Buffer.from(a).equals(Buffer.from(b)) && Buffer.from(a).equals(Buffer.from(c));
    }),
  );
  check(
    t,
    fc.property(signedOffer(VENDOR_SECRET), signedReceipt(VENDOR_SECRET), scripUnder(CERT_KEY), (o, r, s) => {
      const o2 = fromBinary(OfferSchema, toBinary(OfferSchema, o));
      const r2 = fromBinary(ReceiptSchema, toBinary(ReceiptSchema, r));
      const s2 = fromBinary(ScripTypeSchema, toBinary(ScripTypeSchema, s));
      return (
        Buffer.from(offerInput(o)).equals(Buffer.from(offerInput(o2))) &&
        Buffer.from(receiptInput(r)).equals(Buffer.from(receiptInput(r2))) &&
        Buffer.from(certificateInput(s.scrip)).equals(Buffer.from(certificateInput(s2.scrip))) &&
        verifyOfferMac(VENDOR_SECRET, o2) &&
        verifyReceiptMac(VENDOR_SECRET, r2) &&
        verifyCertificate(CERT_KEY, s2)
      );
    }),
  );
});

// ---------------------------------------------------- any single field change

test("changing any single field of a scrip (body, nested ids, algorithm, certificate) fails its certificate", (t) => {
  check(
    t,
    fc.property(scripUnder(CERT_KEY), (s) => {
      if (!verifyCertificate(CERT_KEY, s)) return false;
      for (const mu of SCRIP_MUTATIONS) {
        const changed = mu.apply(ScripTypeSchema, s);
        if (!refuses(() => verifyCertificate(CERT_KEY, changed))) throw new Error(`still verifies after changing ${mu.path}`);
      }
      return true;
    }),
  );
});

test("changing any single field of an offer or receipt (including mac) fails its MAC", (t) => {
  check(
    t,
    fc.property(signedOffer(VENDOR_SECRET), signedReceipt(VENDOR_SECRET), (o, r) => {
      if (!verifyOfferMac(VENDOR_SECRET, o) || !verifyReceiptMac(VENDOR_SECRET, r)) return false;
      for (const mu of OFFER_MUTATIONS) {
        const changed = mu.apply(OfferSchema, o);
        if (!refuses(() => verifyOfferMac(VENDOR_SECRET, changed))) throw new Error(`offer still verifies after changing ${mu.path}`);
      }
      for (const mu of RECEIPT_MUTATIONS) {
        const changed = mu.apply(ReceiptSchema, r);
        if (!refuses(() => verifyReceiptMac(VENDOR_SECRET, changed))) throw new Error(`receipt still verifies after changing ${mu.path}`);
      }
      return true;
    }),
  );
});

test("changing any single input of a message hash (code, context, pCount, scrip, order, amount, account) fails it", (t) => {
  check(
    t,
    fc.property(messageArb(CERT_KEY, VENDOR_SECRET), alg, (m, a) => {
      const hash = computeMessageHash(a, CUSTOM_SECRET, m);
      if (!verifyMessageHash(a, CUSTOM_SECRET, m, hash)) return false;
      const variants: Array<[string, MessageHashInput]> = [
        ...ALL_CODES.filter((c) => c !== m.code).map((c): [string, MessageHashInput] => [`code ${c}`, { ...m, code: c }]),
        ["contextId", { ...m, contextId: m.contextId + "x" }],
        ["pCount", { ...m, pCount: m.pCount === U32_MAX ? 0 : m.pCount + 1 }],
        ["amount", { ...m, amount: (m.amount ?? 0n) === I64_MAX ? 0n : (m.amount ?? 0n) + 1n }],
        ["account", { ...m, account: (m.account ?? "") + "x" }],
        ["order presence", { ...m, order: m.order ? undefined : create(OfferSchema) }],
        ...SCRIP_MUTATIONS.map((mu): [string, MessageHashInput] => [
          `scrip.${mu.path}`,
          { ...m, scrip: mu.apply(ScripTypeSchema, m.scrip ?? create(ScripTypeSchema)) },
        ]),
        ...OFFER_MUTATIONS.map((mu): [string, MessageHashInput] => [
          `order.${mu.path}`,
          { ...m, order: mu.apply(OfferSchema, m.order ?? create(OfferSchema)) },
        ]),
      ];
      for (const [what, changed] of variants) {
        if (verifyMessageHash(a, CUSTOM_SECRET, changed, hash)) throw new Error(`still verifies after changing ${what}`);
      }
      // The other algorithm and another key refuse too.
      if (verifyMessageHash(a === HMAC ? SUFFIX : HMAC, CUSTOM_SECRET, m, hash)) throw new Error("verifies under the other algorithm");
      const otherKey = CUSTOM_SECRET.slice();
      otherKey[0]! ^= 1;
      if (verifyMessageHash(a, otherKey, m, hash)) throw new Error("verifies under another key");
      return true;
    }),
    60,
  );
});

// -------------------------------------------------------------- byte flips

test("flipping any single byte of the canonical input, the domain tag or the MAC fails verification", (t) => {
  check(
    t,
    fc.property(
      messageArb(CERT_KEY, VENDOR_SECRET),
      alg,
      key,
      fc.nat(),
      fc.integer({ min: 1, max: 255 }),
      (m, a, k, at, xor) => {
        const input = messageInput(m).slice();
        const tag = mac(a, k, input);
        const flipped = input.slice();
        flipped[at % flipped.length]! ^= xor;
        if (verifyMac(a, k, flipped, tag)) return false;
        // Every byte of the domain tag (length prefix included).
        const tagEnd = 4 + new DataView(input.buffer).getUint32(0);
        for (let i = 0; i < tagEnd; i++) {
          const f = input.slice();
          f[i]! ^= xor;
          if (verifyMac(a, k, f, tag)) return false;
        }
        const badTag = tag.slice();
        badTag[at % 32]! ^= xor;
        return !verifyMac(a, k, input, badTag) && verifyMac(a, k, input, tag);
      },
    ),
    200,
  );
});

test("a MAC of the wrong length never verifies", (t) => {
  check(
    t,
    fc.property(bin(100), alg, key, fc.integer({ min: 0, max: 64 }), (input, a, k, len) => {
      fc.pre(len !== 32);
      const good = mac(a, k, input);
      const wrong = new Uint8Array(len);
      wrong.set(good.subarray(0, Math.min(len, 32)));
      return !verifyMac(a, k, input, wrong) && !verifyMac(a, k, input, undefined);
    }),
  );
});

// ----------------------------------------------------------- cross-context

test("a hash made for one context never verifies in another (certificate, offer, receipt, settlements, custom secret, every message code)", (t) => {
  check(
    t,
    fc.property(
      scripUnder(CERT_KEY),
      signedOffer(VENDOR_SECRET),
      signedReceipt(VENDOR_SECRET),
      str,
      u32,
      u64,
      i64,
      alg,
      (s, o, r, text, n32, n64, s64, a) => {
        const k = CUSTOM_SECRET;
        const raw: Array<[string, Uint8Array]> = [
          ["certificate", certificateInput(s.scrip)],
          ["offer", offerInput(o)],
          ["receipt", receiptInput(r)],
          ["settlements", settlementsInput(text, n64, s64)],
          ["custom-secret", customSecretInput(n32, n64)],
          ...ALL_CODES.map((code): [string, Uint8Array] => [
            `msg/${code}`,
            messageInput({ code, contextId: text, pCount: n32, scrip: s, order: o, amount: s64, account: text }),
          ]),
        ];
        const contexts = raw.map(([name, bytes]): [string, Uint8Array] => [name, bytes.slice()]);
        const macs = contexts.map(([, input]) => mac(a, k, input));
        for (let i = 0; i < contexts.length; i++) {
          for (let j = 0; j < contexts.length; j++) {
            if (i === j) continue;
            if (Buffer.from(contexts[i]![1]).equals(Buffer.from(contexts[j]![1]))) {
              throw new Error(`${contexts[i]![0]} and ${contexts[j]![0]} have the same input bytes`);
            }
            if (verifyMac(a, k, contexts[j]![1], macs[i]!)) {
              throw new Error(`a ${contexts[i]![0]} MAC verifies as ${contexts[j]![0]}`);
            }
          }
        }
        // The same through the public API: a certificate is not a message hash,
        // a message hash for GM4_1 is not one for GM5_1, an offer MAC is not a receipt MAC.
        const cert = computeCertificate(a, k, s.scrip ?? create(ScripBodyTypeSchema));
        const m: MessageHashInput = { code: "GM4_1", contextId: text, pCount: 0, scrip: s };
        const gm41 = computeMessageHash(a, k, m);
        return (
          !verifyMessageHash(a, k, m, cert) &&
          !verifyMessageHash(a, k, { ...m, code: "GM5_1" }, gm41) &&
          !verifyReceiptMac(VENDOR_SECRET, { ...r, mac: o.mac } as Receipt) &&
          !verifyOfferMac(VENDOR_SECRET, { ...o, mac: r.mac } as Offer)
        );
      },
    ),
    40,
  );
});

// -------------------------------------------------------------- differential

test("differential: HMAC-SHA-256 and SHA-256-SUFFIX equal node:crypto", (t) => {
  check(
    t,
    fc.property(fc.uint8Array({ maxLength: 200 }), fc.uint8Array({ maxLength: 1500 }), (k, data) => {
      const h = mac(HMAC, k, data);
      const s = mac(SUFFIX, k, data);
      const nodeH = createHmac("sha256", k).update(data).digest();
      const nodeS = createHash("sha256").update(data).update(k).digest();
      return Buffer.from(h).equals(nodeH) && Buffer.from(s).equals(nodeS) && h.length === 32;
    }),
    300,
  );
  // Boundary key lengths around the 64-byte SHA-256 block.
  for (const len of [0, 1, 31, 32, 63, 64, 65, 128, 1000]) {
    const k = Uint8Array.from({ length: len }, (_, i) => (i * 7) & 0xff);
    const data = new TextEncoder().encode("scripwire");
    t.deepEqual(Buffer.from(mac(HMAC, k, data)), createHmac("sha256", k).update(data).digest(), `HMAC key length ${len}`);
  }
  t.throws(() => mac(HashAlgorithm.UNSPECIFIED, CERT_KEY, new Uint8Array(1)), { instanceOf: UnsupportedAlgorithmError });
  t.throws(() => mac(99 as HashAlgorithm, CERT_KEY, new Uint8Array(1)), { instanceOf: UnsupportedAlgorithmError });
});

// --------------------------------------------------------- constantTimeEqual

test("constantTimeEqual agrees with byte equality", (t) => {
  check(
    t,
    fc.property(bin(64), bin(64), fc.nat(), fc.integer({ min: 1, max: 255 }), (a, b, at, xor) => {
      const same = Buffer.from(a).equals(Buffer.from(b));
      if (constantTimeEqual(a, b) !== same) return false;
      if (!constantTimeEqual(a, a.slice())) return false;
      if (constantTimeEqual(a, undefined)) return false;
      if (constantTimeEqual(a, new Uint8Array([...a, 0]))) return false; // longer, same prefix
      if (constantTimeEqual(new Uint8Array([...a, 0]), a)) return false; // shorter
      if (a.length > 0) {
        const c = a.slice();
        c[at % c.length]! ^= xor;
        if (constantTimeEqual(a, c)) return false;
      }
      return true;
    }),
    300,
  );
  t.true(constantTimeEqual(new Uint8Array(0), new Uint8Array(0)));
  t.false(constantTimeEqual(new Uint8Array(0), new Uint8Array([0])));
  t.false(constantTimeEqual(new Uint8Array([0]), new Uint8Array(0)));
  // Length difference that a naive "xor of lengths" could miss if lengths were truncated to a byte.
  t.false(constantTimeEqual(new Uint8Array(256), new Uint8Array(0)));
});

// ------------------------------------------------------------- range checks

test("encoder range checks throw RangeError and never wrap", (t) => {
  const w = () => new CanonicalWriter();
  check(
    t,
    fc.property(
      fc.bigInt({ min: -(1n << 80n), max: -1n }),
      fc.bigInt({ min: U64_MAX + 1n, max: 1n << 80n }),
      fc.bigInt({ min: I64_MAX + 1n, max: 1n << 80n }),
      fc.bigInt({ min: -(1n << 80n), max: I64_MIN - 1n }),
      (neg, bigU, bigI, smallI) => {
        const throwsRange = (f: () => unknown) => {
          try {
            f();
            return false;
          } catch (e) {
            return e instanceof RangeError;
          }
        };
        return (
          throwsRange(() => w().u64(neg)) &&
          throwsRange(() => w().u64(bigU)) &&
          throwsRange(() => w().i64(bigI)) &&
          throwsRange(() => w().i64(smallI))
        );
      },
    ),
  );
  for (const v of [-1, U32_MAX + 1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    t.throws(() => w().u32(v), { instanceOf: RangeError }, `u32 ${v}`);
  }
  for (const v of [-1, 256, 0.5]) t.throws(() => w().u8(v), { instanceOf: RangeError }, `u8 ${v}`);
  t.throws(() => w().u64(1 as unknown as bigint), { instanceOf: RangeError }, "u64 wants a bigint");
  t.throws(() => w().i64(1 as unknown as bigint), { instanceOf: RangeError }, "i64 wants a bigint");
  t.notThrows(() => w().u64(0n).u64(U64_MAX).i64(I64_MIN).i64(I64_MAX).u32(0).u32(U32_MAX).u8(0).u8(255));

  // The same checks reached through the structures.
  const scrip = (over: Partial<Omit<ScripType, "$typeName" | "$unknown">>, bodyOver = {}): ScripType =>
    create(ScripTypeSchema, { hashAlgorithm: HMAC, scrip: create(ScripBodyTypeSchema, bodyOver), ...over });
  const msg = (over: Partial<MessageHashInput>): MessageHashInput => ({ code: "GM4_1", contextId: "", pCount: 0, scrip: scrip({}), ...over });
  t.throws(() => messageInput(msg({ scrip: scrip({}, { value: I64_MAX + 1n }) })), { instanceOf: RangeError });
  t.throws(() => messageInput(msg({ scrip: scrip({}, { scripId: create(IdTypeSchema, { serialNumber: -1n }) }) })), {
    instanceOf: RangeError,
  });
  t.throws(() => messageInput(msg({ scrip: scrip({}, { vendorId: create(ServerTypeSchema, { port: U32_MAX + 1 }) }) })), {
    instanceOf: RangeError,
  });
  t.throws(() => messageInput(msg({ scrip: scrip({ hashAlgorithm: -1 as HashAlgorithm }) })), { instanceOf: RangeError });
  t.throws(() => messageInput(msg({ pCount: -1 })), { instanceOf: RangeError });
  t.throws(() => messageInput(msg({ amount: I64_MIN - 1n })), { instanceOf: RangeError });
  t.throws(() => settlementsInput("v", -1n, 0n), { instanceOf: RangeError });
  t.throws(() => customSecretInput(0, U64_MAX + 1n), { instanceOf: RangeError });
  t.throws(() => offerInput(create(OfferSchema, { amount: I64_MAX + 1n })), { instanceOf: RangeError });
  t.throws(() => receiptInput(create(ReceiptSchema, { price: I64_MIN - 1n })), { instanceOf: RangeError });
});

test("strings are length-prefixed by UTF-8 byte count, with no normalisation", (t) => {
  check(
    t,
    fc.property(fc.string({ unit: "binary", maxLength: 40 }), (s) => {
      const out = new CanonicalWriter(8).str(s).finish();
      const utf8 = Buffer.from(s, "utf8");
      return new DataView(out.buffer, out.byteOffset).getUint32(0) === utf8.length && Buffer.from(out.subarray(4)).equals(utf8);
    }),
    300,
  );
  // NFC "é" (U+00E9) and NFD "e" + U+0301 are different bytes, so different MAC inputs.
  const nfc = new CanonicalWriter().str("\u00e9").finish().slice();
  const nfd = new CanonicalWriter().str("e\u0301").finish().slice();
  t.deepEqual([...nfc], [0, 0, 0, 2, 0xc3, 0xa9]);
  t.deepEqual([...nfd], [0, 0, 0, 3, 0x65, 0xcc, 0x81]);
});
