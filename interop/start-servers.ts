/**
 * Starts a real TypeScript payment center and seller on free loopback ports
 * for the interop clients (interop/run.sh), seeds a vendor and a funded
 * campaign through the center's ledger, and prints ONE JSON line on stdout:
 *
 *   {"center":"127.0.0.1:P","seller":"127.0.0.1:Q","center_port":P,"seller_port":Q,
 *    "vendor_id":"interop-mall","vendor_key_id":1,"vendor_secret_hex":"...",
 *    "quiz_item":"quiz-hash","quiz_answer":"Millicent","ad_item":"ad-welcome",
 *    "currency":"KRW","data_dir":"/tmp/..."}
 *
 * then stays up until SIGTERM / SIGINT (or stdin closes, with --exit-on-stdin-close),
 * closes both servers and removes its temporary data directory.
 *
 * The vendor secret is printed only because this is a throwaway test
 * deployment: the interop clients use it to verify offer and receipt MACs
 * independently. Never do this with a real vendor.
 *
 * usage: node --import=tsx interop/start-servers.ts [--data-dir DIR] [--exit-on-stdin-close]
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startCenterServer, type RunningCenter } from "../src/center/server.js";
import { parseSellerConfig } from "../src/seller/catalog.js";
import { startSellerServer, type RunningSeller } from "../src/seller/server.js";
import http from "node:http";
import { parseGatewayConfig } from "../src/gateway/config.js";
import { startGateway, type RunningGateway } from "../src/gateway/gateway.js";

const HOST = "127.0.0.1";
const VENDOR_ID = "interop-mall";
const CAMPAIGN_ID = "interop-campaign";
const CURRENCY = "KRW";
const QUIZ_ITEM = "quiz-hash";
const QUIZ_ANSWER = "Millicent";
const AD_ITEM = "ad-welcome";
const GATEWAY_VENDOR_ID = "interop-site";

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, HOST, () => {
      const addr = s.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Picks a free port and starts on it; retries if another process grabbed it in between. */
async function onFreePort<T>(start: (port: number) => Promise<T>): Promise<T> {
  let last: unknown;
  for (let i = 0; i < 5; i++) {
    const port = await freePort();
    try {
      return await start(port);
    } catch (e) {
      last = e;
      if ((e as NodeJS.ErrnoException)?.code !== "EADDRINUSE") throw e;
    }
  }
  throw last;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const dirArg = args.indexOf("--data-dir");
  const ownDir = dirArg < 0;
  const dataDir = ownDir ? mkdtempSync(join(tmpdir(), "scripwire-interop-")) : args[dirArg + 1]!;
  const adminToken = randomBytes(24).toString("hex");

  let center: RunningCenter | undefined;
  let seller: RunningSeller | undefined;
  let gateway: RunningGateway | undefined;
  let site: http.Server | undefined;
  let closing = false;
  const shutdown = async (code: number) => {
    if (closing) return;
    closing = true;
    try {
      await gateway?.close(1_000);
      site?.closeAllConnections();
      site?.close();
      await seller?.close(1_000);
      await center?.close(1_000);
    } catch (e) {
      process.stderr.write(`start-servers: error while closing: ${String(e)}\n`);
    }
    if (ownDir) rmSync(dataDir, { recursive: true, force: true });
    process.exit(code);
  };
  process.on("SIGTERM", () => void shutdown(0));
  process.on("SIGINT", () => void shutdown(0));
  if (args.includes("--exit-on-stdin-close")) {
    process.stdin.on("end", () => void shutdown(0));
    process.stdin.resume();
  }

  try {
    center = await onFreePort((port) =>
      startCenterServer({
        identity: { dnsName: HOST, serverName: "Scripwire Interop Center", port },
        currencies: [CURRENCY],
        // Low enough that the interop wallet can exercise Redeem (RD1/RD2) with quiz earnings.
        redeemThreshold: { [CURRENCY]: 10n },
        dataDir,
        database: join(dataDir, "center.sqlite"),
        createLedger: true,
        // A throwaway directory keeps its KEK inside, so removing it leaves nothing behind.
        kek: ownDir ? { file: join(dataDir, "center.kek") } : undefined,
        host: HOST,
        port,
        adminToken,
      }),
    );

    // Seed through the ledger: one vendor with secret generation 1, one funded campaign.
    const vendorSecret = new Uint8Array(randomBytes(32));
    const sellerPort = await freePort();
    const sellerIdentity = { dnsName: HOST, ipAddr: HOST, serverName: "Scripwire Interop Mall", port: sellerPort };
    const created = await center.ledger.createVendor({ vendorId: VENDOR_ID, ...sellerIdentity }, { vendorId: VENDOR_ID, keyId: 1, secret: vendorSecret });
    if (!created) throw new Error(`vendor ${VENDOR_ID} already exists in ${dataDir}`);
    await center.ledger.createCampaign({ campaignId: CAMPAIGN_ID, vendorId: VENDOR_ID, currency: CURRENCY, cap: 10_000_000n });
    await center.ledger.fundCampaign(CAMPAIGN_ID, 1_000_000n, `fund-${randomBytes(8).toString("hex")}`, BigInt(Math.floor(Date.now() / 1000)));

    const config = parseSellerConfig({
      vendorId: VENDOR_ID,
      identity: sellerIdentity,
      vendorKeys: { "1": Buffer.from(vendorSecret).toString("hex") },
      offerLifetimeSeconds: 600,
      catalog: [
        {
          requestUrl: "/articles/hash-cash",
          title: "Hash cash, explained",
          price: "30",
          currency: CURRENCY,
          methods: ["VIEW", "SAVE"],
          content: "<!doctype html><html><body><h1>Hash cash</h1><p>Paid for with keyed hashes only.</p></body></html>",
        },
        {
          requestUrl: "/files/whitepaper.txt",
          title: "Scripwire whitepaper",
          price: "45",
          currency: CURRENCY,
          methods: ["SAVE"],
          contentType: "text/plain; charset=utf-8",
          content: "Scripwire: micropayments authenticated with keyed hashes.\n",
        },
      ],
      campaigns: [
        {
          campaignId: CAMPAIGN_ID,
          currency: CURRENCY,
          items: [
            {
              itemId: QUIZ_ITEM,
              kind: "QUIZ",
              prompt: "Which 1990s DEC scheme inspired scrip?",
              choices: ["Millicent", "DigiCash", "CyberCoin"],
              answer: QUIZ_ANSWER,
              reward: "50",
            },
            { itemId: AD_ITEM, kind: "AD", prompt: "Scripwire: pay a fraction of a cent.", reward: "40" },
            // Each item rewards a customer once; the clients' cancel/resend experiments need fresh ones.
            ...[1, 2, 3, 4, 5].map((n) => ({ itemId: `ad-extra-${n}`, kind: "AD", prompt: `Sponsored message #${n}.`, reward: "35" })),
          ],
        },
      ],
    });
    seller = await startSellerServer({ config, host: HOST, port: sellerPort });

    // A plain website behind the HTTP 402 gateway, sold by a second vendor (interop/python/gateway_flow.py).
    site = http.createServer((req, res) => {
      req.resume();
      res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
      res.end(`page ${req.url}\n`);
    });
    await new Promise<void>((resolve) => site!.listen(0, HOST, resolve));
    const gatewaySecret = new Uint8Array(randomBytes(32));
    await center.ledger.createVendor({ vendorId: GATEWAY_VENDOR_ID, dnsName: HOST, ipAddr: HOST, serverName: "Scripwire Interop Site", port: 0 }, { vendorId: GATEWAY_VENDOR_ID, keyId: 1, secret: gatewaySecret });
    gateway = await startGateway({
      host: HOST,
      port: 0,
      config: parseGatewayConfig({
        upstream: `http://${HOST}:${(site.address() as { port: number }).port}`,
        vendorId: GATEWAY_VENDOR_ID,
        vendorKeys: { "1": Buffer.from(gatewaySecret).toString("hex") },
        // The name the center has on record for this vendor (it checks offers against it).
        identity: { dnsName: HOST, ipAddr: HOST, serverName: "Scripwire Interop Site" },
        routes: [{ id: "articles", path: "/articles/*", price: "7", currency: CURRENCY }],
      }),
    });

    process.stdout.write(
      JSON.stringify({
        center: `${HOST}:${center.port}`,
        seller: `${HOST}:${seller.port}`,
        center_port: center.port,
        seller_port: seller.port,
        center_url: center.url,
        seller_url: seller.url,
        gateway_url: gateway.url,
        vendor_id: VENDOR_ID,
        vendor_key_id: 1,
        vendor_secret_hex: Buffer.from(vendorSecret).toString("hex"),
        campaign_id: CAMPAIGN_ID,
        quiz_item: QUIZ_ITEM,
        quiz_answer: QUIZ_ANSWER,
        ad_item: AD_ITEM,
        currency: CURRENCY,
        data_dir: dataDir,
        // For the grpcurl admin call in run.sh (a throwaway center on loopback).
        admin_token: adminToken,
      }) + "\n",
    );
  } catch (e) {
    process.stderr.write(`start-servers: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    await shutdown(1);
  }
}

void main();
