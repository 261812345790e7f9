/**
 * The protocol without sockets: center and seller behind Connect's in-memory
 * router transport, ledger in a real SQLite file. The same RawCustomer drives
 * it as drives the real servers, so a failure here is logic, not transport.
 */
import { createRouterTransport } from "@connectrpc/connect";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { PaymentCenterService } from "../../gen/scripwire/v1/center_pb.js";
import { SellerService } from "../../gen/scripwire/v1/seller_pb.js";
import { PaymentCenter, type CenterConfig } from "../../src/center/center.js";
import { paymentCenterService } from "../../src/center/service.js";
import { openSqliteLedger } from "../../src/ledger/sqlite.js";
import { parseSellerConfig } from "../../src/seller/catalog.js";
import { Seller } from "../../src/seller/seller.js";
import { sellerService } from "../../src/seller/service.js";
import type { Ledger } from "../../src/ledger/ledger.js";

export const QUIZ = { itemId: "quiz-1", answer: "hash" };

export function sellerConfigJson(vendorId: string, secretHex: string, campaignId: string) {
  return {
    vendorId,
    identity: { dnsName: "mall.test", serverName: "Test Mall", port: 443 },
    vendorKeys: { "1": secretHex },
    offerLifetimeSeconds: 600,
    catalog: [
      { requestUrl: "/articles/hash-cash", title: "Hash cash explained", price: "30", currency: "KRW", methods: ["VIEW"], content: "<h1>Hash cash</h1>" },
      { requestUrl: "/files/tool.bin", title: "A small tool", price: "120", currency: "KRW", methods: ["SAVE"], content: "BINARY", fileName: "tool.bin" },
      { requestUrl: "/articles/both", title: "Either way", price: "5", currency: "KRW", methods: ["VIEW", "SAVE"], content: "both" },
    ],
    campaigns: [
      {
        campaignId,
        currency: "KRW",
        items: [
          { itemId: QUIZ.itemId, kind: "QUIZ", prompt: "What does scrip use instead of signatures?", choices: ["hash", "rsa"], answer: QUIZ.answer, reward: "50" },
          { itemId: "survey-1", kind: "SURVEY", prompt: "What would you buy?", reward: "20" },
          { itemId: "ad-1", kind: "AD", prompt: "Read our ad", reward: "10" },
        ],
      },
    ],
  };
}

export interface WorldOptions {
  budget?: bigint;
  config?: Partial<CenterConfig>;
}

/** A mutable clock so tests can move time forward (expiry) without sleeping. */
export function testClock() {
  let offsetMs = 0;
  return { now: () => Date.now() + offsetMs, advance: (ms: number) => void (offsetMs += ms) };
}

export function centerConfig(opts: WorldOptions): CenterConfig {
  return {
    identity: { dnsName: "center.test", serverName: "Test Center", port: 443 },
    currencies: ["KRW", "USD"],
    redeemThreshold: { KRW: 100n, USD: 100n },
    ...opts.config,
  };
}

/** Vendor, funded campaign and seller config on a fresh ledger. */
export async function seedLedger(ledger: Ledger, budget: bigint) {
  const vendorId = "mall-1";
  const secret = new Uint8Array(randomBytes(32));
  await ledger.createVendor({ vendorId, dnsName: "mall.test", ipAddr: "", serverName: "Test Mall", port: 443 }, { vendorId, keyId: 1, secret });
  const campaignId = "spring";
  await ledger.createCampaign({ campaignId, vendorId, currency: "KRW", cap: 1_000_000n });
  if (budget > 0n) await ledger.fundCampaign(campaignId, budget, "initial", 0n);
  const sellerConfig = parseSellerConfig(sellerConfigJson(vendorId, Buffer.from(secret).toString("hex"), campaignId));
  return { vendorId, secret, campaignId, sellerConfig };
}

export async function inprocWorld(opts: WorldOptions = {}) {
  const dir = mkdtempSync(join(tmpdir(), "scripwire-inproc-"));
  const ledger = openSqliteLedger(join(dir, "center.sqlite"));
  const center = new PaymentCenter(ledger, centerConfig(opts));
  await center.start();
  const { vendorId, secret, campaignId, sellerConfig } = await seedLedger(ledger, opts.budget ?? 10_000n);
  const seller = new Seller(sellerConfig);
  const centerTransport = createRouterTransport((r) => r.service(PaymentCenterService, paymentCenterService(center)));
  const sellerTransport = createRouterTransport((r) => r.service(SellerService, sellerService(seller)));
  return {
    dir,
    ledger,
    center,
    seller,
    vendorId,
    secret,
    campaignId,
    centerTransport,
    sellerTransport,
    async close() {
      await ledger.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
