/**
 * Receipt verification on the request path: decide from the credential alone
 * (no call to the center, no database) whether a request has been paid for.
 * The center signed the receipt after S6 with this vendor's secret; checking
 * it costs one HMAC-SHA-256 compared in constant time (src/seller/offers.ts),
 * run last so malformed or misdirected credentials cost no hashing.
 *
 * A receipt is a bearer credential for its route until it expires: nothing is
 * remembered between requests, so an upstream failure never uses it up.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { DeliveryMethod, ReceiptSchema, type Receipt } from "../../gen/scripwire/v1/types_pb.js";
import { checkReceiptSignature, type ReceiptRefusal } from "../seller/offers.js";
import { fromBase64Url } from "./challenge.js";
import type { GatewayConfig, GatewayRoute } from "./config.js";
import { matchRoute, parseItemUrl } from "./routes.js";

/** Clock skew tolerated between the center (which stamps `paid_at_unix`) and the gateway, seconds. */
export const CLOCK_SKEW_SECONDS = 300;

/** Machine-readable reasons a credential is refused; each comes back as `reason` in a fresh 402 challenge. */
export type CredentialRefusal =
  | "MALFORMED_CREDENTIAL"
  | ReceiptRefusal
  | "WRONG_ROUTE"
  | "WRONG_DELIVERY_METHOD"
  | "PRICE_MISMATCH"
  | "CURRENCY_MISMATCH"
  | "EXPIRED"
  | "NOT_YET_VALID";

export type Verification = { ok: true; receipt: Receipt; expiresAtUnix: number } | { ok: false; reason: CredentialRefusal };

/** Decodes the token68 of a credential into a Receipt; undefined when it is not one. */
export function decodeCredential(token: string): Receipt | undefined {
  const bytes = fromBase64Url(token);
  if (!bytes || bytes.length === 0) return undefined;
  try {
    return fromBinary(ReceiptSchema, bytes);
  } catch {
    return undefined;
  }
}

/**
 * Verifies a receipt for a route: the route its item URL belongs to is this
 * route, delivery method, currency and price are the route's (a receipt paid
 * at least the current price), it is within the route's lifetime, and the
 * vendor, key generation and MAC are this gateway's. `route` undefined means
 * "whatever route the receipt names" (the cookie exchange and S7).
 */
export function verifyReceipt(config: GatewayConfig, r: Receipt, route: GatewayRoute | undefined, nowMs: number): Verification {
  if (r.vendorId !== config.vendorId) return { ok: false, reason: "WRONG_VENDOR" };
  const item = parseItemUrl(r.requestUrl);
  const m = item ? matchRoute(config.routes, item.host, item.key) : undefined;
  if (!m || m.free || (route && m.route.id !== route.id)) return { ok: false, reason: "WRONG_ROUTE" };
  const rt = m.route;
  if (r.deliveryMethod !== rt.deliveryMethod) return { ok: false, reason: "WRONG_DELIVERY_METHOD" };
  if (r.currency !== rt.currency) return { ok: false, reason: "CURRENCY_MISMATCH" };
  if (r.price < rt.price) return { ok: false, reason: "PRICE_MISMATCH" };
  const now = Math.floor(nowMs / 1000);
  const paidAt = Number(r.paidAtUnix);
  if (paidAt > now + CLOCK_SKEW_SECONDS) return { ok: false, reason: "NOT_YET_VALID" };
  const expiresAtUnix = paidAt + rt.receiptLifetimeSeconds;
  if (now >= expiresAtUnix) return { ok: false, reason: "EXPIRED" };
  const refusal = checkReceiptSignature(config, r);
  if (refusal) return { ok: false, reason: refusal };
  return { ok: true, receipt: r, expiresAtUnix };
}

/** Decodes and verifies a credential token in one step. */
export function verifyCredential(config: GatewayConfig, token: string, route: GatewayRoute | undefined, nowMs: number): Verification {
  const r = decodeCredential(token);
  if (!r) return { ok: false, reason: "MALFORMED_CREDENTIAL" };
  return verifyReceipt(config, r, route, nowMs);
}

export function methodName(m: DeliveryMethod): "VIEW" | "SAVE" {
  return m === DeliveryMethod.SAVE ? "SAVE" : "VIEW";
}
