/**
 * Keyed hashes of the restore/sync call (SY1 -> SY2) and of the seller's
 * refund request (RF1). Byte layouts: docs/canonical-encoding.md §5.7-§5.9;
 * vectors `sync_request/*`, `sync_reply/*`, `refund_request/*` in
 * testdata/vectors.json.
 *
 * All three are always HMAC-SHA-256: a sync request presents no scrip that
 * could name another algorithm, and a refund request is the vendor's, like a
 * settlement request.
 */
import { HashAlgorithm, type IdType, type ScripType } from "../../gen/scripwire/v1/types_pb.js";
import { CanonicalWriter, writeId, writeScrip } from "./canonical.js";
import { mac, verifyMac } from "./mac.js";

/** Domain tags of these constructions (same rule as TAG in canonical.ts). */
export const SYNC_TAG = {
  syncRequest: "scripwire/v1/sync-request",
  syncReply: "scripwire/v1/sync-reply",
  refund: "scripwire/v1/refund",
} as const;

/** Nonce length bounds of a sync request, in bytes. */
export const SYNC_NONCE_MIN = 16;
export const SYNC_NONCE_MAX = 64;

export interface SyncRequestFields {
  customId: IdType | { secretId: number; serialNumber: bigint } | undefined;
  timestampUnixMs: bigint;
  nonce: Uint8Array;
}

/** canonical("scripwire/v1/sync-request", custom_id, timestamp_unix_ms, nonce). */
export function syncRequestInput(r: SyncRequestFields): Uint8Array {
  const w = new CanonicalWriter(96);
  w.str(SYNC_TAG.syncRequest);
  writeId(w, r.customId as IdType | undefined);
  w.i64(r.timestampUnixMs);
  w.bytes(r.nonce);
  return w.finish();
}

export function computeSyncRequestHash(customSecret: Uint8Array, r: SyncRequestFields): Uint8Array {
  return mac(HashAlgorithm.HMAC_SHA256, customSecret, syncRequestInput(r));
}

export function verifySyncRequestHash(customSecret: Uint8Array, r: SyncRequestFields, tag: Uint8Array): boolean {
  return verifyMac(HashAlgorithm.HMAC_SHA256, customSecret, syncRequestInput(r), tag);
}

/** The parts of an InFlightTransaction the reply hash covers (all of its fields). */
export interface InFlightFields {
  vendorId: string;
  tranId: string;
  kind: number;
  state: number;
  amount: bigint;
  currency: string;
  item: string;
  deliveryMethod: number;
  newScrip?: ScripType | undefined;
}

/** The parts of a RefundCredit the reply hash covers (all of its fields). */
export interface CreditFields {
  refundId: string;
  vendorId: string;
  tranId: string;
  amount: bigint;
  currency: string;
  refundedAtUnix: bigint;
  foldedIntoSerial: bigint;
}

export interface SyncReplyFields {
  customId: IdType | { secretId: number; serialNumber: bigint } | undefined;
  /** The request's nonce: binds the reply to the one request it answers. */
  requestNonce: Uint8Array;
  serverTimeUnixMs: bigint;
  scrips: readonly ScripType[];
  inFlight: readonly InFlightFields[];
  credits: readonly CreditFields[];
}

/**
 * canonical("scripwire/v1/sync-reply", custom_id, request nonce, server time,
 * u32 count ‖ each ScripType, u32 count ‖ each in-flight transaction,
 * u32 count ‖ each refund credit). Lists are hashed in the order sent.
 */
export function syncReplyInput(r: SyncReplyFields): Uint8Array {
  const w = new CanonicalWriter(1024);
  w.str(SYNC_TAG.syncReply);
  writeId(w, r.customId as IdType | undefined);
  w.bytes(r.requestNonce);
  w.i64(r.serverTimeUnixMs);
  w.u32(r.scrips.length);
  for (const s of r.scrips) writeScrip(w, s);
  w.u32(r.inFlight.length);
  for (const t of r.inFlight) {
    w.str(t.vendorId);
    w.str(t.tranId);
    w.u32(t.kind);
    w.u32(t.state);
    w.i64(t.amount);
    w.str(t.currency);
    w.str(t.item);
    w.u32(t.deliveryMethod);
    writeScrip(w, t.newScrip);
  }
  w.u32(r.credits.length);
  for (const c of r.credits) {
    w.str(c.refundId);
    w.str(c.vendorId);
    w.str(c.tranId);
    w.i64(c.amount);
    w.str(c.currency);
    w.i64(c.refundedAtUnix);
    w.u64(c.foldedIntoSerial);
  }
  return w.finish();
}

export function computeSyncReplyHash(customSecret: Uint8Array, r: SyncReplyFields): Uint8Array {
  return mac(HashAlgorithm.HMAC_SHA256, customSecret, syncReplyInput(r));
}

export function verifySyncReplyHash(customSecret: Uint8Array, r: SyncReplyFields, tag: Uint8Array): boolean {
  return verifyMac(HashAlgorithm.HMAC_SHA256, customSecret, syncReplyInput(r), tag);
}

export interface RefundRequestFields {
  vendorId: string;
  tranId: string;
  amount: bigint;
  requestId: string;
  reason: string;
  timestampUnixMs: bigint;
}

/** canonical("scripwire/v1/refund", vendor_id, tran_id, amount, request_id, reason, timestamp_unix_ms). */
export function refundRequestInput(r: RefundRequestFields): Uint8Array {
  const w = new CanonicalWriter(256);
  w.str(SYNC_TAG.refund);
  w.str(r.vendorId);
  w.str(r.tranId);
  w.i64(r.amount);
  w.str(r.requestId);
  w.str(r.reason);
  w.i64(r.timestampUnixMs);
  return w.finish();
}

export function computeRefundMac(vendorSecret: Uint8Array, r: RefundRequestFields): Uint8Array {
  return mac(HashAlgorithm.HMAC_SHA256, vendorSecret, refundRequestInput(r));
}

export function verifyRefundMac(vendorSecret: Uint8Array, r: RefundRequestFields, tag: Uint8Array): boolean {
  return verifyMac(HashAlgorithm.HMAC_SHA256, vendorSecret, refundRequestInput(r), tag);
}
