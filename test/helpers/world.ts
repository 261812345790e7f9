/**
 * A real Scripwire world for end-to-end tests: a payment center (SQLite file
 * in a fresh temp dir) and a seller, both listening on loopback HTTP/2 (port
 * 0), with a vendor and a funded campaign created through the center's admin
 * API, and a catalog and campaign items every test can rely on:
 *
 *   catalog  /articles/hash-cash   30 KRW  VIEW or SAVE
 *            /files/kr-10-0284579.pdf  120 KRW  SAVE only
 *            /articles/today       10 KRW  VIEW only
 *   items    quiz-1   QUIZ    reward 50 (answer "hash")
 *            survey-1 SURVEY  reward 20
 *            ad-1     AD      reward 10
 *
 * `close()` stops both servers and removes the temp dir.
 *
 * @example
 * const world = await startWorld();
 * t.teardown(() => world.close());
 * const wallet = await Wallet.open({ store: new MemoryWalletStore() });
 * await wallet.register(world.centerUrl);
 * await wallet.earn(world.sellerUrl, world.quiz.itemId, world.quiz.answer);
 */
import { createClient } from "@connectrpc/connect";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { CenterAdminService } from "../../gen/scripwire/v1/admin_pb.js";
import { startCenterServer, type RunningCenter } from "../../src/center/server.js";
import { createTransport } from "../../src/client/transport.js";
import { parseSellerConfig } from "../../src/seller/catalog.js";
import { startSellerServer, type RunningSeller } from "../../src/seller/server.js";

export interface WorldOptions {
  /** Initial campaign budget, KRW. Default 100 000. */
  budget?: bigint;
  /** Campaign cap (total funding it may ever receive). Default 1 000 000. */
  cap?: bigint;
  /** Lifetime of newly issued scrip, seconds. Default 3600; make it short to test expiry. */
  scripLifetimeSeconds?: number;
  /** Minimum redemption, KRW. Default 50 (so a test can earn enough to redeem). */
  redeemThreshold?: bigint;
  /** The center's clock, milliseconds (the seller keeps real time). Default Date.now. */
  clock?: () => number;
  /**
   * false: the hot calls stay on the event loop's center, for tests that
   * inject faults into `center.ledger` (the writer thread's center has a
   * ledger of its own). Default: as `center serve` runs (on the thread).
   */
  hotCallsThread?: boolean;
  /** Offer lifetime the seller signs, seconds. Default 600. */
  offerLifetimeSeconds?: number;
}

export interface World {
  centerUrl: string;
  sellerUrl: string;
  center: RunningCenter;
  seller: RunningSeller;
  adminToken: string;
  vendorId: string;
  vendorSecret: Uint8Array;
  campaignId: string;
  quiz: { itemId: string; answer: string };
  survey: { itemId: string };
  ad: { itemId: string };
  catalog: {
    /** 30 KRW, VIEW or SAVE. */
    article: { requestUrl: string; price: bigint };
    /** 120 KRW, SAVE only. */
    file: { requestUrl: string; price: bigint; fileName: string };
    /** 10 KRW, VIEW only. */
    viewOnly: { requestUrl: string; price: bigint };
  };
  dir: string;
  close(): Promise<void>;
}

export const WORLD_CURRENCY = "KRW";

export async function startWorld(opts: WorldOptions = {}): Promise<World> {
  const dir = await mkdtemp(join(tmpdir(), "scripwire-world-"));
  const adminToken = `admin-${randomBytes(16).toString("hex")}`;
  const closers: (() => Promise<void>)[] = [];
  const close = async () => {
    for (const c of closers.reverse()) await c().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const center = await startCenterServer({
      identity: { dnsName: "localhost", serverName: "Scripwire test center", port: 0 },
      currencies: [WORLD_CURRENCY],
      scripLifetimeSeconds: opts.scripLifetimeSeconds ?? 3600,
      redeemThreshold: { [WORLD_CURRENCY]: opts.redeemThreshold ?? 50n },
      clock: opts.clock,
      hotCallsThread: opts.hotCallsThread,
      dataDir: dir,
      createLedger: true,
      // Inside the temporary directory so it goes with it (a real center keeps it beside the data directory).
      kek: { file: join(dir, "center.kek") },
      host: "127.0.0.1",
      port: 0,
      adminToken,
    });
    closers.push(() => center.close(500));

    const adminTransport = createTransport(center.url, { headers: { authorization: `Bearer ${adminToken}` } });
    const admin = createClient(CenterAdminService, adminTransport);
    const vendorId = "mall-1";
    const campaignId = "spring";
    const vendor = await admin.createVendor({ vendorId, vendor: { dnsName: "localhost", serverName: "Test Mall" } });
    const budget = opts.budget ?? 100_000n;
    await admin.createCampaign({ campaignId, vendorId, currency: WORLD_CURRENCY, cap: opts.cap ?? 1_000_000n });
    if (budget > 0n) await admin.fundCampaign({ campaignId, amount: budget, requestId: "initial-funding" });

    const quiz = { itemId: "quiz-1", answer: "hash" };
    const config = parseSellerConfig({
      vendorId,
      identity: { dnsName: "localhost", serverName: "Test Mall", port: 0 },
      vendorKeys: { [String(vendor.vendorKeyId)]: Buffer.from(vendor.vendorSecret).toString("hex") },
      offerLifetimeSeconds: opts.offerLifetimeSeconds ?? 600,
      catalog: [
        {
          requestUrl: "/articles/hash-cash",
          title: "Hash cash, explained",
          price: "30",
          currency: WORLD_CURRENCY,
          methods: ["VIEW", "SAVE"],
          contentType: "text/html; charset=utf-8",
          fileName: "hash-cash.html",
          content: "<h1>Hash cash</h1><p>Scrip is authenticated with keyed hashes only.</p>",
        },
        {
          requestUrl: "/files/kr-10-0284579.pdf",
          title: "KR 10-0284579 (full text)",
          price: "120",
          currency: WORLD_CURRENCY,
          methods: ["SAVE"],
          fileName: "kr-10-0284579.pdf",
          content: "%PDF-1.4 not really a pdf",
        },
        { requestUrl: "/articles/today", title: "Today's news", price: "10", currency: WORLD_CURRENCY, methods: ["VIEW"], content: "<p>Nothing happened.</p>" },
      ],
      campaigns: [
        {
          campaignId,
          currency: WORLD_CURRENCY,
          items: [
            { itemId: quiz.itemId, kind: "QUIZ", prompt: "What authenticates scrip instead of signatures?", choices: ["hash", "rsa", "nothing"], answer: quiz.answer, reward: "50" },
            { itemId: "survey-1", kind: "SURVEY", prompt: "What would you like to read about?", reward: "20" },
            { itemId: "ad-1", kind: "AD", prompt: "Scripwire: pay a few won per article.", reward: "10" },
          ],
        },
      ],
    });
    // The mall's pages pay from this center's browser wallet, and a page at the
    // center's origin (the browser wallet) may call the seller's RPCs (CORS).
    const seller = await startSellerServer({ config, host: "127.0.0.1", port: 0, centerUrl: center.url, corsOrigins: [new URL(center.url).origin] });
    closers.push(() => seller.close(500));

    return {
      centerUrl: center.url,
      sellerUrl: seller.url,
      center,
      seller,
      adminToken,
      vendorId,
      vendorSecret: vendor.vendorSecret,
      campaignId,
      quiz,
      survey: { itemId: "survey-1" },
      ad: { itemId: "ad-1" },
      catalog: {
        article: { requestUrl: "/articles/hash-cash", price: 30n },
        file: { requestUrl: "/files/kr-10-0284579.pdf", price: 120n, fileName: "kr-10-0284579.pdf" },
        viewOnly: { requestUrl: "/articles/today", price: 10n },
      },
      dir,
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}
