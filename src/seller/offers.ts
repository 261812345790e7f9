/**
 * The vendor-secret half of the seller's protocol, shared by every kind of
 * seller (the catalog mall in seller.ts and the HTTP 402 gateway in
 * src/gateway): signing M2/S2 offers (GM2_1 permit, PM2_1 pOder) and checking
 * the center's receipt before S7. Pure functions: no storage, no transport.
 */
import { create } from "@bufbuild/protobuf";
import { randomBytes } from "node:crypto";
import { HashAlgorithm, OfferSchema, ServerTypeSchema, type Offer, type Receipt } from "../../gen/scripwire/v1/types_pb.js";
import { MAC_BYTES } from "../crypto/mac.js";
import { computeOfferMac, verifyReceiptMac } from "../crypto/scrip-auth.js";

/** Who signs: the seller's identity and its vendor secrets by generation. */
export interface OfferSigner {
  vendorId: string;
  identity: { dnsName: string; ipAddr: string; serverName: string; port: number };
  /** Vendor secrets by generation (`vendor_key_id`); the highest signs new offers, all verify receipts. */
  vendorKeys: Map<number, Uint8Array>;
  /** How long an offer may be presented at the center (S3/M3), seconds. */
  offerLifetimeSeconds: number;
}

/** The offer fields a seller decides; the rest (vendor, TranID, expiry, key, MAC) are filled in here. */
export type OfferFields = Omit<Partial<Offer>, "$typeName" | "vendor" | "vendorId" | "tranId" | "expiresAtUnix" | "vendorKeyId" | "hashAlgorithm" | "mac">;

/** Signs an offer under the newest vendor secret with a fresh, unguessable TranID. */
export function signOffer(signer: OfferSigner, fields: OfferFields, nowMs: number): Offer {
  const keyId = Math.max(...signer.vendorKeys.keys());
  const secret = signer.vendorKeys.get(keyId)!;
  const o = create(OfferSchema, {
    ...fields,
    vendor: create(ServerTypeSchema, signer.identity),
    vendorId: signer.vendorId,
    tranId: `t_${randomBytes(16).toString("hex")}`,
    expiresAtUnix: BigInt(Math.floor(nowMs / 1000) + signer.offerLifetimeSeconds),
    vendorKeyId: keyId,
    hashAlgorithm: HashAlgorithm.HMAC_SHA256,
  });
  o.mac = computeOfferMac(secret, o);
  return o;
}

/**
 * Why a receipt is not this seller's, in the order they are checked; checks
 * that need no key come first so garbage costs no HMAC.
 */
export type ReceiptRefusal = "MALFORMED_RECEIPT" | "WRONG_VENDOR" | "UNKNOWN_VENDOR_KEY" | "UNSUPPORTED_ALGORITHM" | "BAD_MAC";

/**
 * Checks that the center signed this receipt for this seller: vendor id, key
 * generation, algorithm, then exactly one HMAC-SHA-256 under the vendor
 * secret compared in constant time. Returns undefined when it verifies.
 */
export function checkReceiptSignature(signer: Pick<OfferSigner, "vendorId" | "vendorKeys">, r: Receipt): ReceiptRefusal | undefined {
  if (r.mac.length !== MAC_BYTES) return "MALFORMED_RECEIPT";
  if (r.vendorId !== signer.vendorId) return "WRONG_VENDOR";
  const key = signer.vendorKeys.get(r.vendorKeyId);
  if (!key) return "UNKNOWN_VENDOR_KEY";
  if (r.hashAlgorithm !== HashAlgorithm.HMAC_SHA256) return "UNSUPPORTED_ALGORITHM";
  return verifyReceiptMac(key, r) ? undefined : "BAD_MAC";
}
