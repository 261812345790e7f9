/**
 * The ledger contract (DESIGN.md "What must always hold", "Storage"): one
 * suite, run against SQLite (a temp file) and PostgreSQL (a throwaway
 * database per test, when SCRIPWIRE_TEST_PG_URL is set). It drives the Ledger
 * interface directly — no servers, no cryptography: scrip rows and reply bytes
 * are made up here, as the center would make them.
 *
 * Every scenario ends with audit() ok (conservation), except the ones that
 * corrupt the database on purpose and check that audit() notices.
 */
import test, { type ExecutionContext } from "ava";
import Database from "better-sqlite3";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CancelOp, ExecuteOp, InitTransaction, Ledger, LedgerResult, ReplaceOp, ScripRow, TxKind } from "../src/ledger/ledger.js";
import { LedgerError } from "../src/ledger/ledger.js";
import { openLedger } from "../src/ledger/open.js";
import { openPostgresLedger, toPgPlaceholders } from "../src/ledger/postgres.js";
import { openSqliteLedger } from "../src/ledger/sqlite.js";
import { freshPgDatabase, PG_SKIP_REASON, pgRawClient, pgTestUrl } from "./helpers/pg.js";

// ------------------------------------------------------------------ harness

interface Harness {
  ledger: Ledger;
  /** Another ledger over the same database, as a second replica would open it (not migrated). */
  reopen(): Promise<Ledger>;
  /** Runs raw SQL (no parameters) on a separate connection: for corrupting the database on purpose. */
  exec(sql: string): Promise<void>;
  cleanup(): Promise<void>;
}

interface Engine {
  name: "sqlite" | "postgres";
  open(opts?: { migrate?: boolean }): Promise<Harness>;
  /** Registers a test: PostgreSQL tests run one at a time so their pools stay under max_connections. */
  register(title: string, fn: (t: ExecutionContext) => Promise<void>): void;
  /** Whether several ledger instances over one database (replicas) are part of this engine's contract. */
  replicas: boolean;
}

const sqlite: Engine = {
  name: "sqlite",
  replicas: false,
  async open(opts = {}) {
    const dir = mkdtempSync(join(tmpdir(), "scripwire-contract-"));
    const path = join(dir, "ledger.db");
    const opened: Ledger[] = [];
    const ledger = openSqliteLedger(path);
    opened.push(ledger);
    if (opts.migrate !== false) await ledger.migrate();
    return {
      ledger,
      async reopen() {
        const l = openSqliteLedger(path);
        opened.push(l);
        return l;
      },
      async exec(sql) {
        const db = new Database(path);
        try {
          db.exec(sql);
        } finally {
          db.close();
        }
      },
      async cleanup() {
        for (const l of opened) await l.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
  register: (title, fn) => test(title, fn),
};

function postgres(baseUrl: string): Engine {
  return {
    name: "postgres",
    replicas: true,
    async open(opts = {}) {
      const db = await freshPgDatabase(baseUrl);
      const opened: Ledger[] = [];
      const ledger = openPostgresLedger(db.url);
      opened.push(ledger);
      if (opts.migrate !== false) await ledger.migrate();
      return {
        ledger,
        async reopen() {
          const l = openPostgresLedger(db.url, { poolSize: 5 });
          opened.push(l);
          return l;
        },
        async exec(sql) {
          const c = await pgRawClient(db.url);
          try {
            await c.query(sql);
          } finally {
            await c.end();
          }
        },
        async cleanup() {
          for (const l of opened) await l.close();
          await db.drop();
        },
      };
    },
    register: (title, fn) => test.serial(title, fn),
    // (PostgreSQL suite is serial; each test's own operations run concurrently.)
  };
}

// ------------------------------------------------------------------ fixtures

const NOW = 1_750_000_000n;
const DAY = 86_400n;
const CUR = "KRW";
const VENDOR = "mall.example";
const CAMPAIGN = "spring-quiz";

/** A random positive 63-bit serial, as the center draws them. */
function serial(): bigint {
  const v = randomBytes(8).readBigUInt64BE() & ((1n << 63n) - 1n);
  return v === 0n ? 1n : v;
}

function scrip(customerSerial: bigint, value: bigint, currency = CUR): ScripRow {
  return { serial: serial(), customerSerial, currency, value, expiresAt: NOW + 30n * DAY };
}

/** Reply bytes stand in for serialized protobuf; distinct per call so a replay is recognisable. */
function reply(label: string): Uint8Array {
  return new Uint8Array(Buffer.concat([Buffer.from(`${label}:`), randomBytes(16)]));
}

const sha256 = (s: string): Uint8Array => new Uint8Array(createHash("sha256").update(s).digest());

interface Customer {
  serial: bigint;
  walletId: string;
  live: ScripRow;
}

async function setupVendor(l: Ledger, o: { vendorId?: string; campaignId?: string; cap?: bigint; fund?: bigint; currency?: string } = {}) {
  const vendorId = o.vendorId ?? VENDOR;
  const campaignId = o.campaignId ?? CAMPAIGN;
  await l.createVendor(
    { vendorId, dnsName: vendorId, ipAddr: "192.0.2.10", serverName: "mall", port: 8443 },
    { vendorId, keyId: 1, secret: randomBytes(32) },
  );
  await l.createCampaign({ campaignId, vendorId, currency: o.currency ?? CUR, cap: o.cap ?? 1_000_000n });
  const fund = o.fund ?? 10_000n;
  if (fund > 0n) await l.fundCampaign(campaignId, fund, `fund-${campaignId}-initial`, NOW);
}

async function newCustomer(t: ExecutionContext, l: Ledger): Promise<Customer> {
  const s = serial();
  const c: Customer = { serial: s, walletId: `wallet-${randomBytes(6).toString("hex")}`, live: scrip(s, 0n) };
  const r = await l.registerCustomer({
    customerSerial: s,
    walletId: c.walletId,
    secretId: 1,
    profile: { name: "Kim", address: "Seoul", email: "kim@example.com", etc: "" },
    sealedHash: sha256(`sealed/${c.walletId}`),
    scrip: c.live,
    reply: reply("UM2"),
    now: NOW,
  });
  t.is(r.status, "done");
  return c;
}

function offer(o: {
  tranId: string;
  kind: TxKind;
  customer: Customer;
  amount: bigint;
  item?: string;
  vendorId?: string;
  campaignId?: string;
  currency?: string;
  expiresAt?: bigint;
  variant?: string;
}): InitTransaction {
  const t: InitTransaction = {
    vendorId: o.vendorId ?? VENDOR,
    tranId: o.tranId,
    kind: o.kind,
    customerSerial: o.customer.serial,
    amount: o.amount,
    currency: o.currency ?? CUR,
    campaignId: o.kind === "issue" ? (o.campaignId ?? CAMPAIGN) : "",
    item: o.item ?? (o.kind === "issue" ? "quiz/1" : "/articles/1"),
    deliveryMethod: 1,
    expiresAt: o.expiresAt ?? NOW + 600n,
    offerHash: new Uint8Array(0),
    vendorKeyId: 1,
  };
  t.offerHash = sha256(`${t.vendorId}|${t.tranId}|${t.kind}|${t.amount}|${t.currency}|${t.campaignId}|${t.item}|${t.expiresAt}|${o.variant ?? ""}`);
  return t;
}

async function init(t: ExecutionContext, l: Ledger, o: InitTransaction, now = NOW): Promise<void> {
  const r = await l.initTransaction(o, now);
  t.is(r.status, "created", JSON.stringify(r, (_, v) => (typeof v === "bigint" ? `${v}` : v)));
}

/** M4: the customer's live scrip in, the same value plus `amount` out. */
function issueOp(c: Customer, tranId: string, amount: bigint, o: { vendorId?: string; now?: bigint; live?: ScripRow } = {}): ExecuteOp {
  const live = o.live ?? c.live;
  return {
    vendorId: o.vendorId ?? VENDOR,
    tranId,
    customerSerial: c.serial,
    inSerial: live.serial,
    inValue: live.value,
    out: scrip(c.serial, live.value + amount),
    reply: reply("GM5_1"),
    now: o.now ?? NOW,
  };
}

/** S4: the customer's live scrip in, the change out. */
function payOp(c: Customer, tranId: string, price: bigint, o: { vendorId?: string; now?: bigint; live?: ScripRow } = {}): ExecuteOp {
  const live = o.live ?? c.live;
  const change = live.value - price;
  return {
    vendorId: o.vendorId ?? VENDOR,
    tranId,
    customerSerial: c.serial,
    inSerial: live.serial,
    inValue: live.value,
    out: scrip(c.serial, change < 0n ? 0n : change),
    reply: reply("PM5_1"),
    now: o.now ?? NOW,
  };
}

function done(t: ExecutionContext, r: LedgerResult, op?: { reply: Uint8Array }): void {
  t.is(r.status, "done", r.status === "refused" ? `${r.refusal}: ${r.detail}` : "");
  if (op && r.status === "done") t.deepEqual(Buffer.from(r.reply), Buffer.from(op.reply));
}

function refused(t: ExecutionContext, r: LedgerResult | { status: string; refusal?: string }, refusal: string): void {
  t.is(r.status, "refused");
  if (r.status === "refused") t.is((r as { refusal: string }).refusal, refusal);
}

/** Issue `amount` to the customer under a new TranID; their live scrip moves on. */
async function earn(t: ExecutionContext, l: Ledger, c: Customer, amount: bigint, item = `quiz/${randomBytes(4).toString("hex")}`, tranId = `T-earn-${randomBytes(6).toString("hex")}`) {
  await init(t, l, offer({ tranId, kind: "issue", customer: c, amount, item }));
  const op = issueOp(c, tranId, amount);
  done(t, await l.executeIssue(op), op);
  c.live = op.out;
  return { tranId, op };
}

async function buy(t: ExecutionContext, l: Ledger, c: Customer, price: bigint, tranId = `T-buy-${randomBytes(6).toString("hex")}`) {
  await init(t, l, offer({ tranId, kind: "pay", customer: c, amount: price }));
  const op = payOp(c, tranId, price);
  done(t, await l.executePayment(op), op);
  c.live = op.out;
  return { tranId, op };
}

async function auditOk(t: ExecutionContext, l: Ledger): Promise<void> {
  const a = await l.audit();
  t.true(a.ok, `audit: ${a.problems.join("; ")}`);
  t.deepEqual(a.problems, []);
}

/** Everything a refusal must leave unchanged, as seen through the interface. */
async function snapshot(l: Ledger, customers: Customer[], tranIds: string[] = []) {
  const a = await l.audit();
  return {
    campaigns: await l.listCampaigns(),
    live: await Promise.all(customers.map((c) => l.liveScrip(c.serial, CUR))),
    transactions: await Promise.all(tranIds.map((id) => l.getTransaction(VENDOR, id))),
    settlements: await l.listSettlements(VENDOR, 0n, 1000),
    payouts: await l.listPayouts(1000),
    counts: { transfers: a.transfersChecked, accounts: a.accountsChecked, scrips: a.scripsChecked },
  };
}

function bytesOf(r: LedgerResult): Buffer {
  return Buffer.from(r.status === "refused" ? new Uint8Array(0) : r.reply);
}

/**
 * Opens the pool's connections before a race: connecting (SCRAM
 * authentication) takes long enough to stagger the racers, which would hide
 * the very interleavings these tests are for. A failure (no tables yet) is
 * fine: the connection is open all the same.
 */
async function warm(...ledgers: Ledger[]): Promise<void> {
  await Promise.all(ledgers.flatMap((l) => Array.from({ length: 10 }, () => l.listKeys().catch(() => []))));
}

async function ledgerError(t: ExecutionContext, p: Promise<unknown>, reason: string): Promise<void> {
  const e = await t.throwsAsync(p, { instanceOf: LedgerError });
  t.is(e?.reason, reason);
}

// ------------------------------------------------------------------ the suite

function contract(engine: Engine): void {
  const scenario = (title: string, fn: (t: ExecutionContext, h: Harness) => Promise<void>, o: { audit?: boolean; migrate?: boolean } = {}) =>
    engine.register(`${engine.name}: ${title}`, async (t) => {
      const h = await engine.open({ migrate: o.migrate });
      try {
        await fn(t, h);
        if (o.audit !== false) await auditOk(t, h.ledger);
      } finally {
        await h.cleanup();
      }
    });

  scenario("migrate is idempotent and safe when several replicas start at once", async (t, h) => {
    const others = await Promise.all([1, 2, 3].map(() => h.reopen()));
    await warm(h.ledger, ...others);
    if (engine.replicas) {
      await Promise.all([h.ledger, ...others].map((l) => l.migrate()));
    } else {
      for (const l of [h.ledger, ...others]) await l.migrate();
    }
    await h.ledger.migrate();
    t.is(h.ledger.engine, engine.name);
    t.deepEqual(await h.ledger.listCampaigns(), []);
  }, { migrate: false });

  scenario("keys: addKey inserts once per (kind, secretId)", async (t, { ledger: l }) => {
    const k = { kind: "certificate" as const, secretId: 1, key: new Uint8Array(randomBytes(32)), createdAt: 1_750_000_000 };
    t.true(await l.addKey(k));
    t.false(await l.addKey({ ...k, key: new Uint8Array(32) }));
    t.true(await l.addKey({ ...k, kind: "custom" }));
    const keys = await l.listKeys();
    t.is(keys.length, 2);
    t.deepEqual(Buffer.from(keys.find((x) => x.kind === "certificate")!.key), Buffer.from(k.key));
  });

  scenario("vendors and campaigns: create, fund up to the cap, idempotent by request id", async (t, { ledger: l }) => {
    const key = { vendorId: VENDOR, keyId: 1, secret: new Uint8Array(randomBytes(32)) };
    const vendor = { vendorId: VENDOR, dnsName: "mall.example", ipAddr: "192.0.2.10", serverName: "mall", port: 8443 };
    t.true(await l.createVendor(vendor, key));
    t.false(await l.createVendor(vendor, key));
    t.true(await l.addVendorKey({ ...key, keyId: 2 }));
    t.false(await l.addVendorKey({ ...key, keyId: 2 }));
    const got = await l.getVendor(VENDOR);
    t.deepEqual(got?.vendor, vendor);
    t.deepEqual(got?.keys.map((k) => k.keyId), [1, 2]);
    t.deepEqual(Buffer.from(got!.keys[0]!.secret), Buffer.from(key.secret));
    t.is(await l.getVendor("nobody.example"), undefined);

    const c = await l.createCampaign({ campaignId: CAMPAIGN, vendorId: VENDOR, currency: CUR, cap: 1000n });
    t.deepEqual(c, { campaignId: CAMPAIGN, vendorId: VENDOR, currency: CUR, budget: 0n, cap: 1000n, funded: 0n, issued: 0n });
    await ledgerError(t, l.createCampaign({ campaignId: CAMPAIGN, vendorId: VENDOR, currency: CUR, cap: 5n }), "CAMPAIGN_EXISTS");
    await ledgerError(t, l.createCampaign({ campaignId: "other", vendorId: "nobody.example", currency: CUR, cap: 5n }), "UNKNOWN_VENDOR");
    await ledgerError(t, l.createCampaign({ campaignId: "other", vendorId: VENDOR, currency: CUR, cap: -1n }), "BAD_AMOUNT");

    t.like(await l.fundCampaign(CAMPAIGN, 600n, "f1", NOW), { budget: 600n, funded: 600n, issued: 0n });
    t.like(await l.fundCampaign(CAMPAIGN, 600n, "f1", NOW), { budget: 600n, funded: 600n }, "same request id: no second funding");
    await ledgerError(t, l.fundCampaign(CAMPAIGN, 401n, "f2", NOW), "CAP_EXCEEDED");
    t.like(await l.fundCampaign(CAMPAIGN, 400n, "f2", NOW), { budget: 1000n, funded: 1000n }, "a refused request id can be used again");
    await ledgerError(t, l.fundCampaign(CAMPAIGN, 0n, "f3", NOW), "BAD_AMOUNT");
    await ledgerError(t, l.fundCampaign(CAMPAIGN, -5n, "f3", NOW), "BAD_AMOUNT");
    await ledgerError(t, l.fundCampaign("missing", 5n, "f3", NOW), "UNKNOWN_CAMPAIGN");
    await auditOk(t, l);

    const cust = await newCustomer(t, l);
    await earn(t, l, cust, 30n);
    t.deepEqual(await l.listCampaigns(), [{ campaignId: CAMPAIGN, vendorId: VENDOR, currency: CUR, budget: 970n, cap: 1000n, funded: 1000n, issued: 30n }]);
  });

  scenario("registerCustomer: done, idempotent replay, WALLET_ID_TAKEN, SERIAL_TAKEN", async (t, { ledger: l }) => {
    const s = serial();
    const op = {
      customerSerial: s,
      walletId: "wallet-one",
      secretId: 1,
      profile: { name: "Lee", address: "Busan", email: "lee@example.com", etc: "x" },
      sealedHash: sha256("sealed-1"),
      scrip: scrip(s, 0n),
      reply: reply("UM2"),
      now: NOW,
    };
    const first = await l.registerCustomer(op);
    t.is(first.status, "done");
    t.deepEqual(Buffer.from((first as { reply: Uint8Array }).reply), Buffer.from(op.reply));
    t.true(await l.customerExists(s));
    t.false(await l.customerExists(serial()));
    t.deepEqual(await l.liveScrip(s, CUR), op.scrip);

    // A retransmitted R1 (same sealed key) replays the stored reply, even if the center built a new one.
    const again = await l.registerCustomer({ ...op, reply: reply("UM2-again"), scrip: scrip(s, 0n) });
    t.is(again.status, "replayed");
    t.deepEqual(Buffer.from((again as { reply: Uint8Array }).reply), Buffer.from(op.reply));
    t.deepEqual(await l.liveScrip(s, CUR), op.scrip);

    const other = serial();
    refused(t, await l.registerCustomer({ ...op, customerSerial: other, sealedHash: sha256("sealed-2"), scrip: scrip(other, 0n) }), "WALLET_ID_TAKEN");
    t.false(await l.customerExists(other));
    refused(t, await l.registerCustomer({ ...op, walletId: "wallet-two", scrip: scrip(s, 0n) }), "SERIAL_TAKEN");
    // A scrip serial that collides with an existing one is reported too, and registers nothing.
    const third = serial();
    refused(t, await l.registerCustomer({ ...op, customerSerial: third, walletId: "wallet-three", scrip: { ...op.scrip, customerSerial: third } }), "SERIAL_TAKEN");
    t.false(await l.customerExists(third));
  });

  scenario("initTransaction: created, exists, WRONG_CUSTOMER, OFFER_MISMATCH, UNKNOWN_CAMPAIGN, CURRENCY_MISMATCH", async (t, { ledger: l }) => {
    await setupVendor(l);
    await setupVendor(l, { vendorId: "other.example", campaignId: "other-campaign", fund: 0n });
    const a = await newCustomer(t, l);
    const b = await newCustomer(t, l);
    const o = offer({ tranId: "T1", kind: "issue", customer: a, amount: 25n });
    const r1 = await l.initTransaction(o, NOW);
    t.is(r1.status, "created");
    if (r1.status !== "refused") t.like(r1.tx, { state: "initiated", amount: 25n, customerSerial: a.serial, inSerial: 0n, outSerial: 0n, executeReply: null });
    t.is((await l.initTransaction(o, NOW + 5n)).status, "exists");
    refused(t, await l.initTransaction({ ...o, customerSerial: b.serial }, NOW), "WRONG_CUSTOMER");
    refused(t, await l.initTransaction(offer({ tranId: "T1", kind: "issue", customer: a, amount: 25n, variant: "other" }), NOW), "OFFER_MISMATCH");
    refused(t, await l.initTransaction(offer({ tranId: "T2", kind: "issue", customer: a, amount: 5n, campaignId: "missing" }), NOW), "UNKNOWN_CAMPAIGN");
    refused(t, await l.initTransaction(offer({ tranId: "T2", kind: "issue", customer: a, amount: 5n, campaignId: "other-campaign" }), NOW), "UNKNOWN_CAMPAIGN");
    refused(t, await l.initTransaction(offer({ tranId: "T2", kind: "issue", customer: a, amount: 5n, currency: "USD" }), NOW), "CURRENCY_MISMATCH");
    // One TranID per customer across sellers: M4/M6/S6 find it without the vendor.
    refused(t, await l.initTransaction(offer({ tranId: "T1", kind: "pay", customer: a, amount: 5n, vendorId: "other.example" }), NOW), "OFFER_MISMATCH");
    t.is(await l.getTransaction(VENDOR, "T2"), undefined);

    t.like(await l.getTransaction(VENDOR, "T1"), { tranId: "T1", kind: "issue", state: "initiated", campaignId: CAMPAIGN });
    t.like(await l.getTransactionForCustomer("T1", a.serial, "issue"), { vendorId: VENDOR });
    t.is(await l.getTransactionForCustomer("T1", a.serial, "pay"), undefined);
    t.is(await l.getTransactionForCustomer("T1", b.serial, "issue"), undefined);
    t.deepEqual(Buffer.from((await l.getTransaction(VENDOR, "T1"))!.offerHash), Buffer.from(o.offerHash));
  });

  scenario("executeIssue: done, the old serial dies, replay returns the identical reply bytes", async (t, { ledger: l }) => {
    await setupVendor(l, { fund: 1000n });
    const c = await newCustomer(t, l);
    const before = c.live;
    await init(t, l, offer({ tranId: "T1", kind: "issue", customer: c, amount: 30n }));
    const op = issueOp(c, "T1", 30n);
    done(t, await l.executeIssue(op), op);
    t.deepEqual(await l.liveScrip(c.serial, CUR), op.out);
    t.like(await l.getTransaction(VENDOR, "T1"), { state: "executed", inSerial: before.serial, outSerial: op.out.serial });
    t.deepEqual(Buffer.from((await l.getTransaction(VENDOR, "T1"))!.executeReply!), Buffer.from(op.reply));

    // Retransmission (reply lost): the center builds a fresh scrip and reply, the ledger answers with the first.
    const retry = { ...issueOp(c, "T1", 30n, { live: before }), now: NOW + 10n };
    const r = await l.executeIssue(retry);
    t.is(r.status, "replayed");
    t.deepEqual(bytesOf(r), Buffer.from(op.reply));
    t.deepEqual(await l.liveScrip(c.serial, CUR), op.out, "the replay minted nothing");
    t.like((await l.listCampaigns())[0], { issued: 30n, budget: 970n });

    // The same TranID with another scrip is not a retransmission.
    c.live = op.out;
    refused(t, await l.executeIssue(issueOp(c, "T1", 30n)), "TRANSACTION_STATE");
    refused(t, await l.executeIssue(issueOp(c, "T-unknown", 30n)), "UNKNOWN_TRANSACTION");
  });

  scenario("executeIssue: BUDGET_EXHAUSTED leaves everything unchanged, and the TranID can still run later", async (t, { ledger: l }) => {
    await setupVendor(l, { fund: 20n, cap: 1000n });
    const c = await newCustomer(t, l);
    await init(t, l, offer({ tranId: "T1", kind: "issue", customer: c, amount: 50n }));
    const before = await snapshot(l, [c], ["T1"]);
    const op = issueOp(c, "T1", 50n);
    refused(t, await l.executeIssue(op), "BUDGET_EXHAUSTED");
    t.deepEqual(await snapshot(l, [c], ["T1"]), before);
    await auditOk(t, l);

    await l.fundCampaign(CAMPAIGN, 100n, "top-up", NOW);
    done(t, await l.executeIssue(op), op);
    t.like((await l.listCampaigns())[0], { budget: 70n, issued: 50n, funded: 120n });
  });

  scenario("executeIssue: ALREADY_REWARDED for a second reward for one item", async (t, { ledger: l }) => {
    await setupVendor(l);
    const c = await newCustomer(t, l);
    await earn(t, l, c, 10n, "quiz/7", "T1");
    await init(t, l, offer({ tranId: "T2", kind: "issue", customer: c, amount: 10n, item: "quiz/7" }));
    const before = await snapshot(l, [c], ["T1", "T2"]);
    refused(t, await l.executeIssue(issueOp(c, "T2", 10n)), "ALREADY_REWARDED");
    t.deepEqual(await snapshot(l, [c], ["T1", "T2"]), before);
    // Another customer may earn the same item.
    const d = await newCustomer(t, l);
    await earn(t, l, d, 10n, "quiz/7");
  });

  scenario("executeIssue: SCRIP_NOT_LIVE for a stale or foreign serial, TRANSACTION_EXPIRED, CURRENCY_MISMATCH", async (t, { ledger: l }) => {
    await setupVendor(l);
    const c = await newCustomer(t, l);
    const d = await newCustomer(t, l);
    const stale = c.live;
    await earn(t, l, c, 10n);
    await init(t, l, offer({ tranId: "T2", kind: "issue", customer: c, amount: 10n }));
    const before = await snapshot(l, [c, d], ["T2"]);
    refused(t, await l.executeIssue(issueOp(c, "T2", 10n, { live: stale })), "SCRIP_NOT_LIVE");
    refused(t, await l.executeIssue(issueOp(c, "T2", 10n, { live: { ...d.live, customerSerial: c.serial } })), "SCRIP_NOT_LIVE");
    // The right serial with a value the ledger does not hold for it.
    refused(t, await l.executeIssue(issueOp(c, "T2", 10n, { live: { ...c.live, value: c.live.value + 1n } })), "SCRIP_NOT_LIVE");
    const wrongCurrency = issueOp(c, "T2", 10n);
    wrongCurrency.out = { ...wrongCurrency.out, currency: "USD" };
    refused(t, await l.executeIssue(wrongCurrency), "CURRENCY_MISMATCH");
    refused(t, await l.executeIssue({ ...issueOp(c, "T2", 10n), customerSerial: d.serial }), "WRONG_CUSTOMER");
    t.deepEqual(await snapshot(l, [c, d], ["T2"]), before);

    await init(t, l, offer({ tranId: "T3", kind: "issue", customer: c, amount: 10n, expiresAt: NOW + 60n }));
    const late = await snapshot(l, [c], ["T3"]);
    refused(t, await l.executeIssue(issueOp(c, "T3", 10n, { now: NOW + 61n })), "TRANSACTION_EXPIRED");
    t.deepEqual(await snapshot(l, [c], ["T3"]), late);
    done(t, await l.executeIssue(issueOp(c, "T3", 10n, { now: NOW + 60n })));
  });

  scenario("executePayment: done, replay, INSUFFICIENT_VALUE", async (t, { ledger: l }) => {
    await setupVendor(l);
    const c = await newCustomer(t, l);
    await earn(t, l, c, 100n);
    const before = c.live;
    await init(t, l, offer({ tranId: "P1", kind: "pay", customer: c, amount: 40n }));
    const op = payOp(c, "P1", 40n);
    done(t, await l.executePayment(op), op);
    c.live = op.out;
    t.deepEqual(await l.liveScrip(c.serial, CUR), { ...op.out, value: 60n });
    t.like(await l.getTransaction(VENDOR, "P1"), { state: "executed", inSerial: before.serial, outSerial: op.out.serial });

    const r = await l.executePayment(payOp(c, "P1", 40n, { live: before }));
    t.is(r.status, "replayed");
    t.deepEqual(bytesOf(r), Buffer.from(op.reply));
    t.deepEqual(await l.liveScrip(c.serial, CUR), op.out);

    await init(t, l, offer({ tranId: "P2", kind: "pay", customer: c, amount: 61n }));
    const snap = await snapshot(l, [c], ["P1", "P2"]);
    refused(t, await l.executePayment(payOp(c, "P2", 61n)), "INSUFFICIENT_VALUE");
    // Issuing against a payment TranID (and vice versa) finds no such transaction.
    refused(t, await l.executeIssue(issueOp(c, "P2", 61n)), "UNKNOWN_TRANSACTION");
    t.deepEqual(await snapshot(l, [c], ["P1", "P2"]), snap);
    // Spending exactly everything leaves a zero-value live scrip.
    await buy(t, l, c, 60n);
    t.is((await l.liveScrip(c.serial, CUR))?.value, 0n);
  });

  scenario("confirm: done, replay, settlements listed with increasing sequence", async (t, { ledger: l }) => {
    await setupVendor(l);
    const c = await newCustomer(t, l);
    const e = await earn(t, l, c, 50n, "quiz/1", "T1");
    refused(t, await l.confirm({ vendorId: VENDOR, tranId: "T1", customerSerial: c.serial, presentedSerial: serial(), reply: reply("M7"), now: NOW }), "SCRIP_NOT_LIVE");
    const op = { vendorId: VENDOR, tranId: "T1", customerSerial: c.serial, presentedSerial: e.op.out.serial, reply: reply("M7"), now: NOW + 1n };
    done(t, await l.confirm(op), op);
    t.like(await l.getTransaction(VENDOR, "T1"), { state: "confirmed" });
    const again = await l.confirm({ ...op, reply: reply("M7-again") });
    t.is(again.status, "replayed");
    t.deepEqual(bytesOf(again), Buffer.from(op.reply));
    const s1 = await l.listSettlements(VENDOR, 0n, 10);
    t.is(s1.length, 1, "a replayed confirm settles nothing twice");
    t.like(s1[0], { kind: "issue", vendorId: VENDOR, tranId: "T1", amount: 50n, currency: CUR, item: "quiz/1", settledAt: NOW + 1n });

    const p = await buy(t, l, c, 20n, "P1");
    const pop = { vendorId: VENDOR, tranId: "P1", customerSerial: c.serial, presentedSerial: p.op.out.serial, reply: reply("PM6"), now: NOW + 2n };
    done(t, await l.confirm(pop), pop);
    const s2 = await l.listSettlements(VENDOR, 0n, 10);
    t.deepEqual(s2.map((s) => s.tranId), ["T1", "P1"]);
    t.true(s2[1]!.sequence > s2[0]!.sequence);
    t.deepEqual((await l.listSettlements(VENDOR, s2[0]!.sequence, 10)).map((s) => s.tranId), ["P1"]);
    t.deepEqual((await l.listSettlements(VENDOR, 0n, 1)).map((s) => s.tranId), ["T1"]);
    t.deepEqual(await l.listSettlements("other.example", 0n, 10), []);

    await init(t, l, offer({ tranId: "P2", kind: "pay", customer: c, amount: 5n }));
    refused(t, await l.confirm({ ...pop, tranId: "P2", presentedSerial: c.live.serial }), "TRANSACTION_STATE");
    refused(t, await l.confirm({ ...pop, tranId: "nope" }), "UNKNOWN_TRANSACTION");
    refused(t, await l.confirm({ ...pop, customerSerial: serial() }), "WRONG_CUSTOMER");
  });

  scenario("cancel from initiated: nothing moves, replay, the TranID is dead", async (t, { ledger: l }) => {
    await setupVendor(l);
    const c = await newCustomer(t, l);
    await earn(t, l, c, 30n);
    await init(t, l, offer({ tranId: "P1", kind: "pay", customer: c, amount: 10n }));
    const before = await snapshot(l, [c]);
    const op: CancelOp = { vendorId: VENDOR, tranId: "P1", customerSerial: c.serial, expectState: "initiated", presentedSerial: c.live.serial, restored: null, reply: reply("PM5-cancel"), now: NOW };
    done(t, await l.cancel(op), op);
    t.like(await l.getTransaction(VENDOR, "P1"), { state: "cancelled" });
    t.deepEqual(Buffer.from((await l.getTransaction(VENDOR, "P1"))!.cancelReply!), Buffer.from(op.reply));
    t.deepEqual(await snapshot(l, [c]), before);
    const again = await l.cancel({ ...op, reply: reply("again") });
    t.is(again.status, "replayed");
    t.deepEqual(bytesOf(again), Buffer.from(op.reply));
    refused(t, await l.executePayment(payOp(c, "P1", 10n)), "TRANSACTION_STATE");
    refused(t, await l.cancel({ ...op, customerSerial: serial() }), "WRONG_CUSTOMER");
    refused(t, await l.cancel({ ...op, tranId: "nope" }), "UNKNOWN_TRANSACTION");
  });

  scenario("cancel an executed issue: value restored under a fresh serial, reward claim released, replay", async (t, { ledger: l }) => {
    await setupVendor(l, { fund: 1000n });
    const c = await newCustomer(t, l);
    await earn(t, l, c, 5n);
    const before = c.live;
    const e = await earn(t, l, c, 30n, "quiz/9", "T1");
    t.like((await l.listCampaigns())[0], { budget: 965n, issued: 35n });
    const restored = scrip(c.serial, before.value);
    const op: CancelOp = { vendorId: VENDOR, tranId: "T1", customerSerial: c.serial, expectState: "executed", presentedSerial: e.op.out.serial, restored, reply: reply("GM6_3"), now: NOW + 3n };
    done(t, await l.cancel(op), op);
    c.live = restored;
    t.deepEqual(await l.liveScrip(c.serial, CUR), restored);
    t.like((await l.listCampaigns())[0], { budget: 995n, issued: 5n, funded: 1000n });
    t.like(await l.getTransaction(VENDOR, "T1"), { state: "cancelled" });
    await auditOk(t, l);

    const again = await l.cancel({ ...op, restored: scrip(c.serial, before.value), reply: reply("again") });
    t.is(again.status, "replayed");
    t.deepEqual(bytesOf(again), Buffer.from(op.reply));
    t.deepEqual(await l.liveScrip(c.serial, CUR), restored);
    // Neither the cancelled out-serial nor the in-serial ever comes back to life.
    refused(t, await l.executeIssue(issueOp(c, "T1", 30n, { live: e.op.out })), "TRANSACTION_STATE");
    // The item can be earned again under a new TranID.
    await earn(t, l, c, 30n, "quiz/9", "T2");
    t.is((await l.liveScrip(c.serial, CUR))?.value, 35n);
  });

  scenario("cancel an executed payment: the vendor gives the price back; confirmed or spent-on cannot be cancelled", async (t, { ledger: l }) => {
    await setupVendor(l);
    const c = await newCustomer(t, l);
    await earn(t, l, c, 100n);
    const before = c.live;
    const p = await buy(t, l, c, 40n, "P1");
    const restored = scrip(c.serial, 100n);
    // The center may present either the spent in-scrip or the change scrip.
    const op: CancelOp = { vendorId: VENDOR, tranId: "P1", customerSerial: c.serial, expectState: "executed", presentedSerial: before.serial, restored, reply: reply("PM6_3"), now: NOW };
    refused(t, await l.cancel({ ...op, presentedSerial: serial() }), "SCRIP_NOT_LIVE");
    t.like(await l.getTransaction(VENDOR, "P1"), { state: "executed" }, "a refused cancel rolls its state change back");
    done(t, await l.cancel(op), op);
    c.live = restored;
    t.deepEqual(await l.liveScrip(c.serial, CUR), restored);
    refused(t, await l.executePayment(payOp(c, "P1", 40n, { live: p.op.out })), "TRANSACTION_STATE");
    await auditOk(t, l);

    const q = await buy(t, l, c, 10n, "P2");
    done(t, await l.confirm({ vendorId: VENDOR, tranId: "P2", customerSerial: c.serial, presentedSerial: q.op.out.serial, reply: reply("PM6"), now: NOW }));
    refused(t, await l.cancel({ ...op, tranId: "P2", presentedSerial: q.op.out.serial, restored: scrip(c.serial, 100n) }), "TRANSACTION_STATE");

    // Executed, then its change scrip spent on something else: too late to undo.
    const r = await buy(t, l, c, 10n, "P3");
    await buy(t, l, c, 10n, "P4");
    const snap = await snapshot(l, [c], ["P3", "P4"]);
    refused(t, await l.cancel({ ...op, tranId: "P3", presentedSerial: r.op.out.serial, restored: scrip(c.serial, 90n) }), "SCRIP_NOT_LIVE");
    t.deepEqual(await snapshot(l, [c], ["P3", "P4"]), snap);
  });

  scenario("replace: renew and redeem, payout recorded, idempotent by request id", async (t, { ledger: l }) => {
    await setupVendor(l);
    const c = await newCustomer(t, l);
    await earn(t, l, c, 100n);
    const old = c.live;
    const renew: ReplaceOp = { requestId: "r1", kind: "renew", customerSerial: c.serial, inSerial: old.serial, inValue: 100n, out: scrip(c.serial, 100n), reply: reply("renew"), now: NOW };
    done(t, await l.replace(renew), renew);
    c.live = renew.out;
    t.deepEqual(await l.liveScrip(c.serial, CUR), renew.out);
    const again = await l.replace({ ...renew, out: scrip(c.serial, 100n), reply: reply("again") });
    t.is(again.status, "replayed");
    t.deepEqual(bytesOf(again), Buffer.from(renew.reply));
    t.deepEqual(await l.liveScrip(c.serial, CUR), renew.out);
    refused(t, await l.replace({ ...renew, requestId: "r-stale", out: scrip(c.serial, 100n) }), "SCRIP_NOT_LIVE");

    const redeem: ReplaceOp = {
      requestId: "r2",
      kind: "redeem",
      customerSerial: c.serial,
      inSerial: c.live.serial,
      inValue: 100n,
      out: scrip(c.serial, 30n),
      payout: { payoutId: "po-1", amount: 70n, account: "KR-bank-123" },
      reply: reply("redeem"),
      now: NOW + 1n,
    };
    done(t, await l.replace(redeem), redeem);
    c.live = redeem.out;
    t.deepEqual(await l.listPayouts(10), [{ payoutId: "po-1", customerSerial: c.serial, amount: 70n, currency: CUR, account: "KR-bank-123", createdAt: NOW + 1n }]);
    const r2 = await l.replace({ ...redeem, out: scrip(c.serial, 30n), reply: reply("again") });
    t.is(r2.status, "replayed");
    t.deepEqual(bytesOf(r2), Buffer.from(redeem.reply));
    t.is((await l.listPayouts(10)).length, 1, "a replayed redemption pays out once");
    t.is((await l.liveScrip(c.serial, CUR))?.value, 30n);

    const d = await newCustomer(t, l);
    const snap = await snapshot(l, [c, d]);
    refused(
      t,
      await l.replace({ ...redeem, requestId: "r3", inSerial: c.live.serial, inValue: 30n, out: scrip(c.serial, 0n), payout: { payoutId: "po-2", amount: 31n, account: "x" } }),
      "INSUFFICIENT_VALUE",
    );
    // A request id names one customer's request.
    refused(t, await l.replace({ ...renew, requestId: "r1", customerSerial: d.serial, inSerial: d.live.serial, inValue: 0n, out: scrip(d.serial, 0n) }), "TRANSACTION_STATE");
    t.deepEqual(await snapshot(l, [c, d]), snap);
  });

  scenario("concurrency: 20 payments spending one live serial under 20 TranIDs let exactly one through", async (t, h) => {
    const l = h.ledger;
    await setupVendor(l);
    const c = await newCustomer(t, l);
    await earn(t, l, c, 1000n);
    const ops: ExecuteOp[] = [];
    for (let i = 0; i < 20; i++) {
      await init(t, l, offer({ tranId: `P${i}`, kind: "pay", customer: c, amount: 10n + BigInt(i) }));
      ops.push(payOp(c, `P${i}`, 10n + BigInt(i)));
    }
    // On PostgreSQL, half the attempts come through a second replica.
    const replica = engine.replicas ? await h.reopen() : l;
    await warm(l, replica);
    const results = await Promise.all(ops.map((op, i) => (i % 2 ? replica : l).executePayment(op)));
    const winners = results.flatMap((r, i) => (r.status === "done" ? [i] : []));
    t.is(winners.length, 1, JSON.stringify(results.map((r) => r.status)));
    for (const [i, r] of results.entries()) if (i !== winners[0]) refused(t, r, "SCRIP_NOT_LIVE");
    const w = winners[0]!;
    t.deepEqual(await l.liveScrip(c.serial, CUR), ops[w]!.out);
    for (let i = 0; i < 20; i++) t.is((await l.getTransaction(VENDOR, `P${i}`))?.state, i === w ? "executed" : "initiated");
  });

  scenario("concurrency: 20 identical M4 retransmissions execute once, the rest replay the same bytes", async (t, h) => {
    const l = h.ledger;
    await setupVendor(l, { fund: 1000n });
    const c = await newCustomer(t, l);
    await init(t, l, offer({ tranId: "T1", kind: "issue", customer: c, amount: 25n }));
    const ops = Array.from({ length: 20 }, () => issueOp(c, "T1", 25n));
    const replica = engine.replicas ? await h.reopen() : l;
    await warm(l, replica);
    const results = await Promise.all(ops.map((op, i) => (i % 2 ? replica : l).executeIssue(op)));
    const winners = results.flatMap((r, i) => (r.status === "done" ? [i] : []));
    t.is(winners.length, 1, JSON.stringify(results.map((r) => r.status)));
    const w = ops[winners[0]!]!;
    for (const r of results) {
      t.not(r.status, "refused", r.status === "refused" ? `${r.refusal}: ${r.detail}` : "");
      t.deepEqual(bytesOf(r), Buffer.from(w.reply));
    }
    t.deepEqual(await l.liveScrip(c.serial, CUR), w.out);
    t.like((await l.listCampaigns())[0], { issued: 25n, budget: 975n });
  });

  scenario("concurrency: 20 retransmissions of one renewal replace the scrip once", async (t, h) => {
    const l = h.ledger;
    await setupVendor(l);
    const c = await newCustomer(t, l);
    await earn(t, l, c, 40n);
    const ops: ReplaceOp[] = Array.from({ length: 20 }, () => ({
      requestId: "renew-1",
      kind: "renew" as const,
      customerSerial: c.serial,
      inSerial: c.live.serial,
      inValue: 40n,
      out: scrip(c.serial, 40n),
      reply: reply("renew"),
      now: NOW,
    }));
    const replica = engine.replicas ? await h.reopen() : l;
    await warm(l, replica);
    const results = await Promise.all(ops.map((op, i) => (i % 2 ? replica : l).replace(op)));
    const winners = results.flatMap((r, i) => (r.status === "done" ? [i] : []));
    t.is(winners.length, 1, JSON.stringify(results.map((r) => (r.status === "refused" ? r.refusal : r.status))));
    const w = ops[winners[0]!]!;
    for (const r of results) t.deepEqual(bytesOf(r), Buffer.from(w.reply));
    t.deepEqual(await l.liveScrip(c.serial, CUR), w.out);
  });

  scenario("concurrency: confirms for one vendor appear in sequence order, none skipped", async (t, h) => {
    const l = h.ledger;
    await setupVendor(l);
    const customers = await Promise.all(Array.from({ length: 20 }, () => newCustomer(t, l)));
    const outs = await Promise.all(customers.map((c, i) => earn(t, l, c, 1n + BigInt(i), "quiz/1", `T${i}`)));
    const replica = engine.replicas ? await h.reopen() : l;
    await warm(l, replica);
    const results = await Promise.all(
      customers.map((c, i) =>
        (i % 2 ? replica : l).confirm({ vendorId: VENDOR, tranId: `T${i}`, customerSerial: c.serial, presentedSerial: outs[i]!.op.out.serial, reply: reply("M7"), now: NOW }),
      ),
    );
    for (const r of results) done(t, r);
    const all = await l.listSettlements(VENDOR, 0n, 100);
    t.is(all.length, 20);
    t.deepEqual(new Set(all.map((s) => s.tranId)).size, 20);
    for (let i = 1; i < all.length; i++) t.true(all[i]!.sequence > all[i - 1]!.sequence);
    // Paging by sequence sees each settlement exactly once.
    const paged: string[] = [];
    for (let after = 0n; ; ) {
      const page = await l.listSettlements(VENDOR, after, 3);
      if (page.length === 0) break;
      paged.push(...page.map((s) => s.tranId));
      after = page[page.length - 1]!.sequence;
    }
    t.deepEqual(paged, all.map((s) => s.tranId));
  });

  scenario("concurrency: fundings racing for the cap never exceed it", async (t, h) => {
    const l = h.ledger;
    await setupVendor(l, { cap: 1000n, fund: 0n });
    const replica = engine.replicas ? await h.reopen() : l;
    await warm(l, replica);
    const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => (i % 2 ? replica : l).fundCampaign(CAMPAIGN, 100n, `f${i}`, NOW)));
    const ok = results.filter((r) => r.status === "fulfilled");
    t.is(ok.length, 10);
    for (const r of results) {
      if (r.status === "rejected") t.is((r.reason as LedgerError).reason, "CAP_EXCEEDED", String(r.reason));
    }
    t.like((await l.listCampaigns())[0], { funded: 1000n, budget: 1000n });
  });

  scenario("concurrency: racing registrations of one wallet id register it once", async (t, h) => {
    const l = h.ledger;
    const replica = engine.replicas ? await h.reopen() : l;
    await warm(l, replica);
    const ops = Array.from({ length: 10 }, (_, i) => {
      const s = serial();
      return {
        customerSerial: s,
        walletId: "wallet-race",
        secretId: 1,
        profile: { name: "", address: "", email: "", etc: "" },
        sealedHash: sha256(i < 5 ? "same-R1" : `other-${i}`),
        scrip: scrip(s, 0n),
        reply: reply("UM2"),
        now: NOW,
      };
    });
    const results = await Promise.all(ops.map((op, i) => (i % 2 ? replica : l).registerCustomer(op)));
    const winners = results.flatMap((r, i) => (r.status === "done" ? [i] : []));
    t.is(winners.length, 1, JSON.stringify(results));
    const w = winners[0]!;
    const sameKey = (i: number) => (i < 5) === (w < 5) && (w < 5 || i === w);
    for (const [i, r] of results.entries()) {
      if (i === w) continue;
      if (sameKey(i)) {
        t.is(r.status, "replayed");
        t.deepEqual(Buffer.from((r as { reply: Uint8Array }).reply), Buffer.from(ops[w]!.reply));
      } else {
        refused(t, r, "WALLET_ID_TAKEN");
      }
    }
  });

  scenario(
    "audit reports a corrupted balance",
    async (t, h) => {
      const l = h.ledger;
      await setupVendor(l);
      const c = await newCustomer(t, l);
      await earn(t, l, c, 30n);
      await auditOk(t, l);
      await h.exec(`UPDATE accounts SET balance = balance + 1 WHERE account_id = 'customer/${c.serial}/${CUR}'`);
      const a = await l.audit();
      t.false(a.ok);
      t.true(a.problems.some((p) => p.includes(`customer/${c.serial}/${CUR}: balance 31 but journal says 30`)), a.problems.join("; "));
      t.true(a.problems.some((p) => p.includes("live scrip") && p.includes("holds 30")), a.problems.join("; "));
      t.true(a.problems.some((p) => p.includes(`${CUR}: balances sum to 1`)), a.problems.join("; "));
    },
    { audit: false },
  );

  scenario(
    "audit reports a live scrip marked spent and a campaign counter out of step",
    async (t, h) => {
      const l = h.ledger;
      await setupVendor(l);
      const c = await newCustomer(t, l);
      await earn(t, l, c, 30n);
      await h.exec(`UPDATE scrips SET state = 'spent' WHERE serial = ${c.live.serial}`);
      await h.exec(`UPDATE campaigns SET issued = issued + 5 WHERE campaign_id = '${CAMPAIGN}'`);
      const a = await l.audit();
      t.false(a.ok);
      t.true(a.problems.some((p) => p.includes(`customer/${c.serial}/${CUR} has no live scrip`)), a.problems.join("; "));
      t.true(a.problems.some((p) => p.includes(`campaign ${CAMPAIGN}`)), a.problems.join("; "));
      t.true(a.scripsChecked >= 2 && a.transfersChecked >= 2 && a.accountsChecked >= 3);
    },
    { audit: false },
  );

  // ---------------------------------------------------------------- refunds and restore/sync (issue 14)

  /** A confirmed payment of `price`. */
  async function paid(t: ExecutionContext, l: Ledger, c: Customer, price: bigint) {
    const { tranId, op } = await buy(t, l, c, price);
    done(t, await l.confirm({ vendorId: VENDOR, tranId, customerSerial: c.serial, presentedSerial: op.out.serial, reply: reply("PM7"), now: NOW }));
    return tranId;
  }
  const refundOp = (tranId: string, amount: bigint, requestId = `rq-${randomBytes(4).toString("hex")}`) => ({
    refundId: `rf-${randomBytes(6).toString("hex")}`,
    vendorId: VENDOR,
    tranId,
    requestId,
    amount,
    reason: "test",
    now: NOW,
  });

  scenario("refund: partial once, replay by request id, ALREADY_REFUNDED, REFUND_EXCEEDS_PAYMENT, NOT_CONFIRMED, fold into a fresh scrip", async (t, h) => {
    const l = h.ledger;
    await setupVendor(l);
    const c = await newCustomer(t, l);
    const e = await earn(t, l, c, 100n);
    done(t, await l.confirm({ vendorId: VENDOR, tranId: e.tranId, customerSerial: c.serial, presentedSerial: e.op.out.serial, reply: reply("M7"), now: NOW }));
    const t1 = await paid(t, l, c, 40n);
    const over = await l.refund(refundOp(t1, 41n));
    t.like(over, { status: "refused", refusal: "REFUND_EXCEEDS_PAYMENT" });
    const op = refundOp(t1, 15n);
    const r = await l.refund(op);
    t.like(r, { status: "done" });
    t.like(await l.refund({ ...op, refundId: "other" }), { status: "replayed" });
    t.like(await l.refund(refundOp(t1, 1n)), { status: "refused", refusal: "ALREADY_REFUNDED" });
    const { tranId: unconfirmed } = await buy(t, l, c, 5n);
    t.like(await l.refund(refundOp(unconfirmed, 1n)), { status: "refused", refusal: "NOT_CONFIRMED" });
    t.like(await l.refund(refundOp("nope", 1n)), { status: "refused", refusal: "UNKNOWN_TRANSACTION" });
    const s = await l.listSettlements(VENDOR, 0n, 100);
    t.like(s[s.length - 1], { kind: "refund", tranId: t1, amount: -15n });
    await auditOk(t, l);

    // While the 5 KRW payment is executed, the credit is not folded.
    let st = (await l.customerState(c.serial))!;
    t.is(st.credits[0]!.foldedSerial, 0n);
    const out = scrip(c.serial, c.live.value + 15n);
    const fold = { customerSerial: c.serial, currency: CUR, inSerial: c.live.serial, inValue: c.live.value, refundIds: [op.refundId], total: 15n, out, now: NOW };
    t.like(await l.foldCredits(fold), { status: "refused", refusal: "IN_FLIGHT" });
    done(t, await l.confirm({ vendorId: VENDOR, tranId: unconfirmed, customerSerial: c.serial, presentedSerial: c.live.serial, reply: reply("PM7"), now: NOW }));
    const folded = await l.foldCredits(fold);
    t.like(folded, { status: "done" }, JSON.stringify(folded));
    c.live = out;
    t.like(await l.foldCredits({ ...fold, inSerial: out.serial, inValue: out.value, out: scrip(c.serial, out.value + 15n) }), { status: "refused" });
    st = (await l.customerState(c.serial))!;
    t.is(st.credits[0]!.foldedSerial, out.serial);
    t.deepEqual(await l.liveScrip(c.serial, CUR), out);
    t.is(out.value, 100n - 40n - 5n + 15n);
  });

  scenario("refund: concurrent refunds of one TranID (two replicas on PostgreSQL) leave exactly one", async (t, h) => {
    const l = h.ledger;
    await setupVendor(l);
    const c = await newCustomer(t, l);
    await earn(t, l, c, 100n);
    const t1 = await paid(t, l, c, 60n);
    const replica = engine.replicas ? await h.reopen() : l;
    await warm(l, replica);
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 2 ? replica : l).refund(refundOp(t1, BigInt(i + 1)))));
    t.is(results.filter((r) => r.status === "done").length, 1, JSON.stringify(results.map((r) => r.status)));
    for (const r of results) if (r.status !== "done") t.like(r, { status: "refused", refusal: "ALREADY_REFUNDED" });
    t.is((await l.listSettlements(VENDOR, 0n, 100)).filter((s) => s.kind === "refund").length, 1);
  });

  scenario("refund: two folds and a payment racing for one live scrip (two replicas on PostgreSQL): exactly one spends it", async (t, h) => {
    const l = h.ledger;
    await setupVendor(l);
    const c = await newCustomer(t, l);
    await earn(t, l, c, 100n);
    const t1 = await paid(t, l, c, 40n);
    const rf = refundOp(t1, 15n);
    t.like(await l.refund(rf), { status: "done" });
    const t2 = `T-buy-${randomBytes(6).toString("hex")}`;
    await init(t, l, offer({ tranId: t2, kind: "pay", customer: c, amount: 10n }));
    const replica = engine.replicas ? await h.reopen() : l;
    await warm(l, replica);
    const fold = (out: ScripRow) => ({ customerSerial: c.serial, currency: CUR, inSerial: c.live.serial, inValue: c.live.value, refundIds: [rf.refundId], total: 15n, out, now: NOW });
    const [a, b, p] = await Promise.all([
      l.foldCredits(fold(scrip(c.serial, c.live.value + 15n))),
      replica.foldCredits(fold(scrip(c.serial, c.live.value + 15n))),
      replica.executePayment(payOp(c, t2, 10n)),
    ]);
    const statuses = [a, b, p].map((r) => r.status);
    t.is(statuses.filter((s) => s === "done").length, 1, JSON.stringify([a, b, p]));
    const live = (await l.liveScrip(c.serial, CUR))!;
    const st = (await l.customerState(c.serial))!;
    if (p.status === "done") {
      t.is(live.value, 60n - 10n, "the payment spent it; the credit waits");
      t.is(st.credits.find((x) => x.refundId === rf.refundId)!.foldedSerial, 0n);
    } else {
      t.is(live.value, 60n + 15n, "a fold spent it; the payment was refused");
      t.is(st.credits.find((x) => x.refundId === rf.refundId)!.foldedSerial, live.serial);
    }
  });

  scenario("sync nonces: a nonce is accepted once per customer; old ones are forgotten", async (t, h) => {
    const l = h.ledger;
    const c = await newCustomer(t, l);
    const n = randomBytes(32);
    t.true(await l.claimSyncNonce(c.serial, n, 1000n, 0n));
    t.false(await l.claimSyncNonce(c.serial, n, 1001n, 0n));
    t.true(await l.claimSyncNonce(c.serial + 1n, n, 1001n, 0n), "another customer's nonce space");
    t.true(await l.claimSyncNonce(c.serial, n, 400_000n, 300_000n), "forgotten after the window (the timestamp check refuses it then)");
  });

  scenario(
    "audit notices a refund credit account out of step with its pending refunds",
    async (t, h) => {
      const l = h.ledger;
      await setupVendor(l);
      const c = await newCustomer(t, l);
      await earn(t, l, c, 100n);
      const t1 = await paid(t, l, c, 60n);
      t.like(await l.refund(refundOp(t1, 10n)), { status: "done" });
      await h.exec(`UPDATE refunds SET amount = 9 WHERE tran_id = '${t1}'`);
      const a = await l.audit();
      t.false(a.ok);
      t.true(a.problems.some((p) => p.includes(`credit/${c.serial}/${CUR}`)), a.problems.join("; "));
    },
    { audit: false },
  );
}

// ------------------------------------------------------------------ registration

contract(sqlite);

const pgUrl = pgTestUrl();
if (pgUrl) {
  contract(postgres(pgUrl));

  test.serial("postgres: openLedger picks PostgreSQL for a postgres:// URL", async (t) => {
    const db = await freshPgDatabase(pgUrl);
    const l = await openLedger(db.url);
    try {
      t.is(l.engine, "postgres");
      await l.migrate();
      await auditOk(t, l);
    } finally {
      await l.close();
      await db.drop();
    }
  });
} else {
  console.log(PG_SKIP_REASON);
  test.skip(`postgres: the ledger contract on PostgreSQL [${PG_SKIP_REASON}]`, () => {});
}

test("postgres placeholders: ? becomes $n outside quotes and comments", (t) => {
  t.deepEqual(toPgPlaceholders(`SELECT '?', "a?b", ? -- what?\n FROM t WHERE x = ? AND y = 'it''s?'`), {
    text: `SELECT '?', "a?b", $1 -- what?\n FROM t WHERE x = $2 AND y = 'it''s?'`,
    count: 2,
  });
  t.deepEqual(toPgPlaceholders("VALUES (?, ?, ?)"), { text: "VALUES ($1, $2, $3)", count: 3 });
});
