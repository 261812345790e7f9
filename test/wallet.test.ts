/**
 * The wallet library against real servers over loopback HTTP/2
 * (test/helpers/world.ts): every flow of the patent from the wallet's side,
 * every refusal as a typed error with the balance unchanged, pinning,
 * encrypted storage, retransmission after server errors, and recovery from
 * an interruption at each journalled step (in process here; with a real
 * SIGKILL in wallet-crash.test.ts). After each test the center's audit must
 * pass and the wallet's scrip must be the customer's live scrip.
 */
import test, { type ExecutionContext } from "ava";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { CmdType } from "../gen/scripwire/v1/types_pb.js";
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CenterAdminService } from "../gen/scripwire/v1/admin_pb.js";
import { createTransport } from "../src/client/transport.js";
import type { ExecuteOp } from "../src/ledger/ledger.js";
import {
  AuthenticationError,
  IntegrityError,
  FileWalletStore,
  MemoryWalletStore,
  RefusedError,
  ScripwireError,
  StateError,
  UnavailableError,
  Wallet,
  type WalletOptions,
  type WalletStep,
  type WalletStore,
} from "../src/wallet/index.js";
import { fileMode } from "../src/wallet/store.js";
import { startWorld, type World } from "./helpers/world.js";

let world: World;
test.before(async () => {
  world = await startWorld();
});
test.after.always(async () => {
  await world?.close();
});

const open = (store: WalletStore = new MemoryWalletStore(), opts: Partial<WalletOptions> = {}) => Wallet.open({ store, ...opts });

async function registered(t: ExecutionContext, opts: Partial<WalletOptions> = {}, w: World = world, store: WalletStore = new MemoryWalletStore()) {
  const wallet = await open(store, opts);
  t.teardown(() => wallet.close());
  await wallet.register(w.centerUrl, { name: "Kim Test", email: "kim@example.test" });
  return wallet;
}

/** The center agrees with the wallet: its live scrip is the wallet's, with the same value; and the audit passes. */
async function consistent(t: ExecutionContext, wallet: Wallet, w: World = world) {
  const b = wallet.balance();
  const live = await w.center.ledger.liveScrip(wallet.identity!.customId.serialNumber, "KRW");
  t.truthy(live, "the customer has a live scrip");
  t.is(live!.serial, b.serial, "the wallet holds the customer's live scrip");
  t.is(live!.value, b.value, "the live scrip's value is the wallet's balance");
  t.is(b.pending, null, "no operation left pending");
  const audit = await w.center.ledger.audit();
  t.deepEqual(audit.problems, []);
  t.true(audit.ok);
}

async function refusal(t: ExecutionContext, p: Promise<unknown>, reason: string): Promise<RefusedError> {
  const e = await t.throwsAsync(p, { instanceOf: RefusedError });
  t.is(e!.reason, reason);
  t.is(e!.exitCode, 3);
  return e as RefusedError;
}

test("register -> earn (quiz) -> buy VIEW -> buy SAVE: balance and history", async (t) => {
  const lines: string[] = [];
  const wallet = await registered(t, { onProgress: (p) => lines.push(p.message) });
  t.is(wallet.balance().value, 0n);

  const q = await wallet.earn(world.sellerUrl, world.quiz.itemId, world.quiz.answer);
  t.is(q.amount, 50n);
  t.is(q.balance, 50n);
  await wallet.earn(world.sellerUrl, world.survey.itemId, "more about hash chains");
  await wallet.earn(world.sellerUrl, world.ad.itemId, "");
  t.is(wallet.balance().value, 80n);

  const view = await wallet.buy(world.sellerUrl, world.catalog.article.requestUrl, "VIEW");
  t.is(view.price, 30n);
  t.is(view.balance, 50n);
  t.is(view.delivery?.method, "VIEW");
  t.regex(new TextDecoder().decode(view.delivery!.content), /Hash cash/);
  t.is(view.receipt.tranId, view.tranId);

  const save = await wallet.buy(world.sellerUrl, world.catalog.article.requestUrl, "SAVE");
  t.is(save.balance, 20n);
  t.is(save.delivery?.method, "SAVE");
  t.is(save.delivery?.fileName, "hash-cash.html");

  const b = wallet.balance();
  t.is(b.value, 20n);
  t.is(b.currency, "KRW");
  t.false(b.expired);
  const h = wallet.history();
  t.deepEqual(
    h.map((e) => [e.kind, e.amount, e.balance]),
    [
      ["registered", 0n, 0n],
      ["earned", 50n, 50n],
      ["earned", 20n, 70n],
      ["earned", 10n, 80n],
      ["bought", -30n, 50n],
      ["bought", -30n, 20n],
    ],
  );
  t.is(h[1]!.tranId, q.tranId);
  t.is(h[4]!.method, "VIEW");
  t.is(h[5]!.method, "SAVE");
  t.is(h.at(-1)!.serial, b.serial);
  t.is(wallet.receipts().length, 2);
  // Progress names every protocol step.
  for (const step of ["R1 →", "R2 ←", "M1 →", "M2 ←", "M3 →", "M4 →", "M5 ← center: new scrip 50 KRW", "M6 →", "M7 ←", "S1 →", "S2 ←", "S3 →", "S4 →", "S5 ←", "S6 →", "S7 ←"]) {
    t.true(lines.some((l) => l.startsWith(step)), `progress shows ${step}`);
  }
  await consistent(t, wallet);
});

test("the same flow over gRPC", async (t) => {
  const wallet = await registered(t, { protocol: "grpc" });
  await wallet.earn(world.sellerUrl, world.quiz.itemId, "  HASH ");
  const r = await wallet.buy(world.sellerUrl, world.catalog.viewOnly.requestUrl, "VIEW");
  t.is(r.balance, 40n);
  t.regex(new TextDecoder().decode(r.delivery!.content), /Nothing happened/);
  await consistent(t, wallet);
});

test("a wrong quiz answer is refused (GM2_2) and nothing changes", async (t) => {
  const wallet = await registered(t);
  const serial = wallet.balance().serial;
  const e = await refusal(t, wallet.earn(world.sellerUrl, world.quiz.itemId, "rsa"), "ISSUE_REFUSED");
  t.is(e.cmdType, "GM2_2");
  t.regex(e.document, /<html/);
  t.truthy(e.hint);
  await refusal(t, wallet.earn(world.sellerUrl, "no-such-item", "x"), "ISSUE_REFUSED");
  t.is(wallet.balance().value, 0n);
  t.is(wallet.balance().serial, serial);
  t.is(wallet.history().length, 1);
  await consistent(t, wallet);
});

test("a second reward for the same quiz is refused ALREADY_REWARDED (GM5_3); the balance is unchanged", async (t) => {
  const wallet = await registered(t);
  await wallet.earn(world.sellerUrl, world.quiz.itemId, world.quiz.answer);
  const before = wallet.balance();
  const e = await refusal(t, wallet.earn(world.sellerUrl, world.quiz.itemId, world.quiz.answer), "ALREADY_REWARDED");
  t.is(e.cmdType, "GM5_3");
  const after = wallet.balance();
  t.is(after.value, 50n);
  t.is(after.serial, before.serial, "the scrip was not replaced");
  t.is(wallet.history().filter((h) => h.kind === "earned").length, 1);
  await consistent(t, wallet);
});

test("insufficient value is refused (PM5_2); the balance is unchanged", async (t) => {
  const wallet = await registered(t);
  await wallet.earn(world.sellerUrl, world.quiz.itemId, world.quiz.answer);
  const before = wallet.balance();
  const e = await refusal(t, wallet.buy(world.sellerUrl, world.catalog.file.requestUrl, "SAVE"), "INSUFFICIENT_VALUE");
  t.is(e.cmdType, "PM5_2");
  t.regex(e.hint, /earn/);
  t.deepEqual(wallet.balance(), before);
  t.is(wallet.receipts().length, 0);
  await consistent(t, wallet);
});

test("not for sale (PM2_2): a VIEW-only entry as SAVE, an unknown URL; a price over --max-price", async (t) => {
  const wallet = await registered(t);
  await wallet.earn(world.sellerUrl, world.quiz.itemId, world.quiz.answer);
  const e = await refusal(t, wallet.buy(world.sellerUrl, world.catalog.viewOnly.requestUrl, "SAVE"), "NOT_FOR_SALE");
  t.is(e.cmdType, "PM2_2");
  await refusal(t, wallet.buy(world.sellerUrl, "/nothing/here", "VIEW"), "NOT_FOR_SALE");
  await refusal(t, wallet.buy(world.sellerUrl, world.catalog.article.requestUrl, "VIEW", { maxPrice: 29n }), "PRICE_TOO_HIGH");
  t.is(wallet.balance().value, 50n);
  await consistent(t, wallet);
});

test("redeliver: the kept receipt delivers the content again without paying", async (t) => {
  const wallet = await registered(t);
  await wallet.earn(world.sellerUrl, world.quiz.itemId, world.quiz.answer);
  const r = await wallet.buy(world.sellerUrl, world.catalog.article.requestUrl, "SAVE");
  const again = await wallet.redeliver(r.tranId);
  t.deepEqual(again.content, r.delivery!.content);
  t.is(again.fileName, "hash-cash.html");
  t.is(wallet.balance().value, 20n);
  const e = await t.throwsAsync(wallet.redeliver("t_unknown"), { instanceOf: StateError });
  t.is(e!.reason, "NO_RECEIPT");
  await consistent(t, wallet);
});

test("renew keeps the value under a new serial", async (t) => {
  const wallet = await registered(t);
  await wallet.earn(world.sellerUrl, world.quiz.itemId, world.quiz.answer);
  const before = wallet.balance();
  const r = await wallet.renew();
  t.is(r.value, 50n);
  t.is(r.previousSerial, before.serial);
  t.not(r.serial, before.serial);
  t.is(wallet.balance().value, 50n);
  t.is(wallet.balance().serial, r.serial);
  t.is(wallet.history().at(-1)!.kind, "renewed");
  await consistent(t, wallet);
  // The renewed scrip spends normally.
  await wallet.buy(world.sellerUrl, world.catalog.viewOnly.requestUrl, "VIEW");
  t.is(wallet.balance().value, 40n);
  await consistent(t, wallet);
});

test("an expired scrip is refused EXPIRED; renew restores it without losing value", async (t) => {
  let skewMs = 0;
  const w = await startWorld({ scripLifetimeSeconds: 60, clock: () => Date.now() + skewMs });
  t.teardown(() => w.close());
  const wallet = await registered(t, { clock: () => Date.now() + skewMs }, w);
  await wallet.earn(w.sellerUrl, w.quiz.itemId, w.quiz.answer);
  skewMs = 120_000; // the scrip's 60 s are over; the seller's 600 s offers are not
  t.true(wallet.balance().expired);
  const e = await refusal(t, wallet.buy(w.sellerUrl, w.catalog.article.requestUrl, "VIEW"), "EXPIRED");
  t.regex(e.hint, /renew/);
  t.is(wallet.balance().value, 50n);
  await wallet.renew();
  t.false(wallet.balance().expired);
  const r = await wallet.buy(w.sellerUrl, w.catalog.article.requestUrl, "VIEW");
  t.is(r.balance, 20n);
  await consistent(t, wallet, w);
});

test("redeem above the threshold records a payout; below it is refused", async (t) => {
  const wallet = await registered(t);
  await wallet.earn(world.sellerUrl, world.quiz.itemId, world.quiz.answer);
  await wallet.earn(world.sellerUrl, world.survey.itemId, "yes");
  await wallet.earn(world.sellerUrl, world.ad.itemId, "ok");
  const before = wallet.balance();
  const e = await refusal(t, wallet.redeem(10n, "KB 123-456"), "BELOW_THRESHOLD");
  t.is(e.cmdType, "RD1");
  t.deepEqual(wallet.balance(), before);

  const r = await wallet.redeem(60n, "KB 123-456");
  t.is(r.amount, 60n);
  t.is(r.balance, 20n);
  t.regex(r.payoutId, /^po_/);
  const admin = createClient(CenterAdminService, createTransport(world.centerUrl, { headers: { authorization: `Bearer ${world.adminToken}` } }));
  const payouts = (await admin.listPayouts({ limit: 1000 })).payouts;
  const p = payouts.find((x) => x.payoutId === r.payoutId);
  t.truthy(p);
  t.is(p!.amount, 60n);
  t.is(p!.payoutAccount, "KB 123-456");
  t.is(wallet.history().at(-1)!.kind, "redeemed");
  t.is(wallet.history().at(-1)!.amount, -60n);
  await refusal(t, wallet.redeem(0n, "KB 123-456"), "BELOW_THRESHOLD"); // 20 left: "everything" is below 50
  await consistent(t, wallet);
});

test("passphrase-encrypted wallet file round-trips, is mode 0600, and needs the passphrase", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "scripwire-wallet-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, "wallet.json");
  const store = new FileWalletStore(path, { passphrase: "correct horse battery staple", scryptLogN: 12 });
  const wallet = await open(store);
  await wallet.register(world.centerUrl);
  await wallet.earn(world.sellerUrl, world.quiz.itemId, world.quiz.answer);
  const secret = (await store.load())!.customSecret;
  await wallet.close();

  t.is(await fileMode(path), 0o600);
  const text = await readFile(path, "utf8");
  t.false(text.includes(secret), "Custom_Secret is not in the file in the clear");
  t.regex(text, /scrypt-xchacha20poly1305/);
  t.deepEqual((await readdir(dir)).sort(), ["wallet.json"], "no temp or lock file left behind");

  const again = await open(new FileWalletStore(path, { passphrase: "correct horse battery staple" }));
  t.is(again.balance().value, 50n);
  await again.buy(world.sellerUrl, world.catalog.viewOnly.requestUrl, "VIEW");
  t.is(again.balance().value, 40n);
  await consistent(t, again);
  await again.close();

  const wrong = await t.throwsAsync(open(new FileWalletStore(path, { passphrase: "wrong" })), { instanceOf: AuthenticationError });
  t.is(wrong!.reason, "BAD_PASSPHRASE");
  const missing = await t.throwsAsync(open(new FileWalletStore(path)), { instanceOf: StateError });
  t.is(missing!.reason, "PASSPHRASE_REQUIRED");
  // A tampered file does not decrypt.
  const file = JSON.parse(text);
  file.state.customId.serialNumber = "1";
  await writeFile(path, JSON.stringify(file));
  await t.throwsAsync(open(new FileWalletStore(path, { passphrase: "correct horse battery staple" })), { instanceOf: AuthenticationError });
});

test("plain wallet file: mode 0600, locked while open, a stale lock is taken over", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "scripwire-wallet-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, "w.json");
  const wallet = await open(new FileWalletStore(path));
  await wallet.register(world.centerUrl);
  t.is(await fileMode(path), 0o600);
  const locked = await t.throwsAsync(open(new FileWalletStore(path)), { instanceOf: StateError });
  t.is(locked!.reason, "WALLET_LOCKED");
  await wallet.close();
  await writeFile(`${path}.lock`, "999999999"); // a process that does not exist
  const again = await open(new FileWalletStore(path));
  t.true(again.registered);
  await again.close();
  t.deepEqual((await readdir(dir)).sort(), ["w.json"]);
});

test("pinning: a wrong pinned key refuses registration; a center with another key refuses to continue", async (t) => {
  const wallet = await open();
  t.teardown(() => wallet.close());
  const e = await t.throwsAsync(wallet.register(world.centerUrl, {}, { pinnedPublicKey: "00".repeat(32) }), { instanceOf: StateError });
  t.is(e!.reason, "PINNED_KEY_MISMATCH");
  t.false(wallet.registered);
  const info = await wallet.centerInfo(world.centerUrl);
  await wallet.register(world.centerUrl, {}, { pinnedPublicKey: info.publicKey });
  t.true(wallet.registered);

  const other = await startWorld();
  t.teardown(() => other.close());
  const store = new MemoryWalletStore();
  const first = await registered(t, {}, world, store);
  await first.earn(world.sellerUrl, world.quiz.itemId, world.quiz.answer);
  await first.close();
  const moved = await open(store, { centerUrl: other.centerUrl });
  t.teardown(() => moved.close());
  const m = await t.throwsAsync(moved.earn(other.sellerUrl, other.quiz.itemId, other.quiz.answer), { instanceOf: StateError });
  t.is(m!.reason, "PINNED_KEY_MISMATCH");
  t.is((await moved.centerInfo()).pinned, false);
  t.is(moved.balance().value, 50n);
});

test("an unregistered wallet says so (StateError NOT_REGISTERED, exit 1, with a hint)", async (t) => {
  const wallet = await open();
  t.teardown(() => wallet.close());
  const e = t.throws(() => wallet.balance(), { instanceOf: StateError });
  t.is(e!.reason, "NOT_REGISTERED");
  t.is(e!.exitCode, 1);
  t.regex(e!.hint, /register/);
  await t.throwsAsync(wallet.earn(world.sellerUrl, world.quiz.itemId, world.quiz.answer), { instanceOf: StateError });
  const again = await t.throwsAsync(wallet.register(world.centerUrl).then(() => wallet.register(world.centerUrl)), { instanceOf: StateError });
  t.is(again!.reason, "ALREADY_REGISTERED");
});

test("an unreachable center is UnavailableError (exit 4)", async (t) => {
  const wallet = await open(new MemoryWalletStore(), { maxRetransmissions: 1, timeoutMs: 2_000 });
  t.teardown(() => wallet.close());
  const e = await t.throwsAsync(wallet.register("http://127.0.0.1:1"), { instanceOf: UnavailableError });
  t.is(e!.exitCode, 4);
  t.true(e instanceof ScripwireError);
});

/** Makes the ledger fail `times` executions for one customer, as a crashed database connection would. */
/** Needs a world started with `hotCallsThread: false`: the faults go into the event loop's center's ledger. */
function failExecutions(w: World, method: "executeIssue" | "executePayment", customer: bigint, times: number): () => number {
  const ledger = w.center.ledger as unknown as Record<string, (op: ExecuteOp) => Promise<unknown>>;
  const orig = ledger[method]!.bind(ledger);
  let failed = 0;
  ledger[method] = async (op: ExecuteOp) => {
    if (op.customerSerial === customer && failed < times) {
      failed++;
      throw new Error("simulated database failure");
    }
    return orig(op);
  };
  return () => failed;
}

test("GM5_4 / PM5_3 server errors are retransmitted with pCount + 1 and then succeed", async (t) => {
  const w = await startWorld({ hotCallsThread: false });
  t.teardown(() => w.close());
  const lines: string[] = [];
  const wallet = await registered(t, { onProgress: (p) => lines.push(p.message) }, w);
  const customer = wallet.identity!.customId.serialNumber;
  const issueFailures = failExecutions(w, "executeIssue", customer, 2);
  const e = await wallet.earn(w.sellerUrl, w.quiz.itemId, w.quiz.answer);
  t.is(issueFailures(), 2);
  t.is(e.balance, 50n);
  t.true(lines.some((l) => /^M4 → .*retransmission 2/.test(l)));
  const payFailures = failExecutions(w, "executePayment", customer, 1);
  const b = await wallet.buy(w.sellerUrl, w.catalog.article.requestUrl, "VIEW");
  t.is(payFailures(), 1);
  t.is(b.balance, 20n);
  t.true(lines.some((l) => /^S4 → .*retransmission 1/.test(l)));
  await consistent(t, wallet, w);
});

test("a center that keeps failing: UnavailableError, the journal is kept, and the next open finishes the payment", async (t) => {
  const w = await startWorld({ hotCallsThread: false });
  t.teardown(() => w.close());
  const store = new MemoryWalletStore();
  const wallet = await registered(t, { maxRetransmissions: 2 }, w, store);
  await wallet.earn(w.sellerUrl, w.quiz.itemId, w.quiz.answer);
  failExecutions(w, "executePayment", wallet.identity!.customId.serialNumber, 3);
  const e = await t.throwsAsync(wallet.buy(w.sellerUrl, w.catalog.article.requestUrl, "VIEW"), { instanceOf: UnavailableError });
  t.is(e!.reason, "SERVER_ERROR");
  t.is(wallet.balance().pending?.step, "S4");
  t.is(wallet.balance().value, 50n);
  await wallet.close();
  const again = await open(store);
  t.teardown(() => again.close());
  t.is(again.recovery?.outcome, "completed");
  t.is(again.balance().value, 20n);
  t.is(again.receipts().length, 1);
  await consistent(t, again, w);
});

class SimulatedCrash extends Error {}

/** Interrupts the wallet at `step` (an exception stands in for the process dying), then reopens it on the same store. */
async function interruptAndReopen(t: ExecutionContext, store: WalletStore, step: WalletStep, run: (w: Wallet) => Promise<unknown>): Promise<Wallet> {
  const w = await open(store, { onStep: (s) => { if (s === step) throw new SimulatedCrash(step); } });
  await t.throwsAsync(run(w), { instanceOf: SimulatedCrash });
  await w.close();
  const again = await open(store);
  t.teardown(() => again.close());
  t.is(again.recovery?.outcome, "completed", `recovered after ${step}`);
  return again;
}

for (const step of ["before-RN1", "after-RN1-sent"] as const) {
  test(`renew interrupted at ${step} recovers: same value, one live scrip`, async (t) => {
    const store = new MemoryWalletStore();
    const w = await registered(t, {}, world, store);
    await w.earn(world.sellerUrl, world.quiz.itemId, world.quiz.answer);
    const serial = w.balance().serial;
    await w.close();
    const again = await interruptAndReopen(t, store, step, (x) => x.renew());
    t.is(again.balance().value, 50n);
    t.not(again.balance().serial, serial);
    t.is(again.history().filter((h) => h.kind === "renewed").length, 1);
    await consistent(t, again);
  });
}

for (const step of ["before-RD1", "after-RD1-sent"] as const) {
  test(`redeem interrupted at ${step} recovers: one payout`, async (t) => {
    const store = new MemoryWalletStore();
    const w = await registered(t, {}, world, store);
    await w.earn(world.sellerUrl, world.quiz.itemId, world.quiz.answer);
    await w.earn(world.sellerUrl, world.survey.itemId, "yes");
    await w.close();
    const again = await interruptAndReopen(t, store, step, (x) => x.redeem(0n, `acct-${step}`));
    t.is(again.balance().value, 0n);
    const payouts = (await world.center.ledger.listPayouts(1000)).filter((p) => p.account === `acct-${step}`);
    t.is(payouts.length, 1);
    t.is(payouts[0]!.amount, 70n);
    await consistent(t, again);
  });
}

for (const step of ["after-M4-sent", "after-M6-sent", "after-S4-sent", "after-S6-sent"] as const) {
  test(`in process: interrupted at ${step}, the reopened wallet finishes with one movement of value`, async (t) => {
    const store = new MemoryWalletStore();
    const w = await registered(t, {}, world, store);
    if (step.includes("S")) await w.earn(world.sellerUrl, world.quiz.itemId, world.quiz.answer);
    await w.close();
    const again = await interruptAndReopen(t, store, step, (x) =>
      step.includes("M") ? x.earn(world.sellerUrl, world.quiz.itemId, world.quiz.answer) : x.buy(world.sellerUrl, world.catalog.article.requestUrl, "VIEW"),
    );
    t.is(again.balance().value, step.includes("M") ? 50n : 20n);
    t.true(again.history().at(-1)!.recovered);
    await consistent(t, again);
  });
}

for (const kind of ["earn", "buy"] as const) {
  test(`${kind}: M4/S4 executed, the wallet died, and its scrip expired before the retransmission: the stored reply still comes back`, async (t) => {
    let skewMs = 0;
    const w = await startWorld({ scripLifetimeSeconds: 60, clock: () => Date.now() + skewMs });
    t.teardown(() => w.close());
    const store = new MemoryWalletStore();
    const first = await registered(t, {}, w, store);
    if (kind === "buy") await first.earn(w.sellerUrl, w.quiz.itemId, w.quiz.answer);
    await first.close();
    const step = kind === "earn" ? "after-M4-sent" : "after-S4-sent";
    const dying = await open(store, { onStep: (s) => { if (s === step) throw new SimulatedCrash(s); } });
    await t.throwsAsync(kind === "earn" ? dying.earn(w.sellerUrl, w.quiz.itemId, w.quiz.answer) : dying.buy(w.sellerUrl, w.catalog.article.requestUrl, "VIEW"), {
      instanceOf: SimulatedCrash,
    });
    await dying.close();
    skewMs = 120_000; // the retransmitted M4/S4 now presents an expired scrip; it already executed, so the center replays M5/S5
    const lines: string[] = [];
    const again = await open(store, { onProgress: (p) => lines.push(p.message) });
    t.teardown(() => again.close());
    t.is(again.recovery?.outcome, "completed", again.recoveryError?.message);
    t.false(lines.some((l) => /refused \(EXPIRED\)/.test(l)), "a retransmission gets the same result as the first try");
    t.true(lines.some((l) => /retransmission 1/.test(l)), lines.join("\n"));
    t.is(again.balance().value, kind === "earn" ? 50n : 20n);
    await consistent(t, again, w);
    await again.renew();
    t.false(again.balance().expired);
    await consistent(t, again, w);
  });
}

test("catalog and center info through the library", async (t) => {
  const wallet = await open();
  t.teardown(() => wallet.close());
  const c = await wallet.catalog(world.sellerUrl);
  t.is(c.vendorId, world.vendorId);
  t.deepEqual(
    c.entries.map((e) => [e.requestUrl, e.price, e.methods]),
    [
      ["/articles/hash-cash", 30n, ["VIEW", "SAVE"]],
      ["/files/kr-10-0284579.pdf", 120n, ["SAVE"]],
      ["/articles/today", 10n, ["VIEW"]],
    ],
  );
  t.deepEqual(c.items.map((i) => [i.itemId, i.kind, i.reward]), [["quiz-1", "QUIZ", 50n], ["survey-1", "SURVEY", 20n], ["ad-1", "AD", 10n]]);
  const info = await wallet.centerInfo(world.centerUrl);
  t.is(info.pinned, undefined);
  t.deepEqual(info.currencies, ["KRW"]);
  t.is(info.redeemThreshold.KRW, 50n);
  t.deepEqual(info.acceptedHashAlgorithms, ["HMAC_SHA256"]);
});

/** A transport whose first reply to `method` is rewritten by `tamper`, as a man in the middle would. */
function tampering(method: string, tamper: (res: any, req: any) => void): WalletOptions["transport"] {
  let done = false;
  const mitm: Interceptor = (next) => async (req) => {
    const res = await next(req);
    if (!done && req.method.name === method && !res.stream) {
      done = true;
      tamper(res.message, req.message);
    }
    return res;
  };
  return (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "2", interceptors: [mitm] });
}

const tamperings: [string, string, (res: any, req: any) => void][] = [
  ["a tampered M5 scrip (value raised)", "Issue", (res) => void (res.newScrip.scrip.value += 1000n)],
  ["a forged GM5_3 refusal", "Issue", (res, req) => {
    res.header.cmdType = CmdType.GM5_3;
    res.header.errorReason = "ALREADY_REWARDED";
    res.scrip = req.scrip;
    res.scripHash = new Uint8Array(32);
    res.newScrip = undefined;
  }],
  ["a tampered M7 hash", "ConfirmIssue", (res) => void (res.scripHash = new Uint8Array(32))],
  ["a forged PM5_2 refusal", "Pay", (res, req) => {
    res.header.cmdType = CmdType.PM5_2;
    res.header.errorReason = "INSUFFICIENT_VALUE";
    res.scrip = req.scrip;
    res.order = req.order;
    res.hash = new Uint8Array(32);
    res.newScrip = undefined;
  }],
];

for (const [name, method, tamper] of tamperings) {
  test(`${name} is not believed: IntegrityError, the journal is kept, and recovery completes`, async (t) => {
    const store = new MemoryWalletStore();
    const buying = method === "Pay";
    const first = await registered(t, {}, world, store);
    if (buying) await first.earn(world.sellerUrl, world.quiz.itemId, world.quiz.answer);
    const before = first.balance();
    await first.close();
    const victim = await open(store, { transport: tampering(method, tamper) });
    t.teardown(() => victim.close());
    const e = await t.throwsAsync(
      buying ? victim.buy(world.sellerUrl, world.catalog.article.requestUrl, "VIEW") : victim.earn(world.sellerUrl, world.quiz.itemId, world.quiz.answer),
      { instanceOf: IntegrityError },
    );
    t.is(e!.reason, "BAD_REPLY_HASH");
    t.truthy(victim.pending, "the journal is kept");
    if (method !== "ConfirmIssue") t.is(victim.balance().serial, before.serial, "nothing unauthenticated was adopted");
    await victim.close();
    const again = await open(store);
    t.teardown(() => again.close());
    t.is(again.recovery?.outcome, "completed", again.recoveryError?.message);
    t.is(again.balance().value, buying ? 20n : 50n);
    await consistent(t, again);
  });
}
