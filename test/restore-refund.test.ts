/**
 * Issue 14 against real servers (center + seller on loopback HTTP/2, SQLite
 * ledger file): recovery codes, restore and sync, refunds after confirmation.
 * Every test ends with the center's audit passing.
 */
import test, { type ExecutionContext } from "ava";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { randomBytes } from "node:crypto";
import { copyFile, mkdtemp, rm } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CenterAdminService } from "../gen/scripwire/v1/admin_pb.js";
import { PaymentCenterService, SettlementKind } from "../gen/scripwire/v1/center_pb.js";
import { CmdType, HeaderTypeSchema } from "../gen/scripwire/v1/types_pb.js";
import { createTransport } from "../src/client/transport.js";
import { decodeRecoveryCode, encodeRecoveryCode } from "../src/crypto/recovery.js";
import { computeSyncRequestHash } from "../src/crypto/sync-auth.js";
import { computeSettlementsMac } from "../src/crypto/scrip-auth.js";
import { HashAlgorithm } from "../gen/scripwire/v1/types_pb.js";
import { refundRequest, sendRefund } from "../src/seller/refund-client.js";
import { errorReason } from "../src/server/errors.js";
import { AuthenticationError, FileWalletStore, MemoryWalletStore, RefusedError, ScripwireError, StateError, Wallet, type WalletStore } from "../src/wallet/index.js";
import { startWorld, type World } from "./helpers/world.js";

let world: World;
let dir: string;
test.before(async () => {
  world = await startWorld({ budget: 1_000_000n });
  dir = await mkdtemp(join(tmpdir(), "scripwire-restore-"));
});
test.after.always(async () => {
  await world?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const centerClient = () => createClient(PaymentCenterService, createTransport(world.centerUrl));
const adminClient = () => createClient(CenterAdminService, createTransport(world.centerUrl, { headers: { authorization: `Bearer ${world.adminToken}` } }));

class SimulatedCrash extends Error {}

async function openWallet(t: ExecutionContext, store: WalletStore = new MemoryWalletStore(), onStep?: (s: string) => void) {
  const w = await Wallet.open({ store, onStep });
  t.teardown(() => w.close());
  return w;
}

/** A registered wallet that has earned the quiz (50) and the survey (20): 70 KRW. */
async function funded(t: ExecutionContext, store?: WalletStore) {
  const w = await openWallet(t, store);
  await w.register(world.centerUrl, { name: "Restore Test" });
  await w.earn(world.sellerUrl, world.quiz.itemId, world.quiz.answer);
  await w.earn(world.sellerUrl, world.survey.itemId, "more about hash cash");
  return w;
}

async function auditOk(t: ExecutionContext) {
  const r = await world.center.ledger.audit();
  t.deepEqual(r.problems, [], "the audit finds no problem");
  t.true(r.ok);
}

/** The wallet holds the customer's live scrip and its value. */
async function agrees(t: ExecutionContext, w: Wallet) {
  const live = await world.center.ledger.liveScrip(w.identity!.customId.serialNumber, "KRW");
  t.is(live?.serial, w.balance().serial, "the wallet holds the live serial");
  t.is(live?.value, w.balance().value, "and its value");
}

const refund = (tranId: string, amount: bigint, extra: { requestId?: string; reason?: string } = {}) =>
  sendRefund(centerClient(), { vendorId: world.vendorId, vendorSecret: world.vendorSecret, vendorKeyId: 1, tranId, amount, ...extra });

async function reasonOf(p: Promise<unknown>): Promise<{ code: Code; reason: string | undefined; message: string }> {
  try {
    await p;
  } catch (e) {
    const ce = ConnectError.from(e);
    return { code: ce.code, reason: errorReason(ce), message: ce.rawMessage };
  }
  throw new Error("expected a failure");
}

// ------------------------------------------------------------------ recovery code

test("the recovery code round-trips and every single mistyped character is caught", (t) => {
  const c = { customId: { secretId: 3, serialNumber: 0x1234_5678_9abc_def0n }, customSecret: new Uint8Array(randomBytes(32)) };
  const code = encodeRecoveryCode(c);
  t.regex(code, /^SW1(-[0-9A-HJKMNP-TV-Z]{5}){15}$/);
  const back = decodeRecoveryCode(` ${code.toLowerCase().replace(/-/g, " ")} `);
  t.deepEqual(back.customId, c.customId);
  t.deepEqual([...back.customSecret], [...c.customSecret]);
  const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  const chars = [...code];
  let tried = 0;
  for (let i = 4; i < chars.length; i++) {
    if (chars[i] === "-") continue;
    for (const a of alphabet) {
      if (a === chars[i]) continue;
      const typo = [...chars];
      typo[i] = a;
      tried++;
      t.throws(() => decodeRecoveryCode(typo.join("")), { message: /mistyped/ }, `symbol ${i} as ${a}`);
    }
  }
  t.is(tried, 75 * 31);
  t.throws(() => decodeRecoveryCode(code.slice(0, -1)), { message: /this one has 74/ });
  t.throws(() => decodeRecoveryCode(code.replace(/-([0-9A-Z])/, "-U")), { message: /not used/ });
});

// ------------------------------------------------------------------ restore

test("register, earn, buy, delete the wallet file, restore on a new device, buy again", async (t) => {
  const path = join(dir, "lost.json");
  const w = await funded(t, new FileWalletStore(path));
  const code = w.recoveryCode();
  t.is(code, w.recoveryCode(), "the code can be shown again from the unlocked wallet");
  await w.buy(world.sellerUrl, world.catalog.article.requestUrl, "VIEW");
  t.is(w.balance().value, 40n);
  const customer = w.identity!.customId;
  await w.close();
  await rm(path);
  t.false(existsSync(path));

  const fresh = await openWallet(t, new FileWalletStore(join(dir, "new-device.json")));
  const r = await fresh.restore(world.centerUrl, code);
  t.deepEqual(r.customId, customer);
  t.is(r.value, 40n);
  t.is(fresh.balance().value, 40n);
  t.is(fresh.recoveryCode(), code);
  await agrees(t, fresh);
  const bought = await fresh.buy(world.sellerUrl, world.catalog.viewOnly.requestUrl, "VIEW");
  t.is(bought.balance, 30n);
  t.regex(new TextDecoder().decode(bought.delivery!.content), /Nothing happened/);
  t.is(fresh.history()[0]!.kind, "restored");
  await agrees(t, fresh);
  await auditOk(t);
});

test("restore while a payment was in flight finishes it exactly once", async (t) => {
  const path = join(dir, "inflight.json");
  const store = new FileWalletStore(path);
  const w = await funded(t, store);
  const code = w.recoveryCode();
  await w.close();
  // The device dies after the center executed S4 (value moved) and before S6.
  const dying = await Wallet.open({ store: new FileWalletStore(path), onStep: (s) => { if (s === "after-S5-received") throw new SimulatedCrash(s); } });
  await t.throwsAsync(dying.buy(world.sellerUrl, world.catalog.article.requestUrl, "VIEW"), { instanceOf: SimulatedCrash });
  const tranId = dying.pending!.id;
  await dying.close();
  await copyFile(path, join(dir, "inflight-old-copy.json"));
  await rm(path);

  const fresh = await openWallet(t, new FileWalletStore(join(dir, "inflight-new.json")));
  const r = await fresh.restore(world.centerUrl, code, { sellerUrl: world.sellerUrl });
  t.deepEqual(r.finished.map((f) => [f.tranId, f.kind, f.amount]), [[tranId, "buy", 30n]]);
  t.is(fresh.balance().value, 40n, "70 - 30, once");
  const receipt = fresh.receipts().find((x) => x.tranId === tranId);
  t.truthy(receipt, "the restored wallet holds the receipt");
  const d = await fresh.redeliver(tranId);
  t.regex(new TextDecoder().decode(d.content), /Hash cash/);
  const tx = await world.center.ledger.getTransaction(world.vendorId, tranId);
  t.is(tx!.state, "confirmed");

  // The old device comes back with its journal: its S6 gets the stored reply, nothing moves again.
  const old = await openWallet(t, new FileWalletStore(join(dir, "inflight-old-copy.json")));
  t.is(old.recovery?.outcome, "completed");
  const again = await fresh.sync();
  t.is(again.value, 40n);
  t.deepEqual(again.finished, []);
  await agrees(t, fresh);
  await auditOk(t);
});

test("a wrong code, a replayed request, an unknown customer and another customer's secret fail identically", async (t) => {
  const a = await funded(t);
  const b = await funded(t);
  const aCode = decodeRecoveryCode(a.recoveryCode());
  const bCode = decodeRecoveryCode(b.recoveryCode());
  const client = centerClient();
  const request = (customId: { secretId: number; serialNumber: bigint }, secret: Uint8Array, nonce = new Uint8Array(randomBytes(32))) => {
    const timestampUnixMs = BigInt(Date.now());
    return {
      header: create(HeaderTypeSchema, { cmdType: CmdType.SY1 }),
      customId,
      timestampUnixMs,
      nonce,
      hash: computeSyncRequestHash(secret, { customId, timestampUnixMs, nonce }),
    };
  };
  const good = request(aCode.customId, aCode.customSecret);
  const ok = await client.sync(good);
  t.is(ok.scrips[0]!.scrip!.value, 70n);
  const failures = [
    await reasonOf(client.sync(good)), // replayed
    await reasonOf(client.sync(request(aCode.customId, new Uint8Array(randomBytes(32))))), // wrong secret
    await reasonOf(client.sync(request(aCode.customId, bCode.customSecret))), // another customer's secret
    await reasonOf(client.sync(request({ secretId: 1, serialNumber: 4242n }, aCode.customSecret))), // unknown customer
    await reasonOf(client.sync({ ...request(aCode.customId, aCode.customSecret), timestampUnixMs: BigInt(Date.now() - 3_600_000) })), // stale
  ];
  for (const f of failures) t.deepEqual(f, failures[0], "indistinguishable");
  t.is(failures[0]!.code, Code.Unauthenticated);
  t.is(failures[0]!.reason, "BAD_HASH");

  // Through the library: a code with A's id and B's secret is refused the same way, and nothing is saved.
  const store = new MemoryWalletStore();
  const w = await openWallet(t, store);
  const mixed = encodeRecoveryCode({ customId: aCode.customId, customSecret: bCode.customSecret });
  const e = await t.throwsAsync(w.restore(world.centerUrl, mixed), { instanceOf: AuthenticationError });
  t.is(e!.reason, "BAD_HASH");
  t.false(w.registered);
  t.is(await store.load(), undefined);
  const typo = a.recoveryCode().replace(/-(.)/, (_m, c: string) => `-${c === "0" ? "1" : "0"}`);
  const te = await t.throwsAsync(w.restore(world.centerUrl, typo), { instanceOf: ScripwireError });
  t.is(te!.reason, "RECOVERY_CODE_MISTYPED");
});

test("two devices with one wallet converge and never both spend one serial", async (t) => {
  const a = await funded(t);
  const b = await openWallet(t);
  await b.restore(world.centerUrl, a.recoveryCode());
  t.is(a.balance().serial, b.balance().serial, "both hold the live serial");

  await a.buy(world.sellerUrl, world.catalog.viewOnly.requestUrl, "VIEW");
  const stale = await t.throwsAsync(b.buy(world.sellerUrl, world.catalog.viewOnly.requestUrl, "VIEW"), { instanceOf: RefusedError });
  t.is(stale!.reason, "SCRIP_NOT_LIVE");
  t.is(b.balance().value, 70n, "the refused device still shows its stale scrip");
  const s = await b.sync();
  t.true(s.changed);
  t.is(b.balance().value, 60n);
  t.is(b.balance().serial, a.balance().serial);

  // Both spend the same live serial at the same time: exactly one payment goes through.
  const results = await Promise.allSettled([
    a.buy(world.sellerUrl, world.catalog.viewOnly.requestUrl, "VIEW"),
    b.buy(world.sellerUrl, world.catalog.viewOnly.requestUrl, "VIEW"),
  ]);
  const won = results.filter((r) => r.status === "fulfilled");
  t.is(won.length, 1, "one winner");
  const lost = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
  t.is((lost.reason as ScripwireError).reason, "SCRIP_NOT_LIVE");
  await a.sync();
  await b.sync();
  t.is(a.balance().value, 50n);
  t.is(b.balance().serial, a.balance().serial);
  await agrees(t, a);
  await auditOk(t);
});

// ------------------------------------------------------------------ refunds

test("full and partial refunds, refused second and over-refunds; the credit reaches the wallet; settlements and audit agree", async (t) => {
  const w = await funded(t);
  const p1 = await w.buy(world.sellerUrl, world.catalog.article.requestUrl, "VIEW");
  const p2 = await w.buy(world.sellerUrl, world.catalog.viewOnly.requestUrl, "VIEW");
  t.is(w.balance().value, 30n);

  const over = await reasonOf(refund(p1.tranId, 31n));
  t.deepEqual([over.code, over.reason], [Code.FailedPrecondition, "REFUND_EXCEEDS_PAYMENT"]);
  const partial = await refund(p1.tranId, 12n, { reason: "late delivery" });
  t.is(partial.amount, 12n);
  t.is(partial.paid, 30n);
  const second = await reasonOf(refund(p1.tranId, 5n));
  t.deepEqual([second.code, second.reason], [Code.AlreadyExists, "ALREADY_REFUNDED"]);
  const full = await refund(p2.tranId, 0n);
  t.is(full.amount, 10n, "0 refunds the whole payment");
  const unknown = await reasonOf(refund("t_no_such", 1n));
  t.deepEqual([unknown.code, unknown.reason], [Code.FailedPrecondition, "UNKNOWN_TRANSACTION"]);

  // Retransmission of the same request: the same record, nothing moves twice.
  const rq = refundRequest({ vendorId: world.vendorId, vendorSecret: world.vendorSecret, vendorKeyId: 1, tranId: p1.tranId, amount: 12n, requestId: partial.requestId, reason: "late delivery" });
  const again = await centerClient().refundPayment(rq);
  t.is(again.refund!.refundId, partial.refundId);
  const forged = await reasonOf(centerClient().refundPayment({ ...rq, amount: 30n }));
  t.deepEqual([forged.code, forged.reason], [Code.Unauthenticated, "BAD_VENDOR_MAC"]);

  // While pending, the live scrip still equals the customer account; the credit sits beside it.
  await auditOk(t);
  const s = await w.sync();
  t.is(s.value, 52n, "30 + 12 + 10 folded into a fresh scrip");
  t.deepEqual(s.refunds.map((r) => [r.tranId, r.amount, r.pending]).sort(), [[p1.tranId, 12n, false], [p2.tranId, 10n, false]].sort());
  t.is(w.history().filter((h) => h.kind === "refunded").length, 2);
  await agrees(t, w);
  const s2 = await w.sync();
  t.is(s2.value, 52n, "a second sync folds nothing again");
  t.is(w.history().filter((h) => h.kind === "refunded").length, 2);

  // Settlements show the refunds as negative entries after the payments.
  const ts = BigInt(Date.now());
  const list = await centerClient().listSettlements({
    vendorId: world.vendorId,
    afterSequence: 0n,
    limit: 1000,
    timestampUnixMs: ts,
    vendorKeyId: 1,
    mac: computeSettlementsMac(HashAlgorithm.HMAC_SHA256, world.vendorSecret, world.vendorId, 0n, ts),
  });
  const mine = list.settlements.filter((x) => x.tranId === p1.tranId || x.tranId === p2.tranId);
  t.deepEqual(
    mine.map((x) => [x.kind, x.tranId, x.amount]),
    [
      [SettlementKind.PAYMENT, p1.tranId, 30n],
      [SettlementKind.PAYMENT, p2.tranId, 10n],
      [SettlementKind.REFUND, p1.tranId, -12n],
      [SettlementKind.REFUND, p2.tranId, -10n],
    ],
  );
  await auditOk(t);
});

test("concurrent refunds of one payment: exactly one wins", async (t) => {
  const w = await funded(t);
  const p = await w.buy(world.sellerUrl, world.catalog.article.requestUrl, "VIEW");
  const results = await Promise.allSettled([refund(p.tranId, 10n), refund(p.tranId, 20n), refund(p.tranId, 0n), adminClient().refundPayment({ vendorId: world.vendorId, tranId: p.tranId, amount: 5n, requestId: "admin-1" })]);
  const won = results.filter((r) => r.status === "fulfilled");
  t.is(won.length, 1);
  for (const r of results) if (r.status === "rejected") t.is(errorReason(ConnectError.from(r.reason)), "ALREADY_REFUNDED");
  const s = await w.sync();
  const amount = s.refunds.find((r) => r.tranId === p.tranId)!.amount;
  t.true([10n, 20n, 30n, 5n].includes(amount));
  t.is(w.balance().value, 40n + amount);
  await auditOk(t);
});

test("admin refunds; an unconfirmed payment is not refundable; a credit waits while a payment is in flight", async (t) => {
  const w = await funded(t);
  const p = await w.buy(world.sellerUrl, world.catalog.article.requestUrl, "VIEW");
  const r = await adminClient().refundPayment({ vendorId: world.vendorId, tranId: p.tranId, amount: 7n, requestId: "admin-refund-1", reason: "goodwill" });
  t.is(r.refund!.amount, 7n);
  const store = new MemoryWalletStore();
  const code = w.recoveryCode();
  await w.close();
  const device = await openWallet(t, store);
  await device.restore(world.centerUrl, code);
  t.is(device.balance().value, 47n, "40 + the refund, folded at restore");
  const p0 = await device.buy(world.sellerUrl, world.catalog.viewOnly.requestUrl, "VIEW");
  t.is(p0.balance, 37n);
  await device.close();
  // A payment executed but not confirmed: it is not refundable yet, and a
  // credit for an earlier payment is held back (its scrip may still be undone).
  const crashing = await Wallet.open({ store, onStep: (s) => { if (s === "after-S5-received") throw new SimulatedCrash(s); } });
  await t.throwsAsync(crashing.buy(world.sellerUrl, world.catalog.viewOnly.requestUrl, "VIEW"), { instanceOf: SimulatedCrash });
  const inflight = crashing.pending!.id;
  await crashing.close();
  const notYet = await reasonOf(refund(inflight, 1n));
  t.deepEqual([notYet.code, notYet.reason], [Code.FailedPrecondition, "NOT_CONFIRMED"]);
  await refund(p0.tranId, 0n);
  const { customId, customSecret } = decodeRecoveryCode(code);
  const nonce = new Uint8Array(randomBytes(32));
  const timestampUnixMs = BigInt(Date.now());
  const raw = await centerClient().sync({ header: create(HeaderTypeSchema, { cmdType: CmdType.SY1 }), customId, timestampUnixMs, nonce, hash: computeSyncRequestHash(customSecret, { customId, timestampUnixMs, nonce }) });
  t.is(raw.scrips[0]!.scrip!.value, 27n, "the change of the executed payment; nothing folded");
  t.deepEqual(raw.inFlight.map((x) => x.tranId), [inflight]);
  t.is(raw.credits.find((c) => c.tranId === p0.tranId)!.foldedIntoSerial, 0n, "the credit is pending");
  await auditOk(t);
  const back = await openWallet(t, store);
  t.is(back.recovery?.outcome, "completed", "the journal finished the payment on open");
  t.is(back.balance().value, 27n);
  const s = await back.sync();
  t.is(s.value, 37n, "the held-back credit is folded once nothing is in flight");
  await agrees(t, back);
  await auditOk(t);
});

test("restore refuses a non-empty wallet and an unreadable code", async (t) => {
  const w = await funded(t);
  const e = await t.throwsAsync(w.restore(world.centerUrl, w.recoveryCode()), { instanceOf: StateError });
  t.is(e!.reason, "ALREADY_REGISTERED");
  const empty = await openWallet(t);
  const bad = await t.throwsAsync(empty.restore(world.centerUrl, "SW1-hello"), { instanceOf: ScripwireError });
  t.is(bad!.reason, "BAD_RECOVERY_CODE");
  t.false(empty.registered);
});

// ------------------------------------------------------------------ rate limits (in process, tiny buckets)

test("sync is rate-limited per customer and per address; unverified requests cannot use up a customer's budget", async (t) => {
  const { inprocWorld } = await import("./helpers/inproc.js");
  const { SyncService } = await import("../src/center/restore.js");
  const iw = await inprocWorld();
  t.teardown(() => iw.close());
  const w = await Wallet.open({ store: new MemoryWalletStore(), transport: (_url, role) => (role === "center" ? iw.centerTransport : iw.sellerTransport) });
  t.teardown(() => w.close());
  await w.register("http://center.test");
  const { customId, customSecret } = decodeRecoveryCode(w.recoveryCode());
  const request = (secret = customSecret) => {
    const nonce = new Uint8Array(randomBytes(32));
    const timestampUnixMs = BigInt(Date.now());
    return { header: create(HeaderTypeSchema, { cmdType: CmdType.SY1 }), customId, timestampUnixMs, nonce, hash: computeSyncRequestHash(secret, { customId, timestampUnixMs, nonce }) } as never;
  };
  const perCustomer = new SyncService(iw.center, { perCustomer: { ratePerSecond: 0.001, burst: 2 }, perAddress: false });
  // Someone who knows only the customer id (every seller does) floods garbage under it.
  for (let i = 0; i < 5; i++) {
    await t.throwsAsync(perCustomer.sync(request(new Uint8Array(32)), `192.0.2.${10 + i}`), { message: /does not verify/ });
  }
  await perCustomer.sync(request(), "192.0.2.1");
  await perCustomer.sync(request(), "192.0.2.3");
  const limited = await reasonOf(perCustomer.sync(request(), "192.0.2.4"));
  t.deepEqual([limited.code, limited.reason], [Code.ResourceExhausted, "RATE_LIMITED"], "the customer's own verified requests use the budget: the 3rd is refused from any address");

  const perAddress = new SyncService(iw.center, { perCustomer: false, perAddress: { ratePerSecond: 0.001, burst: 2 } });
  await perAddress.sync(request(), "198.51.100.7");
  await perAddress.sync(request(), "198.51.100.7");
  const byAddress = await reasonOf(perAddress.sync(request(), "198.51.100.7"));
  t.deepEqual([byAddress.code, byAddress.reason], [Code.ResourceExhausted, "RATE_LIMITED"]);
  const other = await perAddress.sync(request(), "203.0.113.9");
  t.is(other.scrips.length, 1, "another address still gets through");
});

test("the sealed history agrees after refunds and folds (graceful stop seals everything)", async (t) => {
  const { openLedger } = await import("../src/ledger/open.js");
  const w2 = await startWorld();
  t.teardown(() => w2.close());
  const wallet = await openWallet(t);
  await wallet.register(w2.centerUrl);
  await wallet.earn(w2.sellerUrl, w2.quiz.itemId, w2.quiz.answer);
  const p = await wallet.buy(w2.sellerUrl, w2.catalog.article.requestUrl, "VIEW");
  await sendRefund(createClient(PaymentCenterService, createTransport(w2.centerUrl)), { vendorId: w2.vendorId, vendorSecret: w2.vendorSecret, vendorKeyId: 1, tranId: p.tranId, amount: 0n });
  const s = await wallet.sync();
  t.is(s.value, 50n, "the whole price came back");
  await wallet.close();
  await w2.center.close(500);
  const ledger = await openLedger(join(w2.dir, "center.sqlite"));
  try {
    const a = await ledger.audit({ requireSealed: true });
    t.deepEqual(a.problems, []);
    t.true(a.ok);
    t.true((a.eventsSealed ?? 0) > 0, "the refund and the fold are in the sealed chain");
    t.is(a.eventsPending ?? 0, 0);
  } finally {
    await ledger.close();
  }
});

test("restore while an earning was in flight confirms it exactly once", async (t) => {
  const store = new MemoryWalletStore();
  const dying = await Wallet.open({ store, onStep: (s) => { if (s === "after-M5-received") throw new SimulatedCrash(s); } });
  await dying.register(world.centerUrl);
  const code = dying.recoveryCode();
  await t.throwsAsync(dying.earn(world.sellerUrl, world.quiz.itemId, world.quiz.answer), { instanceOf: SimulatedCrash });
  const tranId = dying.pending!.id;
  await dying.close();
  const fresh = await openWallet(t);
  const r = await fresh.restore(world.centerUrl, code);
  t.deepEqual(r.finished.map((f) => [f.tranId, f.kind, f.amount]), [[tranId, "earn", 50n]]);
  t.is(fresh.balance().value, 50n);
  t.is((await world.center.ledger.getTransaction(world.vendorId, tranId))!.state, "confirmed");
  // The old device's journal finishes against the stored M7: nothing is issued twice.
  const old = await openWallet(t, store);
  t.is(old.recovery?.outcome, "completed");
  t.is(old.balance().value, 50n);
  await agrees(t, fresh);
  await auditOk(t);
});
