/**
 * The bench world: a center database with a vendor, a funded campaign and W
 * registered, funded wallets, built once through the real protocol code
 * (PaymentCenter + Seller in process, real SQLite file) and saved as a
 * template. Every throughput run copies the template, so runs are
 * independent and start from the same state.
 *
 * Also: a captured real flow (every patent message of one registration,
 * issuance and payment) for the crypto and wire-size sections, and bulk
 * loading of scrip history for the scale section.
 */
import { clone, create, toBinary } from "@bufbuild/protobuf";
import Database from "better-sqlite3";
import { copyFileSync, existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import * as C from "../gen/scripwire/v1/center_pb.js";
import * as S from "../gen/scripwire/v1/seller_pb.js";
import * as T from "../gen/scripwire/v1/types_pb.js";
import {
  ConfirmIssueRequestSchema,
  ConfirmPaymentRequestSchema,
  InitIssueRequestSchema,
  InitPaymentRequestSchema,
  IssueRequestSchema,
  PayRequestSchema,
  RegisterRequestSchema,
  type ConfirmIssueResponse,
  type ConfirmPaymentResponse,
  type InitIssueResponse,
  type InitPaymentResponse,
  type IssueResponse,
  type PayResponse,
  type RegisterResponse,
} from "../gen/scripwire/v1/center_pb.js";
import {
  DeliverRequestSchema,
  RequestIssueRequestSchema,
  RequestServiceRequestSchema,
  type DeliverResponse,
  type RequestIssueResponse,
  type RequestServiceResponse,
} from "../gen/scripwire/v1/seller_pb.js";
import { CmdType, DeliveryMethod, HeaderTypeSchema, ScripTypeSchema, type Offer, type ScripType } from "../gen/scripwire/v1/types_pb.js";
import { PaymentCenter, type CenterConfig } from "../src/center/center.js";
import { decryptCustomSecret, sealSessionKey } from "../src/crypto/registration.js";
import { computeMessageHash, verifyMessageHash } from "../src/crypto/scrip-auth.js";
import { openSqliteLedger } from "../src/ledger/sqlite.js";
import { parseSellerConfig, type SellerConfig } from "../src/seller/catalog.js";
import { Seller } from "../src/seller/seller.js";

export const VENDOR_ID = "bench-mall";
export const CAMPAIGN_ID = "bench-campaign";
/** Article every bench payment buys: price 1, so a funded wallet never runs dry. */
export const ARTICLE_URL = "/articles/bench";
/** The one-time reward that funds a wallet (value units). */
export const FUNDING_REWARD = 1_000_000_000n;
/** Reward of each small ad item used by the issuance bench. */
export const AD_REWARD = 1n;

export const CENTER_CONFIG: CenterConfig = {
  identity: { dnsName: "center.bench", serverName: "Bench Center", port: 443 },
  currencies: ["KRW"],
  redeemThreshold: { KRW: 100n },
};

export const hdr = (cmdType: CmdType) => create(HeaderTypeSchema, { cmdType, protocolVersion: "scripwire/1" });

export function sellerConfigRaw(vendorSecretHex: string, adItems: number) {
  return {
    vendorId: VENDOR_ID,
    identity: { dnsName: "mall.bench", serverName: "Bench Mall", port: 443 },
    vendorKeys: { "1": vendorSecretHex },
    // Offers are fetched before the timed loop and must outlive it.
    offerLifetimeSeconds: 6 * 3600,
    catalog: [{ requestUrl: ARTICLE_URL, title: "Bench article", price: "1", currency: "KRW", methods: ["VIEW"], content: "<p>paid</p>" }],
    campaigns: [
      {
        campaignId: CAMPAIGN_ID,
        currency: "KRW",
        items: [
          { itemId: "fund", kind: "AD", prompt: "funding", reward: String(FUNDING_REWARD) },
          ...Array.from({ length: adItems }, (_, i) => ({ itemId: `ad-${i}`, kind: "AD", prompt: `ad ${i}`, reward: String(AD_REWARD) })),
        ],
      },
    ],
  };
}

/** A wallet as the load generator holds it. */
export interface BenchWallet {
  walletId: string;
  customSecret: Uint8Array;
  scrip: ScripType;
}

export interface World {
  dir: string;
  templateDb: string;
  vendorSecret: Uint8Array;
  sellerConfig: SellerConfig;
  adItems: number;
  /** Wallet state as saved in the template (clone before use). */
  wallets: BenchWallet[];
  /** Keys the center holds, read from the template (for the crypto section). */
  certKey: Uint8Array;
  /** One real flow's messages, binary, by name. */
  flow: CapturedFlow;
}

export interface CapturedMessage {
  step: string;
  type: string;
  bytes: Uint8Array;
}

export interface CapturedFlow {
  messages: CapturedMessage[];
  /** Inputs of the last payment, for the crypto section. */
  pay: {
    customSecret: Uint8Array;
    scrip: ScripType;
    order: Offer;
    payHash: Uint8Array;
    newScrip: ScripType;
    newScripHash: Uint8Array;
    confirmHash: Uint8Array;
    receipt: NonNullable<ConfirmPaymentResponse["receipt"]>;
    confirmScripHash: Uint8Array;
  };
}

function must<T extends { header?: { cmdType: CmdType; errorMessage: string } }>(r: T, want: CmdType, what: string): T {
  if (r.header?.cmdType !== want) throw new Error(`bench setup: ${what} answered ${CmdType[r.header?.cmdType ?? 0]}: ${r.header?.errorMessage}`);
  return r;
}

async function register(center: PaymentCenter): Promise<{ wallet: BenchWallet; req: Uint8Array; res: RegisterResponse }> {
  const walletId = `bw_${randomBytes(10).toString("hex")}`;
  const ks = new Uint8Array(randomBytes(32));
  const req = create(RegisterRequestSchema, {
    header: hdr(CmdType.UM1),
    walletId,
    name: "Bench Customer",
    email: "bench@example.test",
    sealedSessionKey: sealSessionKey(center.keys.centerKeyPair().publicKey, walletId, ks),
    currency: "KRW",
  });
  const res = await center.register(req);
  const scrip = res.scrip!;
  const customSecret = decryptCustomSecret(ks, walletId, scrip.scrip!.customId!, res.encryptedCustomSecret);
  return { wallet: { walletId, customSecret, scrip }, req: toBinary(RegisterRequestSchema, req), res };
}

function mhash(w: BenchWallet, cmd: CmdType, ctx: string, pCount: number, scrip: ScripType, order?: Offer): Uint8Array {
  return computeMessageHash(scrip.hashAlgorithm, w.customSecret, { code: CmdType[cmd], contextId: ctx, pCount, scrip, order });
}

/** M1..M7 in process; returns the messages so the caller may record them. */
async function earn(center: PaymentCenter, seller: Seller, w: BenchWallet, item: string) {
  const m1 = create(RequestIssueRequestSchema, { header: hdr(CmdType.GM1_1), item, value: "yes", customId: w.scrip.scrip!.customId });
  const m2 = must(seller.requestIssue(m1), CmdType.GM2_1, "M1");
  const permit = m2.permit!;
  const m3 = create(InitIssueRequestSchema, { header: hdr(CmdType.GM3_1), permit });
  const m3r: InitIssueResponse = await center.initIssue(m3);
  const m4 = create(IssueRequestSchema, {
    header: hdr(CmdType.GM4_1),
    tranId: permit.tranId,
    scrip: w.scrip,
    scripHash: mhash(w, CmdType.GM4_1, permit.tranId, 0, w.scrip),
    pCount: 0,
  });
  const m5: IssueResponse = must(await center.issue(m4), CmdType.GM5_1, "M4");
  const m6 = create(ConfirmIssueRequestSchema, {
    header: hdr(CmdType.GM6_1),
    tranId: permit.tranId,
    newScrip: m5.newScrip,
    newScripHash: mhash(w, CmdType.GM6_1, permit.tranId, 0, m5.newScrip!),
    pCount: 0,
  });
  const m7: ConfirmIssueResponse = await center.confirmIssue(m6);
  w.scrip = m5.newScrip!;
  return { m1, m2, m3, m3r, m4, m5, m6, m7 };
}

async function buy(center: PaymentCenter, seller: Seller, w: BenchWallet) {
  const s1 = create(RequestServiceRequestSchema, { header: hdr(CmdType.PM1_1), requestUrl: ARTICLE_URL, pMethod: DeliveryMethod.VIEW, customId: w.scrip.scrip!.customId });
  const s2: RequestServiceResponse = must(seller.requestService(s1), CmdType.PM2_1, "S1");
  const order = s2.order!;
  const s3 = create(InitPaymentRequestSchema, { header: hdr(CmdType.PM3_1), order });
  const s3r: InitPaymentResponse = await center.initPayment(s3);
  const payHash = mhash(w, CmdType.PM4_1, order.tranId, 0, w.scrip, order);
  const s4 = create(PayRequestSchema, { header: hdr(CmdType.PM4_1), scrip: w.scrip, order, hash: payHash, pCount: 0 });
  const s5: PayResponse = must(await center.pay(s4), CmdType.PM5_1, "S4");
  const confirmHash = mhash(w, CmdType.PM6_1, order.tranId, 0, s5.newScrip!);
  const s6 = create(ConfirmPaymentRequestSchema, { header: hdr(CmdType.PM6_1), tranId: order.tranId, newScrip: s5.newScrip, newScripHash: confirmHash, pCount: 0 });
  const s6r: ConfirmPaymentResponse = await center.confirmPayment(s6);
  const s7 = create(DeliverRequestSchema, { header: hdr(CmdType.PM8_1), receipt: s6r.receipt });
  const s7r: DeliverResponse = seller.deliver(s7);
  const spent = w.scrip;
  w.scrip = s5.newScrip!;
  return { s1, s2, s3, s3r, s4, s5, s6, s6r, s7, s7r, spent, order, payHash, confirmHash };
}

export interface WorldOptions {
  dir: string;
  wallets: number;
  adItems: number;
  onProgress?: (msg: string) => void;
}

/** Builds the template database and captures one real flow. */
export async function buildWorld(opts: WorldOptions): Promise<World> {
  mkdirSync(opts.dir, { recursive: true });
  const templateDb = join(opts.dir, "template.sqlite");
  const ledger = openSqliteLedger(templateDb);
  const center = new PaymentCenter(ledger, CENTER_CONFIG);
  await center.start();
  const vendorSecret = new Uint8Array(randomBytes(32));
  await ledger.createVendor({ vendorId: VENDOR_ID, dnsName: "mall.bench", ipAddr: "", serverName: "Bench Mall", port: 443 }, { vendorId: VENDOR_ID, keyId: 1, secret: vendorSecret });
  const budget = FUNDING_REWARD * BigInt(opts.wallets + 2) + AD_REWARD * BigInt(opts.adItems) * BigInt(opts.wallets + 2);
  await ledger.createCampaign({ campaignId: CAMPAIGN_ID, vendorId: VENDOR_ID, currency: "KRW", cap: budget });
  await ledger.fundCampaign(CAMPAIGN_ID, budget, "bench-initial", 0n);
  const sellerConfig = parseSellerConfig(sellerConfigRaw(Buffer.from(vendorSecret).toString("hex"), opts.adItems));
  const seller = new Seller(sellerConfig);

  // One flow captured message by message (wire sizes, crypto inputs).
  const messages: CapturedMessage[] = [];
  const rec = (step: string, schema: { typeName: string }, m: unknown) =>
    messages.push({ step, type: schema.typeName.replace(/^scripwire\.v1\./, ""), bytes: toBinary(schema as never, m as never) });
  const first = await register(center);
  messages.push({ step: "R1", type: "RegisterRequest", bytes: first.req });
  rec("R2", C.RegisterResponseSchema, first.res);
  const e = await earn(center, seller, first.wallet, "fund");
  rec("M1", S.RequestIssueRequestSchema, e.m1);
  rec("M2", S.RequestIssueResponseSchema, e.m2);
  rec("M3", C.InitIssueRequestSchema, e.m3);
  rec("M3 reply", C.InitIssueResponseSchema, e.m3r);
  rec("M4", C.IssueRequestSchema, e.m4);
  rec("M5", C.IssueResponseSchema, e.m5);
  rec("M6", C.ConfirmIssueRequestSchema, e.m6);
  rec("M7", C.ConfirmIssueResponseSchema, e.m7);
  const b = await buy(center, seller, first.wallet);
  rec("S1", S.RequestServiceRequestSchema, b.s1);
  rec("S2", S.RequestServiceResponseSchema, b.s2);
  rec("S3", C.InitPaymentRequestSchema, b.s3);
  rec("S3 reply", C.InitPaymentResponseSchema, b.s3r);
  rec("S4", C.PayRequestSchema, b.s4);
  rec("S5", C.PayResponseSchema, b.s5);
  rec("S6", C.ConfirmPaymentRequestSchema, b.s6);
  rec("S6 reply (receipt)", C.ConfirmPaymentResponseSchema, b.s6r);
  rec("S7", S.DeliverRequestSchema, b.s7);
  rec("S7 reply", S.DeliverResponseSchema, b.s7r);
  rec("(ScripType)", T.ScripTypeSchema, b.s5.newScrip);
  rec("(Offer)", T.OfferSchema, b.order);
  rec("(Receipt)", T.ReceiptSchema, b.s6r.receipt);

  const flow: CapturedFlow = {
    messages,
    pay: {
      customSecret: first.wallet.customSecret,
      scrip: b.spent,
      order: b.order,
      payHash: b.payHash,
      newScrip: b.s5.newScrip!,
      newScripHash: b.s5.newScripHash,
      confirmHash: b.confirmHash,
      receipt: b.s6r.receipt!,
      confirmScripHash: b.s6r.scripHash,
    },
  };
  if (!verifyMessageHash(b.s5.newScrip!.hashAlgorithm, first.wallet.customSecret, { code: "PM5_1", contextId: b.order.tranId, pCount: 0, scrip: b.s5.newScrip }, b.s5.newScripHash)) {
    throw new Error("bench setup: S5 reply hash does not verify");
  }

  // The load wallets, registered and funded concurrently (group commit shares the fsyncs).
  const wallets: BenchWallet[] = [first.wallet];
  const chunk = 32;
  while (wallets.length < opts.wallets) {
    const n = Math.min(chunk, opts.wallets - wallets.length);
    const made = await Promise.all(
      Array.from({ length: n }, async () => {
        const r = await register(center);
        await earn(center, seller, r.wallet, "fund");
        return r.wallet;
      }),
    );
    wallets.push(...made);
    opts.onProgress?.(`registered and funded ${wallets.length}/${opts.wallets} wallets`);
  }
  const certKey = center.keys.current("certificate").key;
  await ledger.close();
  return { dir: opts.dir, templateDb, vendorSecret, sellerConfig, adItems: opts.adItems, wallets, certKey, flow };
}

export function cloneWallets(ws: BenchWallet[]): BenchWallet[] {
  return ws.map((w) => ({ walletId: w.walletId, customSecret: w.customSecret, scrip: clone(ScripTypeSchema, w.scrip) }));
}

/** Copies the template database into a run directory. */
export function copyTemplate(world: World, runDir: string): string {
  mkdirSync(runDir, { recursive: true });
  const db = join(runDir, "center.sqlite");
  copyFileSync(world.templateDb, db);
  for (const ext of ["-wal", "-shm"]) if (existsSync(world.templateDb + ext)) copyFileSync(world.templateDb + ext, db + ext);
  return db;
}

/**
 * Adds `n` rows of scrip history to the scrips table, the way years of use
 * would leave it: serials spread uniformly over the 63-bit space (as the
 * center's random serials are), 90% spent, 10% live each for its own
 * customer. Inserted in serial order in big transactions, so loading 10^7
 * rows is an append, not 10^7 random B-tree inserts. Accounts are not
 * created for these customers: bench databases are never audited.
 */
export function bulkInsertScrips(dbPath: string, n: number, onProgress?: (done: number) => void): void {
  const db = new Database(dbPath);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = OFF");
  db.pragma("cache_size = -262144");
  const ins = db.prepare(
    `INSERT OR IGNORE INTO scrips (serial, customer_serial, currency, value, expires_at, state, created_at, spent_at) VALUES (?, ?, 'KRW', ?, ?, ?, ?, ?)`,
  );
  // The tamper-evident journal's triggers (src/ledger/chain-schema.ts) add one
  // event per inserted row; left unsealed they would have the center's sealer
  // hash a million events during the measured window, which is a backlog
  // test, not the lookup depth this section asks about. This history is
  // synthetic, so its events are dropped again below.
  const hasEvents = !!db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'`).get();
  const eventsBefore = hasEvents ? Number((db.prepare(`SELECT COALESCE(MAX(event_id), 0) AS m FROM events`).get() as { m: number }).m) : 0;
  const stride = (1n << 63n) / BigInt(n + 1);
  const strideNum = Number(stride);
  const now = BigInt(Math.floor(Date.now() / 1000));
  const batch = 200_000;
  // Fake customer serials sit in their own range so they never meet a real (random) one by accident.
  const customerBase = 1n << 62n;
  for (let start = 0; start < n; start += batch) {
    const end = Math.min(n, start + batch);
    db.transaction(() => {
      for (let i = start; i < end; i++) {
        const jitter = BigInt(Math.floor(Math.random() * Math.max(1, strideNum - 1)));
        const serial = stride * BigInt(i + 1) + jitter;
        const live = i % 10 === 0;
        ins.run(serial, customerBase + BigInt(live ? i : i % 100_003), BigInt(1 + (i % 1000)), now + 86_400n, live ? "live" : "spent", now - 86_400n, live ? null : now - 3600n);
      }
    })();
    onProgress?.(end);
  }
  if (hasEvents) db.prepare(`DELETE FROM events WHERE event_id > ? AND chain_seq IS NULL`).run(eventsBefore);
  db.pragma("wal_checkpoint(TRUNCATE)");
  db.close();
}

export function scripCount(dbPath: string): number {
  const db = new Database(dbPath, { readonly: true });
  const n = Number((db.prepare(`SELECT COUNT(*) AS n FROM scrips`).get() as { n: number }).n);
  db.close();
  return n;
}

/** Offers (S2) for one wallet, made by the real Seller logic before the timed loop. */
export function fetchOffers(seller: Seller, w: BenchWallet, n: number): Offer[] {
  const out: Offer[] = [];
  for (let i = 0; i < n; i++) {
    const r = seller.requestService(
      create(RequestServiceRequestSchema, { header: hdr(CmdType.PM1_1), requestUrl: ARTICLE_URL, pMethod: DeliveryMethod.VIEW, customId: w.scrip.scrip!.customId }),
    );
    out.push(must(r, CmdType.PM2_1, "S1").order!);
  }
  return out;
}

/** Permits (M2) for one wallet, one per ad item (a customer earns once per item). */
export function fetchPermits(seller: Seller, w: BenchWallet, items: number[]): Offer[] {
  return items.map((i) => {
    const r: RequestIssueResponse = seller.requestIssue(
      create(RequestIssueRequestSchema, { header: hdr(CmdType.GM1_1), item: `ad-${i}`, value: "seen", customId: w.scrip.scrip!.customId }),
    );
    return must(r, CmdType.GM2_1, "M1").permit!;
  });
}

