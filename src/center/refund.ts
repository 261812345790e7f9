/**
 * Refunds after confirmation (RF1 -> RF2, and the admin's RefundPayment).
 *
 * A seller (authenticated with its vendor secret, as for settlements) or the
 * center's admin refunds all or part of a CONFIRMED payment. Decisions:
 *   - at most one refund per TranID, partial or full: a second one is refused
 *     (ALREADY_REFUNDED), whatever its amount. A seller that must give more
 *     back later has no second refund to do it with; this keeps "refunded"
 *     a yes/no fact of a TranID that sellers, customers and auditors read
 *     the same way. The same request retransmitted (same request_id) gets the
 *     first answer again and moves nothing.
 *   - never more than was paid (REFUND_EXCEEDS_PAYMENT); 0 means "all".
 *   - an executed but unconfirmed payment is not refunded: the wallet still
 *     holds the right to undo it (PM6_3), and confirming first keeps one path
 *     per state.
 * The value goes vendor -> the customer's pending credit in one ledger
 * transaction, with a negative settlement entry; the customer's next sync
 * folds it into a freshly issued scrip (src/ledger/refunds.ts explains the
 * invariants).
 */
import { create } from "@bufbuild/protobuf";
import { randomBytes } from "node:crypto";
import { RefundPaymentResponseSchema, type RefundPaymentRequest, type RefundPaymentResponse } from "../../gen/scripwire/v1/center_pb.js";
import { CmdType, IdTypeSchema, RefundSchema, type Refund } from "../../gen/scripwire/v1/types_pb.js";
import { MAC_BYTES } from "../crypto/mac.js";
import { verifyRefundMac } from "../crypto/sync-auth.js";
import type { RefundRecord } from "../ledger/ledger.js";
import { invalidArgument, unauthenticated } from "../server/errors.js";
import { refusal } from "../protocol/refusal.js";
import { header } from "../protocol/header.js";
import type { PaymentCenter } from "./center.js";
import { SETTLEMENT_REQUEST_SKEW_MS } from "./center.js";

const ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
export const REFUND_REASON_CHARS_MAX = 256;

export interface RefundArgs {
  vendorId: string;
  tranId: string;
  /** 0 refunds the whole payment. */
  amount: bigint;
  requestId: string;
  reason: string;
}

export class RefundService {
  private readonly clock: () => number;

  constructor(private readonly center: PaymentCenter) {
    this.clock = center.config.clock ?? Date.now;
  }

  private checkShape(a: RefundArgs): void {
    if (!ID_PATTERN.test(a.vendorId)) throw invalidArgument("BAD_VENDOR_ID", "vendor_id must be 1-128 characters of [A-Za-z0-9._:-]");
    if (!ID_PATTERN.test(a.tranId)) throw invalidArgument("BAD_TRAN_ID", "tran_id must be 1-128 characters of [A-Za-z0-9._:-]");
    if (!ID_PATTERN.test(a.requestId)) throw invalidArgument("BAD_REQUEST_ID", "request_id is required (1-128 characters of [A-Za-z0-9._:-]); reuse it only to retransmit");
    if (a.amount < 0n) throw invalidArgument("BAD_AMOUNT", "amount must not be negative (0 refunds the whole payment)");
    if (a.reason.length > REFUND_REASON_CHARS_MAX) throw invalidArgument("FIELD_TOO_LONG", `reason is limited to ${REFUND_REASON_CHARS_MAX} characters`);
  }

  /** RF1 from a seller: vendor MAC over the request, fresh timestamp. */
  async refundBySeller(req: RefundPaymentRequest): Promise<RefundPaymentResponse> {
    if (req.header?.cmdType !== CmdType.RF1) throw invalidArgument("WRONG_CMD_TYPE", "header.cmd_type must be RF1");
    const args: RefundArgs = { vendorId: req.vendorId, tranId: req.tranId, amount: req.amount, requestId: req.requestId, reason: req.reason };
    this.checkShape(args);
    const fail = () => unauthenticated("BAD_VENDOR_MAC", "the refund request's MAC does not verify; sign it with your current vendor secret");
    if (req.mac.length !== MAC_BYTES) throw fail();
    if (Math.abs(Number(req.timestampUnixMs) - this.clock()) > SETTLEMENT_REQUEST_SKEW_MS) {
      throw unauthenticated("STALE_REQUEST", "timestamp_unix_ms is more than 5 minutes from the center's clock; check your clock");
    }
    const vendor = await this.center.ledger.getVendor(req.vendorId);
    const key = vendor?.keys.find((k) => k.keyId === req.vendorKeyId)?.secret;
    if (!key || !verifyRefundMac(key, { ...args, timestampUnixMs: req.timestampUnixMs }, req.mac)) throw fail();
    const refund = await this.refund(args);
    return create(RefundPaymentResponseSchema, { header: header(CmdType.RF2, this.clock()), refund });
  }

  /** The refund itself; the admin service calls this after its bearer check. */
  async refund(args: RefundArgs): Promise<Refund> {
    this.checkShape(args);
    const r = await this.center.ledger.refund({
      refundId: `rf_${randomBytes(12).toString("hex")}`,
      ...args,
      now: BigInt(Math.floor(this.clock() / 1000)),
    });
    // Each reason has its one code (src/protocol/refusal.ts), mapped by the service adapter.
    if (r.status === "refused") throw refusal(r.refusal, r.detail);
    if (r.status === "done") this.center.events.emit("settlement", args.vendorId);
    const c = await this.customId(r.refund);
    return toRefund(r.refund, c);
  }

  private async customId(r: RefundRecord): Promise<number> {
    const s = await this.center.ledger.customerState(r.customerSerial);
    return s?.secretId ?? 0;
  }
}

export function toRefund(r: RefundRecord, customSecretId: number): Refund {
  return create(RefundSchema, {
    refundId: r.refundId,
    vendorId: r.vendorId,
    tranId: r.tranId,
    amount: r.amount,
    currency: r.currency,
    customId: create(IdTypeSchema, { secretId: customSecretId, serialNumber: r.customerSerial }),
    paid: r.paid,
    reason: r.reason,
    refundedAtUnix: r.createdAt,
    settlementSequence: r.settlementSequence,
    requestId: r.requestId,
  });
}
