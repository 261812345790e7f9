/**
 * The patent's hash constructions over canonical bytes:
 *   certificate = MAC(certKey[secretId], body)
 *   H[ScripType || Custom_Secret]             (M4, M5, M6, S5, S6, renew, redeem)
 *   H[ScripType || pOder || Custom_Secret]    (S4 and the S5 errors)
 *   offer MAC and receipt MAC under the vendor secret.
 * Pure functions: no storage, no transport.
 */
import type { HashAlgorithm, Offer, Receipt, ScripBodyType, ScripType } from "../../gen/scripwire/v1/types_pb.js";
import {
  certificateInput,
  messageInput,
  offerInput,
  receiptInput,
  settlementsInput,
  type MessageHashInput,
} from "./canonical.js";
import { mac, verifyMac } from "./mac.js";

export function computeCertificate(alg: HashAlgorithm, certKey: Uint8Array, body: ScripBodyType): Uint8Array {
  return mac(alg, certKey, certificateInput(body));
}

export function verifyCertificate(certKey: Uint8Array, scrip: ScripType): boolean {
  return verifyMac(scrip.hashAlgorithm, certKey, certificateInput(scrip.scrip), scrip.certificate);
}

/** H[...|| Custom_Secret] for a protocol message; the algorithm is the scrip's own. */
export function computeMessageHash(alg: HashAlgorithm, customSecret: Uint8Array, m: MessageHashInput): Uint8Array {
  return mac(alg, customSecret, messageInput(m));
}

export function verifyMessageHash(
  alg: HashAlgorithm,
  customSecret: Uint8Array,
  m: MessageHashInput,
  hash: Uint8Array | undefined,
): boolean {
  return verifyMac(alg, customSecret, messageInput(m), hash);
}

export function computeOfferMac(vendorSecret: Uint8Array, offer: Offer): Uint8Array {
  return mac(offer.hashAlgorithm, vendorSecret, offerInput(offer));
}

export function verifyOfferMac(vendorSecret: Uint8Array, offer: Offer): boolean {
  return verifyMac(offer.hashAlgorithm, vendorSecret, offerInput(offer), offer.mac);
}

export function computeReceiptMac(vendorSecret: Uint8Array, receipt: Receipt): Uint8Array {
  return mac(receipt.hashAlgorithm, vendorSecret, receiptInput(receipt));
}

export function verifyReceiptMac(vendorSecret: Uint8Array, receipt: Receipt): boolean {
  return verifyMac(receipt.hashAlgorithm, vendorSecret, receiptInput(receipt), receipt.mac);
}

export function computeSettlementsMac(
  alg: HashAlgorithm,
  vendorSecret: Uint8Array,
  vendorId: string,
  afterSequence: bigint,
  timestampUnixMs: bigint,
): Uint8Array {
  return mac(alg, vendorSecret, settlementsInput(vendorId, afterSequence, timestampUnixMs));
}

export function verifySettlementsMac(
  alg: HashAlgorithm,
  vendorSecret: Uint8Array,
  vendorId: string,
  afterSequence: bigint,
  timestampUnixMs: bigint,
  tag: Uint8Array,
): boolean {
  return verifyMac(alg, vendorSecret, settlementsInput(vendorId, afterSequence, timestampUnixMs), tag);
}
