/**
 * Generates testdata/vectors.json, the language-neutral contract for every
 * hash and sealing construction in src/crypto (spec: docs/canonical-encoding.md).
 *
 *   node --import=tsx scripts/gen-vectors.ts > testdata/vectors.json
 *
 * Deterministic: every key, nonce and ephemeral secret is a fixed byte
 * pattern, so the output only changes when an encoding or a vector changes.
 * test/crypto-vectors.test.ts regenerates the file in-process and fails if it
 * differs from the committed one, so vectors never drift silently.
 *
 * JSON conventions (also in the file's "conventions" object):
 *   - every integer that is not an enum (u32, u64, i64) is a decimal string,
 *     because u64/i64 exceed 2^53 and one rule is easier than two;
 *   - enums (hash_algorithm, kind, delivery_method) are JSON numbers;
 *   - bytes are lowercase hex in fields ending in `_hex`;
 *   - an absent nested message is `null`;
 *   - field names are the proto field names.
 */
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import { x25519 } from "@noble/curves/ed25519.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import {
  DeliveryMethod,
  HashAlgorithm,
  IdTypeSchema,
  OfferKind,
  OfferSchema,
  ReceiptSchema,
  ScripBodyTypeSchema,
  ScripTypeSchema,
  ServerTypeSchema,
  type IdType,
  type Offer,
  type Receipt,
  type ScripBodyType,
  type ScripType,
  type ServerType,
} from "../gen/scripwire/v1/types_pb.js";
import {
  CanonicalWriter,
  TAG,
  certificateInput,
  customSecretInput,
  messageInput,
  offerInput,
  receiptInput,
  settlementsInput,
  type MessageHashInput,
} from "../src/crypto/canonical.js";
import { mac } from "../src/crypto/mac.js";
import { encryptCustomSecret, sealSessionKey } from "../src/crypto/registration.js";
import {
  computeCertificate,
  computeMessageHash,
  computeOfferMac,
  computeReceiptMac,
  computeSettlementsMac,
} from "../src/crypto/scrip-auth.js";
import {
  computeRefundMac,
  computeSyncReplyHash,
  computeSyncRequestHash,
  refundRequestInput,
  syncReplyInput,
  syncRequestInput,
  SYNC_TAG,
  type RefundRequestFields,
  type SyncReplyFields,
} from "../src/crypto/sync-auth.js";
import { encodeRecoveryCode, RECOVERY_TAG } from "../src/crypto/recovery.js";

export const VECTORS_VERSION = 1;

// ---------------------------------------------------------------- JSON shapes

export interface ServerJson {
  dns_name: string;
  ip_addr: string;
  server_name: string;
  port: string;
}
export interface IdJson {
  secret_id: string;
  serial_number: string;
}
export interface ScripBodyJson {
  currency: string;
  value: string;
  vendor_id: ServerJson | null;
  scrip_id: IdJson | null;
  custom_id: IdJson | null;
  ad: string;
  expiration_date_unix: string;
}
export interface ScripJson {
  hash_algorithm: number;
  scrip: ScripBodyJson | null;
  certificate_hex: string;
}
export interface OfferJson {
  vendor: ServerJson | null;
  vendor_id: string;
  tran_id: string;
  kind: number;
  amount: string;
  currency: string;
  item: string;
  campaign_id: string;
  delivery_method: number;
  custom_id: IdJson | null;
  expires_at_unix: string;
  vendor_key_id: string;
  hash_algorithm: number;
  /** Only inside a message hash (pOder is hashed with its mac); never in an "offer" vector. */
  mac_hex?: string;
}
export interface ReceiptJson {
  vendor_id: string;
  tran_id: string;
  request_url: string;
  price: string;
  currency: string;
  delivery_method: number;
  custom_id: IdJson | null;
  paid_at_unix: string;
  vendor_key_id: string;
  hash_algorithm: number;
}

export type Construction =
  | "certificate"
  | "message"
  | "offer"
  | "receipt"
  | "settlements"
  | "custom_secret"
  | "seal_session_key"
  | "encrypt_custom_secret"
  | "sync_request"
  | "sync_reply"
  | "refund_request"
  | "recovery_code";

interface VectorBase {
  name: string;
  construction: Construction;
  /** Human-readable algorithm name; `algorithm_id` is the HashAlgorithm enum value for the MAC constructions. */
  algorithm: string;
  algorithm_id?: number;
  note?: string;
  key_hex: string;
  /** The exact bytes fed to the MAC (for the AEAD constructions: the associated data). */
  canonical_hex: string;
}

export interface MacVector extends VectorBase {
  construction: Exclude<Construction, "seal_session_key" | "encrypt_custom_secret" | "recovery_code">;
  algorithm_id: number;
  inputs: Record<string, unknown>;
  /** MAC(key, canonical bytes): 32 bytes. */
  digest_hex: string;
}

export interface SealVector extends VectorBase {
  construction: "seal_session_key";
  inputs: {
    center_secret_key_hex: string;
    center_public_key_hex: string;
    wallet_id: string;
    session_key_hex: string;
    ephemeral_secret_key_hex: string;
    nonce_hex: string;
  };
  intermediate: {
    ephemeral_public_key_hex: string;
    shared_secret_hex: string;
    hkdf_salt_hex: string;
    hkdf_info_hex: string;
    aead_key_hex: string;
  };
  /** sealed_session_key: ephemeral public key (32) || nonce (24) || ciphertext (32) || tag (16). */
  output_hex: string;
}

export interface EncryptCustomSecretVector extends VectorBase {
  construction: "encrypt_custom_secret";
  inputs: {
    session_key_hex: string;
    wallet_id: string;
    secret_id: string;
    serial_number: string;
    custom_secret_hex: string;
    nonce_hex: string;
  };
  /** encrypted_custom_secret: nonce (24) || ciphertext (32) || tag (16). */
  output_hex: string;
}

/** Recovery code (§5.10): the checksum hash input and digest, and the code text. */
export interface RecoveryCodeVector extends VectorBase {
  construction: "recovery_code";
  inputs: { secret_id: string; serial_number: string; custom_secret_hex: string };
  /** The 44-byte payload: u32 secret_id ‖ u64 serial_number ‖ Custom_Secret. */
  payload_hex: string;
  /** SHA-256(canonical bytes); its first 15 bits are the three hash symbols. */
  digest_hex: string;
  /** The code exactly as shown to the customer. */
  output_text: string;
}

export type Vector = MacVector | SealVector | EncryptCustomSecretVector | RecoveryCodeVector;

export interface VectorFile {
  version: number;
  description: string;
  spec: string;
  conventions: Record<string, string>;
  algorithms: Record<string, string>;
  tags: Record<string, string>;
  count: number;
  vectors: Vector[];
}

// ------------------------------------------------------------------- helpers

/** Field overrides for `create()`: the message's fields without its `$` metadata. */
type Init<T> = Partial<Omit<T, "$typeName" | "$unknown">>;

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
/** `n` bytes start, start+1, ... (mod 256): keys anyone can retype. */
const seq = (start: number, n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff);

const U32_MAX = 0xffff_ffff;
const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;

const ALG_NAME: Record<number, string> = {
  [HashAlgorithm.HMAC_SHA256]: "HMAC-SHA-256",
  [HashAlgorithm.SHA256_SUFFIX]: "SHA-256-SUFFIX",
};
const HMAC = HashAlgorithm.HMAC_SHA256;
const SUFFIX = HashAlgorithm.SHA256_SUFFIX;
const ALGS = [HMAC, SUFFIX] as const;
const algSlug = (alg: HashAlgorithm): string => (alg === HMAC ? "hmac-sha-256" : "sha-256-suffix");

const serverJson = (s: ServerType | undefined): ServerJson | null =>
  s ? { dns_name: s.dnsName, ip_addr: s.ipAddr, server_name: s.serverName, port: String(s.port) } : null;
const idJson = (id: IdType | undefined): IdJson | null =>
  id ? { secret_id: String(id.secretId), serial_number: id.serialNumber.toString() } : null;
const bodyJson = (b: ScripBodyType | undefined): ScripBodyJson | null =>
  b
    ? {
        currency: b.currency,
        value: b.value.toString(),
        vendor_id: serverJson(b.vendorId),
        scrip_id: idJson(b.scripId),
        custom_id: idJson(b.customId),
        ad: b.ad,
        expiration_date_unix: b.expirationDateUnix.toString(),
      }
    : null;
const scripJson = (s: ScripType | undefined): ScripJson | null =>
  s ? { hash_algorithm: s.hashAlgorithm, scrip: bodyJson(s.scrip), certificate_hex: hex(s.certificate) } : null;
function offerJson(o: Offer, withMac: boolean): OfferJson {
  const j: OfferJson = {
    vendor: serverJson(o.vendor),
    vendor_id: o.vendorId,
    tran_id: o.tranId,
    kind: o.kind,
    amount: o.amount.toString(),
    currency: o.currency,
    item: o.item,
    campaign_id: o.campaignId,
    delivery_method: o.deliveryMethod,
    custom_id: idJson(o.customId),
    expires_at_unix: o.expiresAtUnix.toString(),
    vendor_key_id: String(o.vendorKeyId),
    hash_algorithm: o.hashAlgorithm,
  };
  if (withMac) j.mac_hex = hex(o.mac);
  return j;
}
const receiptJson = (r: Receipt): ReceiptJson => ({
  vendor_id: r.vendorId,
  tran_id: r.tranId,
  request_url: r.requestUrl,
  price: r.price.toString(),
  currency: r.currency,
  delivery_method: r.deliveryMethod,
  custom_id: idJson(r.customId),
  paid_at_unix: r.paidAtUnix.toString(),
  vendor_key_id: String(r.vendorKeyId),
  hash_algorithm: r.hashAlgorithm,
});

// ------------------------------------------------------------- fixed inputs

/** Certificate key, generation 3 (scrip_id.secret_id = 3). */
export const CERT_KEY = seq(0x00, 32);
/** Custom_Secret master key, generation 1 (custom_id.secret_id = 1). */
export const MASTER_KEY = seq(0x20, 32);
/** Vendor secret of "mall-1", vendor_key_id 1. */
export const VENDOR_SECRET = seq(0x40, 32);
/** A 65-byte key: longer than SHA-256's 64-byte block, so HMAC hashes it first. */
const LONG_KEY = seq(0x60, 65);
const CENTER_SECRET = seq(0x80, 32);
const EPHEMERAL_SECRET = seq(0xa0, 32);
const SESSION_KEY = seq(0xc0, 32);
const NONCE = seq(0xe0, 24);

const CUSTOMER: IdType = create(IdTypeSchema, { secretId: 1, serialNumber: 42n });
/** The customer's Custom_Secret as the center derives it (see the custom_secret vectors). */
export const CUSTOM_SECRET = mac(HMAC, MASTER_KEY, customSecretInput(CUSTOMER.secretId, CUSTOMER.serialNumber));

const CENTER: ServerType = create(ServerTypeSchema, {
  dnsName: "center.example",
  ipAddr: "192.0.2.10",
  serverName: "Scripwire Center",
  port: 8443,
});
const MALL: ServerType = create(ServerTypeSchema, {
  dnsName: "mall.example",
  ipAddr: "",
  serverName: "Hash Cash Mall 해시",
  port: 443,
});

const EXPIRY = 1767225600n; // 2026-01-01T00:00:00Z

function body(serial: bigint, value: bigint, over: Init<ScripBodyType> = {}): ScripBodyType {
  return create(ScripBodyTypeSchema, {
    currency: "KRW",
    value,
    vendorId: CENTER,
    scripId: create(IdTypeSchema, { secretId: 3, serialNumber: serial }),
    customId: CUSTOMER,
    ad: "quiz/hash-cash-1",
    expirationDateUnix: EXPIRY,
    ...over,
  });
}

function certified(alg: HashAlgorithm, b: ScripBodyType | undefined): ScripType {
  return create(ScripTypeSchema, {
    hashAlgorithm: alg,
    scrip: b,
    certificate: b ? computeCertificate(alg, CERT_KEY, b) : new Uint8Array(0),
  });
}

function signedOffer(alg: HashAlgorithm, over: Init<Offer>): Offer {
  const o = create(OfferSchema, {
    vendor: MALL,
    vendorId: "mall-1",
    tranId: "T-pay-0001",
    kind: OfferKind.PAY,
    amount: 30n,
    currency: "KRW",
    item: "/articles/hash-cash",
    campaignId: "",
    deliveryMethod: DeliveryMethod.VIEW,
    customId: CUSTOMER,
    expiresAtUnix: 1764547500n,
    vendorKeyId: 1,
    hashAlgorithm: alg,
    ...over,
  });
  o.mac = computeOfferMac(VENDOR_SECRET, o);
  return o;
}

// ---------------------------------------------------------------- builders

function certificateVector(name: string, alg: HashAlgorithm, key: Uint8Array, b: ScripBodyType | undefined, note?: string): MacVector {
  return {
    name: `certificate/${algSlug(alg)}/${name}`,
    construction: "certificate",
    algorithm: ALG_NAME[alg]!,
    algorithm_id: alg,
    ...(note ? { note } : {}),
    key_hex: hex(key),
    inputs: { body: bodyJson(b) },
    canonical_hex: hex(certificateInput(b)),
    digest_hex: hex(b ? computeCertificate(alg, key, b) : mac(alg, key, certificateInput(undefined))),
  };
}

function messageVector(name: string, alg: HashAlgorithm, m: MessageHashInput, note: string, key = CUSTOM_SECRET): MacVector {
  return {
    name: `message/${algSlug(alg)}/${name}`,
    construction: "message",
    algorithm: ALG_NAME[alg]!,
    algorithm_id: alg,
    note,
    key_hex: hex(key),
    inputs: {
      code: m.code,
      context_id: m.contextId,
      p_count: String(m.pCount),
      scrip: scripJson(m.scrip),
      order: m.order ? offerJson(m.order, true) : null,
      amount: (m.amount ?? 0n).toString(),
      account: m.account ?? "",
    },
    canonical_hex: hex(messageInput(m)),
    digest_hex: hex(computeMessageHash(alg, key, m)),
  };
}

function offerVector(name: string, o: Offer, note?: string, key = VENDOR_SECRET): MacVector {
  return {
    name: `offer/${algSlug(o.hashAlgorithm)}/${name}`,
    construction: "offer",
    algorithm: ALG_NAME[o.hashAlgorithm]!,
    algorithm_id: o.hashAlgorithm,
    ...(note ? { note } : {}),
    key_hex: hex(key),
    inputs: { offer: offerJson(o, false) },
    canonical_hex: hex(offerInput(o)),
    digest_hex: hex(computeOfferMac(key, o)),
  };
}

function receiptVector(name: string, r: Receipt, note?: string, key = VENDOR_SECRET): MacVector {
  return {
    name: `receipt/${algSlug(r.hashAlgorithm)}/${name}`,
    construction: "receipt",
    algorithm: ALG_NAME[r.hashAlgorithm]!,
    algorithm_id: r.hashAlgorithm,
    ...(note ? { note } : {}),
    key_hex: hex(key),
    inputs: { receipt: receiptJson(r) },
    canonical_hex: hex(receiptInput(r)),
    digest_hex: hex(computeReceiptMac(key, r)),
  };
}

function settlementsVector(
  name: string,
  alg: HashAlgorithm,
  key: Uint8Array,
  vendorId: string,
  afterSequence: bigint,
  timestampUnixMs: bigint,
  note?: string,
): MacVector {
  return {
    name: `settlements/${algSlug(alg)}/${name}`,
    construction: "settlements",
    algorithm: ALG_NAME[alg]!,
    algorithm_id: alg,
    ...(note ? { note } : {}),
    key_hex: hex(key),
    inputs: { vendor_id: vendorId, after_sequence: afterSequence.toString(), timestamp_unix_ms: timestampUnixMs.toString() },
    canonical_hex: hex(settlementsInput(vendorId, afterSequence, timestampUnixMs)),
    digest_hex: hex(computeSettlementsMac(alg, key, vendorId, afterSequence, timestampUnixMs)),
  };
}

function customSecretVector(name: string, key: Uint8Array, secretId: number, serialNumber: bigint, note?: string): MacVector {
  const input = customSecretInput(secretId, serialNumber);
  return {
    name: `custom_secret/hmac-sha-256/${name}`,
    construction: "custom_secret",
    algorithm: ALG_NAME[HMAC]!,
    algorithm_id: HMAC,
    ...(note ? { note } : {}),
    key_hex: hex(key),
    inputs: { secret_id: String(secretId), serial_number: serialNumber.toString() },
    canonical_hex: hex(input),
    digest_hex: hex(mac(HMAC, key, input)),
  };
}

function sealVector(name: string, walletId: string, sessionKey: Uint8Array, ephemeralSecret: Uint8Array, nonce: Uint8Array): SealVector {
  const centerPub = x25519.getPublicKey(CENTER_SECRET);
  const ephemeralPub = x25519.getPublicKey(ephemeralSecret);
  const shared = x25519.getSharedSecret(ephemeralSecret, centerPub);
  const salt = new Uint8Array([...ephemeralPub, ...centerPub]);
  const info = utf8(TAG.sealSessionKey);
  return {
    name: `seal_session_key/${name}`,
    construction: "seal_session_key",
    algorithm: "X25519+HKDF-SHA-256+XChaCha20-Poly1305",
    key_hex: hex(centerPub),
    inputs: {
      center_secret_key_hex: hex(CENTER_SECRET),
      center_public_key_hex: hex(centerPub),
      wallet_id: walletId,
      session_key_hex: hex(sessionKey),
      ephemeral_secret_key_hex: hex(ephemeralSecret),
      nonce_hex: hex(nonce),
    },
    intermediate: {
      ephemeral_public_key_hex: hex(ephemeralPub),
      shared_secret_hex: hex(shared),
      hkdf_salt_hex: hex(salt),
      hkdf_info_hex: hex(info),
      aead_key_hex: hex(hkdf(sha256, shared, salt, info, 32)),
    },
    canonical_hex: hex(new CanonicalWriter().str(TAG.sealSessionKey).str(walletId).finish()),
    output_hex: hex(sealSessionKey(centerPub, walletId, sessionKey, ephemeralSecret, nonce)),
  };
}

function encryptVector(
  name: string,
  walletId: string,
  secretId: number,
  serialNumber: bigint,
  customSecret: Uint8Array,
  nonce: Uint8Array,
): EncryptCustomSecretVector {
  return {
    name: `encrypt_custom_secret/${name}`,
    construction: "encrypt_custom_secret",
    algorithm: "XChaCha20-Poly1305",
    key_hex: hex(SESSION_KEY),
    inputs: {
      session_key_hex: hex(SESSION_KEY),
      wallet_id: walletId,
      secret_id: String(secretId),
      serial_number: serialNumber.toString(),
      custom_secret_hex: hex(customSecret),
      nonce_hex: hex(nonce),
    },
    canonical_hex: hex(
      new CanonicalWriter().str(TAG.encryptCustomSecret).str(walletId).u32(secretId).u64(serialNumber).finish(),
    ),
    output_hex: hex(encryptCustomSecret(SESSION_KEY, walletId, { secretId, serialNumber }, customSecret, nonce)),
  };
}

// ------------------------------------------------------------------ vectors

/** The small scrip body annotated byte by byte in docs/canonical-encoding.md ("Worked example"). */
export const DOC_EXAMPLE_VECTOR = "certificate/hmac-sha-256/doc-example";

function certificateVectors(): MacVector[] {
  const out: MacVector[] = [];
  out.push(
    certificateVector(
      "doc-example",
      HMAC,
      CERT_KEY,
      create(ScripBodyTypeSchema, {
        currency: "KRW",
        value: 100n,
        vendorId: create(ServerTypeSchema, { dnsName: "c.kr", ipAddr: "", serverName: "", port: 80 }),
        scripId: create(IdTypeSchema, { secretId: 3, serialNumber: 7n }),
        customId: create(IdTypeSchema, { secretId: 1, serialNumber: 42n }),
        ad: "",
        expirationDateUnix: EXPIRY,
      }),
      "The worked example of docs/canonical-encoding.md.",
    ),
  );
  for (const alg of ALGS) {
    out.push(certificateVector("typical", alg, CERT_KEY, body(1001n, 1200n)));
    out.push(certificateVector("all-defaults", alg, CERT_KEY, create(ScripBodyTypeSchema, {}), "Every field at its default, nested messages absent."));
    out.push(
      certificateVector(
        "absent-body",
        alg,
        CERT_KEY,
        undefined,
        "ScripType.scrip absent: encodes exactly like all-defaults (same canonical_hex).",
      ),
    );
    out.push(
      certificateVector(
        "present-defaults",
        alg,
        CERT_KEY,
        create(ScripBodyTypeSchema, {
          vendorId: create(ServerTypeSchema, {}),
          scripId: create(IdTypeSchema, {}),
          customId: create(IdTypeSchema, {}),
        }),
        "Nested messages present with default fields: same bytes as absent ones.",
      ),
    );
  }
  out.push(
    certificateVector(
      "multibyte-utf8",
      HMAC,
      CERT_KEY,
      body(1002n, 5n, {
        currency: "원",
        ad: "광고 🎉 survey",
        vendorId: create(ServerTypeSchema, { dnsName: "센터.example", ipAddr: "2001:db8::1", serverName: "결제 센터 💳", port: 443 }),
      }),
      '"원" (U+C6D0) is 3 UTF-8 bytes ec 9b 90, "🎉" (U+1F389) is 4 bytes f0 9f 8e 89: lengths count bytes, not characters.',
    ),
  );
  out.push(
    certificateVector(
      "max-integers",
      HMAC,
      CERT_KEY,
      body(U64_MAX, I64_MAX, {
        vendorId: create(ServerTypeSchema, { dnsName: "center.example", ipAddr: "", serverName: "", port: U32_MAX }),
        scripId: create(IdTypeSchema, { secretId: U32_MAX, serialNumber: U64_MAX }),
        customId: create(IdTypeSchema, { secretId: U32_MAX, serialNumber: U64_MAX }),
        expirationDateUnix: I64_MAX,
      }),
      "u32 max port and secret ids, u64 max serials, i64 max value and expiry.",
    ),
  );
  out.push(
    certificateVector(
      "i64-min",
      SUFFIX,
      CERT_KEY,
      body(0n, I64_MIN, { expirationDateUnix: I64_MIN, scripId: create(IdTypeSchema, { secretId: 0, serialNumber: 0n }) }),
      "i64 minimum (two's complement 80 00 .. 00) in value and expiry; zero ids. The encoder does not judge values: the center refuses negative value.",
    ),
  );
  out.push(
    certificateVector(
      "negative-one",
      HMAC,
      CERT_KEY,
      body(9n, -1n, { expirationDateUnix: -1n }),
      "i64 -1 is ff ff ff ff ff ff ff ff.",
    ),
  );
  out.push(certificateVector("long-key", HMAC, LONG_KEY, body(1001n, 1200n), "65-byte key: HMAC hashes keys longer than 64 bytes first."));
  out.push(certificateVector("long-key", SUFFIX, LONG_KEY, body(1001n, 1200n), "65-byte key: appended as is."));
  return out;
}

/** Which message field each code's hash travels in, and over what. */
const CODE_NOTES: Record<string, string> = {
  GM4_1: "M4 IssueRequest.scrip_hash (issue start): over the wallet's scrip; context = tran_id.",
  GM4_2: "M4 IssueRequest.scrip_hash (issue cancel): over the wallet's scrip; context = tran_id.",
  GM5_1: "M5 IssueResponse.new_scrip_hash: over new_scrip; context = tran_id; p_count 0.",
  GM5_2: "M5 IssueResponse.scrip_hash (validity error): over the echoed scrip, reply code, p_count = request p_count + 1.",
  GM5_3: "M5 IssueResponse.scrip_hash (rejected): over the echoed scrip, reply code, p_count = request p_count + 1.",
  GM5_4: "M5 IssueResponse.scrip_hash (server error): over the echoed scrip, reply code, p_count = request p_count + 1.",
  GM6_1: "M6 ConfirmIssueRequest.new_scrip_hash (done): over new_scrip; context = tran_id.",
  GM6_2: "M6 ConfirmIssueRequest.new_scrip_hash (resend): over new_scrip; context = tran_id.",
  GM6_3: "M6 ConfirmIssueRequest.new_scrip_hash (cancel): over new_scrip; context = tran_id.",
  GM7_1: "M7 ConfirmIssueResponse.scrip_hash: over the reply's scrip; context = tran_id; p_count = request p_count + 1 (the reply has no p_count field).",
  PM4_1: "S4 PayRequest.hash (pay): over scrip + pOder (with its mac); context = order.tran_id.",
  PM4_2: "S4 PayRequest.hash (cancel): over scrip + pOder (with its mac); context = order.tran_id.",
  PM5_1: "S5 PayResponse.new_scrip_hash: over the change (new_scrip), no order; context = order.tran_id; p_count 0.",
  PM5_2: "S5 PayResponse.hash (validity error): over the echoed scrip + order, reply code, p_count = request p_count + 1.",
  PM5_3: "S5 PayResponse.hash (server error): over the echoed scrip + order, reply code, p_count = request p_count + 1.",
  PM6_1: "S6 ConfirmPaymentRequest.new_scrip_hash (done): over new_scrip; context = tran_id.",
  PM6_2: "S6 ConfirmPaymentRequest.new_scrip_hash (resend): over new_scrip; context = tran_id.",
  PM6_3: "S6 ConfirmPaymentRequest.new_scrip_hash (failed): over new_scrip; context = tran_id.",
  PM7_1: "ConfirmPaymentResponse.scrip_hash: over the reply's scrip; context = tran_id; p_count = request p_count + 1 (the reply has no p_count field).",
  RN1: "RenewRequest.scrip_hash: over the scrip to renew; context = request_id.",
  RN2: "RenewResponse.new_scrip_hash: over new_scrip; context = request_id; p_count 0.",
  RD1: "RedeemRequest.scrip_hash: over the scrip; context = request_id; binds amount and payout_account.",
  RD2: "RedeemResponse.new_scrip_hash: over new_scrip; context = request_id; p_count 0; amount = the amount redeemed (payout.amount), account = payout_account.",
};

function messageVectors(): MacVector[] {
  const out: MacVector[] = [];
  for (const alg of ALGS) {
    const wallet = certified(alg, body(1001n, 1200n));
    const issued = certified(alg, body(1002n, 1250n));
    const change = certified(alg, body(1003n, 1220n));
    const renewed = certified(alg, body(1004n, 1220n, { expirationDateUnix: EXPIRY + 30n * 86400n }));
    const redeemedRest = certified(alg, body(1005n, 220n));
    const order = signedOffer(alg, {});
    const issueTran = "T-issue-0001";
    const payTran = order.tranId;
    const requestId = "9f86d081884c7d659a2feaa0c55ad015";
    const m = (code: string, contextId: string, pCount: number, scrip: ScripType, extra: Partial<MessageHashInput> = {}) =>
      messageVector(`${code}`, alg, { code, contextId, pCount, scrip, ...extra }, CODE_NOTES[code]!);
    out.push(
      m("GM4_1", issueTran, 0, wallet),
      m("GM4_2", issueTran, 0, wallet),
      m("GM5_1", issueTran, 0, issued),
      m("GM5_2", issueTran, 1, wallet),
      m("GM5_3", issueTran, 1, wallet),
      m("GM5_4", issueTran, 1, wallet),
      m("GM6_1", issueTran, 0, issued),
      m("GM6_2", issueTran, 1, issued),
      m("GM6_3", issueTran, 0, issued),
      m("GM7_1", issueTran, 1, issued),
      m("PM4_1", payTran, 0, wallet, { order }),
      m("PM4_2", payTran, 0, wallet, { order }),
      m("PM5_1", payTran, 0, change),
      m("PM5_2", payTran, 1, wallet, { order }),
      m("PM5_3", payTran, 1, wallet, { order }),
      m("PM6_1", payTran, 0, change),
      m("PM6_2", payTran, 1, change),
      m("PM6_3", payTran, 0, change),
      m("PM7_1", payTran, 1, change),
      m("RN1", requestId, 0, wallet),
      m("RN2", requestId, 0, renewed),
      m("RD1", requestId, 0, wallet, { amount: 1000n, account: "KR-bank 123-456-789" }),
      m("RD2", requestId, 0, redeemedRest, { amount: 1000n, account: "KR-bank 123-456-789" }),
    );
  }
  // Edge cases.
  const wallet = certified(HMAC, body(1001n, 1200n));
  out.push(
    messageVector(
      "GM4_1-retransmission",
      HMAC,
      { code: "GM4_1", contextId: "T-issue-0001", pCount: 2, scrip: wallet },
      "Third try of M4: only p_count differs from message/hmac-sha-256/GM4_1.",
    ),
    messageVector(
      "PM4_1-max-p-count",
      HMAC,
      { code: "PM4_1", contextId: "T-pay-0001", pCount: U32_MAX, scrip: wallet, order: signedOffer(HMAC, {}) },
      "p_count at u32 max.",
    ),
    messageVector(
      "absent-scrip",
      HMAC,
      { code: "GM4_1", contextId: "", pCount: 0, scrip: undefined },
      "Absent ScripType and empty context: the scrip encodes as u32 0, the all-defaults body and an empty certificate.",
    ),
    messageVector(
      "order-absent-nested-empty-mac",
      SUFFIX,
      {
        code: "PM4_1",
        contextId: "",
        pCount: 0,
        scrip: certified(SUFFIX, create(ScripBodyTypeSchema, {})),
        order: create(OfferSchema, {}),
      },
      "Order present (flag 01) but all-defaults: vendor and custom_id absent, mac empty (bytes length 0).",
    ),
    messageVector(
      "RD1-i64-max-amount-utf8-account",
      HMAC,
      { code: "RD1", contextId: "req-원-🎉", pCount: 0, scrip: wallet, amount: I64_MAX, account: "국민은행 🏦 123-45" },
      "i64 max amount; multi-byte UTF-8 in context and account.",
    ),
    messageVector(
      "RD1-i64-min-amount",
      SUFFIX,
      { code: "RD1", contextId: "r", pCount: 0, scrip: certified(SUFFIX, body(7n, 0n)), amount: I64_MIN, account: "" },
      "i64 min amount (the center refuses it; the encoding is still defined).",
    ),
    messageVector(
      "GM4_1-zero-value-scrip",
      HMAC,
      { code: "GM4_1", contextId: "T-issue-0000", pCount: 0, scrip: certified(HMAC, body(1n, 0n, { ad: "" })) },
      "The zero-value scrip UM2 hands out at registration.",
    ),
  );
  return out;
}

function offerVectors(): MacVector[] {
  const out: MacVector[] = [];
  for (const alg of ALGS) {
    out.push(
      offerVector(
        "issue-permit",
        signedOffer(alg, {
          tranId: "T-issue-0001",
          kind: OfferKind.ISSUE,
          amount: 50n,
          item: "quiz/hash-cash-1",
          campaignId: "spring-quiz",
          deliveryMethod: DeliveryMethod.UNSPECIFIED,
        }),
        "GM2_1 issue permit (M2), presented again in M3.",
      ),
    );
    out.push(offerVector("pay-order", signedOffer(alg, {}), "PM2_1 payment information (pOder, S2), presented again in S3 and S4."));
  }
  out.push(
    offerVector(
      "all-defaults",
      create(OfferSchema, { hashAlgorithm: HMAC }),
      "Every field at its default except hash_algorithm; vendor and custom_id absent.",
    ),
  );
  out.push(
    offerVector(
      "save-utf8-max",
      signedOffer(SUFFIX, {
        vendor: create(ServerTypeSchema, { dnsName: "몰.example", ipAddr: "", serverName: "🛒", port: U32_MAX }),
        tranId: "T-원-🎉",
        amount: I64_MAX,
        currency: "원",
        item: "/기사/해시-캐시?q=🎉",
        deliveryMethod: DeliveryMethod.SAVE,
        customId: create(IdTypeSchema, { secretId: U32_MAX, serialNumber: U64_MAX }),
        expiresAtUnix: I64_MIN,
        vendorKeyId: U32_MAX,
      }),
      "SAVE delivery, multi-byte UTF-8, u32/u64/i64 extremes.",
    ),
  );
  out.push(offerVector("long-key", signedOffer(HMAC, {}), "65-byte vendor secret.", LONG_KEY));
  return out;
}

function receiptVectors(): MacVector[] {
  const r = (alg: HashAlgorithm, over: Init<Receipt> = {}): Receipt =>
    create(ReceiptSchema, {
      vendorId: "mall-1",
      tranId: "T-pay-0001",
      requestUrl: "/articles/hash-cash",
      price: 30n,
      currency: "KRW",
      deliveryMethod: DeliveryMethod.VIEW,
      customId: CUSTOMER,
      paidAtUnix: 1764547200n,
      vendorKeyId: 1,
      hashAlgorithm: alg,
      ...over,
    });
  return [
    receiptVector("view", r(HMAC), "PM7_1 ConfirmPaymentResponse.receipt; the seller checks it in S7 Deliver."),
    receiptVector("view", r(SUFFIX)),
    receiptVector("save-utf8", r(HMAC, { requestUrl: "/자료/원본.pdf 🎉", currency: "원", deliveryMethod: DeliveryMethod.SAVE })),
    receiptVector("all-defaults", create(ReceiptSchema, { hashAlgorithm: SUFFIX }), "custom_id absent, every other field default."),
    receiptVector(
      "extremes",
      r(HMAC, {
        price: I64_MIN,
        paidAtUnix: I64_MAX,
        vendorKeyId: U32_MAX,
        customId: create(IdTypeSchema, { secretId: U32_MAX, serialNumber: U64_MAX }),
      }),
    ),
  ];
}

function settlementsVectors(): MacVector[] {
  return [
    settlementsVector("typical", HMAC, VENDOR_SECRET, "mall-1", 0n, 1764547200123n, "ListSettlementsRequest.mac / WatchSettlementsRequest.mac."),
    settlementsVector("typical", SUFFIX, VENDOR_SECRET, "mall-1", 17n, 1764547200123n),
    settlementsVector("empty-vendor", HMAC, VENDOR_SECRET, "", 0n, 0n),
    settlementsVector("extremes-utf8", HMAC, VENDOR_SECRET, "몰-🎉", U64_MAX, I64_MIN),
    settlementsVector("i64-max", SUFFIX, LONG_KEY, "mall-1", U64_MAX, I64_MAX),
  ];
}

function customSecretVectors(): MacVector[] {
  return [
    customSecretVector(
      "customer-1-42",
      MASTER_KEY,
      CUSTOMER.secretId,
      CUSTOMER.serialNumber,
      "The Custom_Secret used as key_hex by every message vector.",
    ),
    customSecretVector("zero", MASTER_KEY, 0, 0n),
    customSecretVector("max", MASTER_KEY, U32_MAX, U64_MAX),
    customSecretVector("long-master-key", LONG_KEY, 1, 42n),
  ];
}

function registrationVectors(): Vector[] {
  return [
    sealVector("typical", "3f1c9a7e5b2d4c6e8f0a1b2c3d4e5f60", SESSION_KEY, EPHEMERAL_SECRET, NONCE),
    sealVector("empty-wallet-id", "", SESSION_KEY, EPHEMERAL_SECRET, NONCE),
    sealVector("utf8-wallet-id", "지갑-🎉", seq(0x00, 32), seq(0x01, 32), seq(0x55, 24)),
    encryptVector("typical", "3f1c9a7e5b2d4c6e8f0a1b2c3d4e5f60", CUSTOMER.secretId, CUSTOMER.serialNumber, CUSTOM_SECRET, NONCE),
    encryptVector("max-ids", "3f1c9a7e5b2d4c6e8f0a1b2c3d4e5f60", U32_MAX, U64_MAX, CUSTOM_SECRET, seq(0x33, 24)),
    encryptVector("zero-ids-empty-wallet", "", 0, 0n, seq(0x77, 32), NONCE),
  ];
}

// ---------------------------------------------------------------- restore/sync, refunds, recovery code (§5.7-§5.10)

const SYNC_NONCE = seq(0x90, 32);

function syncRequestVector(name: string, customId: IdType, ts: bigint, nonce: Uint8Array, note?: string): MacVector {
  const r = { customId, timestampUnixMs: ts, nonce };
  return {
    name: `sync_request/hmac-sha-256/${name}`,
    construction: "sync_request",
    algorithm: ALG_NAME[HMAC]!,
    algorithm_id: HMAC,
    ...(note ? { note } : {}),
    key_hex: hex(CUSTOM_SECRET),
    inputs: { custom_id: idJson(customId), timestamp_unix_ms: ts.toString(), nonce_hex: hex(nonce) },
    canonical_hex: hex(syncRequestInput(r)),
    digest_hex: hex(computeSyncRequestHash(CUSTOM_SECRET, r)),
  };
}

function syncReplyVector(name: string, r: SyncReplyFields, note?: string): MacVector {
  return {
    name: `sync_reply/hmac-sha-256/${name}`,
    construction: "sync_reply",
    algorithm: ALG_NAME[HMAC]!,
    algorithm_id: HMAC,
    ...(note ? { note } : {}),
    key_hex: hex(CUSTOM_SECRET),
    inputs: {
      custom_id: idJson(r.customId as IdType),
      request_nonce_hex: hex(r.requestNonce),
      server_time_unix_ms: r.serverTimeUnixMs.toString(),
      scrips: r.scrips.map((x) => scripJson(x)),
      in_flight: r.inFlight.map((t) => ({
        vendor_id: t.vendorId,
        tran_id: t.tranId,
        kind: t.kind,
        state: t.state,
        amount: t.amount.toString(),
        currency: t.currency,
        item: t.item,
        delivery_method: t.deliveryMethod,
        new_scrip: scripJson(t.newScrip),
      })),
      credits: r.credits.map((c) => ({
        refund_id: c.refundId,
        vendor_id: c.vendorId,
        tran_id: c.tranId,
        amount: c.amount.toString(),
        currency: c.currency,
        refunded_at_unix: c.refundedAtUnix.toString(),
        folded_into_serial: c.foldedIntoSerial.toString(),
      })),
    },
    canonical_hex: hex(syncReplyInput(r)),
    digest_hex: hex(computeSyncReplyHash(CUSTOM_SECRET, r)),
  };
}

function refundVector(name: string, r: RefundRequestFields, key = VENDOR_SECRET, note?: string): MacVector {
  return {
    name: `refund_request/hmac-sha-256/${name}`,
    construction: "refund_request",
    algorithm: ALG_NAME[HMAC]!,
    algorithm_id: HMAC,
    ...(note ? { note } : {}),
    key_hex: hex(key),
    inputs: {
      vendor_id: r.vendorId,
      tran_id: r.tranId,
      amount: r.amount.toString(),
      request_id: r.requestId,
      reason: r.reason,
      timestamp_unix_ms: r.timestampUnixMs.toString(),
    },
    canonical_hex: hex(refundRequestInput(r)),
    digest_hex: hex(computeRefundMac(key, r)),
  };
}

function recoveryVector(name: string, secretId: number, serialNumber: bigint, secret: Uint8Array, note?: string): RecoveryCodeVector {
  const payload = new Uint8Array(44);
  const view = new DataView(payload.buffer);
  view.setUint32(0, secretId, false);
  view.setBigUint64(4, serialNumber, false);
  payload.set(secret, 12);
  const w = new CanonicalWriter(96);
  w.str(RECOVERY_TAG);
  w.bytes(payload);
  const canonical = w.finish().slice();
  return {
    name: `recovery_code/sha-256/${name}`,
    construction: "recovery_code",
    algorithm: "SHA-256",
    ...(note ? { note } : {}),
    key_hex: "",
    inputs: { secret_id: String(secretId), serial_number: serialNumber.toString(), custom_secret_hex: hex(secret) },
    payload_hex: hex(payload),
    canonical_hex: hex(canonical),
    digest_hex: hex(sha256(canonical)),
    output_text: encodeRecoveryCode({ customId: { secretId, serialNumber }, customSecret: secret }),
  };
}

function restoreVectors(): Vector[] {
  const live = certified(HMAC, body(2002n, 1170n, { ad: "" }));
  const change = certified(HMAC, body(2003n, 1140n, { ad: "" }));
  const emptyId = create(IdTypeSchema, { secretId: 0, serialNumber: 0n });
  return [
    syncRequestVector("typical", CUSTOMER, 1764547200123n, SYNC_NONCE, "SyncRequest.hash (SY1): key is the customer's Custom_Secret."),
    syncRequestVector("extremes", create(IdTypeSchema, { secretId: U32_MAX, serialNumber: U64_MAX }), I64_MIN, seq(0x00, 64)),
    syncReplyVector(
      "typical",
      {
        customId: CUSTOMER,
        requestNonce: SYNC_NONCE,
        serverTimeUnixMs: 1764547200456n,
        scrips: [live],
        inFlight: [
          { vendorId: "mall-1", tranId: "T-pay-0002", kind: OfferKind.PAY, state: 2, amount: 30n, currency: "KRW", item: "/articles/hash-cash", deliveryMethod: DeliveryMethod.VIEW, newScrip: change },
          { vendorId: "mall-1", tranId: "T-issue-0003", kind: OfferKind.ISSUE, state: 1, amount: 50n, currency: "KRW", item: "quiz-1", deliveryMethod: 0 },
        ],
        credits: [
          { refundId: "rf_0001", vendorId: "mall-1", tranId: "T-pay-0001", amount: 12n, currency: "KRW", refundedAtUnix: 1764547100n, foldedIntoSerial: 0n },
          { refundId: "rf_0000", vendorId: "몰-🎉", tranId: "T-pay-0000", amount: I64_MAX, currency: "원", refundedAtUnix: 1764540000n, foldedIntoSerial: U64_MAX },
        ],
      },
      "SyncResponse.hash (SY2): a live scrip, an executed payment (with the change to confirm), an initiated issuance, a pending and a folded refund.",
    ),
    syncReplyVector("empty", { customId: emptyId, requestNonce: new Uint8Array(0), serverTimeUnixMs: 0n, scrips: [], inFlight: [], credits: [] }, "Every list empty, zero ids."),
    refundVector("typical", { vendorId: "mall-1", tranId: "T-pay-0001", amount: 12n, requestId: "rfq_0001", reason: "late delivery", timestampUnixMs: 1764547200123n }, VENDOR_SECRET, "RefundPaymentRequest.mac (RF1): key is the vendor secret."),
    refundVector("all-utf8-extremes", { vendorId: "몰-🎉", tranId: "", amount: I64_MAX, requestId: "", reason: "환불 🎉", timestampUnixMs: I64_MIN }, LONG_KEY),
    recoveryVector("customer-1-42", CUSTOMER.secretId, CUSTOMER.serialNumber, CUSTOM_SECRET, "The recovery code of the customer of every message vector."),
    recoveryVector("max", U32_MAX, U64_MAX, seq(0xe0, 32)),
    recoveryVector("zero", 0, 0n, new Uint8Array(32)),
  ];
}

export function generateVectors(): VectorFile {
  const vectors: Vector[] = [
    ...certificateVectors(),
    ...messageVectors(),
    ...offerVectors(),
    ...receiptVectors(),
    ...settlementsVectors(),
    ...customSecretVectors(),
    ...registrationVectors(),
    ...restoreVectors(),
  ];
  const names = new Set<string>();
  for (const v of vectors) {
    if (names.has(v.name)) throw new Error(`duplicate vector name ${v.name}`);
    names.add(v.name);
  }
  return {
    version: VECTORS_VERSION,
    description:
      "Scripwire v1 test vectors: canonical bytes and expected MACs for every hash construction " +
      "(scrip certificate, protocol message hashes, seller offers, center receipts, settlement requests, " +
      "Custom_Secret derivation, restore/sync request and reply, seller refund request, recovery code checksum) and the expected outputs of registration sealing (R1 sealed_session_key, " +
      "R2 encrypted_custom_secret) with fixed ephemeral keys and nonces. An implementation conforms when " +
      "it reproduces canonical_hex and digest_hex (or output_hex) of every vector from its inputs. " +
      "Generated by scripts/gen-vectors.ts; do not edit by hand.",
    spec: "docs/canonical-encoding.md",
    conventions: {
      integers: "Every integer that is not an enum (u32, u64, i64) is a decimal string.",
      enums: "Enums (hash_algorithm, kind, delivery_method) are JSON numbers (the proto enum values).",
      bytes: "Bytes are lowercase hex, in fields whose name ends in _hex.",
      absent: "An absent nested message is null; it encodes exactly like one with every field at its default.",
      names: "Input field names are the proto field names.",
      key_hex:
        "certificate: certificate key; message: Custom_Secret; offer, receipt, settlements: vendor secret; " +
        "custom_secret: master key; seal_session_key: center public key; encrypt_custom_secret: session key KS; " +
        "sync_request, sync_reply: Custom_Secret; refund_request: vendor secret; recovery_code: none (a plain SHA-256).",
      canonical_hex:
        "The exact bytes fed to the MAC; for seal_session_key and encrypt_custom_secret, the AEAD associated data.",
      digest_hex: "MAC(key, canonical bytes) with the vector's algorithm; 32 bytes.",
      output_hex: "seal_session_key: 104-byte sealed_session_key; encrypt_custom_secret: 72-byte encrypted_custom_secret.",
      output_text: "recovery_code: the code as shown to the customer (payload_hex is what it carries).",
    },
    algorithms: {
      "1": "HMAC-SHA-256: HMAC(SHA-256, key, canonical) (RFC 2104)",
      "2": "SHA-256-SUFFIX: SHA-256(canonical || key), the patent's H[M || secret]",
    },
    tags: {
      certificate: TAG.certificate,
      offer: TAG.offer,
      receipt: TAG.receipt,
      settlements: TAG.settlements,
      custom_secret: TAG.customSecret,
      seal_session_key: TAG.sealSessionKey,
      encrypt_custom_secret: TAG.encryptCustomSecret,
      message: `${TAG.messagePrefix}<CODE>`,
      sync_request: SYNC_TAG.syncRequest,
      sync_reply: SYNC_TAG.syncReply,
      refund_request: SYNC_TAG.refund,
      recovery_code: RECOVERY_TAG,
    },
    count: vectors.length,
    vectors,
  };
}

/** The exact text of testdata/vectors.json. */
export function renderVectors(): string {
  return JSON.stringify(generateVectors(), null, 2) + "\n";
}

function isMain(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) process.stdout.write(renderVectors());
