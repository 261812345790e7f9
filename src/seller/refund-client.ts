/**
 * The seller's side of a refund (RF1 -> RF2): sign the request with the
 * vendor secret and send it to the center. Used by `scripwire seller refund`
 * and by sellers embedding Scripwire.
 *
 * @example
 * ```ts
 * const center = createClient(PaymentCenterService, createTransport("http://127.0.0.1:7100"));
 * const r = await sendRefund(center, { vendorId: "mall-1", vendorSecret, vendorKeyId: 1, tranId, amount: 10n, reason: "damaged" });
 * ```
 */
import { create } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import { randomBytes } from "node:crypto";
import { PaymentCenterService } from "../../gen/scripwire/v1/center_pb.js";
import { CmdType, HeaderTypeSchema, type Refund } from "../../gen/scripwire/v1/types_pb.js";
import { computeRefundMac } from "../crypto/sync-auth.js";
import { PROTOCOL_VERSION } from "../protocol/header.js";

export interface SendRefundArgs {
  vendorId: string;
  vendorSecret: Uint8Array;
  vendorKeyId: number;
  tranId: string;
  /** 0 refunds the whole payment. */
  amount: bigint;
  /** Reuse the same id to retransmit; a fresh one is made when absent. */
  requestId?: string;
  reason?: string;
  /** Milliseconds clock (tests). */
  now?: () => number;
}

/** The signed RF1 message (exposed so tests can replay or alter it). */
export function refundRequest(a: SendRefundArgs) {
  const requestId = a.requestId ?? `rfq_${randomBytes(16).toString("hex")}`;
  const reason = a.reason ?? "";
  const now = (a.now ?? Date.now)();
  const timestampUnixMs = BigInt(now);
  const mac = computeRefundMac(a.vendorSecret, { vendorId: a.vendorId, tranId: a.tranId, amount: a.amount, requestId, reason, timestampUnixMs });
  return {
    header: create(HeaderTypeSchema, { cmdType: CmdType.RF1, protocolVersion: PROTOCOL_VERSION, serverDateUnixMs: timestampUnixMs }),
    vendorId: a.vendorId,
    tranId: a.tranId,
    amount: a.amount,
    requestId,
    reason,
    timestampUnixMs,
    vendorKeyId: a.vendorKeyId,
    mac,
  };
}

/** Sends a refund; resolves with the center's refund record. Errors are the center's ConnectErrors (reason in `scripwire-error-reason`). */
export async function sendRefund(center: Client<typeof PaymentCenterService>, a: SendRefundArgs): Promise<Refund> {
  const res = await center.refundPayment(refundRequest(a));
  if (!res.refund) throw new Error("RF2 carried no refund record");
  return res.refund;
}
