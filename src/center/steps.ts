/**
 * Issuance (M3-M7) and payment (S3-S7) are one protocol shape at the center:
 * a journalled value step. M3/S3 record a seller-signed offer against a
 * TranID; M4/S4 spend the customer's live scrip and issue a new one whose
 * value differs by the offer's amount (the reply is journalled with the
 * TranID so a retransmission replays it); M6/S6 confirm, resend or undo.
 *
 * What differs between the two is data, and lives in this table: the patent's
 * message codes (GM* / PM*), the protobuf schemas of the replies, the value
 * arithmetic (issue adds, pay subtracts), which `ad` the new scrip carries, the
 * extra checks a pOder needs, and the receipt a payment earns. The step
 * itself is written once, in PaymentCenter (center.ts), so a fix lands once.
 */
import { create, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import type { GenMessage } from "@bufbuild/protobuf/codegenv2";
import {
  ConfirmIssueResponseSchema,
  ConfirmPaymentResponseSchema,
  InitIssueResponseSchema,
  InitPaymentResponseSchema,
  IssueResponseSchema,
  PayResponseSchema,
  type ConfirmIssueRequest,
  type ConfirmIssueResponse,
  type ConfirmPaymentRequest,
  type ConfirmPaymentResponse,
  type InitIssueRequest,
  type InitIssueResponse,
  type InitPaymentRequest,
  type InitPaymentResponse,
  type IssueRequest,
  type IssueResponse,
  type PayRequest,
  type PayResponse,
  type TransactionState,
} from "../../gen/scripwire/v1/center_pb.js";
import { CmdType, OfferKind, type HeaderType, type Offer, type Receipt, type ScripType } from "../../gen/scripwire/v1/types_pb.js";
import type { ExecuteOp, Ledger, LedgerResult, TransactionRecord, TxKind } from "../ledger/ledger.js";
import { I64_MAX } from "../money.js";
import type { Invalid } from "../protocol/refusal.js";

/** The fields every M5/S5 carries, whatever its message type calls them. */
export interface ExecuteReply {
  header: HeaderType;
  tranId: string;
  newScrip?: ScripType;
  newScripHash: Uint8Array;
  /** The echoed input scrip (refusals, cancel), and the hash over it (and the pOder, for payments). */
  scrip?: ScripType;
  scripHash: Uint8Array;
  order?: Offer;
  pCount: number;
}

/** The fields every M7/PM7 carries. */
export interface ConfirmReply {
  header: HeaderType;
  tranId: string;
  state: TransactionState;
  scrip?: ScripType;
  scripHash: Uint8Array;
  receipt?: Receipt;
}

/** The common parts of an M4/S4 request. */
export interface ExecuteRequest {
  cmd: CmdType | undefined;
  tranId: string;
  scrip: ScripType | undefined;
  hash: Uint8Array;
  pCount: number;
  /** The pOder, for payments: it is part of the hashed input and is checked against the TranID's offer. */
  order?: Offer;
}

export interface ValueStep<InitReq, InitRes extends { $typeName: string }, ExecReq, ExecRes extends { $typeName: string }, ConfReq, ConfRes extends { $typeName: string }> {
  kind: TxKind;
  offerKind: OfferKind;
  /** M3/S3. */
  init: { cmd: CmdType; field: string; offer(req: InitReq): Offer | undefined; schema: GenMessage<InitRes> };
  /** M4/S4 and its M5/S5 answers. */
  execute: {
    cmds: { run: CmdType; cancel: CmdType };
    /** ok: the new scrip; invalid: the scrip (or offer) is not valid e-cash; rejected: the transaction says no (and a cancel's answer); fault: the server failed. */
    codes: { ok: CmdType; invalid: CmdType; rejected: CmdType; fault: CmdType };
    schema: GenMessage<ExecRes>;
    read(req: ExecReq): ExecuteRequest;
    /** The request carries the seller's offer in this field (S4's pOder); without one, only a TranID. */
    offerField?: string;
    /** The ledger operation that makes the step's move. */
    run(ledger: Ledger, op: ExecuteOp): Promise<LedgerResult>;
    toReply(r: ExecuteReply): ExecRes;
    fromReply(m: ExecRes): ExecuteReply;
    /** Value of the new scrip, or why there is none. */
    value(scripValue: bigint, amount: bigint, currency: string): bigint | Invalid;
    /** The `ad` the new scrip carries. */
    ad(tx: TransactionRecord, presented: ScripType): string;
    unknownTransaction: string;
    cancelled: string;
  };
  /** The value before the transaction, from a presented scrip that is either its input or its output. */
  restoredValue(presentedValue: bigint, amount: bigint, presentedIsInput: boolean): bigint;
  /** The `ad` of the restored scrip when the wallet presents the step's output. */
  restoredAd(presented: ScripType): string;
  /** M6/S6 and M7/PM7. */
  confirm: {
    cmds: { done: CmdType; resend: CmdType; undo: CmdType };
    code: CmdType;
    schema: GenMessage<ConfRes>;
    read(req: ConfReq): { cmd: CmdType | undefined; tranId: string; scrip: ScripType | undefined; hash: Uint8Array; pCount: number };
    toReply(r: ConfirmReply): ConfRes;
    /** Whether a confirmation earns the seller's receipt (payments). */
    receipt: boolean;
    nothingToResend: string;
  };
}

type Shape<S extends DescMessage> = MessageShape<S>;

export const ISSUE: ValueStep<InitIssueRequest, InitIssueResponse, IssueRequest, IssueResponse, ConfirmIssueRequest, ConfirmIssueResponse> = {
  kind: "issue", offerKind: OfferKind.ISSUE,
  init: { cmd: CmdType.GM3_1, field: "permit", offer: (r) => r.permit, schema: InitIssueResponseSchema },
  execute: {
    schema: IssueResponseSchema,
    cmds: { run: CmdType.GM4_1, cancel: CmdType.GM4_2 },
    codes: { ok: CmdType.GM5_1, invalid: CmdType.GM5_2, rejected: CmdType.GM5_3, fault: CmdType.GM5_4 },
    read: (r) => ({ cmd: r.header?.cmdType, tranId: r.tranId, scrip: r.scrip, hash: r.scripHash, pCount: r.pCount }),
    run: (ledger, op) => ledger.executeIssue(op),
    toReply: (r): Shape<typeof IssueResponseSchema> =>
      create(IssueResponseSchema, {
        header: r.header,
        tranId: r.tranId,
        newScrip: r.newScrip,
        newScripHash: r.newScripHash,
        scrip: r.scrip,
        scripHash: r.scripHash,
        pCount: r.pCount,
      }),
    fromReply: (m) => ({ header: m.header!, tranId: m.tranId, newScrip: m.newScrip, newScripHash: m.newScripHash, scrip: m.scrip, scripHash: m.scripHash, pCount: m.pCount }),
    value: (v, amount) => (v + amount > I64_MAX ? { reason: "OVERFLOW", message: "the issued value would overflow the scrip" } : v + amount),
    // The issued scrip names the advertisement (campaign item) that paid for it.
    ad: (tx) => tx.item,
    unknownTransaction: "no such TranID for this customer; send InitIssue (M3) with the seller's permit first",
    cancelled: "issuance cancelled at the wallet's request",
  },
  restoredValue: (v, amount, isInput) => (isInput ? v : v - amount),
  // The issued scrip's `ad` named the campaign item of the issuance being undone.
  restoredAd: () => "",
  confirm: {
    cmds: { done: CmdType.GM6_1, resend: CmdType.GM6_2, undo: CmdType.GM6_3 },
    code: CmdType.GM7_1,
    schema: ConfirmIssueResponseSchema,
    read: (r) => ({ cmd: r.header?.cmdType, tranId: r.tranId, scrip: r.newScrip, hash: r.newScripHash, pCount: r.pCount }),
    toReply: (r) => create(ConfirmIssueResponseSchema, { header: r.header, tranId: r.tranId, state: r.state, scrip: r.scrip, scripHash: r.scripHash }),
    receipt: false,
    nothingToResend: "there is no issued scrip to resend",
  },
};

export const PAY: ValueStep<InitPaymentRequest, InitPaymentResponse, PayRequest, PayResponse, ConfirmPaymentRequest, ConfirmPaymentResponse> = {
  kind: "pay", offerKind: OfferKind.PAY,
  init: { cmd: CmdType.PM3_1, field: "order", offer: (r) => r.order, schema: InitPaymentResponseSchema },
  execute: {
    cmds: { run: CmdType.PM4_1, cancel: CmdType.PM4_2 },
    // The patent has no separate "rejected" answer for payments: PM5_2 says both.
    codes: { ok: CmdType.PM5_1, invalid: CmdType.PM5_2, rejected: CmdType.PM5_2, fault: CmdType.PM5_3 },
    schema: PayResponseSchema,
    read: (r) => ({ cmd: r.header?.cmdType, tranId: r.order?.tranId ?? "", scrip: r.scrip, hash: r.hash, pCount: r.pCount, order: r.order }),
    offerField: "order",
    run: (ledger, op) => ledger.executePayment(op),
    toReply: (r) =>
      create(PayResponseSchema, {
        header: r.header,
        newScrip: r.newScrip,
        newScripHash: r.newScripHash,
        scrip: r.scrip,
        order: r.order,
        hash: r.scripHash,
        pCount: r.pCount,
      }),
    fromReply: (m) => ({ header: m.header!, tranId: m.order?.tranId ?? "", newScrip: m.newScrip, newScripHash: m.newScripHash, scrip: m.scrip, scripHash: m.hash, order: m.order, pCount: m.pCount }),
    value: (v, amount, currency) =>
      v < amount ? { reason: "INSUFFICIENT_VALUE", message: `the scrip holds ${v} ${currency}; the price is ${amount}. Earn more first` } : v - amount,
    // Change keeps whatever the spent scrip said.
    ad: (_tx, presented) => presented.scrip!.ad,
    unknownTransaction: "no such TranID; send InitPayment (S3) with the offer first",
    cancelled: "payment cancelled at the wallet's request",
  },
  restoredValue: (v, amount, isInput) => (isInput ? v : v + amount),
  restoredAd: (presented) => presented.scrip!.ad,
  confirm: {
    cmds: { done: CmdType.PM6_1, resend: CmdType.PM6_2, undo: CmdType.PM6_3 },
    code: CmdType.PM7_1,
    schema: ConfirmPaymentResponseSchema,
    read: (r) => ({ cmd: r.header?.cmdType, tranId: r.tranId, scrip: r.newScrip, hash: r.newScripHash, pCount: r.pCount }),
    toReply: (r) =>
      create(ConfirmPaymentResponseSchema, { header: r.header, tranId: r.tranId, state: r.state, receipt: r.receipt, scrip: r.scrip, scripHash: r.scripHash }),
    receipt: true,
    nothingToResend: "there is no change scrip to resend",
  },
};

// Both replies of an M3/S3 have the same three fields.
export function initReply<R extends { $typeName: string }>(schema: GenMessage<R>, header: HeaderType, tx: { tranId: string }, state: TransactionState): R {
  return create(schema as unknown as GenMessage<InitIssueResponse>, { header, tranId: tx.tranId, state }) as unknown as R;
}
