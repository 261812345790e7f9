/**
 * Random call orders: one customer, a pool of everything it has been handed
 * (permits, orders, scrips, receipts), and a random list of actions that use
 * the pool in any order — Issue before InitIssue, ConfirmPayment before Pay,
 * Pay after a cancel, an old scrip after a new one, a permit where an order
 * belongs. Whatever the order, the center must answer with a refusal or a
 * correct result, never INTERNAL; value must add up on every success; and
 * afterwards the customer's live scrip is one the center actually handed out.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import fc from "fast-check";
import { PaymentCenterService, RegisterRequestSchema, TransactionState } from "../../gen/scripwire/v1/center_pb.js";
import { SellerService } from "../../gen/scripwire/v1/seller_pb.js";
import { CmdType, DeliveryMethod, HeaderTypeSchema, type Offer, type Receipt, type ScripType } from "../../gen/scripwire/v1/types_pb.js";
import { decryptCustomSecret, sealSessionKey } from "../../src/crypto/registration.js";
import { computeMessageHash, verifyMessageHash } from "../../src/crypto/scrip-auth.js";
import { errorReason } from "../../src/server/errors.js";
import type { Ledger } from "../../src/ledger/ledger.js";
import { Unsendable } from "./direct.js";

const hdr = (cmdType: CmdType) => create(HeaderTypeSchema, { cmdType, protocolVersion: "scripwire/1" });

export const ACTIONS = ["m1", "s1", "m3", "s3", "m4", "m6", "s4", "s6", "renew", "redeem", "deliver"] as const;
export type Action = { kind: (typeof ACTIONS)[number]; a: number; b: number; c: number };

export const actionArb: fc.Arbitrary<Action> = fc.record({
  kind: fc.constantFrom(...ACTIONS),
  a: fc.nat(1000),
  b: fc.nat(1000),
  c: fc.nat(1000),
});

const ITEMS = [["quiz-1", "hash"], ["quiz-1", "rsa"], ["survey-1", "yes"], ["survey-1", ""], ["ad-1", ""], ["no-such-item", ""]] as const;
const URLS = [["/articles/hash-cash", DeliveryMethod.VIEW], ["/files/tool.bin", DeliveryMethod.SAVE], ["/articles/both", DeliveryMethod.SAVE], ["/articles/both", DeliveryMethod.VIEW], ["/nothing", DeliveryMethod.VIEW], ["/files/tool.bin", DeliveryMethod.VIEW]] as const;

export interface OrdersContext {
  center: Transport;
  seller: Transport;
  ledger: Ledger;
  centerPublicKey: Uint8Array;
  /** Counts every call made (the suite's input count). */
  calls: { n: number };
  refusals: Map<string, number>;
}

function pick<T>(xs: readonly T[], i: number): T | undefined {
  return xs.length ? xs[i % xs.length] : undefined;
}

/** Runs one sequence; throws (with the step) on any violation, so fast-check can shrink it. */
export async function runSequence(ctx: OrdersContext, walletId: string, sessionKey: Uint8Array, actions: Action[]): Promise<void> {
  const center = createClient(PaymentCenterService, ctx.center);
  const seller = createClient(SellerService, ctx.seller);
  const r2 = await center.register(
    create(RegisterRequestSchema, { header: hdr(CmdType.UM1), walletId, name: "order-fuzz", sealedSessionKey: sealSessionKey(ctx.centerPublicKey, walletId, sessionKey), currency: "KRW" }),
  );
  ctx.calls.n++;
  const secret = decryptCustomSecret(sessionKey, walletId, r2.scrip!.scrip!.customId!, r2.encryptedCustomSecret);
  const customId = r2.scrip!.scrip!.customId!;
  const scrips: ScripType[] = [r2.scrip!];
  const offers: Offer[] = [];
  const receipts: Receipt[] = [];
  const requestIds: string[] = [];
  const hash = (cmd: CmdType, ctxId: string, p: number, s: ScripType, extra: Record<string, unknown> = {}) =>
    computeMessageHash(s.hashAlgorithm, secret, { code: CmdType[cmd]!, contextId: ctxId, pCount: p, scrip: s, ...extra });
  const verifies = (cmd: CmdType, ctxId: string, pMax: number, s: ScripType | undefined, h: Uint8Array, extra: Record<string, unknown> = {}) => {
    if (!s) return false;
    for (let p = pMax; p >= 0; p--) if (verifyMessageHash(s.hashAlgorithm, secret, { code: CmdType[cmd]!, contextId: ctxId, pCount: p, scrip: s, ...extra }, h)) return true;
    return false;
  };
  const adoptable = (s: ScripType | undefined) => {
    if (s) scrips.push(s);
  };
  const offerOf = (tranId: string) => offers.find((o) => o.tranId === tranId);

  const step = async (i: number, act: Action) => {
    const where = `step ${i} ${act.kind}(${act.a},${act.b},${act.c})`;
    const refusal = (what: string) => ctx.refusals.set(what, (ctx.refusals.get(what) ?? 0) + 1);
    try {
      ctx.calls.n++;
      const scrip = pick(scrips, act.b)!;
      const offer = pick(offers, act.a);
      const tranId = act.c % 7 === 0 || !offer ? `t_unknown_${act.c}` : offer.tranId;
      const p = act.c % 4;
      switch (act.kind) {
        case "m1": {
          const [item, answer] = ITEMS[act.a % ITEMS.length]!;
          const m2 = await seller.requestIssue({ header: hdr(CmdType.GM1_1), item, value: answer, customId });
          if (m2.permit) offers.push(m2.permit);
          else refusal(`GM2_2:${m2.header?.errorReason}`);
          return;
        }
        case "s1": {
          const [url, method] = URLS[act.a % URLS.length]!;
          const s2 = await seller.requestService({ header: hdr(CmdType.PM1_1), requestUrl: url, pMethod: method, customId });
          if (s2.order) offers.push(s2.order);
          else refusal(`PM2_2:${s2.header?.errorReason}`);
          return;
        }
        case "m3":
        case "s3": {
          if (!offer) return;
          if (act.kind === "m3") await center.initIssue({ header: hdr(CmdType.GM3_1), permit: offer });
          else await center.initPayment({ header: hdr(CmdType.PM3_1), order: offer });
          return;
        }
        case "m4": {
          const cmd = act.c % 3 === 0 ? CmdType.GM4_2 : CmdType.GM4_1;
          const m5 = await center.issue({ header: hdr(cmd), tranId, scrip, scripHash: hash(cmd, tranId, p, scrip), pCount: p });
          const got = m5.header!.cmdType;
          if (got === CmdType.GM5_1) {
            if (!verifies(CmdType.GM5_1, tranId, 0, m5.newScrip, m5.newScripHash)) throw new Error("GM5_1 does not verify");
            const amount = offerOf(tranId)?.amount;
            if (amount === undefined || m5.newScrip!.scrip!.value !== scrip.scrip!.value + amount) {
              throw new Error(`GM5_1 value ${m5.newScrip!.scrip!.value} != presented ${scrip.scrip!.value} + permit ${amount}`);
            }
            adoptable(m5.newScrip);
          } else {
            refusal(`${CmdType[got]}:${m5.header!.errorReason}`);
            if (m5.newScrip) {
              if (!verifies(got, tranId, p + 1, m5.newScrip, m5.newScripHash)) throw new Error("restored scrip does not verify");
              adoptable(m5.newScrip);
            }
          }
          return;
        }
        case "s4": {
          if (!offer) return;
          const cmd = act.c % 3 === 0 ? CmdType.PM4_2 : CmdType.PM4_1;
          const s5 = await center.pay({ header: hdr(cmd), scrip, order: offer, hash: hash(cmd, offer.tranId, p, scrip, { order: offer }), pCount: p });
          const got = s5.header!.cmdType;
          if (got === CmdType.PM5_1) {
            if (!verifies(CmdType.PM5_1, offer.tranId, 0, s5.newScrip, s5.newScripHash)) throw new Error("PM5_1 does not verify");
            if (s5.newScrip!.scrip!.value !== scrip.scrip!.value - offer.amount) {
              throw new Error(`PM5_1 change ${s5.newScrip!.scrip!.value} != presented ${scrip.scrip!.value} - price ${offer.amount}`);
            }
            adoptable(s5.newScrip);
          } else {
            refusal(`${CmdType[got]}:${s5.header!.errorReason}`);
            if (s5.newScrip) {
              if (!verifies(got, offer.tranId, p + 1, s5.newScrip, s5.newScripHash)) throw new Error("restored scrip does not verify");
              adoptable(s5.newScrip);
            }
          }
          return;
        }
        case "m6":
        case "s6": {
          const codes = act.kind === "m6" ? [CmdType.GM6_1, CmdType.GM6_2, CmdType.GM6_3] : [CmdType.PM6_1, CmdType.PM6_2, CmdType.PM6_3];
          const cmd = codes[act.c % 3]!;
          const req = { header: hdr(cmd), tranId, newScrip: scrip, newScripHash: hash(cmd, tranId, p, scrip), pCount: p };
          const res = act.kind === "m6" ? await center.confirmIssue(req) : await center.confirmPayment(req);
          const reply = act.kind === "m6" ? CmdType.GM7_1 : CmdType.PM7_1;
          if (res.scrip && !verifies(reply, tranId, 64, res.scrip, res.scripHash)) throw new Error(`${CmdType[cmd]} reply does not verify`);
          if ("receipt" in res && res.receipt) {
            const o = offerOf(tranId);
            if (!o || res.receipt.price !== o.amount || res.receipt.tranId !== tranId) throw new Error(`receipt does not match the order: ${res.receipt.price} for ${tranId}`);
            receipts.push(res.receipt);
          }
          if (res.state === TransactionState.CANCELLED) adoptable(res.scrip);
          return;
        }
        case "renew": {
          const requestId = act.c % 3 === 0 && requestIds.length ? pick(requestIds, act.a)! : `rn-${act.a}-${act.b}-${act.c}-${i}`;
          requestIds.push(requestId);
          const rn = await center.renew({ header: hdr(CmdType.RN1), requestId, scrip, scripHash: hash(CmdType.RN1, requestId, p, scrip), pCount: p });
          if (!verifies(CmdType.RN2, requestId, 0, rn.newScrip, rn.newScripHash)) throw new Error("RN2 does not verify");
          adoptable(rn.newScrip);
          return;
        }
        case "redeem": {
          const requestId = act.c % 3 === 0 && requestIds.length ? pick(requestIds, act.a)! : `rd-${act.a}-${act.b}-${act.c}-${i}`;
          requestIds.push(requestId);
          const amount = BigInt(act.a % 120);
          const account = "bank:orders";
          const rd = await center.redeem({ header: hdr(CmdType.RD1), requestId, scrip, amount, payoutAccount: account, scripHash: hash(CmdType.RD1, requestId, p, scrip, { amount, account }), pCount: p });
          const paid = rd.payout?.amount ?? -1n;
          if (!verifies(CmdType.RD2, requestId, 0, rd.newScrip, rd.newScripHash, { amount: paid, account })) throw new Error("RD2 does not verify");
          adoptable(rd.newScrip);
          return;
        }
        case "deliver": {
          const r = pick(receipts, act.a);
          if (!r) return;
          const d = await seller.deliver({ header: hdr(CmdType.PM8_1), receipt: r });
          if (d.header?.cmdType !== CmdType.PM8_1) throw new Error("a valid receipt did not deliver");
          return;
        }
      }
    } catch (e) {
      if (e instanceof Unsendable) return;
      if (e instanceof ConnectError) {
        if ([Code.Internal, Code.Unknown, Code.DataLoss, Code.Unavailable].includes(e.code)) {
          throw new Error(`${where}: ${Code[e.code]} ${errorReason(e) ?? ""}: ${e.rawMessage}`);
        }
        refusal(`${Code[e.code]}:${errorReason(e)}`);
        return;
      }
      throw new Error(`${where}: ${e instanceof Error ? e.message : String(e)}`);
    }
  };
  for (let i = 0; i < actions.length; i++) await step(i, actions[i]!);
  const live = await ctx.ledger.liveScrip(customId.serialNumber, "KRW");
  if (!live) throw new Error("the customer has no live scrip");
  const held = scrips.find((s) => s.scrip!.scripId!.serialNumber === live.serial);
  if (!held) throw new Error(`the live scrip ${live.serial} was never handed to the customer`);
  if (held.scrip!.value !== live.value) throw new Error(`live scrip ${live.serial}: ledger value ${live.value}, certified value ${held.scrip!.value}`);
}
