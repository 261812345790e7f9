/**
 * Protocol scenarios, each a whole story against a fresh world: every message
 * and variant of the patent, and every attack the brief lists. Registered by
 * center-e2e.test.ts against real servers on loopback.
 */
import type { ExecutionContext, TestFn } from "ava";
import { ConnectError, Code } from "@connectrpc/connect";
import { create, equals } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { randomBytes } from "node:crypto";
import { TransactionState } from "../../gen/scripwire/v1/center_pb.js";
import { CmdType, DeliveryMethod, OfferSchema, ScripTypeSchema, type Offer } from "../../gen/scripwire/v1/types_pb.js";
import { PaymentCenterService } from "../../gen/scripwire/v1/center_pb.js";
import { computeMessageHash, computeOfferMac, computeSettlementsMac } from "../../src/crypto/scrip-auth.js";
import { HashAlgorithm } from "../../gen/scripwire/v1/types_pb.js";
import { errorReason } from "../../src/server/errors.js";
import { checkpointSignatureValid } from "../../src/ledger/chain.js";
import { fromCheckpointMessage } from "../../src/center/sealing.js";
import type { Ledger } from "../../src/ledger/ledger.js";
import type { PaymentCenter } from "../../src/center/center.js";
import type { Transport } from "@connectrpc/connect";
import { QUIZ, testClock, type WorldOptions } from "./inproc.js";
import { hdr, RawCustomer, tamper } from "./raw.js";

export interface World {
  ledger: Ledger;
  center: PaymentCenter;
  vendorId: string;
  secret: Uint8Array;
  campaignId: string;
  centerTransport: Transport;
  sellerTransport: Transport;
  close(): Promise<void>;
}

export type MakeWorld = (opts?: WorldOptions) => Promise<World>;

async function customer(w: World): Promise<RawCustomer> {
  const c = new RawCustomer(w.centerTransport, w.sellerTransport);
  await c.register();
  return c;
}

/** What "changes nothing" means: every balance, every live serial, the journal length. */
async function snapshot(w: World): Promise<string> {
  const campaigns = await w.ledger.listCampaigns();
  const audit = await w.ledger.audit();
  return JSON.stringify({ campaigns, transfers: audit.transfersChecked, scrips: audit.scripsChecked }, (_k, v) => (typeof v === "bigint" ? v.toString() : v));
}

async function auditOk(t: ExecutionContext, w: World): Promise<void> {
  const a = await w.ledger.audit();
  t.deepEqual(a.problems, [], "audit problems");
  t.true(a.ok);
}

async function rpcError(t: ExecutionContext, p: Promise<unknown>, code: Code, reason?: string): Promise<ConnectError> {
  const e = await t.throwsAsync(p);
  t.true(e instanceof ConnectError, `expected ConnectError, got ${e}`);
  const ce = e as ConnectError;
  t.is(ce.code, code, `code ${Code[ce.code]}: ${ce.rawMessage}`);
  if (reason) t.is(errorReason(ce), reason);
  t.true(ce.rawMessage.length > 10, "the message says what to do");
  return ce;
}

async function permit(c: RawCustomer, item = QUIZ.itemId, answer = QUIZ.answer): Promise<Offer> {
  const m2 = await c.m1(item, answer);
  if (m2.header?.cmdType !== CmdType.GM2_1) throw new Error(`GM2_2: ${m2.header?.errorMessage}`);
  return m2.permit!;
}

async function order(c: RawCustomer, url = "/articles/hash-cash", method = DeliveryMethod.VIEW): Promise<Offer> {
  const s2 = await c.s1(url, method);
  if (s2.header?.cmdType !== CmdType.PM2_1) throw new Error(`PM2_2: ${s2.header?.errorMessage}`);
  return s2.order!;
}

/** Registers the scenarios; `only` keeps those whose name starts with one of the given prefixes. */
export function registerScenarios(test: TestFn, makeWorld: MakeWorld, label: string, only?: string[]): void {
  const scenario = (name: string, opts: WorldOptions | undefined, body: (t: ExecutionContext, w: World) => Promise<void>) =>
    only && !only.some((p) => name.startsWith(p)) ? undefined : test(`${label}: ${name}`, async (t) => {
      const w = await makeWorld(opts);
      try {
        await body(t, w);
        await auditOk(t, w);
      } finally {
        await w.close();
      }
    });

  scenario("every message of R1-R2, M1-M7 and S1-S7 in order", undefined, async (t, w) => {
    const c = await customer(w);
    t.is(c.value, 0n, "R2 carries a zero-value scrip");
    t.is(c.scrip.hashAlgorithm, HashAlgorithm.HMAC_SHA256);
    const info = await c.center.getCenterInfo({});
    t.is(info.publicKey.length, 32);

    const m2 = await c.m1(QUIZ.itemId, QUIZ.answer);
    t.is(m2.header?.cmdType, CmdType.GM2_1);
    t.is(m2.permit?.amount, 50n);
    const m3 = await c.m3(m2.permit!);
    t.is(m3.header?.cmdType, CmdType.GM3_1);
    t.is(m3.state, TransactionState.INITIATED);
    const m5 = await c.m4(m2.permit!.tranId);
    t.is(m5.header?.cmdType, CmdType.GM5_1);
    t.is(m5.pCount, 0);
    t.is(m5.newScrip?.scrip?.value, 50n);
    t.not(m5.newScrip?.scrip?.scripId?.serialNumber, c.scrip.scrip?.scripId?.serialNumber, "fresh serial");
    t.true(c.verify(CmdType.GM5_1, m2.permit!.tranId, 0, m5.newScrip!, m5.newScripHash), "M5 authenticates with Custom_Secret");
    const m7 = await c.m6(m2.permit!.tranId, m5.newScrip!);
    t.is(m7.header?.cmdType, CmdType.GM7_1);
    t.is(m7.state, TransactionState.CONFIRMED);
    c.scrip = m5.newScrip!;

    const s2 = await c.s1("/articles/hash-cash", DeliveryMethod.VIEW);
    t.is(s2.header?.cmdType, CmdType.PM2_1);
    t.is(s2.order?.amount, 30n);
    const s3 = await c.s3(s2.order!);
    t.is(s3.header?.cmdType, CmdType.PM3_1);
    const s5 = await c.s4(s2.order!);
    t.is(s5.header?.cmdType, CmdType.PM5_1);
    t.is(s5.newScrip?.scrip?.value, 20n);
    t.true(c.verify(CmdType.PM5_1, s2.order!.tranId, 0, s5.newScrip!, s5.newScripHash));
    const s6 = await c.s6(s2.order!.tranId, s5.newScrip!);
    t.is(s6.header?.cmdType, CmdType.PM7_1);
    t.is(s6.receipt?.price, 30n);
    t.is(s6.receipt?.deliveryMethod, DeliveryMethod.VIEW);
    c.scrip = s5.newScrip!;
    const s7 = await c.seller!.deliver({ header: hdr(CmdType.PM8_1), receipt: s6.receipt });
    t.is(s7.header?.cmdType, CmdType.PM8_1);
    t.is(s7.contentType, "text/html; charset=utf-8");
    t.regex(new TextDecoder().decode(s7.content), /Hash cash/);
    const again = await c.seller!.deliver({ header: hdr(CmdType.PM8_1), receipt: s6.receipt });
    t.deepEqual(again.content, s7.content, "re-delivery of something paid for works");

    const notForSale = await c.s1("/articles/none", DeliveryMethod.VIEW);
    t.is(notForSale.header?.cmdType, CmdType.PM2_2);
    t.regex(notForSale.htmlDocument, /Nothing is sold/);
    const wrongMethod = await c.s1("/articles/hash-cash", DeliveryMethod.SAVE);
    t.is(wrongMethod.header?.cmdType, CmdType.PM2_2);
    const refused = await c.m1(QUIZ.itemId, "rsa");
    t.is(refused.header?.cmdType, CmdType.GM2_2);
    t.regex(refused.htmlDocument, /not the right answer/);
  });

  scenario("buy a file (Save) and re-deliver it", undefined, async (t, w) => {
    const c = await customer(w);
    await c.earn(QUIZ.itemId, QUIZ.answer);
    await c.earn("survey-1", "more articles please");
    await c.earn("ad-1", "");
    t.is(c.value, 80n);
    const o = await order(c, "/articles/both", DeliveryMethod.SAVE);
    await c.s3(o);
    const s5 = await c.s4(o);
    const s6 = await c.s6(o.tranId, s5.newScrip!);
    const s7 = await c.seller!.deliver({ header: hdr(CmdType.PM8_1), receipt: s6.receipt });
    t.is(s7.deliveryMethod, DeliveryMethod.SAVE);
    t.is(s7.fileName, "both");
    t.is(s7.contentType, "application/octet-stream");
  });

  scenario("tampered scrip value is a validity error (GM5_2, PM5_2) and changes nothing", undefined, async (t, w) => {
    const c = await customer(w);
    await c.earn(QUIZ.itemId, QUIZ.answer);
    const before = await snapshot(w);
    const rich = tamper(c.scrip, (s) => void (s.scrip!.value = 1_000_000n));
    const p = await permit(c, "survey-1", "yes");
    await c.m3(p);
    const m5 = await c.m4(p.tranId, { scrip: rich });
    t.is(m5.header?.cmdType, CmdType.GM5_2);
    t.is(m5.header?.errorReason, "BAD_CERTIFICATE");
    t.is(m5.pCount, 1, "errors echo pCount + 1");
    t.true(equals(ScripTypeSchema, m5.scrip!, rich), "errors echo the scrip");
    t.true(c.verify(CmdType.GM5_2, p.tranId, 1, rich, m5.scripHash), "error echo is authenticated");
    const o = await order(c);
    await c.s3(o);
    const s5 = await c.s4(o, { scrip: rich });
    t.is(s5.header?.cmdType, CmdType.PM5_2);
    t.is(s5.header?.errorReason, "BAD_CERTIFICATE");
    t.is(await snapshot(w), before);
  });

  scenario("wrong Custom_Secret is UNAUTHENTICATED and changes nothing", undefined, async (t, w) => {
    const c = await customer(w);
    await c.earn(QUIZ.itemId, QUIZ.answer);
    const before = await snapshot(w);
    const p = await permit(c, "ad-1", "");
    await c.m3(p);
    const wrong = new Uint8Array(randomBytes(32));
    await rpcError(t, c.m4(p.tranId, { secret: wrong }), Code.Unauthenticated, "BAD_HASH");
    const o = await order(c);
    await c.s3(o);
    await rpcError(t, c.s4(o, { secret: wrong }), Code.Unauthenticated, "BAD_HASH");
    t.is(await snapshot(w), before);
  });

  scenario("a forged offer amount is refused at M3, at S3 and at S4", undefined, async (t, w) => {
    const c = await customer(w);
    await c.earn(QUIZ.itemId, QUIZ.answer);
    const before = await snapshot(w);
    const p = await permit(c, "ad-1", "");
    const forged = create(OfferSchema, { ...p, amount: 100_000n });
    await rpcError(t, c.m3(forged), Code.Unauthenticated, "BAD_OFFER_MAC");
    const o = await order(c);
    const cheap = create(OfferSchema, { ...o, amount: 1n });
    await rpcError(t, c.s3(cheap), Code.Unauthenticated, "BAD_OFFER_MAC");
    await c.s3(o);
    const s5 = await c.s4(cheap);
    t.is(s5.header?.cmdType, CmdType.PM5_2);
    t.is(s5.header?.errorReason, "BAD_OFFER_MAC");
    // Re-signing with a guessed key does not help either.
    const resigned = create(OfferSchema, { ...o, amount: 1n });
    resigned.mac = computeOfferMac(new Uint8Array(32), resigned);
    const s5b = await c.s4(resigned);
    t.is(s5b.header?.cmdType, CmdType.PM5_2);
    t.is(await snapshot(w), before);
  });

  scenario("a replayed TranID moves no value twice", undefined, async (t, w) => {
    const c = await customer(w);
    const p = await permit(c);
    await c.m3(p);
    const first = await c.m4(p.tranId);
    await c.m6(p.tranId, first.newScrip!);
    c.scrip = first.newScrip!;
    const before = await snapshot(w);
    const again = await c.m3(p);
    t.is(again.state, TransactionState.CONFIRMED, "M3 again is idempotent and tells the state");
    const m5 = await c.m4(p.tranId);
    t.is(m5.header?.cmdType, CmdType.GM5_3);
    t.is(m5.header?.errorReason, "TRANSACTION_STATE");
    t.is(await snapshot(w), before);
    t.is(c.value, 50n);
  });

  scenario("another customer's TranID is refused", undefined, async (t, w) => {
    const a = await customer(w);
    const b = await customer(w);
    await b.earn(QUIZ.itemId, QUIZ.answer);
    const p = await permit(a);
    await a.m3(p);
    const before = await snapshot(w);
    const m5 = await b.m4(p.tranId);
    t.is(m5.header?.cmdType, CmdType.GM5_3);
    t.is(m5.header?.errorReason, "UNKNOWN_TRANSACTION", "B cannot even see A's TranID");
    const o = await order(a);
    await a.s3(o);
    const s5 = await b.s4(o);
    t.is(s5.header?.cmdType, CmdType.PM5_2);
    t.is(s5.header?.errorReason, "WRONG_CUSTOMER");
    t.is(await snapshot(w), before);
    // A's transaction is untouched and still works for A.
    const mine = await a.m4(p.tranId);
    t.is(mine.header?.cmdType, CmdType.GM5_1);
  });

  // The center's clock is skewed forward instead of sleeping: a 2-second lifetime
  // with a real sleep failed whenever registering and earning took longer than 2 s
  // on a loaded machine. 60 s of lifetime, then 70 s of skew (offers live 600 s).
  const expiryClock = testClock();
  scenario("expired scrip is refused until renewed, and renewal keeps its value", { config: { scripLifetimeSeconds: 60, clock: expiryClock.now } }, async (t, w) => {
    const c = await customer(w);
    await c.earn(QUIZ.itemId, QUIZ.answer);
    expiryClock.advance(70_000);
    const before = await snapshot(w);
    const p = await permit(c, "ad-1", "");
    await c.m3(p);
    const m5 = await c.m4(p.tranId);
    t.is(m5.header?.cmdType, CmdType.GM5_2);
    t.is(m5.header?.errorReason, "EXPIRED");
    const o = await order(c);
    await c.s3(o);
    t.is((await c.s4(o)).header?.cmdType, CmdType.PM5_2);
    t.is(await snapshot(w), before);
    const requestId = `rn_${randomBytes(8).toString("hex")}`;
    const rn = await c.center.renew({ header: hdr(CmdType.RN1), requestId, scrip: c.scrip, scripHash: c.hash(CmdType.RN1, requestId, 0, c.scrip), pCount: 0 });
    t.is(rn.header?.cmdType, CmdType.RN2);
    t.is(rn.newScrip?.scrip?.value, 50n, "no value lost");
    t.true(c.verify(CmdType.RN2, requestId, 0, rn.newScrip!, rn.newScripHash));
    const rn2 = await c.center.renew({ header: hdr(CmdType.RN1), requestId, scrip: c.scrip, scripHash: c.hash(CmdType.RN1, requestId, 1, c.scrip), pCount: 1 });
    t.true(equals(ScripTypeSchema, rn.newScrip!, rn2.newScrip!), "renewal retransmission returns the same scrip");
    c.scrip = rn.newScrip!;
    const m5b = await c.m4(p.tranId);
    t.is(m5b.header?.cmdType, CmdType.GM5_1);
  });

  scenario("an exhausted campaign budget refuses the reward (GM5_3)", { budget: 60n }, async (t, w) => {
    const a = await customer(w);
    const b = await customer(w);
    await a.earn(QUIZ.itemId, QUIZ.answer);
    const before = await snapshot(w);
    const p = await permit(b);
    await b.m3(p);
    const m5 = await b.m4(p.tranId);
    t.is(m5.header?.cmdType, CmdType.GM5_3);
    t.is(m5.header?.errorReason, "BUDGET_EXHAUSTED");
    t.is(await snapshot(w), before);
    const p2 = await permit(b, "ad-1", "");
    await b.m3(p2);
    t.is((await b.m4(p2.tranId)).header?.cmdType, CmdType.GM5_1, "a smaller reward still fits the remaining 10");
  });

  scenario("a second reward for the same quiz is refused", undefined, async (t, w) => {
    const c = await customer(w);
    await c.earn(QUIZ.itemId, QUIZ.answer);
    const before = await snapshot(w);
    const p = await permit(c);
    await c.m3(p);
    const m5 = await c.m4(p.tranId);
    t.is(m5.header?.cmdType, CmdType.GM5_3);
    t.is(m5.header?.errorReason, "ALREADY_REWARDED");
    t.is(await snapshot(w), before);
  });

  scenario("two concurrent spends of one scrip: exactly one wins", undefined, async (t, w) => {
    const c = await customer(w);
    await c.earn(QUIZ.itemId, QUIZ.answer);
    const orders = await Promise.all(Array.from({ length: 8 }, () => order(c, "/articles/both")));
    for (const o of orders) await c.s3(o);
    const replies = await Promise.all(orders.map((o) => c.s4(o)));
    const won = replies.filter((r) => r.header?.cmdType === CmdType.PM5_1);
    t.is(won.length, 1);
    for (const r of replies.filter((r) => r.header?.cmdType !== CmdType.PM5_1)) {
      t.is(r.header?.cmdType, CmdType.PM5_2);
      t.is(r.header?.errorReason, "SCRIP_NOT_LIVE");
    }
    const live = await w.ledger.liveScrip(c.customId.serialNumber, "KRW");
    t.is(live?.value, 45n);
    t.is(live?.serial, won[0]!.newScrip!.scrip!.scripId!.serialNumber);
  });

  scenario("a lost M5 or S5 is recovered by retransmission: same reply, value moved once", undefined, async (t, w) => {
    const c = await customer(w);
    const p = await permit(c);
    await c.m3(p);
    const lost = await c.m4(p.tranId);
    const budgetAfterFirst = (await w.ledger.listCampaigns())[0]!.budget;
    const resent = await c.m4(p.tranId, { pCount: 1 });
    t.true(equals(ScripTypeSchema, lost.newScrip!, resent.newScrip!), "same scrip");
    t.deepEqual(resent.newScripHash, lost.newScripHash);
    t.is((await w.ledger.listCampaigns())[0]!.budget, budgetAfterFirst, "value moved once");
    const m7 = await c.m6(p.tranId, resent.newScrip!);
    const m7again = await c.m6(p.tranId, resent.newScrip!, CmdType.GM6_1, 1);
    t.is(m7again.state, m7.state);
    t.true(c.verify(CmdType.GM7_1, p.tranId, 2, m7again.scrip!, m7again.scripHash), "a replayed M7 is hashed for this try's pCount + 1");
    c.scrip = resent.newScrip!;

    const o = await order(c);
    await c.s3(o);
    const s5 = await c.s4(o);
    const s5again = await c.s4(o, { pCount: 1 });
    t.true(equals(ScripTypeSchema, s5.newScrip!, s5again.newScrip!));
    const r1 = await c.s6(o.tranId, s5.newScrip!);
    const r2 = await c.s6(o.tranId, s5.newScrip!, CmdType.PM6_1, 1);
    t.deepEqual(r2.receipt?.mac, r1.receipt?.mac, "the receipt is stored, not re-made");
    const live = await w.ledger.liveScrip(c.customId.serialNumber, "KRW");
    t.is(live?.value, 20n);
  });

  scenario("GM6_2 and PM6_2 resend the issued scrip", undefined, async (t, w) => {
    const c = await customer(w);
    const p = await permit(c);
    await c.m3(p);
    const m5 = await c.m4(p.tranId);
    const resend = await c.m6(p.tranId, m5.newScrip!, CmdType.GM6_2);
    t.is(resend.header?.cmdType, CmdType.GM7_1);
    t.true(equals(ScripTypeSchema, resend.scrip!, m5.newScrip!));
    t.true(c.verify(CmdType.GM7_1, p.tranId, 1, resend.scrip!, resend.scripHash));
    c.scrip = m5.newScrip!;
    const o = await order(c);
    await c.s3(o);
    const s5 = await c.s4(o);
    const again = await c.s6(o.tranId, s5.newScrip!, CmdType.PM6_2);
    t.true(equals(ScripTypeSchema, again.scrip!, s5.newScrip!));
    t.is(again.state, TransactionState.EXECUTED);
  });

  scenario("cancel GM4_2 before and after execution restores the previous state", undefined, async (t, w) => {
    const c = await customer(w);
    await c.earn("survey-1", "hello");
    const start = await snapshot(w);
    const p = await permit(c);
    await c.m3(p);
    const cancelled = await c.m4(p.tranId, { cmd: CmdType.GM4_2 });
    t.is(cancelled.header?.cmdType, CmdType.GM5_3);
    t.is(cancelled.header?.errorReason, "CANCELLED");
    t.is(await snapshot(w), start, "nothing moved");
    t.is((await c.m4(p.tranId)).header?.cmdType, CmdType.GM5_3, "a cancelled TranID is dead");

    const p2 = await permit(c);
    await c.m3(p2);
    const executed = await c.m4(p2.tranId); // M5 "lost"
    t.is(executed.header?.cmdType, CmdType.GM5_1);
    const undo = await c.m4(p2.tranId, { cmd: CmdType.GM4_2, pCount: 1 });
    t.is(undo.header?.cmdType, CmdType.GM5_3);
    t.is(undo.newScrip?.scrip?.value, 20n, "restored to the value before");
    t.true(c.verify(CmdType.GM5_3, p2.tranId, 2, undo.newScrip!, undo.newScripHash));
    const campaigns = await w.ledger.listCampaigns();
    t.is(campaigns[0]!.issued, 20n, "the reward went back to the campaign");
    c.scrip = undo.newScrip!;
    const p3 = await permit(c);
    await c.m3(p3);
    t.is((await c.m4(p3.tranId)).header?.cmdType, CmdType.GM5_1, "the quiz can be earned again after a cancel");
  });

  scenario("GM6_3 undoes an issuance and PM6_3 / PM4_2 undo a payment", undefined, async (t, w) => {
    const c = await customer(w);
    await c.earn(QUIZ.itemId, QUIZ.answer);
    const p = await permit(c, "survey-1", "x");
    await c.m3(p);
    const m5 = await c.m4(p.tranId);
    const undone = await c.m6(p.tranId, m5.newScrip!, CmdType.GM6_3);
    t.is(undone.state, TransactionState.CANCELLED);
    t.is(undone.scrip?.scrip?.value, 50n);
    c.scrip = undone.scrip!;
    t.is((await w.ledger.liveScrip(c.customId.serialNumber, "KRW"))?.value, 50n);

    const o = await order(c);
    await c.s3(o);
    const s5 = await c.s4(o);
    const failed = await c.s6(o.tranId, s5.newScrip!, CmdType.PM6_3);
    t.is(failed.state, TransactionState.CANCELLED);
    t.is(failed.scrip?.scrip?.value, 50n);
    t.falsy(failed.receipt, "no receipt for an undone payment");
    c.scrip = failed.scrip!;

    const o2 = await order(c);
    await c.s3(o2);
    const pm42 = await c.s4(o2, { cmd: CmdType.PM4_2 });
    t.is(pm42.header?.errorReason, "CANCELLED");
    t.falsy(pm42.newScrip, "nothing had moved");
    t.is((await c.s4(o2)).header?.cmdType, CmdType.PM5_2, "a cancelled payment can't be paid");
    // After confirmation, no undo.
    const o3 = await order(c);
    await c.s3(o3);
    const s5c = await c.s4(o3);
    await c.s6(o3.tranId, s5c.newScrip!);
    await rpcError(t, c.s6(o3.tranId, s5c.newScrip!, CmdType.PM6_3, 1), Code.FailedPrecondition, "TRANSACTION_STATE");
  });

  scenario("malformed calls are INVALID_ARGUMENT and change nothing", undefined, async (t, w) => {
    const c = await customer(w);
    await c.earn(QUIZ.itemId, QUIZ.answer);
    const before = await snapshot(w);
    const p = await permit(c, "ad-1", "");
    await c.m3(p);
    await rpcError(t, c.center.issue({ header: hdr(CmdType.GM4_1), tranId: p.tranId, scripHash: new Uint8Array(32), pCount: 0 }), Code.InvalidArgument, "MISSING_SCRIP");
    await rpcError(t, c.center.issue({ header: hdr(CmdType.PM4_1), tranId: p.tranId, scrip: c.scrip, scripHash: new Uint8Array(32) }), Code.InvalidArgument, "WRONG_CMD_TYPE");
    await rpcError(t, c.center.issue({ tranId: p.tranId, scrip: c.scrip, scripHash: new Uint8Array(32) }), Code.InvalidArgument, "WRONG_CMD_TYPE");
    await rpcError(t, c.m4(p.tranId, { pCount: 1000 }), Code.InvalidArgument, "P_COUNT_TOO_HIGH");
    await rpcError(t, c.center.issue({ header: hdr(CmdType.GM4_1), tranId: p.tranId, scrip: c.scrip, scripHash: new Uint8Array(5) }), Code.InvalidArgument, "BAD_LENGTH");
    await rpcError(t, c.center.issue({ header: hdr(CmdType.GM4_1), tranId: "bad tran id!", scrip: c.scrip, scripHash: new Uint8Array(32) }), Code.InvalidArgument, "BAD_TRAN_ID");
    const negative = tamper(c.scrip, (s) => void (s.scrip!.value = -5n));
    await rpcError(t, c.m4(p.tranId, { scrip: negative }), Code.InvalidArgument, "BAD_SCRIP");
    await rpcError(t, c.center.register({ header: hdr(CmdType.UM1), walletId: "w1", sealedSessionKey: new Uint8Array(10) }), Code.InvalidArgument, "BAD_SEALED_KEY");
    await rpcError(t, c.center.register({ header: hdr(CmdType.UM1), walletId: "w1", sealedSessionKey: new Uint8Array(104) }), Code.InvalidArgument, "BAD_SEALED_KEY");
    const o = await order(c);
    await rpcError(t, c.s3(create(OfferSchema, { ...o, amount: -1n })), Code.InvalidArgument, "BAD_AMOUNT");
    t.is(await snapshot(w), before);
  });

  scenario("redeem above the threshold records a payout; below it is refused", { config: { redeemThreshold: { KRW: 60n } } }, async (t, w) => {
    const c = await customer(w);
    for (const [i, a] of [[QUIZ.itemId, QUIZ.answer], ["survey-1", "a"], ["ad-1", ""]] as const) await c.earn(i, a);
    t.is(c.value, 80n);
    const redeem = (requestId: string, amount: bigint, pCount = 0) =>
      c.center.redeem({
        header: hdr(CmdType.RD1),
        requestId,
        scrip: c.scrip,
        scripHash: computeMessageHash(c.scrip.hashAlgorithm, c.customSecret, { code: "RD1", contextId: requestId, pCount, scrip: c.scrip, amount, account: "bank:123" }),
        amount,
        payoutAccount: "bank:123",
        pCount,
      });
    const before = await snapshot(w);
    await rpcError(t, redeem(`rd_small`, 10n), Code.FailedPrecondition, "BELOW_THRESHOLD");
    await rpcError(t, redeem(`rd_big`, 81n), Code.FailedPrecondition, "INSUFFICIENT_VALUE");
    t.is(await snapshot(w), before);
    const r = await redeem("rd_ok", 70n);
    t.is(r.header?.cmdType, CmdType.RD2);
    t.is(r.newScrip?.scrip?.value, 10n);
    t.is(r.payout?.amount, 70n);
    const replay = await redeem("rd_ok", 70n, 1);
    t.is(replay.payout?.payoutId, r.payout?.payoutId, "a retransmitted redemption pays once");
    const payouts = await w.ledger.listPayouts(10);
    t.is(payouts.length, 1);
    t.is(payouts[0]!.amount, 70n);
    c.scrip = r.newScrip!;
    t.is((await w.ledger.liveScrip(c.customId.serialNumber, "KRW"))?.value, 10n);
  });

  scenario("settlements can be listed and watched by the seller", undefined, async (t, w) => {
    const c = await customer(w);
    await c.earn(QUIZ.itemId, QUIZ.answer);
    const client = createClient(PaymentCenterService, w.centerTransport);
    const ts = BigInt(Date.now());
    const mac = computeSettlementsMac(HashAlgorithm.HMAC_SHA256, w.secret, w.vendorId, 0n, ts);
    const ac = new AbortController();
    const stream = client.watchSettlements({ vendorId: w.vendorId, afterSequence: 0n, timestampUnixMs: ts, vendorKeyId: 1, mac }, { signal: ac.signal });
    const it = stream[Symbol.asyncIterator]();
    const first = await it.next();
    t.is(first.value?.settlement?.amount, 50n, "the confirmed issuance");
    await c.buy("/articles/hash-cash");
    const second = await it.next();
    t.is(second.value?.settlement?.amount, 30n, "the payment arrives on the stream");
    ac.abort();
    await it.return?.();
    const list = await client.listSettlements({ vendorId: w.vendorId, afterSequence: 0n, timestampUnixMs: ts, vendorKeyId: 1, mac });
    t.is(list.settlements.length, 2);
    // The journal checkpoint rides along: it verifies, and a later one extends it.
    // Seal now (in-process worlds run no sealing loop) so a checkpoint covers both settlements.
    const k = w.center.keys.current("checkpoint-ed25519");
    await w.ledger.seal({ now: Date.now, signer: { keyId: k.secretId, secretKey: k.key, everyMs: 0, force: true } });
    const cp = (await client.getCheckpoint({})).checkpoint;
    if (!cp) t.fail("no checkpoint from the center");
    else t.true(checkpointSignatureValid(fromCheckpointMessage(cp)), "the checkpoint's Ed25519 signature verifies");
    // A watch request is single-use (src/center/settlement-watch.ts): replaying it is refused.
    const replay = client.watchSettlements({ vendorId: w.vendorId, afterSequence: 0n, timestampUnixMs: ts, vendorKeyId: 1, mac });
    await rpcError(t, (async () => {
      for await (const _ of replay) break;
    })(), Code.Unauthenticated, "REPLAYED_REQUEST");
    const ts2 = BigInt(Date.now());
    const mac2 = computeSettlementsMac(HashAlgorithm.HMAC_SHA256, w.secret, w.vendorId, 0n, ts2);
    const ac2 = new AbortController();
    const withCps = client.watchSettlements({ vendorId: w.vendorId, afterSequence: 0n, timestampUnixMs: ts2, vendorKeyId: 1, mac: mac2, includeCheckpoints: true }, { signal: ac2.signal });
    const seen = { settlements: 0, checkpoints: 0 };
    for await (const m of withCps) {
      if (m.settlement) seen.settlements++;
      if (m.checkpoint) {
        seen.checkpoints++;
        t.true(checkpointSignatureValid(fromCheckpointMessage(m.checkpoint)));
        break;
      }
    }
    ac2.abort();
    t.deepEqual(seen, { settlements: 2, checkpoints: 1 }, "settlements first, then the checkpoint that covers them");
    t.true(list.nextSequence > 0n);
    const badMac = computeSettlementsMac(HashAlgorithm.HMAC_SHA256, new Uint8Array(32), w.vendorId, 0n, ts);
    await rpcError(t, client.listSettlements({ vendorId: w.vendorId, afterSequence: 0n, timestampUnixMs: ts, vendorKeyId: 1, mac: badMac }), Code.Unauthenticated, "BAD_VENDOR_MAC");
    const old = BigInt(Date.now() - 3_600_000);
    const oldMac = computeSettlementsMac(HashAlgorithm.HMAC_SHA256, w.secret, w.vendorId, 0n, old);
    await rpcError(t, client.listSettlements({ vendorId: w.vendorId, afterSequence: 0n, timestampUnixMs: old, vendorKeyId: 1, mac: oldMac }), Code.Unauthenticated, "STALE_REQUEST");
  });
}

