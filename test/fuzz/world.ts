/**
 * Valid requests for every RPC, taken from a real flow, as templates for the
 * structured fuzzer. Two kinds:
 *   - replay templates point at things already done (a confirmed TranID, a
 *     dead scrip, a used request id): sent unchanged they only replay, so any
 *     mutation of any field may be tried and NO value may ever move;
 *   - live templates would move value if sent unchanged (an initiated TranID,
 *     the live scrip, a fresh request id): only their protected fields (scrip,
 *     offer, receipt, hash, MAC) are mutated, and every such mutation must be
 *     refused.
 * So throughout the structured fuzz the ledger's transfer journal must not
 * grow by a single row.
 */
import { clone, create, type DescMessage, type DescMethodUnary, type Message } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import {
  ConfirmIssueRequestSchema,
  ConfirmPaymentRequestSchema,
  InitIssueRequestSchema,
  InitPaymentRequestSchema,
  IssueRequestSchema,
  ListSettlementsRequestSchema,
  PaymentCenterService,
  PayRequestSchema,
  RedeemRequestSchema,
  RegisterRequestSchema,
  RenewRequestSchema,
  TransactionState,
} from "../../gen/scripwire/v1/center_pb.js";
import { DeliverRequestSchema, RequestIssueRequestSchema, RequestServiceRequestSchema, SellerService } from "../../gen/scripwire/v1/seller_pb.js";
import { CmdType, DeliveryMethod, HashAlgorithm, HeaderTypeSchema, type Offer, type ScripType } from "../../gen/scripwire/v1/types_pb.js";
import { computeMessageHash, computeSettlementsMac, verifyOfferMac } from "../../src/crypto/scrip-auth.js";
import { errorReason } from "../../src/server/errors.js";
import { decryptCustomSecret, sealSessionKey } from "../../src/crypto/registration.js";
import { QUIZ } from "../helpers/inproc.js";
import { Unsendable } from "./direct.js";
import type { Prng } from "../torture/prng.js";

const hdr = (cmdType: CmdType) => create(HeaderTypeSchema, { cmdType, protocolVersion: "scripwire/1" });

/** A customer as the fuzzer needs it: its secret and the scrips it has held. */
export interface FuzzCustomer {
  walletId: string;
  secret: Uint8Array;
  registerRequest: Message;
}

export interface Template {
  name: string;
  service: "center" | "seller";
  method: DescMethodUnary;
  request: Message;
  /** Would move value if sent unchanged: only `protect` paths are mutated. */
  live: boolean;
  /** Paths whose alteration must never be accepted. */
  protect: string[];
  /** The customer whose Custom_Secret re-signs the request hash (a cheating customer can always do that). */
  customer?: FuzzCustomer;
  /**
   * Re-signs a time-bound request before an input is drawn from it (the
   * center refuses a settlement request 5 minutes old as STALE_REQUEST, which
   * a long or slow run would otherwise report as a wrong refusal).
   */
  refresh?: () => void;
}

export type Outcome =
  | { kind: "ok"; res: Record<string, any> }
  | { kind: "error"; code: Code; reason: string | undefined; message: string }
  | { kind: "unsendable"; message: string }
  | { kind: "bad"; detail: string };

export async function call(transports: { center: Transport; seller: Transport }, t: { service: "center" | "seller"; method: DescMethodUnary }, req: Message): Promise<Outcome> {
  const client = t.service === "center" ? createClient(PaymentCenterService, transports.center) : createClient(SellerService, transports.seller);
  try {
    const res = await (client as unknown as Record<string, (r: unknown) => Promise<Record<string, any>>>)[t.method.localName]!(req);
    return { kind: "ok", res };
  } catch (e) {
    if (e instanceof Unsendable) return { kind: "unsendable", message: e.message };
    if (!(e instanceof ConnectError)) return { kind: "bad", detail: `non-Connect error: ${e instanceof Error ? e.stack : String(e)}` };
    // Client-side serialization of an out-of-range mutation (real sockets) is not the server's answer.
    if (e.code === Code.Internal && /^serialize binary/.test(e.rawMessage) && !errorReason(e)) return { kind: "unsendable", message: e.rawMessage };
    // A rate limit (src/server/limits.ts) refused it before the service saw it: not an answer to judge.
    if (e.code === Code.ResourceExhausted && errorReason(e) === "RATE_LIMITED") return { kind: "unsendable", message: e.rawMessage };
    if ([Code.Internal, Code.Unknown, Code.DataLoss, Code.Unavailable, Code.DeadlineExceeded].includes(e.code)) {
      return { kind: "bad", detail: `${Code[e.code]}${errorReason(e) ? ` [${errorReason(e)}]` : ""}: ${e.rawMessage}` };
    }
    return { kind: "error", code: e.code, reason: errorReason(e), message: e.rawMessage };
  }
}

/** Re-signs a mutated request with its customer's Custom_Secret, as a cheating customer would. */
export function resign(t: Template, req: Record<string, any>): void {
  const c = t.customer;
  if (!c) return;
  const tmplCmd = (t.request as Record<string, any>).header?.cmdType as CmdType;
  const cmd = CmdType[req.header?.cmdType as CmdType] && req.header?.cmdType !== CmdType.UNSPECIFIED ? (req.header.cmdType as CmdType) : tmplCmd;
  // A value the canonical encoding cannot represent (a negative enum, say) cannot be signed:
  // the request then goes out with its old hash, which is a fine input too.
  const h = (contextId: string, pCount: number, scrip: ScripType | undefined, extra: Record<string, unknown> = {}): Uint8Array | undefined => {
    for (const alg of [scrip?.hashAlgorithm ?? HashAlgorithm.HMAC_SHA256, HashAlgorithm.HMAC_SHA256]) {
      try {
        return computeMessageHash(alg, c.secret, { code: CmdType[cmd]!, contextId, pCount, scrip, ...extra });
      } catch {
        // try the default algorithm, then give up
      }
    }
    return undefined;
  };
  const set = (field: string, v: Uint8Array | undefined) => {
    if (v) req[field] = v;
  };
  switch (t.method.localName) {
    case "issue":
      set("scripHash", h(req.tranId, req.pCount, req.scrip));
      break;
    case "renew":
      set("scripHash", h(req.requestId, req.pCount, req.scrip));
      break;
    case "redeem":
      set("scripHash", h(req.requestId, req.pCount, req.scrip, { amount: req.amount, account: req.payoutAccount }));
      break;
    case "confirmIssue":
    case "confirmPayment":
      set("newScripHash", h(req.tranId, req.pCount, req.newScrip));
      break;
    case "pay":
      set("hash", h(req.order?.tranId ?? "", req.pCount, req.scrip, { order: req.order }));
      break;
  }
}

/** The hash field of a scrip-bearing request (mutating it means the request is NOT re-signed). */
export const HASH_FIELD: Record<string, string> = {
  issue: "scripHash",
  renew: "scripHash",
  redeem: "scripHash",
  confirmIssue: "newScripHash",
  confirmPayment: "newScripHash",
  pay: "hash",
};

/** Does this answer grant something: value, a state change or authenticated data? */
export function grants(t: Template, req: Record<string, any>, res: Record<string, any>): boolean {
  const cmd = req.header?.cmdType as CmdType;
  switch (t.method.localName) {
    case "issue":
      return res.header?.cmdType === CmdType.GM5_1 || res.newScrip !== undefined;
    case "pay":
      return res.header?.cmdType === CmdType.PM5_1 || res.newScrip !== undefined;
    case "confirmIssue":
      return (cmd === CmdType.GM6_1 && res.state === TransactionState.CONFIRMED) || (cmd === CmdType.GM6_3 && res.state === TransactionState.CANCELLED && res.scrip !== undefined);
    case "confirmPayment":
      return (cmd === CmdType.PM6_1 && res.receipt !== undefined) || (cmd === CmdType.PM6_3 && res.state === TransactionState.CANCELLED && res.scrip !== undefined);
    case "requestIssue":
    case "requestService":
    case "register":
      return false;
    default:
      return true;
  }
}

export interface FuzzWorld {
  templates: Template[];
  vendorSecret: Uint8Array;
  vendorId: string;
  /** Serials that must stay live, and TranIDs whose state must not change, for the "nothing moved" check. */
  live: { customerSerial: bigint; serial: bigint }[];
  liveTx: { vendorId: string; tranId: string; state: string }[];
}

class Cust implements FuzzCustomer {
  walletId: string;
  secret: Uint8Array = new Uint8Array(32);
  registerRequest!: Message;
  scrip!: ScripType;
  center;
  seller;

  constructor(
    rng: Prng,
    tr: { center: Transport; seller: Transport },
    readonly name: string,
  ) {
    this.walletId = `fuzz-${name}-${rng.hex(6)}`;
    this.center = createClient(PaymentCenterService, tr.center);
    this.seller = createClient(SellerService, tr.seller);
  }

  hash(cmd: CmdType, contextId: string, pCount: number, scrip: ScripType, extra: Record<string, unknown> = {}) {
    return computeMessageHash(scrip.hashAlgorithm, this.secret, { code: CmdType[cmd]!, contextId, pCount, scrip, ...extra });
  }

  async register(rng: Prng): Promise<void> {
    const info = await this.center.getCenterInfo({});
    const ks = rng.bytes(32);
    const req = create(RegisterRequestSchema, { header: hdr(CmdType.UM1), walletId: this.walletId, name: this.name, email: `${this.name}@fuzz.test`, sealedSessionKey: sealSessionKey(info.publicKey, this.walletId, ks), currency: "KRW" });
    const r2 = await this.center.register(req);
    this.registerRequest = req;
    this.scrip = r2.scrip!;
    this.secret = decryptCustomSecret(ks, this.walletId, this.scrip.scrip!.customId!, r2.encryptedCustomSecret);
  }

  async permit(item: string, answer = ""): Promise<Offer> {
    const m2 = await this.seller.requestIssue({ header: hdr(CmdType.GM1_1), item, value: answer, customId: this.scrip.scrip!.customId });
    if (m2.header?.cmdType !== CmdType.GM2_1) throw new Error(`M2 refused: ${m2.header?.errorMessage}`);
    return m2.permit!;
  }

  async order(url: string, method = DeliveryMethod.VIEW): Promise<Offer> {
    const s2 = await this.seller.requestService({ header: hdr(CmdType.PM1_1), requestUrl: url, pMethod: method, customId: this.scrip.scrip!.customId });
    if (s2.header?.cmdType !== CmdType.PM2_1) throw new Error(`S2 refused: ${s2.header?.errorMessage}`);
    return s2.order!;
  }

  m4(tranId: string, scrip = this.scrip, cmd = CmdType.GM4_1) {
    return create(IssueRequestSchema, { header: hdr(cmd), tranId, scrip, scripHash: this.hash(cmd, tranId, 0, scrip), pCount: 0 });
  }

  m6(tranId: string, s: ScripType, cmd = CmdType.GM6_1) {
    return create(ConfirmIssueRequestSchema, { header: hdr(cmd), tranId, newScrip: s, newScripHash: this.hash(cmd, tranId, 0, s), pCount: 0 });
  }

  s4(order: Offer, scrip = this.scrip, cmd = CmdType.PM4_1) {
    return create(PayRequestSchema, { header: hdr(cmd), scrip, order, hash: this.hash(cmd, order.tranId, 0, scrip, { order }), pCount: 0 });
  }

  s6(tranId: string, s: ScripType, cmd = CmdType.PM6_1) {
    return create(ConfirmPaymentRequestSchema, { header: hdr(cmd), tranId, newScrip: s, newScripHash: this.hash(cmd, tranId, 0, s), pCount: 0 });
  }

  renewReq(requestId: string, scrip = this.scrip) {
    return create(RenewRequestSchema, { header: hdr(CmdType.RN1), requestId, scrip, scripHash: this.hash(CmdType.RN1, requestId, 0, scrip), pCount: 0 });
  }

  redeemReq(requestId: string, amount: bigint, scrip = this.scrip) {
    const account = "bank:fuzz-001";
    return create(RedeemRequestSchema, { header: hdr(CmdType.RD1), requestId, scrip, amount, payoutAccount: account, scripHash: this.hash(CmdType.RD1, requestId, 0, scrip, { amount, account }), pCount: 0 });
  }

  /** M1..M7 in full, adopting the new scrip; returns the requests used (for replay templates). */
  async earn(item: string, answer = "", confirm = true) {
    const permit = await this.permit(item, answer);
    await this.center.initIssue({ header: hdr(CmdType.GM3_1), permit });
    const m4 = this.m4(permit.tranId);
    const m5 = await this.center.issue(m4);
    if (m5.header?.cmdType !== CmdType.GM5_1) throw new Error(`M5 ${CmdType[m5.header!.cmdType]}: ${m5.header?.errorMessage}`);
    const m6 = this.m6(permit.tranId, m5.newScrip!);
    if (confirm) await this.center.confirmIssue(m6);
    this.scrip = m5.newScrip!;
    return { permit, m4, m6 };
  }

  async buy(url: string, method = DeliveryMethod.VIEW, confirm = true) {
    const order = await this.order(url, method);
    await this.center.initPayment({ header: hdr(CmdType.PM3_1), order });
    const s4 = this.s4(order);
    const s5 = await this.center.pay(s4);
    if (s5.header?.cmdType !== CmdType.PM5_1) throw new Error(`S5 ${CmdType[s5.header!.cmdType]}: ${s5.header?.errorMessage}`);
    const s6 = this.s6(order.tranId, s5.newScrip!);
    const receipt = confirm ? (await this.center.confirmPayment(s6)).receipt : undefined;
    this.scrip = s5.newScrip!;
    return { order, s4, s6, receipt };
  }
}

/**
 * Builds the templates on a world seeded by test/helpers/inproc.ts
 * (`seedLedger`: quiz-1, survey-1, ad-1; /articles/hash-cash 30, /files/tool.bin 120, /articles/both 5),
 * whose center redeems from 10 KRW.
 */
export async function buildFuzzWorld(
  rng: Prng,
  tr: { center: Transport; seller: Transport },
  vendor: { vendorId: string; secret: Uint8Array },
  opts: { undoTemplates?: boolean } = {},
): Promise<FuzzWorld> {
  const T: Template[] = [];
  const C = PaymentCenterService.method;
  const S = SellerService.method;

  // A: the customer whose history provides the replay templates.
  const a = new Cust(rng, tr, "a");
  await a.register(rng);
  T.push({ name: "Register/replay", service: "center", method: C.register, request: a.registerRequest, live: false, protect: [] });
  const quiz = await a.earn(QUIZ.itemId, QUIZ.answer); // 50
  T.push({ name: "InitIssue/replay", service: "center", method: C.initIssue, request: create(InitIssueRequestSchema, { header: hdr(CmdType.GM3_1), permit: quiz.permit }), live: false, protect: ["permit"] });
  T.push({ name: "Issue/replay", service: "center", method: C.issue, request: quiz.m4, live: false, protect: ["scrip", "tranId", "scripHash"], customer: a });
  T.push({ name: "ConfirmIssue/replay", service: "center", method: C.confirmIssue, request: quiz.m6, live: false, protect: ["newScrip", "tranId", "newScripHash"], customer: a });
  await a.earn("ad-1"); // 60
  const bought = await a.buy("/articles/both"); // 55
  T.push({ name: "InitPayment/replay", service: "center", method: C.initPayment, request: create(InitPaymentRequestSchema, { header: hdr(CmdType.PM3_1), order: bought.order }), live: false, protect: ["order"] });
  T.push({ name: "Pay/replay", service: "center", method: C.pay, request: bought.s4, live: false, protect: ["scrip", "order", "hash"], customer: a });
  T.push({ name: "ConfirmPayment/replay", service: "center", method: C.confirmPayment, request: bought.s6, live: false, protect: ["newScrip", "tranId", "newScripHash"], customer: a });
  T.push({ name: "Deliver", service: "seller", method: S.deliver, request: create(DeliverRequestSchema, { header: hdr(CmdType.PM8_1), receipt: bought.receipt }), live: false, protect: ["receipt"] });
  const rnId = `rn-${rng.hex(8)}`;
  const renew = a.renewReq(rnId);
  a.scrip = (await a.center.renew(renew)).newScrip!;
  T.push({ name: "Renew/replay", service: "center", method: C.renew, request: renew, live: false, protect: ["scrip", "scripHash"], customer: a });
  const rdId = `rd-${rng.hex(8)}`;
  const redeem = a.redeemReq(rdId, 10n);
  a.scrip = (await a.center.redeem(redeem)).newScrip!; // 45
  T.push({ name: "Redeem/replay", service: "center", method: C.redeem, request: redeem, live: false, protect: ["scrip", "scripHash"], customer: a });
  // Executed, not confirmed: a valid M6 would confirm it.
  const pending = await a.earn("survey-1", "more please", false); // 65, executed
  T.push({ name: "ConfirmIssue/live", service: "center", method: C.confirmIssue, request: pending.m6, live: true, protect: ["newScrip", "tranId", "newScripHash"], customer: a });
  if (opts.undoTemplates) T.push({ name: "ConfirmIssue/undo-live", service: "center", method: C.confirmIssue, request: a.m6(pending.permit.tranId, a.scrip, CmdType.GM6_3), live: true, protect: ["newScrip", "tranId", "newScripHash"], customer: a });
  T.push({ name: "Issue/cancel-live", service: "center", method: C.issue, request: a.m4(pending.permit.tranId, a.scrip, CmdType.GM4_2), live: true, protect: ["scrip", "tranId", "scripHash"], customer: a });
  // A's live scrip, an initiated order, fresh request ids.
  const order = await a.order("/articles/hash-cash");
  await a.center.initPayment({ header: hdr(CmdType.PM3_1), order });
  T.push({ name: "Pay/live", service: "center", method: C.pay, request: a.s4(order), live: true, protect: ["scrip", "order", "hash"], customer: a });
  T.push({ name: "Renew/live", service: "center", method: C.renew, request: a.renewReq(`rn-${rng.hex(8)}`), live: true, protect: ["scrip", "scripHash"], customer: a });
  T.push({ name: "Redeem/live", service: "center", method: C.redeem, request: a.redeemReq(`rd-${rng.hex(8)}`, 20n), live: true, protect: ["scrip", "scripHash"], customer: a });

  // B: an initiated issuance, a valid M4 away from executing.
  const b = new Cust(rng, tr, "b");
  await b.register(rng);
  const bp = await b.permit(QUIZ.itemId, QUIZ.answer);
  await b.center.initIssue({ header: hdr(CmdType.GM3_1), permit: bp });
  T.push({ name: "Issue/live", service: "center", method: C.issue, request: b.m4(bp.tranId), live: true, protect: ["scrip", "tranId", "scripHash"], customer: b });
  T.push({ name: "InitIssue/live-permit", service: "center", method: C.initIssue, request: create(InitIssueRequestSchema, { header: hdr(CmdType.GM3_1), permit: bp }), live: true, protect: ["permit"] });

  // C: an executed, unconfirmed payment: a valid S6 would confirm it and mint a receipt.
  const c = new Cust(rng, tr, "c");
  await c.register(rng);
  await c.earn(QUIZ.itemId, QUIZ.answer);
  const cPay = await c.buy("/articles/both", DeliveryMethod.SAVE, false);
  T.push({ name: "ConfirmPayment/live", service: "center", method: C.confirmPayment, request: cPay.s6, live: true, protect: ["newScrip", "tranId", "newScripHash"], customer: c });
  if (opts.undoTemplates) T.push({ name: "ConfirmPayment/undo-live", service: "center", method: C.confirmPayment, request: c.s6(cPay.order.tranId, c.scrip, CmdType.PM6_3), live: true, protect: ["newScrip", "tranId", "newScripHash"], customer: c });
  T.push({ name: "Pay/cancel-live", service: "center", method: C.pay, request: c.s4(cPay.order, cPay.s4.scrip!, CmdType.PM4_2), live: true, protect: ["scrip", "order", "hash"], customer: c });

  // Seller calls and settlements.
  T.push({ name: "RequestIssue", service: "seller", method: S.requestIssue, request: create(RequestIssueRequestSchema, { header: hdr(CmdType.GM1_1), item: QUIZ.itemId, value: QUIZ.answer, customId: a.scrip.scrip!.customId }), live: false, protect: [] });
  T.push({ name: "RequestService", service: "seller", method: S.requestService, request: create(RequestServiceRequestSchema, { header: hdr(CmdType.PM1_1), requestUrl: "/articles/hash-cash", pMethod: DeliveryMethod.VIEW, customId: a.scrip.scrip!.customId }), live: false, protect: [] });
  const settlementsRequest = (ts: bigint) =>
    create(ListSettlementsRequestSchema, { vendorId: vendor.vendorId, afterSequence: 0n, limit: 10, timestampUnixMs: ts, vendorKeyId: 1, mac: computeSettlementsMac(HashAlgorithm.HMAC_SHA256, vendor.secret, vendor.vendorId, 0n, ts) });
  const settlements: Template = {
    name: "ListSettlements",
    service: "center",
    method: C.listSettlements,
    request: settlementsRequest(BigInt(Date.now())),
    live: false,
    protect: ["vendorId", "afterSequence", "timestampUnixMs", "vendorKeyId", "mac"],
    refresh: () => {
      const now = Date.now();
      const signed = Number((settlements.request as unknown as { timestampUnixMs: bigint }).timestampUnixMs);
      if (now - signed > 60_000) settlements.request = settlementsRequest(BigInt(now));
    },
  };
  T.push(settlements);

  // Sanity: every template is valid as it stands (live ones are not sent).
  for (const t of T) {
    if (t.live) continue;
    const o = await call(tr, t, clone(t.method.input as DescMessage, t.request as never) as Message);
    if (o.kind !== "ok") throw new Error(`template ${t.name} is not valid: ${JSON.stringify(o)}`);
  }
  return {
    templates: T,
    vendorSecret: vendor.secret,
    vendorId: vendor.vendorId,
    live: [a, b, c].map((x) => ({ customerSerial: x.scrip.scrip!.customId!.serialNumber, serial: x.scrip.scrip!.scripId!.serialNumber })),
    liveTx: [
      { vendorId: vendor.vendorId, tranId: pending.permit.tranId, state: "executed" },
      { vendorId: vendor.vendorId, tranId: order.tranId, state: "initiated" },
      { vendorId: vendor.vendorId, tranId: bp.tranId, state: "initiated" },
      { vendorId: vendor.vendorId, tranId: cPay.order.tranId, state: "executed" },
    ],
  };
}

/** Checks a seller offer the fuzzer got back: signed by the vendor, with the catalog's amount. */
export function offerSound(o: Offer | undefined, vendorSecret: Uint8Array, expectAmount: bigint | undefined): string | undefined {
  if (!o) return "no offer";
  if (!verifyOfferMac(vendorSecret, o)) return "the seller's offer does not verify under its own key";
  if (expectAmount !== undefined && o.amount !== expectAmount) return `offer amount ${o.amount}, catalog says ${expectAmount}`;
  return undefined;
}
