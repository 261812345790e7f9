/**
 * Conversions between the protobuf messages a wallet holds and the strings it
 * stores: scrips, offers and receipts are kept as base64 of their protobuf
 * binary, exactly the bytes the center and seller made (a JSON round trip
 * could normalise a field and break a MAC; binary cannot).
 */
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { DeliveryMethod, OfferSchema, ReceiptSchema, ScripTypeSchema, type Offer, type Receipt, type ScripType } from "../../gen/scripwire/v1/types_pb.js";
import type { DeliveryMethodName } from "./state.js";

export { fromBase64, fromHexString, toBase64, toHexString } from "./bytes.js";
import { fromBase64, toBase64 } from "./bytes.js";

export const encodeScrip = (s: ScripType): string => toBase64(toBinary(ScripTypeSchema, s));
export const decodeScrip = (s: string): ScripType => fromBinary(ScripTypeSchema, fromBase64(s));
export const encodeOffer = (o: Offer): string => toBase64(toBinary(OfferSchema, o));
export const decodeOffer = (s: string): Offer => fromBinary(OfferSchema, fromBase64(s));
export const encodeReceipt = (r: Receipt): string => toBase64(toBinary(ReceiptSchema, r));
export const decodeReceipt = (s: string): Receipt => fromBinary(ReceiptSchema, fromBase64(s));

export function methodName(m: DeliveryMethod): DeliveryMethodName {
  if (m === DeliveryMethod.VIEW) return "VIEW";
  if (m === DeliveryMethod.SAVE) return "SAVE";
  throw new RangeError(`delivery method ${m} is not VIEW or SAVE`);
}

export function methodValue(m: DeliveryMethodName): DeliveryMethod {
  if (m === "VIEW") return DeliveryMethod.VIEW;
  if (m === "SAVE") return DeliveryMethod.SAVE;
  throw new RangeError(`"method" expected VIEW or SAVE, got ${String(m)}`);
}
