/**
 * The vectors file (testdata/vectors.json) re-checked from its JSON inputs
 * with the real src/crypto functions: shared by the Node test
 * (crypto-vectors.test.ts) and the browser bundle (browser-core.test.ts), so
 * both platforms run the same vectors through the same code. Platform-neutral:
 * no Buffer, no node:*.
 *
 * The JSON -> proto parsing is deliberately written separately from the
 * generator's proto -> JSON code, so a mistake in either shows up as a
 * mismatch instead of cancelling out.
 */
import { hexToBytes } from "@noble/hashes/utils.js";
import { create } from "@bufbuild/protobuf";
import { x25519 } from "@noble/curves/ed25519.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import {
  HashAlgorithm,
  IdTypeSchema,
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
} from "../../gen/scripwire/v1/types_pb.js";
import {
  certificateInput,
  customSecretInput,
  messageInput,
  offerInput,
  receiptInput,
  settlementsInput,
  toHex,
  type MessageHashInput,
} from "../../src/crypto/canonical.js";
import { mac } from "../../src/crypto/mac.js";
import {
  SEALED_SESSION_KEY_BYTES,
  ENCRYPTED_CUSTOM_SECRET_BYTES,
  decryptCustomSecret,
  encryptCustomSecret,
  openSessionKey,
  sealSessionKey,
} from "../../src/crypto/registration.js";
import {
  computeCertificate,
  computeMessageHash,
  computeOfferMac,
  computeReceiptMac,
  computeSettlementsMac,
  verifyCertificate,
  verifyMessageHash,
  verifyOfferMac,
  verifyReceiptMac,
  verifySettlementsMac,
} from "../../src/crypto/scrip-auth.js";
import {
  computeRefundMac,
  computeSyncReplyHash,
  computeSyncRequestHash,
  refundRequestInput,
  syncReplyInput,
  syncRequestInput,
  verifyRefundMac,
  verifySyncReplyHash,
  verifySyncRequestHash,
  type SyncReplyFields,
} from "../../src/crypto/sync-auth.js";
import { decodeRecoveryCode, encodeRecoveryCode } from "../../src/crypto/recovery.js";

// The file is read as untyped JSON on purpose: checked the way a foreign
// implementation would, not through the generator's types.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = any;

// ------------------------------------------------------------ JSON -> proto

export const bytes = (h: string): Uint8Array => {
  if (typeof h !== "string" || !/^([0-9a-f]{2})*$/.test(h)) throw new Error(`not lowercase hex: ${h}`);
  return hexToBytes(h);
};
/** Decimal string -> integer; the file never uses JSON numbers for non-enum integers. */
const dec = (s: unknown): bigint => {
  if (typeof s !== "string" || !/^-?(0|[1-9][0-9]*)$/.test(s)) throw new Error(`not a decimal string: ${String(s)}`);
  return BigInt(s);
};
const dec32 = (s: unknown): number => {
  const v = dec(s);
  if (v < 0n || v > 0xffff_ffffn) throw new Error(`not a u32: ${String(s)}`);
  return Number(v);
};
const enumNum = (n: unknown): number => {
  if (typeof n !== "number" || !Number.isInteger(n)) throw new Error(`enum must be a JSON number: ${String(n)}`);
  return n;
};

function parseServer(j: Json): ServerType | undefined {
  if (j === null) return undefined;
  return create(ServerTypeSchema, { dnsName: j.dns_name, ipAddr: j.ip_addr, serverName: j.server_name, port: dec32(j.port) });
}
function parseId(j: Json): IdType | undefined {
  if (j === null) return undefined;
  return create(IdTypeSchema, { secretId: dec32(j.secret_id), serialNumber: dec(j.serial_number) });
}
function parseBody(j: Json): ScripBodyType | undefined {
  if (j === null) return undefined;
  return create(ScripBodyTypeSchema, {
    currency: j.currency,
    value: dec(j.value),
    vendorId: parseServer(j.vendor_id),
    scripId: parseId(j.scrip_id),
    customId: parseId(j.custom_id),
    ad: j.ad,
    expirationDateUnix: dec(j.expiration_date_unix),
  });
}
function parseScrip(j: Json): ScripType | undefined {
  if (j === null) return undefined;
  return create(ScripTypeSchema, {
    hashAlgorithm: enumNum(j.hash_algorithm),
    scrip: parseBody(j.scrip),
    certificate: bytes(j.certificate_hex),
  });
}
function parseOffer(j: Json): Offer {
  return create(OfferSchema, {
    vendor: parseServer(j.vendor),
    vendorId: j.vendor_id,
    tranId: j.tran_id,
    kind: enumNum(j.kind),
    amount: dec(j.amount),
    currency: j.currency,
    item: j.item,
    campaignId: j.campaign_id,
    deliveryMethod: enumNum(j.delivery_method),
    customId: parseId(j.custom_id),
    expiresAtUnix: dec(j.expires_at_unix),
    vendorKeyId: dec32(j.vendor_key_id),
    hashAlgorithm: enumNum(j.hash_algorithm),
    mac: j.mac_hex === undefined ? new Uint8Array(0) : bytes(j.mac_hex),
  });
}
function parseReceipt(j: Json): Receipt {
  return create(ReceiptSchema, {
    vendorId: j.vendor_id,
    tranId: j.tran_id,
    requestUrl: j.request_url,
    price: dec(j.price),
    currency: j.currency,
    deliveryMethod: enumNum(j.delivery_method),
    customId: parseId(j.custom_id),
    paidAtUnix: dec(j.paid_at_unix),
    vendorKeyId: dec32(j.vendor_key_id),
    hashAlgorithm: enumNum(j.hash_algorithm),
  });
}

// ------------------------------------------------------------- per vector

export const ALG_NAMES: Record<number, string> = { 1: "HMAC-SHA-256", 2: "SHA-256-SUFFIX" };

export interface Checked {
  canonical: Uint8Array;
  /** digest_hex or output_hex, recomputed. */
  result: Uint8Array;
  /** The matching verify/open function accepted the expected value. */
  verified: boolean;
}

export function checkVector(v: Json): Checked {
  const key = bytes(v.key_hex);
  const alg = v.algorithm_id as HashAlgorithm;
  const expected = v.digest_hex === undefined ? undefined : bytes(v.digest_hex);
  switch (v.construction) {
    case "certificate": {
      const body = parseBody(v.inputs.body);
      const canonical = certificateInput(body);
      const result = body ? computeCertificate(alg, key, body) : mac(alg, key, canonical);
      const scrip = create(ScripTypeSchema, { hashAlgorithm: alg, scrip: body, certificate: expected });
      return { canonical, result, verified: verifyCertificate(key, scrip) };
    }
    case "message": {
      const i = v.inputs;
      const m: MessageHashInput = {
        code: i.code,
        contextId: i.context_id,
        pCount: dec32(i.p_count),
        scrip: parseScrip(i.scrip),
        order: i.order === null ? undefined : parseOffer(i.order),
        amount: dec(i.amount),
        account: i.account,
      };
      return {
        canonical: messageInput(m),
        result: computeMessageHash(alg, key, m),
        verified: verifyMessageHash(alg, key, m, expected),
      };
    }
    case "offer": {
      const o = parseOffer(v.inputs.offer);
      if (o.hashAlgorithm !== alg) throw new Error(`${v.name}: algorithm_id ${alg} != offer.hash_algorithm ${o.hashAlgorithm}`);
      const result = computeOfferMac(key, o);
      o.mac = expected!;
      return { canonical: offerInput(o), result, verified: verifyOfferMac(key, o) };
    }
    case "receipt": {
      const r = parseReceipt(v.inputs.receipt);
      if (r.hashAlgorithm !== alg) throw new Error(`${v.name}: algorithm_id ${alg} != receipt.hash_algorithm ${r.hashAlgorithm}`);
      const result = computeReceiptMac(key, r);
      r.mac = expected!;
      return { canonical: receiptInput(r), result, verified: verifyReceiptMac(key, r) };
    }
    case "settlements": {
      const { vendor_id, after_sequence, timestamp_unix_ms } = v.inputs;
      const [after, ts] = [dec(after_sequence), dec(timestamp_unix_ms)];
      return {
        canonical: settlementsInput(vendor_id, after, ts),
        result: computeSettlementsMac(alg, key, vendor_id, after, ts),
        verified: verifySettlementsMac(alg, key, vendor_id, after, ts, expected!),
      };
    }
    case "custom_secret": {
      if (alg !== HashAlgorithm.HMAC_SHA256) throw new Error(`${v.name}: Custom_Secret derivation is always HMAC-SHA-256`);
      const canonical = customSecretInput(dec32(v.inputs.secret_id), dec(v.inputs.serial_number));
      const result = mac(HashAlgorithm.HMAC_SHA256, key, canonical);
      return { canonical, result, verified: toHex(result) === v.digest_hex };
    }
    case "seal_session_key": {
      const i = v.inputs;
      const centerSecret = bytes(i.center_secret_key_hex);
      const centerPub = bytes(i.center_public_key_hex);
      if (toHex(x25519.getPublicKey(centerSecret)) !== i.center_public_key_hex) throw new Error(`${v.name}: center key pair mismatch`);
      if (toHex(key) !== i.center_public_key_hex) throw new Error(`${v.name}: key_hex must be the center public key`);
      // Intermediates, recomputed from the primitives (not through registration.ts).
      const eSecret = bytes(i.ephemeral_secret_key_hex);
      const ePub = x25519.getPublicKey(eSecret);
      const shared = x25519.getSharedSecret(eSecret, centerPub);
      const salt = new Uint8Array([...ePub, ...centerPub]);
      const info = new TextEncoder().encode("scripwire/v1/R1");
      const im = v.intermediate;
      if (
        toHex(ePub) !== im.ephemeral_public_key_hex ||
        toHex(shared) !== im.shared_secret_hex ||
        toHex(salt) !== im.hkdf_salt_hex ||
        toHex(info) !== im.hkdf_info_hex ||
        toHex(hkdf(sha256, shared, salt, info, 32)) !== im.aead_key_hex
      ) {
        throw new Error(`${v.name}: intermediate values differ`);
      }
      const sessionKey = bytes(i.session_key_hex);
      const result = sealSessionKey(centerPub, i.wallet_id, sessionKey, eSecret, bytes(i.nonce_hex));
      const opened = openSessionKey({ secretKey: centerSecret, publicKey: centerPub }, i.wallet_id, bytes(v.output_hex));
      const canonical = canonicalAad("scripwire/v1/R1", i.wallet_id);
      return {
        canonical,
        result,
        verified: result.length === SEALED_SESSION_KEY_BYTES && toHex(opened) === i.session_key_hex,
      };
    }
    case "encrypt_custom_secret": {
      const i = v.inputs;
      const customId = { secretId: dec32(i.secret_id), serialNumber: dec(i.serial_number) };
      if (toHex(key) !== i.session_key_hex) throw new Error(`${v.name}: key_hex must be the session key`);
      const result = encryptCustomSecret(key, i.wallet_id, customId, bytes(i.custom_secret_hex), bytes(i.nonce_hex));
      const opened = decryptCustomSecret(key, i.wallet_id, customId, bytes(v.output_hex));
      const canonical = canonicalAad("scripwire/v1/R2", i.wallet_id, customId.secretId, customId.serialNumber);
      return {
        canonical,
        result,
        verified: result.length === ENCRYPTED_CUSTOM_SECRET_BYTES && toHex(opened) === i.custom_secret_hex,
      };
    }
    case "sync_request": {
      const i = v.inputs;
      const r = { customId: parseId(i.custom_id), timestampUnixMs: dec(i.timestamp_unix_ms), nonce: bytes(i.nonce_hex) };
      return { canonical: syncRequestInput(r), result: computeSyncRequestHash(key, r), verified: verifySyncRequestHash(key, r, expected!) };
    }
    case "sync_reply": {
      const i = v.inputs;
      const r: SyncReplyFields = {
        customId: parseId(i.custom_id),
        requestNonce: bytes(i.request_nonce_hex),
        serverTimeUnixMs: dec(i.server_time_unix_ms),
        scrips: i.scrips.map((x: Json) => parseScrip(x)!),
        inFlight: i.in_flight.map((x: Json) => ({
          vendorId: x.vendor_id,
          tranId: x.tran_id,
          kind: enumNum(x.kind),
          state: enumNum(x.state),
          amount: dec(x.amount),
          currency: x.currency,
          item: x.item,
          deliveryMethod: enumNum(x.delivery_method),
          newScrip: parseScrip(x.new_scrip),
        })),
        credits: i.credits.map((x: Json) => ({
          refundId: x.refund_id,
          vendorId: x.vendor_id,
          tranId: x.tran_id,
          amount: dec(x.amount),
          currency: x.currency,
          refundedAtUnix: dec(x.refunded_at_unix),
          foldedIntoSerial: dec(x.folded_into_serial),
        })),
      };
      return { canonical: syncReplyInput(r), result: computeSyncReplyHash(key, r), verified: verifySyncReplyHash(key, r, expected!) };
    }
    case "refund_request": {
      const i = v.inputs;
      const r = { vendorId: i.vendor_id, tranId: i.tran_id, amount: dec(i.amount), requestId: i.request_id, reason: i.reason, timestampUnixMs: dec(i.timestamp_unix_ms) };
      return { canonical: refundRequestInput(r), result: computeRefundMac(key, r), verified: verifyRefundMac(key, r, expected!) };
    }
    case "recovery_code": {
      const i = v.inputs;
      const contents = { customId: { secretId: dec32(i.secret_id), serialNumber: dec(i.serial_number) }, customSecret: bytes(i.custom_secret_hex) };
      const code = encodeRecoveryCode(contents);
      const back = decodeRecoveryCode(v.output_text);
      // The checksum input, built by hand from §5.10: str(tag) ‖ bytes(payload).
      const tag = new TextEncoder().encode("scripwire/v1/recovery-code");
      const payload = bytes(v.payload_hex);
      const canonical = new Uint8Array([0, 0, 0, tag.length, ...tag, 0, 0, 0, payload.length, ...payload]);
      return {
        canonical,
        result: sha256(canonical),
        verified:
          code === v.output_text &&
          back.customId.secretId === contents.customId.secretId &&
          back.customId.serialNumber === contents.customId.serialNumber &&
          toHex(back.customSecret) === i.custom_secret_hex &&
          toHex(payload.subarray(12)) === i.custom_secret_hex,
      };
    }
    default:
      throw new Error(`${v.name}: unknown construction ${String(v.construction)}`);
  }
}

/** The R1/R2 associated data, built by hand from §7 of the spec (registration.ts keeps its AAD private). */
function canonicalAad(tag: string, walletId: string, secretId?: number, serial?: bigint): Uint8Array {
  const str = (s: string) => {
    const b = new TextEncoder().encode(s);
    const out = new Uint8Array(4 + b.length);
    new DataView(out.buffer).setUint32(0, b.length);
    out.set(b, 4);
    return out;
  };
  const parts = [str(tag), str(walletId)];
  if (secretId !== undefined && serial !== undefined) {
    const ids = new Uint8Array(12);
    const dv = new DataView(ids.buffer);
    dv.setUint32(0, secretId);
    dv.setBigUint64(4, serial);
    parts.push(ids);
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** One line per vector: did the canonical bytes, the result and the verify function all agree with the file? */
export function checkAll(file: Json): { name: string; canonical: boolean; result: boolean; verified: boolean; error?: string }[] {
  return file.vectors.map((v: Json) => {
    try {
      const c = checkVector(v);
      const want = v.digest_hex ?? v.output_hex;
      return { name: v.name, canonical: toHex(c.canonical) === v.canonical_hex, result: toHex(c.result) === want, verified: c.verified };
    } catch (e) {
      return { name: v.name, canonical: false, result: false, verified: false, error: (e as Error).message };
    }
  });
}
