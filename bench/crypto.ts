/**
 * Section 1: the center's cryptography per payment against the public-key
 * operations other e-cash designs need per coin, in the same process.
 *
 * What one payment costs the center, counted from src/center/center.ts:
 *   S3 InitPayment   verifyOfferMac (MAC), offerHash (SHA-256) for the TranID row
 *   S4 Pay           verifyRequestHash PM4_1 over scrip+pOder (MAC),
 *                    verifyCertificate (MAC), verifyOfferMac (MAC),
 *                    offerHash compare (SHA-256), computeCertificate for the
 *                    change (MAC), PM5_1 reply hash (MAC)
 *   S6 ConfirmPayment verifyRequestHash PM6_1 (MAC), verifyCertificate (MAC),
 *                    computeReceiptMac (MAC), PM7_1 reply hash (MAC)
 *   = 10 HMAC-SHA-256 + 2 SHA-256, each over a freshly built canonical
 *   encoding. Custom_Secret derivation (1 HMAC) is cached per customer and
 *   is reported separately.
 */
import { hashBackend } from "../src/crypto/hash.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { ed25519 } from "@noble/curves/ed25519.js";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import {
  constants as cc,
  createHash,
  createHmac,
  generateKeyPairSync,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
  sign as nodeSign,
  verify as nodeVerify,
  type KeyObject,
} from "node:crypto";
import { HashAlgorithm } from "../gen/scripwire/v1/types_pb.js";
import { offerHash } from "../src/center/center.js";
import { certificateInput, customSecretInput, messageInput, offerInput, receiptInput, type MessageHashInput } from "../src/crypto/canonical.js";
import { constantTimeEqual } from "../src/crypto/mac.js";
import {
  computeCertificate,
  computeMessageHash,
  computeReceiptMac,
  verifyCertificate,
  verifyMessageHash,
  verifyOfferMac,
} from "../src/crypto/scrip-auth.js";
import { microGroup, type MicroOptions } from "./lib/stats.js";
import type { World } from "./world.js";

export interface CryptoRow {
  name: string;
  us: number;
  usMin: number;
  note?: string;
}

export interface CryptoReport {
  /** Operations counted in one S3+S4+S6 at the center. */
  paymentOps: { mac: number; sha256: number };
  rows: CryptoRow[];
  /** comparator name -> comparator µs / Scripwire payment µs */
  ratios: Record<string, number>;
  inputBytes: Record<string, number>;
}

type MacFn = (key: Uint8Array, input: Uint8Array) => Uint8Array;

/** The center's S3+S4+S6 cryptography with a pluggable MAC, inputs built exactly as src/crypto builds them. */
function paymentCryptoWith(w: World, mac: MacFn, shaFn: (a: Uint8Array, b: Uint8Array) => Uint8Array): () => unknown {
  const p = w.flow.pay;
  const cs = p.customSecret;
  const vk = w.vendorSecret;
  const certKey = w.certKey;
  const order = p.order;
  const tranId = order.tranId;
  const newBody = p.newScrip.scrip!;
  const receipt = p.receipt;
  const verify = (key: Uint8Array, input: Uint8Array, tag: Uint8Array) => constantTimeEqual(mac(key, input), tag);
  return () => {
    // S3
    let ok = verify(vk, offerInput(order), order.mac);
    const h3 = shaFn(offerInput(order), order.mac);
    // S4
    ok = verify(cs, messageInput({ code: "PM4_1", contextId: tranId, pCount: 0, scrip: p.scrip, order }), p.payHash) && ok;
    ok = verify(certKey, certificateInput(p.scrip.scrip), p.scrip.certificate) && ok;
    ok = verify(vk, offerInput(order), order.mac) && ok;
    ok = constantTimeEqual(h3, shaFn(offerInput(order), order.mac)) && ok;
    const cert = mac(certKey, certificateInput(newBody));
    const r5 = mac(cs, messageInput({ code: "PM5_1", contextId: tranId, pCount: 0, scrip: p.newScrip }));
    // S6
    ok = verify(cs, messageInput({ code: "PM6_1", contextId: tranId, pCount: 0, scrip: p.newScrip }), p.confirmHash) && ok;
    ok = verify(certKey, certificateInput(newBody), p.newScrip.certificate) && ok;
    const rm = mac(vk, receiptInput(receipt));
    const r7 = mac(cs, messageInput({ code: "PM7_1", contextId: tranId, pCount: 1, scrip: p.newScrip }));
    if (!ok) throw new Error("bench crypto: a MAC failed to verify (inputs out of sync with center.ts)");
    return cert[0]! ^ r5[0]! ^ rm[0]! ^ r7[0]!;
  };
}

/** The same sequence through the project's own src/crypto functions (what the center really runs). */
function paymentCryptoAsIs(w: World): () => unknown {
  const p = w.flow.pay;
  const cs = p.customSecret;
  const vk = w.vendorSecret;
  const certKey = w.certKey;
  const order = p.order;
  const tranId = order.tranId;
  const alg = HashAlgorithm.HMAC_SHA256;
  return () => {
    let ok = verifyOfferMac(vk, order);
    const h3 = offerHash(order);
    ok = verifyMessageHash(alg, cs, { code: "PM4_1", contextId: tranId, pCount: 0, scrip: p.scrip, order }, p.payHash) && ok;
    ok = verifyCertificate(certKey, p.scrip) && ok;
    ok = verifyOfferMac(vk, order) && ok;
    ok = Buffer.compare(Buffer.from(h3), Buffer.from(offerHash(order))) === 0 && ok;
    const cert = computeCertificate(alg, certKey, p.newScrip.scrip!);
    const r5 = computeMessageHash(alg, cs, { code: "PM5_1", contextId: tranId, pCount: 0, scrip: p.newScrip });
    ok = verifyMessageHash(alg, cs, { code: "PM6_1", contextId: tranId, pCount: 0, scrip: p.newScrip }, p.confirmHash) && ok;
    ok = verifyCertificate(certKey, p.newScrip) && ok;
    const rm = computeReceiptMac(vk, p.receipt);
    const r7 = computeMessageHash(alg, cs, { code: "PM7_1", contextId: tranId, pCount: 1, scrip: p.newScrip });
    if (!ok) throw new Error("bench crypto: a MAC failed to verify (inputs out of sync with center.ts)");
    return cert[0]! ^ r5[0]! ^ rm[0]! ^ r7[0]!;
  };
}

const nobleMac: MacFn = (k, m) => hmac(sha256, k, m);
const nobleSha = (a: Uint8Array, b: Uint8Array) => sha256.create().update(a).update(b).digest();

/** noble HMAC with the keyed inner/outer state computed once per key and cloned per message. */
function noblePrekeyedMac(): MacFn {
  const cache = new Map<Uint8Array, ReturnType<typeof hmac.create>>();
  return (k, m) => {
    let base = cache.get(k);
    if (!base) {
      base = hmac.create(sha256, k);
      cache.set(k, base);
    }
    return base.clone().update(m).digest();
  };
}

const nodeMac: MacFn = (k, m) => new Uint8Array(createHmac("sha256", k).update(m).digest());
const nodeSha = (a: Uint8Array, b: Uint8Array) => new Uint8Array(createHash("sha256").update(a).update(b).digest());

// ------------------------------------------------------------------ BDHKE (Cashu NUT-00)

const CASHU_DOMAIN = new TextEncoder().encode("Secp256k1_HashToCurve_Cashu_");
const Point = secp256k1.Point;
const N = Point.Fn.ORDER;

function bytesToBig(b: Uint8Array): bigint {
  return BigInt("0x" + (Buffer.from(b).toString("hex") || "0"));
}

function randScalar(): bigint {
  for (;;) {
    const k = bytesToBig(randomBytes(32)) % N;
    if (k !== 0n) return k;
  }
}

/** NUT-00 hash_to_curve: Y = lift(0x02 || SHA256(SHA256(domain || x) || counter_le32)). */
export function hashToCurve(x: Uint8Array) {
  const msgHash = sha256.create().update(CASHU_DOMAIN).update(x).digest();
  const ctr = new Uint8Array(4);
  const buf = new Uint8Array(33);
  buf[0] = 0x02;
  for (let c = 0; c < 1 << 16; c++) {
    new DataView(ctr.buffer).setUint32(0, c, true);
    buf.set(sha256.create().update(msgHash).update(ctr).digest(), 1);
    try {
      return Point.fromBytes(buf);
    } catch {
      // not on the curve; next counter
    }
  }
  throw new Error("hash_to_curve: no point found");
}

// ------------------------------------------------------------------ RSA blind signature (GNU Taler)

function modPow(b: bigint, e: bigint, m: bigint): bigint {
  let r = 1n;
  b %= m;
  while (e > 0n) {
    if (e & 1n) r = (r * b) % m;
    b = (b * b) % m;
    e >>= 1n;
  }
  return r;
}

function modInv(a: bigint, m: bigint): bigint {
  let [r0, r1] = [a % m, m];
  let [s0, s1] = [1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  if (r0 !== 1n) throw new Error("not invertible");
  return ((s0 % m) + m) % m;
}

function bigToBytes(v: bigint, len: number): Buffer {
  return Buffer.from(v.toString(16).padStart(len * 2, "0"), "hex");
}

function b64uToBig(s: string): bigint {
  return bytesToBig(Buffer.from(s, "base64url"));
}

/** Full-domain hash to [0, n): SHA-512 in counter mode over the modulus length (Taler's RSA-FDH, simplified KDF). */
function fdh(msg: Uint8Array, n: bigint, len: number): bigint {
  const out = Buffer.alloc(len);
  for (let i = 0, off = 0; off < len; i++, off += 64) {
    const h = createHash("sha512").update(msg).update(Buffer.from([i])).digest();
    h.copy(out, off, 0, Math.min(64, len - off));
  }
  return bytesToBig(out) % n;
}

interface RsaKey {
  priv: KeyObject;
  pub: KeyObject;
  n: bigint;
  e: bigint;
  len: number;
}

function rsaKey(): RsaKey {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048, publicExponent: 65537 });
  const jwk = publicKey.export({ format: "jwk" });
  return { priv: privateKey, pub: publicKey, n: b64uToBig(jwk.n!), e: b64uToBig(jwk.e!), len: 256 };
}

export async function runCrypto(w: World, opts: MicroOptions, onStep: (m: string) => void): Promise<CryptoReport> {
  const p = w.flow.pay;
  const cases: Array<{ name: string; fn: () => unknown; note?: string }> = [];
  const add = (name: string, fn: () => unknown, note?: string) => cases.push({ name, fn, note });

  // --- Scripwire, as the center runs it
  add(`Scripwire center crypto per payment (S3+S4+S6, src/crypto as the Node center runs it: ${hashBackend().name})`, paymentCryptoAsIs(w), "10 HMAC-SHA-256 + 2 SHA-256 incl. canonical encoding");
  add("  same sequence with @noble/hashes (the reference; what the browser wallet runs)", paymentCryptoWith(w, nobleMac, nobleSha));
  add("  same, noble HMAC with per-key precomputed state", paymentCryptoWith(w, noblePrekeyedMac(), nobleSha), "candidate change to src/crypto/mac.ts");
  add("  same, node:crypto createHmac/createHash (bench copy)", paymentCryptoWith(w, nodeMac, nodeSha), "the backend Node processes use since issue 13 (src/crypto/native-hash.ts)");

  // --- where the time goes
  const msg4: MessageHashInput = { code: "PM4_1", contextId: p.order.tranId, pCount: 0, scrip: p.scrip, order: p.order };
  const in4 = messageInput(msg4).slice();
  add("  canonical encodings only (the 12 inputs)", () => {
    let n = 0;
    n += offerInput(p.order).length * 4;
    n += messageInput(msg4).length;
    n += certificateInput(p.scrip.scrip).length + certificateInput(p.newScrip.scrip).length * 2;
    n += messageInput({ code: "PM5_1", contextId: p.order.tranId, pCount: 0, scrip: p.newScrip }).length * 3;
    n += receiptInput(p.receipt).length;
    return n;
  });
  add("  one HMAC-SHA-256 (noble) over the S4 input", () => hmac(sha256, p.customSecret, in4), `${in4.length}-byte input`);
  add("  one HMAC-SHA-256 (node:crypto) over the S4 input", () => createHmac("sha256", p.customSecret).update(in4).digest());
  const csIn = customSecretInput(1, 12345n).slice();
  const master = w.certKey;
  add("Custom_Secret derivation (cache miss only)", () => hmac(sha256, master, csIn), "1 HMAC; cached per customer");

  // --- Ed25519
  const body = certificateInput(p.newScrip.scrip).slice();
  const ed = generateKeyPairSync("ed25519");
  const edSig = nodeSign(null, body, ed.privateKey);
  add("Ed25519 sign+verify (node:crypto)", () => {
    const s = nodeSign(null, body, ed.privateKey);
    return nodeVerify(null, body, ed.publicKey, s);
  });
  add("  Ed25519 verify only (node:crypto)", () => nodeVerify(null, body, ed.publicKey, edSig));
  const nsk = ed25519.utils.randomSecretKey();
  const npk = ed25519.getPublicKey(nsk);
  add("Ed25519 sign+verify (@noble/curves)", () => ed25519.verify(ed25519.sign(body, nsk), body, npk));

  // --- Cashu BDHKE
  const k = randScalar();
  const K = Point.BASE.multiply(k);
  add(
    "Cashu BDHKE step, secp256k1 (@noble/curves)",
    () => {
      const secret = randomBytes(32);
      const Y = hashToCurve(secret);
      const r = randScalar();
      const B_ = Y.add(Point.BASE.multiply(r)); // wallet blinds
      const C_ = B_.multiply(k); // mint signs
      const C = C_.subtract(K.multiply(r)); // wallet unblinds
      if (!hashToCurve(secret).multiply(k).equals(C)) throw new Error("BDHKE failed"); // mint verifies at redemption
      return C;
    },
    "hash_to_curve, B'=Y+rG, C'=kB', C=C'-rK, check C==k·Y",
  );
  const Bfix = hashToCurve(randomBytes(32)).add(Point.BASE.multiply(randScalar()));
  add("  BDHKE mint side only (sign C'=kB' + verify k·hash_to_curve(x)==C)", () => [Bfix.multiply(k), hashToCurve(randomBytes(32)).multiply(k)]);

  // --- Taler RSA blind signature
  onStep("crypto: generating an RSA-2048 key");
  const rsa = rsaKey();
  add(
    "RSA-2048 blind signature, Taler-style (node:crypto + bigint)",
    () => {
      const coin = randomBytes(32);
      const m = fdh(coin, rsa.n, rsa.len);
      let r: bigint;
      do r = bytesToBig(randomBytes(rsa.len)) % rsa.n;
      while (r < 2n);
      const blinded = (m * modPow(r, rsa.e, rsa.n)) % rsa.n; // wallet blinds
      const sBlind = bytesToBig(privateDecrypt({ key: rsa.priv, padding: cc.RSA_NO_PADDING }, bigToBytes(blinded, rsa.len))); // exchange signs
      const s = (sBlind * modInv(r, rsa.n)) % rsa.n; // wallet unblinds
      const check = bytesToBig(publicEncrypt({ key: rsa.pub, padding: cc.RSA_NO_PADDING }, bigToBytes(s, rsa.len))); // exchange verifies at deposit
      if (check !== m) throw new Error("RSA blind signature failed");
      return s;
    },
    "FDH, blind r^e, raw RSA sign (privateDecrypt NO_PADDING, CRT), unblind r^-1, verify",
  );
  const mFixBytes = bigToBytes(fdh(randomBytes(32), rsa.n, rsa.len), rsa.len);
  add("  RSA-2048 exchange side: sign blinded (privateDecrypt)", () => privateDecrypt({ key: rsa.priv, padding: cc.RSA_NO_PADDING }, mFixBytes));
  const sigFix = privateDecrypt({ key: rsa.priv, padding: cc.RSA_NO_PADDING }, mFixBytes);
  add("  RSA-2048 exchange side: verify (publicEncrypt)", () => publicEncrypt({ key: rsa.pub, padding: cc.RSA_NO_PADDING }, sigFix));

  onStep(`crypto: ${cases.length} operations, ${opts.samples} interleaved samples each`);
  const measured = microGroup(
    cases.map((c) => c.fn),
    opts,
  );
  const rows: CryptoRow[] = cases.map((c, i) => ({ name: c.name, us: measured[i]!.us, usMin: measured[i]!.usMin, note: c.note }));
  const us = (prefix: string) => rows.find((r) => r.name.startsWith(prefix))!.us;
  const asIs = rows[0]!.us;
  const ratios: Record<string, number> = {
    "Ed25519 sign+verify (node:crypto)": us("Ed25519 sign+verify (node") / asIs,
    "Ed25519 sign+verify (@noble/curves)": us("Ed25519 sign+verify (@noble") / asIs,
    "Cashu BDHKE step (@noble/curves)": us("Cashu BDHKE step") / asIs,
    "Cashu BDHKE mint side": us("  BDHKE mint side") / asIs,
    "RSA-2048 blind signature (full)": us("RSA-2048 blind signature") / asIs,
    "RSA-2048 blind sign (exchange side only)": us("  RSA-2048 exchange side: sign") / asIs,
  };
  return {
    paymentOps: { mac: 10, sha256: 2 },
    rows,
    ratios,
    inputBytes: {
      "S4 request hash input (PM4_1, scrip + pOder)": in4.length,
      "certificate input": certificateInput(p.newScrip.scrip).length,
      "offer input": offerInput(p.order).length,
      "receipt input": receiptInput(p.receipt).length,
      "S6 / S5 reply hash input (scrip only)": messageInput({ code: "PM6_1", contextId: p.order.tranId, pCount: 0, scrip: p.newScrip }).length,
    },
  };
}
